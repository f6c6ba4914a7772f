"""The judge on the committed data: every figure over the bandwidth bound in data/ is held back, and nothing
plausible is (tests/unit/test_judge.py has one hand-made record per rule)."""

from __future__ import annotations

import functools
from pathlib import Path

from collector import catalog
from collector.estimate.points import HELD, collect
from collector.judge import AGAINST_SOURCE, IMPLAUSIBLE, INVALID, MARGIN, bandwidth, judge_records, load_summaries_from
from collector.records import index
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord

REPO = Path(__file__).resolve().parents[2]
RTX4090 = "NVIDIA GeForce RTX 4090"  # the catalog: 1010 GB/s


@functools.lru_cache(maxsize=1)
def _data() -> tuple[dict[str, Path], list[AnyRecord]]:
    idx = index.load_index(REPO / "data")
    return {r.id: p for p, r in idx.records.items()}, idx.valid


def test_every_figure_over_the_bound_in_data_is_listed_and_nothing_plausible() -> None:
    paths, records = _data()
    j = judge_records(records, sums=load_summaries_from(REPO / "imports"))
    over = []
    for f in j.flagged():
        for v in f.verdicts:
            if v.rule == "bandwidth":
                over.append((paths[f.record_id].relative_to(REPO).as_posix(), f.text, v.numbers["device"],
                             v.numbers["implied_gb_s"], v.numbers["bandwidth_gb_s"]))
    print("\nfigures over the bandwidth bound in data/ (file, figure, device, implied GB/s, bandwidth GB/s):")
    for row in over:
        print("  ", *row)
    assert over == [("data/records/m1-7-core-gpu/llama-3-8b/2026-12-01-speed-01M8SWDK8HP40TC58BV6VPD67C.yaml",
                     "1133.05 ± 23.04", "Apple M1 (7-core GPU)", 5572.0, 68.2)]
    m1 = j.figure("01M8SWDK8HP40TC58BV6VPD67C", "tg")
    assert m1 is not None and m1.reason == (
        "implies 5.57 TB/s of weight reads (4.92 GB a token x 1133.05 t/s); Apple M1 (7-core GPU): 68.2 GB/s (81.7x, "
        "more than 1.25x); source README says OOM (imports/xiongjiedai/README.md line 318: M1 7‑Core GPU 8GB, 8B "
        "Q4_K_M, tg 8192)")
    # the other held figures: the M1's pp 8192 (the README says OOM) and a LocalScore row's pp of 0
    assert sorted((f.figure, f.text, f.status) for f in j.flagged()) == [
        ("pp", "0", INVALID), ("pp", "1849.39 ± 288.56", AGAINST_SOURCE), ("tg", "1133.05 ± 23.04", IMPLAUSIBLE)]
    # held figures are never fitted
    points, left = collect(records, j.held_keys())
    fitted = {(p.record, p.metric) for p in points}
    assert fitted.isdisjoint(j.held_keys()) and left[HELD] == 2
    assert ("01M8SWDK8HP40TC58BV6VPD67C", "tg") in {(p.record, p.metric) for p in collect(records)[0]}
    # every figure the rule could judge sits within physics, with room: the highest implies 0.93 of its bandwidth
    checks = [c for r in records if isinstance(r, SpeedRecord) and (c := bandwidth.check(r, catalog.default())).judged]
    assert len(checks) > 1000
    assert sorted(c.ratio for c in checks)[-2] < 0.95 < MARGIN


def test_data_crowd_groups_names_and_claims() -> None:
    _, records = _data()
    j = judge_records(records, sums=load_summaries_from(REPO / "imports"))
    by = {r.id: r for r in records}
    unnamed = sorted({by[rid].model.name or "" for rid, n in j.names.items() if n.unnamed})
    assert unnamed == [".", "C:\\LLM_MODELS\\mistralai", "Dir", "Model Hf", "Models", "active", "hub"]
    (claim,) = [c for c in j.claims if c.text == "~94"]  # the RTX 4090's "~94 t/s" of two posts
    assert [s.split(".txt")[0] for s in claim.sources] == ["000_1655f814b8e25475", "002_631fd2e3eda61eae"]

    def group(device: str, model: str) -> object:
        (g,) = [g for g in j.groups if g.key.device == device and g.key.model == model and g.key.metric == "tg"
                and g.key.runtime == "llamafile (LocalScore)" and g.key.quant == "Q4_K_M"]
        return g

    g5090 = group("NVIDIA GeForce RTX 5090", "meta llama 3.1 8b instruct")
    assert sorted(r.value for r in g5090.results) == [43.2, 45.8, 106.0] and g5090.wide  # type: ignore[attr-defined]
    assert [r.value for r in g5090.results if r.contradicted] == [106.0]  # type: ignore[attr-defined]
    g4090 = group(RTX4090, "llama 3.2 1b instruct")
    assert g4090.n == 6 and g4090.wide and g4090.max == 396.0  # type: ignore[attr-defined]
    top = next(r for r in g4090.results if r.value == 396.0)  # type: ignore[attr-defined]
    assert top.contradicted and not j.pickable(top.record_id)
