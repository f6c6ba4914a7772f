"""The speed estimates on the real records of data/ (issue 32 parts 4-5, issue 33 part 3): what is fitted and what
never is, a left-out source never informing its own estimate, the held-out figures per vendor class (the targets
reached are asserted; the ones not reached are asserted as measured, so a change is seen), and the answers."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import pytest
from clirun import invoke

from collector.catalog import resolve
from collector.estimate import table
from collector.estimate.estimator import Estimator
from collector.estimate.heldout import BOUND_PCT, MIN_CHECKS, MIN_COVERAGE, class_error, leave_source_out
from collector.estimate.offload import cpu_gbs
from collector.estimate.points import BENCH, LOCALSCORE, collect
from collector.judge import beside, judge_records, load_summaries_from
from collector.records.index import load_records
from collector.records.store import AnyRecord

REPO = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def _records() -> list[AnyRecord]:
    return load_records(REPO / "data")


@lru_cache(maxsize=1)
def _estimator() -> Estimator:
    records = _records()
    return Estimator.of(records, judge_records(records, sums=load_summaries_from(beside(REPO / "data"))).held_keys())


def test_llama_cpp_figures_only_every_layer_on_the_gpu() -> None:
    points, left = collect(_records())
    sources = {p.source for p in points}
    assert "XiongjieDai/GPU-Benchmarks-on-LLM-Inference" in sources and len(sources) >= 8
    assert {p.vendor for p in points} >= {"NVIDIA", "AMD", "Apple", "Intel"}
    assert {p.backend for p in points} >= {"CUDA", "Vulkan", "Metal"}
    assert any(LOCALSCORE in why for why in left) and left["KV cache in system RAM (-nkvo 1)"] == 2
    assert left["weights in system RAM (an offload figure: estimate.offload)"] >= 40
    # llama-bench prints "llama 13B" for Mistral Small 24B: matched by its parameter count
    assert any(p.model == "Mistral Small 24B" for p in points) and all(p.facts.read_bytes > 0 for p in points)
    assert {p.facts.name for p in points if p.source.startswith("Xiong")} == {"Llama 3.1 8B", "Llama 3.1 70B"}


def test_a_left_out_source_never_informs_its_own_estimate() -> None:
    points = [p for p in _estimator().points if p.metric == "tg"]
    target = "ggml-org/llama.cpp benches/dgx-spark.md"
    doubled = [dataclasses.replace(p, value=p.value * 2) if p.source == target else p for p in points]
    before = {h.point.record: h.estimate for h in leave_source_out(points, "tg") if h.point.source == target}
    after = {h.point.record: h.estimate for h in leave_source_out(doubled, "tg") if h.point.source == target}
    assert before and before == pytest.approx(after, rel=1e-9)


def _err(metric: str, vendor: str):  # type: ignore[no-untyped-def]
    """A vendor class's figures, each source left out (the Done-when's table)."""
    errors = _estimator().fitted.errors
    e = next((e for e in errors if (e.metric, e.mode, e.by, e.group) == (metric, "source", "vendor", vendor)), None)
    assert e is not None
    return e


def _gate(metric: str, group: str):  # type: ignore[no-untyped-def]
    """What decides the pages: a vendor class, or a device class one source measured alone (heldout.gate_of)."""
    e = class_error(_estimator().fitted.errors, metric, group)
    assert e is not None
    return e


def test_held_out_by_source_per_vendor_class() -> None:
    """Issue 32's Done-when: tg <= 10 % and pp <= 20 % median error for every vendor class with >= 10 figures left
    out by source, the stated 80 % range holding 70-90 % of them. Reached: NVIDIA and AMD tg's error, AMD's and
    Apple's tg range. Not reached, asserted as measured (docs/estimates.md says what bounds them): NVIDIA tg's
    coverage (XiongjieDai's figures of HBM GPUs and of several GPUs, which no other source has), Apple tg's error
    (XiongjieDai's 54 figures left out, the fit keeps one M3 Pro's 3), NVIDIA and AMD pp."""
    nvidia = _err("tg", "NVIDIA")
    assert nvidia.n >= 300 and nvidia.n_sources >= 5 and nvidia.median_pct <= 10
    # the range held 68 % when the HBM GPUs (A100, H100: XiongjieDai's alone) shared NVIDIA's range; judged apart
    # (their left-out figures come out 36-54 % high: the fit has no HBM card of another source), NVIDIA's range
    # holds more than the 90 % asked
    assert nvidia.coverage is not None and nvidia.coverage > 0.90
    gddr = _gate("tg", "NVIDIA")  # the GDDR cards, one GPU, four sources
    assert gddr.n >= 100 and gddr.n_sources == 4 and gddr.median_pct <= 10 and gddr.meets
    hbm = _gate("tg", "NVIDIA discrete GPU (HBM)")
    assert hbm.n_sources == 1 and hbm.median_pct > BOUND_PCT and not hbm.meets
    assert _estimator().fitted.apart["tg"] == {"NVIDIA discrete GPU (HBM)", "NVIDIA discrete GPU (HBM), several "
                                               "(layer split)", "NVIDIA discrete GPU, several (layer split)",
                                               "NVIDIA integrated GPU"}
    # AMD: kyuz0's R9700 (ROCm) and Strix Halo (ROCm, Vulkan) runs give the class six sources, two of Strix Halo:
    # lhl's left out, the class keeps a Strix Halo of its own (17.0 % -> 9.1 %, 8.7 % with the Intel figures; range
    # held 78 %)
    amd = _err("tg", "AMD")
    assert amd.n >= 50 and amd.n_sources >= 6 and amd.median_pct <= 10 and _gate("tg", "AMD").meets
    assert amd.coverage is not None and 0.70 <= amd.coverage <= 0.90
    apple = _err("tg", "Apple")
    assert apple.n >= 50 and apple.n_sources == 2 and apple.coverage is not None and 0.70 <= apple.coverage <= 0.90
    assert 10 < apple.median_pct <= 17 and _gate("tg", "Apple").meets  # not reached: 14.6 %
    for vendor in ("NVIDIA", "AMD"):
        pp = _err("pp", vendor)
        assert pp.n >= 10 and 25 < pp.median_pct <= 50  # not reached: 25.9 %, 41.5 %
        assert "median error above 25 %" in _gate("pp", vendor).verdict
    # Apple's pp: a second Apple source (one M1 Ultra pp figure, 2026) gives the class a level of its own when
    # XiongjieDai's 54 are left out: 31 % -> 11.6 %; its range held 96 % (wider than the 70-90 % asked)
    apple_pp = _err("pp", "Apple")
    assert apple_pp.n_sources == 3 and apple_pp.median_pct <= 20 and _gate("pp", "Apple").meets
    # Intel: five figures of three sources (an A310 behind a Raspberry Pi, an A770 on SYCL and one on Vulkan): fewer
    # than the class needs, and left out by source they come out far too high (the cards read their weights at
    # 22-38 % of their bandwidth): no class estimate is shown
    intel = _err("tg", "Intel")
    assert intel.n == 5 and intel.n_sources == 3 and intel.median_pct > BOUND_PCT
    assert intel.n < MIN_CHECKS and not _gate("tg", "Intel").meets
    # ... and what it never saw includes later builds: AMD's ranges were checked on figures of 2025 and later too
    for metric in ("tg", "pp"):
        e = _gate(metric, "AMD")
        assert e.later_n >= MIN_CHECKS and e.later_coverage is not None and e.later_coverage >= MIN_COVERAGE
    assert [v for v in ("NVIDIA", "AMD", "Apple") if _gate("tg", v).meets] == ["NVIDIA", "AMD", "Apple"]


def test_by_time_and_by_device() -> None:
    errors = _estimator().fitted.errors
    time = {(e.metric, e.group): e for e in errors if e.mode == "time" and e.by == "vendor"}
    # 10.2 % since kyuz0's 2025-2026 R9700 and Strix Halo runs joined (7.4 % on lhl's alone)
    assert time[("tg", "AMD")].n >= 50 and time[("tg", "AMD")].median_pct <= 10.5
    assert time[("tg", "NVIDIA")].n >= 20  # the 2025 builds of the GB10, fitted on 2024's only
    # the GB10's figures at depth with flash attention on: fitted on 2024's (attention without flash attention at
    # depth), the KV bytes cost what flash attention reads, not the 2024 builds' 2.7 weight bytes (21 % error before)
    assert time[("tg", "NVIDIA")].median_pct <= 10
    for vendor in ("AMD", "NVIDIA"):  # how often today's stated range holds the later builds' figures: 90 %, 100 %
        assert time[("tg", vendor)].coverage is not None and time[("tg", vendor)].coverage >= MIN_COVERAGE
    device = {(e.metric, e.group): e for e in errors if e.mode == "device" and e.by == "vendor"}
    assert device[("tg", "NVIDIA")].median_pct <= 8
    tg = _estimator().fitted.fits["tg"]
    assert 0.8 < tg.psi["on"] < 1.5 and tg.psi[""] > 2  # flash attention on; not stated (2024: off)


def test_answers_say_whose_effects_and_their_range() -> None:
    est = _estimator()
    llama8 = table.build("Llama 3.1 8B", "Q4_K_M")
    own = est.speed(resolve("NVIDIA GeForce RTX 4090"), 1, llama8, "tg")  # type: ignore[arg-type]
    assert own.value and "own effect" in own.basis and own.low < own.value < own.high  # type: ignore
    assert 100 < own.value < 170 and own.coverage is not None
    assert own.shown and own.range and own.range.basis == "NVIDIA"
    new = est.speed(resolve("NVIDIA GeForce RTX 5090"), 1, llama8, "tg")  # type: ignore[arg-type]
    assert new.shown and "no figure of this device" in new.basis and new.value and new.value > own.value
    a100 = est.speed(resolve("NVIDIA A100 80GB PCIe"), 1, llama8, "tg")  # type: ignore[arg-type]
    assert a100.value and not a100.shown and a100.error and a100.error.group == "NVIDIA discrete GPU (HBM)"
    assert ("figures of the NVIDIA discrete GPU (HBM) class (one source measured it), left out by source: median "
            "error 35 %") in (a100.why_not or "")
    amd = est.speed(resolve("AMD Radeon RX 7900 XTX"), 1, llama8, "tg", backend="Vulkan")  # type: ignore[arg-type]
    assert amd.shown and amd.value and amd.error is not None and amd.error.group == "AMD"
    arc = est.speed(resolve("Intel Arc A770"), 1, llama8, "tg")  # type: ignore[arg-type]
    assert arc.value and not arc.shown and "Intel" in (arc.why_not or "")
    tiny = table.build("Llama 3.2 1B", "Q5_K_M")  # no figure of a Q5_K_M file: the fitted quants' average
    a = est.speed(resolve("NVIDIA GeForce RTX 4090"), 1, tiny, "tg")  # type: ignore[arg-type]
    assert a.value and any("Q5_K_M" in n for n in a.notes)
    assert BOUND_PCT == 25.0


def test_offload_figures_and_their_held_out_error() -> None:
    est = _estimator()
    sources = {p.source for p in est.off_points if p.metric == "tg"}
    assert len(sources) >= 3 and any(s.startswith("a post without an address") for s in sources)
    e = est.fitted.off_errors["tg"]
    # issue 33's Done-when: each source left out, median error <= 25 % and the stated range holding 70-90 %
    assert e.n >= 15 and e.n_sources == 3 and e.median_pct <= 25 and e.coverage and 0.7 <= e.coverage <= 0.9
    f = est.fitted.off_fits["tg"]
    # the threads' bound is fitted (every source states -t or the CPU's cores): the EPYC's 12 channels of DDR5 at
    # -t 48 read what its threads reach, not its bandwidth's share (the two Xeons' at -t 16 set the bound)
    assert f.beta and 1e9 < f.beta < 10e9 and all(p.threads for p in est.off_points if p.metric == "tg")
    epyc = next(p for p in est.off_points if p.metric == "tg" and p.threads == 48)
    assert cpu_gbs(f, epyc) == pytest.approx(48 * f.beta) and cpu_gbs(f, epyc) < epyc.ram * f.eta_cpu
    assert est.off_left["an offload figure whose weights in system RAM fill the RAM stated (the system pages them "
                        "from disk: not modelled)"] == 20


def test_cli_prints_the_answer_and_the_report() -> None:
    code, out = invoke(["estimate", "Llama 3.1 8B Q4_K_M", "--device", "RTX 4090", "--ctx", "4096", "--kv", "q8_0",
                        "--data-dir", str(REPO / "data")])
    assert code == 0 and out.startswith("ESTIMATES (not measurements)")
    assert "tg @ depth 0: ~" in out and "held-out error of the NVIDIA class (each source left out)" in out
    assert "memory at ctx 4,096, KV q8_0" in out  # a multiple of 256: the cache llama.cpp makes is that size
    code, out = invoke(["estimate", "Llama 3.1 8B Q4_K_M", "--device", "RTX 4090", "--ctx", "5000",
                        "--data-dir", str(REPO / "data")])
    assert code == 0 and "memory at ctx 5,000 (a cache of 5,120 cells: llama.cpp pads it to 256), KV f16" in out
    code, out = invoke(["estimate", "--report", "--data-dir", str(REPO / "data")])
    assert code == 0 and "outside the target: 0" in out and "each source left out, by vendor NVIDIA" in out
    assert "with weights in system RAM" in out
    assert BENCH == "llama.cpp (llama-bench)"
