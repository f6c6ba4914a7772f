"""The speed estimate on the real records of data/: what is fitted (and what never is), the held-out check's
honesty (a left-out device's figures never reach its own estimate), the reported errors, and the answers."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import pytest
from clirun import invoke

from collector.catalog import resolve
from collector.estimate.estimator import Estimator
from collector.estimate.heldout import BOUND_PCT, MIN_DEVICES, leave_device_out, summarise
from collector.estimate.speed import BENCH, LOCALSCORE, Fit, Point, collect, fit, predict
from collector.records.index import load_records
from collector.records.store import AnyRecord

REPO = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def _records() -> list[AnyRecord]:
    return load_records(REPO / "data")


@lru_cache(maxsize=1)
def _estimator() -> Estimator:
    return Estimator.of(_records())


def _bench(metric: str = "tg") -> list[Point]:
    points, _ = collect(_records())
    return [p for p in points if p.runtime == BENCH and p.metric == metric]


def test_runtimes_are_never_pooled_and_cpus_and_llama_server_are_left_out() -> None:
    points, left = collect(_records())
    assert {p.runtime for p in points} == {BENCH, LOCALSCORE}
    assert left["CPU: the catalog has no memory bandwidth for a CPU"] > 400  # LocalScore CPUs, our CPU runs
    assert any("llama-server (measured here)" in why for why in left)  # ours are CPU runs of SmolLM2
    est = _estimator()
    for (runtime, metric), f in est.fitted.fits.items():
        devices = {p.device for p in points if p.runtime == runtime and p.metric == metric}
        assert set(f.eta) == devices and f.runtime == runtime
    # LocalScore states no file size: its models are fitted constants, never bytes
    assert est.fitted.fits[(LOCALSCORE, "tg")].const and not est.fitted.fits[(LOCALSCORE, "tg")].kappa
    assert {p.base for p in points if p.runtime == LOCALSCORE} == {0.0}


def test_reported_leave_one_device_out_error_of_tg() -> None:
    errors = {(e.mode, e.cls): e for e in _estimator().fitted.errors if e.runtime == BENCH and e.metric == "tg"}
    nvidia = errors[("device", "NVIDIA discrete GPU")]
    assert nvidia.n_left >= 10 and nvidia.median_pct <= 15  # the README's figure: 5.3 % over 13 GPUs
    for e in _estimator().fitted.errors:
        need = MIN_DEVICES if e.mode == "device" else 2
        assert e.shown == (e.n_left >= need and e.median_pct <= BOUND_PCT)
        assert e.low <= 1.0 <= e.high or e.median_pct > 10  # an interval from the checks' own ratios


def test_a_left_out_device_never_informs_its_own_estimate() -> None:
    points = _bench()
    full = fit(points, BENCH, "tg")
    target = "NVIDIA GeForce RTX 3090"
    doubled = [dataclasses.replace(p, value=p.value * 2) if p.gpu == target else p for p in points]
    before = {h.point.record: h.estimate for h in leave_device_out(points, full) if h.point.gpu == target}
    after = {h.point.record: h.estimate for h in leave_device_out(doubled, fit(doubled, BENCH, "tg"))
             if h.point.gpu == target}
    assert before and before.keys() == after.keys()
    # starting values come from the full fit (one round), so the refit without the device moves only slightly
    assert all(abs(after[k] / before[k] - 1) < 0.02 for k in before)
    assert fit(doubled, BENCH, "tg").eta[target] > 1.5 * full.eta[target]  # in-sample, it would have


def test_the_fit_recovers_a_model_it_is_given() -> None:
    base = _bench()
    truth = Fit(BENCH, "tg", tau={c: 1e-4 for c in {p.cls for p in base}}, kappa={"F16": 1.0, "Q4_K_M": 1.3})
    eta = {d: 0.6 + 0.02 * i for i, d in enumerate(sorted({p.device for p in base}))}
    synthetic = [dataclasses.replace(p, value=predict(truth, p, eta[p.device])) for p in base]
    got = fit(synthetic, BENCH, "tg", rounds=6, steps=30)
    assert got.kappa["Q4_K_M"] == pytest.approx(1.3, rel=0.03)
    assert all(abs(got.eta[d] / e - 1) < 0.05 for d, e in eta.items())
    # devices of one efficiency: what the class median predicts for a left-out one is exact
    same = [dataclasses.replace(p, value=predict(truth, p, 0.8)) for p in base]
    errs = summarise(leave_device_out(same, fit(same, BENCH, "tg", rounds=6, steps=30)), BENCH, "tg")
    assert errs and all(e.median_pct < 1 for e in errs)


def test_answers_say_whose_efficiency_and_when_they_are_not_shown() -> None:
    est = _estimator()
    llama8 = next(a for a in est.models if a.name == "LLaMA 3 8B" and a.quant == "Q4_K_M")
    own = est.speed(resolve("NVIDIA GeForce RTX 4090"), 1, llama8, "tg")
    assert own.shown and own.value and "own efficiency" in own.basis and own.low < own.value < own.high
    unmeasured = est.speed(resolve("NVIDIA GeForce RTX 5090"), 1, llama8, "tg")  # only LocalScore measured it
    assert unmeasured.shown and "median efficiency of the NVIDIA discrete GPU" in unmeasured.basis
    amd = est.speed(resolve("AMD Radeon RX 7900 XTX"), 1, llama8, "tg")
    assert not amd.shown and amd.value is None and "AMD" in (amd.why_not or "")
    smol = next(a for a in est.models if a.quant == "Q4_1")  # no llama-bench figure of a Q4_1 file, and 0.1 GB
    answer = est.speed(resolve("NVIDIA GeForce RTX 4090"), 1, smol, "tg")
    assert answer.value and not answer.shown and "Q4_1" in (answer.why_not or "")
    pp = est.speed(resolve("NVIDIA GeForce RTX 3090"), 4, llama8, "pp")  # NVIDIA sets: pp's held-out error 29 %
    assert not pp.shown and "over the 25 % bound" in (pp.why_not or "")


def test_cli_prints_the_answer_and_refuses_a_device_it_does_not_know() -> None:
    code, out = invoke(["estimate", "LLaMA 3 8B Q4_K_M", "--device", "RTX 4090", "--ctx", "4096", "--kv", "q8_0",
                        "--data-dir", str(REPO / "data")])
    assert code == 0 and out.startswith("ESTIMATES (not measurements)")
    assert "tg @ depth 0: ~" in out and "held-out error (leave one model out" in out and "measured: 8" in out
    assert "fits within 23,552 MiB" in out
    code, out = invoke(["estimate", "LLaMA 3 8B Q4_K_M", "--device", "RTX 9999", "--data-dir", str(REPO / "data")])
    assert code == 1 and "not in the device catalog" in out
    code, out = invoke(["estimate", "--report", "--data-dir", str(REPO / "data")])
    assert code == 0 and "outside the target: 0" in out and "leave-one-device-out NVIDIA discrete GPU" in out


def test_cli_reads_a_gguf_and_names_what_llama_cpp_would_refuse(gemma3: Path, tiny_moe: Path) -> None:
    code, out = invoke(["estimate", str(gemma3), "--device", "NVIDIA GeForce RTX 4090", "--ctx", "32768",
                        "--data-dir", str(REPO / "data")])
    assert code == 0 and "model facts: GGUF gemma-3-270m-q4_k_m.gguf" in out and "largest context per KV type" in out
    assert "tg @ depth 0: ~" in out and "not shown on the site" in out  # Q4_K_M fitted, but 0.25 GB is out of reach
    code, out = invoke(["estimate", str(tiny_moe), "--device", "RTX 4090", "--kv", "q8_0",
                        "--data-dir", str(REPO / "data")])
    assert code == 1 and "does not divide the head size 16" in out
