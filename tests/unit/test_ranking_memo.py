"""answers.ranking: the sections groups() computed are the ones sections() gives for those lists, and a list that is
not one of them (or one changed since) is ranked afresh."""

from __future__ import annotations

import collector.publish.answers.ranking as ranking
from collector.judge import judge_records
from collector.publish.rows.frame import build_frames
from fixtures.records.factory import cpu_host, model, speed


def _plain(found: dict) -> dict:
    return {shape: {d: (ln.what, [r.page_id for r in ln.figures]) for d, ln in lines.items()}
            for shape, lines in found.items()}


def test_sections_of_the_groups_are_kept_and_equal_a_fresh_ranking() -> None:
    m = model("Gemma 3 1b It", "Q4_0", 700_000_000)
    recs = [speed(cpu_host(f"Xeon {i} @ 2.20GHz"), m, {0: 10.0 + i}, ctx_size=512) for i in range(3)]
    recs += [speed(cpu_host(f"Xeon {i} @ 2.20GHz"), model("Other", "Q8_0", 900_000_000), {0: 5.0 + i}, ctx_size=512)
             for i in range(2)]
    rows = build_frames(recs, judge_records(recs)).rows
    found = ranking.groups(rows)
    assert len(found) == 2  # each model on several devices
    for group in found.values():
        kept = ranking.sections(group)
        assert kept is ranking.sections(group)  # the groups' own lists: kept
        assert _plain(kept) == _plain(ranking._sections(group))
        copy = list(group)
        assert ranking.sections(copy) is not kept and _plain(ranking.sections(copy)) == _plain(kept)
    ranking.groups(rows[:1])  # a later groups() drops the lists it did not return
    assert all(ranking.sections(g) is not ranking.sections(g) for g in found.values())
