"""Stop cleanly on SIGTERM (preemption, `kill`, a scheduler's time limit) or SIGINT.

Single-process runs catch the signal themselves: the handler only sets a flag, and the loop saves a checkpoint
at the next step boundary and exits. Multi-host runs also ask orbax whether every host reached jax.distributed's
preemption sync point, so all hosts stop at the same step (a host stopping alone would hang the others).
"""
from __future__ import annotations

import contextlib
import signal


class StopRequest:
    """`requested` turns true when a watched signal arrives; `signal_name` says which."""

    def __init__(self):
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame):
        del frame
        self.signal_name = signal.Signals(signum).name


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGINT)):
    """Within the block, watched signals set the returned StopRequest instead of killing the process."""
    request = StopRequest()
    previous = {}
    try:
        for sig in signals:
            previous[sig] = signal.signal(sig, request._handle)
    except ValueError:  # not the main thread: signals cannot be caught here, run without
        previous = {}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
