"""Values derived from one record alone, kept for as long as that record object lives.

`mkdocs serve` rebuilds in one process and keeps the unchanged records between rebuilds (the same objects:
load_index(live=True)), so what is derived from a record alone need not be derived again. Records are never changed
after they are read, so the object itself is the key; an entry goes when its record does (a weak reference).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

R = TypeVar("R")
T = TypeVar("T")


class PerRecord(Generic[R, T]):
    """`fn(rec)`, computed once per record object."""

    def __init__(self, fn: Callable[[R], T]) -> None:
        self.fn = fn
        self.memo: dict[int, tuple[weakref.ref[R], T]] = {}

    def __call__(self, rec: R) -> T:
        key = id(rec)
        hit = self.memo.get(key)
        if hit is not None and hit[0]() is rec:
            return hit[1]
        value = self.fn(rec)
        memo = self.memo

        def gone(ref: object, key: int = key) -> None:
            if (entry := memo.get(key)) is not None and entry[0] is ref:
                del memo[key]

        self.memo[key] = (weakref.ref(rec, gone), value)
        return value
