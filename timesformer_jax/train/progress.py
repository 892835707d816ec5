"""The training progress bar: step, loss, lr, clips/s and ETA, drawn by tqdm.

On a terminal tqdm redraws the line in place; otherwise (log files, CI) a full line is printed at each update, so
a log still shows progress. Only process 0 prints. Throughput is measured between updates over training time
only (`restart_clock` after an evaluation), so clips/s and the ETA do not count evaluation pauses.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

BAR_FORMAT = "step {n}/{total} [{bar}] {percentage:3.0f}% {metrics} {clips_rate} clips/s ETA {eta}"


def format_duration(seconds: float) -> str:
    """H:MM:SS, or M:SS under an hour."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class _TrainingBar(tqdm):
    """tqdm with our fields (`_fields`): the logged metrics, clips/s of our own measurement and its ETA."""

    fields = {"metrics": "", "clips_rate": "?", "eta": "?"}

    @property
    def format_dict(self):
        return {**super().format_dict, **self.fields}


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
        self._started = self._last_time
        self.clips_per_second = float("nan")
        # Off a terminal no tqdm bar exists (it would write carriage returns into the log): `update` prints the
        # same text as a line instead.
        self._bar = None
        if enabled and self.interactive:
            self._bar = _TrainingBar(total=total_steps, initial=first_step, file=self.stream,
                                     bar_format=BAR_FORMAT, ascii=" #", dynamic_ncols=True, mininterval=0)

    def _fields(self, step: int, metrics: dict) -> dict:
        rate = self.clips_per_second
        known = rate > 0  # False before the first measurement (and for NaN)
        eta = (self.total_steps - step) * self.clips_per_step / rate if known else 0.0
        return {"metrics": " ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
                "clips_rate": f"{rate:.1f}" if known else "?", "eta": format_duration(eta) if known else "?"}

    def line(self, step: int, metrics: dict) -> str:
        """The bar's text for `step` with `metrics`, as a log line shows it."""
        return tqdm.format_meter(step, self.total_steps, time.perf_counter() - self._started, ascii=" #",
                                 bar_format=BAR_FORMAT.replace("{bar}", "{bar:%d}" % self.width),
                                 **self._fields(step, metrics))

    def update(self, step: int, **metrics: float) -> None:
        now = time.perf_counter()
        if step > self._last_step and now > self._last_time:
            self.clips_per_second = (step - self._last_step) * self.clips_per_step / (now - self._last_time)
        self._last_step, self._last_time = step, now
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.fields = self._fields(step, metrics)
            self._bar.n = step
            self._bar.refresh()
        else:
            self.stream.write(self.line(step, metrics) + "\n")
            self.stream.flush()

    def restart_clock(self) -> None:
        """After a pause that is not training (evaluation, a checkpoint), so clips/s counts training only."""
        self._last_time = time.perf_counter()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def message(self, text: str) -> None:
        """A line of its own that does not clobber the bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()
