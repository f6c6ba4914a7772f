"""Recommendation logic on hand-made records whose right answers are known."""

from __future__ import annotations

from fixtures.records.factory import CORPUS, cpu_host, gpu, kld, model, speed
from collector.publish.frame import build_frames
from collector.publish.recommend import pareto_front, recommend
from collector.records.schema import Corpus, CpuInfo, Host, Source

HOST = Host(cpu=CpuInfo(model="x"), gpus=[gpu("NVIDIA GeForce RTX 4090")])


def _picks(records: list, **kw: float) -> dict[str, dict]:
    f = build_frames(records)
    return {r.kind: r.row for r in recommend(f.speed, **kw)}


def test_known_answers_fastest_balanced_faithful_context() -> None:
    q2, q4, q8 = (model("M", q, s, sha=q * 8, bpt=s) for q, s in (("Q2_K", 3e9), ("Q4_K_M", 5e9), ("Q8_0", 8e9)))
    recs = [speed(HOST, q2, 150.0, ctx=4096), speed(HOST, q4, 120.0, ctx=8192), speed(HOST, q4, 100.0, ctx=65536),
            speed(HOST, q4, 90.0, ctx=131072), speed(HOST, q8, 80.0, ctx=8192),
            kld(HOST, q2, 0.20), kld(HOST, q4, 0.03), kld(HOST, q8, 0.002)]
    p = _picks(recs)
    assert (p["fastest"]["quant"], p["fastest"]["tg"]) == ("Q2_K", 150.0)
    # Q2_K is over the 0.05 budget: the fastest within it is the 120 t/s Q4_K_M run
    assert (p["balanced"]["quant"], p["balanced"]["tg"]) == ("Q4_K_M", 120.0)
    assert p["faithful"]["quant"] == "Q8_0"
    # 80% of 150 = 120: only the 8192 Q4_K_M and the Q2_K keep that much speed; 131072 at 90 t/s does not
    assert (p["context"]["ctx"], p["context"]["tg"]) == (8192, 120.0)
    assert _picks(recs, keep=0.6)["context"]["ctx"] == 131072
    assert _picks(recs, kld_budget=0.25)["balanced"]["quant"] == "Q2_K"
    assert "balanced" not in _picks(recs, kld_budget=0.001)


def test_failed_and_null_speed_runs_are_never_recommended() -> None:
    m = model("M", "Q4_0", 1e9, sha="a" * 8)
    recs = [speed(HOST, m, 300.0, failed="out of memory"), speed(HOST, m, None, ctx=999999), speed(HOST, m, 50.0)]
    p = _picks(recs)
    assert p["fastest"]["tg"] == 50.0 and p["context"]["ctx"] == 4096
    assert "balanced" not in p and "faithful" not in p  # no KLD at all
    assert recommend(build_frames([speed(HOST, m, None)]).speed) == []


def test_kld_joins_by_sha_then_by_name_and_corpora_never_compete() -> None:
    with_sha = model("M", "Q4_K_M", 5e9, sha="s" * 8)
    no_sha = model("M", "Q4_K_M", 5e9, sha=None)
    other = Corpus(name="wikitext-2")
    recs = [speed(HOST, with_sha, 100.0), speed(HOST, no_sha, 110.0),
            kld(cpu_host(), with_sha, 0.03), kld(cpu_host(), model("M", "Q4_K_M", 5e9, sha=None), 0.01, corpus=other)]
    f = build_frames(recs)
    rows = {r["tg"]: r for r in f.speed.to_dict("records")}
    assert rows[100.0]["kld_join"] == "sha256" and rows[100.0]["kld_mean"] == 0.03
    assert rows[110.0]["kld_join"] == "model name + quant"
    # two corpora: the faithful pick only compares within the corpus most rows share (a tie -> first seen)
    faithful = {r.kind: r.row for r in recommend(f.speed)}["faithful"]
    assert faithful["corpus_key"] in (CORPUS.sha256, "wikitext-2")
    same = [r for r in f.speed.to_dict("records") if r["corpus_key"] == faithful["corpus_key"]]
    assert faithful["kld_mean"] == min(r["kld_mean"] for r in same)


def test_kv_cache_types_prefer_matching_kld() -> None:
    m = model("M", "Q4_K_M", 5e9, sha="k" * 8)
    recs = [speed(HOST, m, 100.0, ctk="q8_0"), kld(cpu_host(), m, 0.03), kld(cpu_host(), m, 0.05, ctk="q8_0")]
    row = build_frames(recs).speed.to_dict("records")[0]
    assert row["kld_mean"] == 0.05 and row["kld_note"] is None
    row2 = build_frames(recs[:2]).speed.to_dict("records")[0]
    assert row2["kld_mean"] == 0.03 and row2["kld_note"] == "KLD measured with KV cache f16/f16"


def test_imported_kld_is_not_preferred_over_measured() -> None:
    m = model("M", "Q4_K_M", 5e9, sha="i" * 8)
    imp = Source(type="imported", citation="post.txt: a post")
    recs = [speed(HOST, m, 100.0), kld(cpu_host(), m, 0.01, source=imp), kld(cpu_host(), m, 0.04)]
    row = build_frames(recs).speed.to_dict("records")[0]
    assert row["kld_mean"] == 0.04 and row["kld_imported"] is False


def test_pareto_front() -> None:
    pts = [(0.1, 100.0), (0.05, 90.0), (0.2, 95.0), (0.01, 50.0), (0.05, 80.0)]
    assert sorted(pareto_front(pts)) == [0, 1, 3]
