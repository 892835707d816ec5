"""Wall-clock timing: the median of repeated calls after warm-up, each call synchronised with its device."""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Timing:
    median_s: float
    min_s: float
    repeats: int

    def clips_per_second(self, batch_size: int) -> float:
        return batch_size / self.median_s


def time_calls(call: Callable[[], object], sync: Callable[[object], object], warmup: int = 1, repeats: int = 5,
               budget_s: float | None = None) -> Timing:
    """Time `sync(call())` `repeats` times after `warmup` untimed calls; returns the median and minimum.

    `sync` blocks until the device has finished (`jax.block_until_ready`; a no-op for eager PyTorch on CPU).
    With `budget_s`, stops repeating once that much time has been spent (at least one timed call).
    """
    for _ in range(warmup):
        sync(call())
    times: list[float] = []
    spent = 0.0
    while len(times) < repeats and not (budget_s is not None and times and spent >= budget_s):
        start = time.perf_counter()
        sync(call())
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return Timing(median_s=statistics.median(times), min_s=min(times), repeats=len(times))
