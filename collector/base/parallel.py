"""Map a pure function over many items on every core (fork), or serially when the work is small.

Site generation is CPU-bound in two places: parsing record files and rendering run pages. Both are pure
functions of their inputs, so forked workers give the same bytes as a serial run, in the same order.
QUANT_ATLAS_JOBS sets the number of processes (1 = serial).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from collector.base import settings

T = TypeVar("T")
R = TypeVar("R")


def jobs() -> int:
    env = settings.jobs()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def pmap_iter(fn: Callable[[T], R], items: Sequence[T], min_items: int, per_task: int | None = None) -> Iterator[R]:
    """fn(x) for x in items, in order, split over processes when there are at least `min_items` items; each result
    is given as soon as it is in, so a caller that stores them (a cache, a file) holds only those not yet taken,
    never every result at once. `per_task`: items a worker is sent at a time (default: a quarter of its share)."""
    n = jobs()
    if n == 1 or len(items) < min_items or "fork" not in multiprocessing.get_all_start_methods():
        yield from map(fn, items)
        return
    chunk = per_task or max(1, len(items) // (n * 4))
    # the workers inherit this process's objects; frozen, their garbage collector never visits (and so never
    # copies) them: at 100,000 records, unfrozen workers tripled the build's memory
    gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("fork")) as ex:
            yield from ex.map(fn, items, chunksize=chunk)
    finally:
        gc.unfreeze()
