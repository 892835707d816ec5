"""Running a function over many items in order, on threads or on processes: shared by the dataset builders,
the generated dataset and the frame store."""
from __future__ import annotations

import collections
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from typing import Callable, Iterable, Iterator


def ordered_map(fn: Callable, items: Iterable, workers: int) -> Iterator[tuple]:
    """(item, fn(item)) for each item, in order, computed on `workers` threads with at most 2 * workers
    results waiting (a generator: memory stays bounded however many items there are)."""
    with ThreadPoolExecutor(workers) as pool:
        pending = collections.deque()
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= 2 * workers:
                item, future = pending.popleft()
                yield item, future.result()
        while pending:
            item, future = pending.popleft()
            yield item, future.result()


def process_map(fn: Callable, jobs: list, workers: int) -> Iterator:
    """fn(job) for each job, in order: in this process when `workers` is 1 (or there is one job), else on that
    many fresh processes (spawned, not forked: the caller may hold TensorFlow's or JAX's threads). `fn` must be
    importable."""
    if workers <= 1 or len(jobs) < 2:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
        yield from pool.map(fn, jobs)
