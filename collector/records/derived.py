"""Values derived from one record alone, kept for as long as that record object lives.

`mkdocs serve` rebuilds in one process and keeps the unchanged records between rebuilds (the same objects:
load_index(live=True)), so what is derived from a record alone need not be derived again. Records are never changed
after they are read, so the object itself is the key; an entry goes when its record does (a weak reference).
Values only a later build reads (`between_builds`: the download texts, ~8 KB a record, derived once per build) are
forgotten by a build that no other follows in the same process (`mkdocs build`) once its pages are made
(`forget_unless_kept`): 77 MB at 10,000 records, held through the rest of the build. The others stay: the run
pages read them after that.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

R = TypeVar("R")
T = TypeVar("T")

_BETWEEN_BUILDS: weakref.WeakSet[PerRecord[Any, Any]] = weakref.WeakSet()
_KEPT: list[bool] = [False]  # set by `mkdocs serve` (keep_between_builds): the next build reads these records


def keep_between_builds() -> None:
    """This process builds again with the records it holds (`mkdocs serve`): what is derived from them is kept."""
    _KEPT[0] = True


def forget_unless_kept() -> None:
    """Drop the entries of the memos made `between_builds`, unless keep_between_builds was called: no later build
    would read them."""
    if not _KEPT[0]:
        for m in list(_BETWEEN_BUILDS):
            m.memo.clear()


class PerRecord(Generic[R, T]):
    """`fn(rec)`, computed once per record object."""

    def __init__(self, fn: Callable[[R], T], between_builds: bool = False) -> None:
        self.fn = fn
        self.memo: dict[int, tuple[weakref.ref[R], T]] = {}
        if between_builds:
            _BETWEEN_BUILDS.add(self)

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


class PerGroup(Generic[R, T]):
    """`fn(recs)` of a sequence of record objects, computed once per sequence of the same objects in the same order
    (a configuration's runs: one new run of it is a new sequence). Entries of records gone are dropped as the memo
    grows."""

    def __init__(self, fn: Callable[[tuple[R, ...]], T]) -> None:
        self.fn = fn
        self.memo: dict[tuple[int, ...], tuple[tuple[weakref.ref[R], ...], T]] = {}
        self.limit = 1024

    def __call__(self, recs: tuple[R, ...]) -> T:
        key = tuple(map(id, recs))
        hit = self.memo.get(key)
        if hit is not None and all(ref() is rec for ref, rec in zip(hit[0], recs)):
            return hit[1]
        value = self.fn(recs)
        if len(self.memo) >= self.limit:
            self.memo = {k: v for k, v in self.memo.items() if all(ref() is not None for ref in v[0])}
            self.limit = max(1024, 2 * len(self.memo))
        self.memo[key] = (tuple(weakref.ref(r) for r in recs), value)
        return value
