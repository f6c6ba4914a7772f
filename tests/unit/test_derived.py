"""PerRecord: a value derived from one record object is computed once while that object lives, and never served for
another object, equal or not, even one that takes a dead record's id."""

from __future__ import annotations

import gc

from collector.records.derived import PerRecord
from fixtures.records.factory import cpu_host, model, speed


def test_computed_once_per_object_and_dropped_with_it() -> None:
    calls: list[str] = []

    def derive(rec):
        calls.append(rec.id)
        return [rec.id]

    per = PerRecord(derive)
    rec = speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0}, ctx_size=512)
    assert per(rec) is per(rec) and calls == [rec.id]
    twin = rec.model_copy(deep=True)  # equal, another object: derived again
    assert twin == rec and per(twin) == [rec.id] and len(calls) == 2
    del twin
    gc.collect()
    assert list(per.memo) == [id(rec)]  # the twin's entry went with it
    for i in range(50):  # new objects, some at freed ids: each derived for itself
        other = speed(cpu_host(), model(f"N{i}", "Q4_0", 2000 + i), {0: 1.0 + i}, ctx_size=512)
        assert per(other) == [other.id]
        del other
    assert len(calls) == 52 and per(rec) == [rec.id] and len(calls) == 52


def test_per_group_is_kept_for_the_same_objects_in_the_same_order_only() -> None:
    from collector.records.derived import PerGroup

    calls: list[tuple[str, ...]] = []

    def derive(recs):
        calls.append(tuple(r.id for r in recs))
        return len(calls)

    per = PerGroup(derive)
    a, b = (speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0 + i}, ctx_size=512) for i in range(2))
    assert per((a, b)) == per((a, b)) == 1  # the same runs of a configuration: kept
    assert per((b, a)) == 2  # another order is another sequence
    assert per((a,)) == 3  # one run fewer
    c = speed(cpu_host(), model("M", "Q4_0", 1000), {0: 12.0}, ctx_size=512)
    assert per((a, b, c)) == 4  # one run more
    twin = b.model_copy(deep=True)
    assert per((a, twin)) == 5  # an equal record is another object: derived again
    del twin
    gc.collect()
    per.limit = 0  # the next new entry sweeps the entries of records gone
    assert per((c,)) == 6
    assert all(all(ref() is not None for ref in refs) for refs, _ in per.memo.values())
    assert per((a, b)) == 1  # and keeps those alive


def test_a_build_not_followed_by_another_forgets_what_only_a_later_build_reads(monkeypatch) -> None:
    """`mkdocs build` drops the memos made between_builds once its pages are made; the others, which its run pages
    read after that, stay; `mkdocs serve` keeps them all."""
    from collector.records import derived
    from collector.records.derived import forget_unless_kept, keep_between_builds

    monkeypatch.setattr(derived, "_KEPT", [False])
    later, now = PerRecord(lambda r: [r.id], between_builds=True), PerRecord(lambda r: [r.id])
    rec = speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0}, ctx_size=512)
    kept = now(rec)
    later(rec)
    forget_unless_kept()
    assert later.memo == {} and now(rec) is kept
    keep_between_builds()
    first = later(rec)
    forget_unless_kept()
    assert later(rec) is first
