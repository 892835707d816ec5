"""A one-line progress bar for training: step, loss, lr, clips/s and ETA.

On a terminal the line redraws in place; otherwise (log files, CI) a full line is printed at each update, so a
log still shows progress. Only process 0 prints.
"""
from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressBar:
    """`update(step, loss=..., lr=...)` after each logged step; clips/s is measured between updates."""

    def __init__(self, total_steps: int, clips_per_step: int, first_step: int = 0, enabled: bool = True,
                 stream=None, width: int = 24):
        self.total_steps = total_steps
        self.clips_per_step = clips_per_step
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.width = width
        self.interactive = getattr(self.stream, "isatty", lambda: False)()
        self._last_step, self._last_time = first_step, time.perf_counter()
        self.clips_per_second = float("nan")

    def line(self, step: int, metrics: dict) -> str:
        done = step / max(self.total_steps, 1)
        filled = int(round(done * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        eta = (self.total_steps - step) * self.clips_per_step / self.clips_per_second if self.clips_per_second > 0 else 0
        shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        return (f"step {step}/{self.total_steps} [{bar}] {100 * done:3.0f}% {shown} "
                f"{self.clips_per_second:.1f} clips/s ETA {format_duration(eta)}")

    def update(self, step: int, **metrics: float) -> None:
        now = time.perf_counter()
        if step > self._last_step and now > self._last_time:
            self.clips_per_second = (step - self._last_step) * self.clips_per_step / (now - self._last_time)
        self._last_step, self._last_time = step, now
        if not self.enabled:
            return
        text = self.line(step, metrics)
        if self.interactive:
            self.stream.write("\r" + text + "\033[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def restart_clock(self) -> None:
        """After a pause that is not training (evaluation, a checkpoint), so clips/s counts training only."""
        self._last_time = time.perf_counter()

    def close(self) -> None:
        if self.enabled and self.interactive:
            self.stream.write("\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own that does not clobber the bar."""
        if self.enabled:
            self.stream.write(("\n" if self.interactive else "") + text + "\n")
            self.stream.flush()
