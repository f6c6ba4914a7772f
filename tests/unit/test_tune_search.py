"""The tune search's policy, over a scripted lab (tests/fakes.py): the memory boundary, challengers, noise, the time
budget, over-budget configurations, the same answer from the same trials; and its pure parts (bisection, the memory
order of configurations, the budget's scope, the gain). Every test runs in milliseconds."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.base.stats import median_band
from collector.records.flags import LlamaConfig
from collector.records.schema import CpuInfo, GpuInfo, Host, Memory, ModelInfo, Stat, TuneChoice
from collector.tune.search import (
    KV_BYTES,
    OutOfTime,
    Question,
    Search,
    bisect_largest,
    bisect_smallest,
    gain_of,
    key_of,
    smaller_or_equal,
)
from collector.tune.session import parse_ctx, parse_kv
from fakes import ScriptedLab


@pytest.mark.parametrize("boundary", [0, 1, 5, 17, 31, 32])
def test_bisection_finds_the_boundary_of_a_monotone_predicate_with_few_calls(boundary: int) -> None:
    calls: list[int] = []

    def fits_up_to(x: int) -> bool:
        calls.append(x)
        return x <= boundary

    assert bisect_largest(1, 32, fits_up_to) == (boundary if boundary >= 1 else None)
    assert len(calls) == len(set(calls)) <= 2 + 5  # both ends, then log2(32) halvings, none twice
    calls.clear()

    def fits_from(x: int) -> bool:
        calls.append(x)
        return x >= boundary

    assert bisect_smallest(0, 31, fits_from) == (boundary if boundary <= 31 else None)
    assert len(calls) == len(set(calls)) <= 2 + 5


def test_bisection_in_steps_and_a_failed_load_counts_as_not_fitting() -> None:
    assert bisect_largest(1000, 8192, lambda c: c <= 6200, 256) == 6144  # multiples of 256 only, lo rounded up
    assert bisect_largest(1024, 8192, lambda c: None if c > 3000 else True, 256) == 2816
    assert bisect_largest(1024, 8192, lambda c: False, 256) is None


def test_memory_order_of_configurations() -> None:
    small = LlamaConfig(ctx_size=2048, cache_type_k="q8_0", cache_type_v="q8_0", ubatch_size=256)
    assert smaller_or_equal(small, LlamaConfig(ctx_size=4096))  # f16, ubatch 512 by default
    assert smaller_or_equal(small, small.model_copy(update={"threads": 1}))  # threads change no buffer
    assert not smaller_or_equal(LlamaConfig(ctx_size=4096), small)
    assert not smaller_or_equal(small, small.model_copy(update={"flash_attn": "off"}))  # other compute buffers
    assert not smaller_or_equal(LlamaConfig(ctx_size=8192), LlamaConfig())  # training context not known
    assert smaller_or_equal(LlamaConfig(ctx_size=8192), LlamaConfig(), ctx_default=8192)
    assert not smaller_or_equal(LlamaConfig(), LlamaConfig(ctx_size=4096), ctx_default=8192)


def test_budget_scope_counts_host_or_gpu_buffers() -> None:
    m = Memory(model_buffers={"CPU_Mapped": 92.1, "CUDA0": 1000.0}, kv_buffers={"CUDA0": 200.0},
               compute_buffers={"CUDA0": 50.5, "CUDA_Host": 10.0, "CPU": 4.0})
    assert m.used_mib("host") == 106.1
    assert m.used_mib("gpu") == 1250.5
    assert Memory().used_mib("host") is None  # nothing logged: unknown, never 0


def test_question_words_are_checked() -> None:
    assert parse_kv("F16, q8_0,f16") == ("f16", "q8_0")
    assert parse_ctx("max") == "max" and parse_ctx("4096") == 4096
    for bad in ("q9", ""):
        with pytest.raises(CollectorError, match="--kv"):
            parse_kv(bad)
    for bad in ("12", "lots", "-5"):
        with pytest.raises(CollectorError, match="--ctx"):
            parse_ctx(bad)


def _choice(values: list[float]) -> TuneChoice:
    lo, hi = median_band(values)
    return TuneChoice(config=LlamaConfig(), tg_tps=Stat.of(values), band_low=lo, band_high=hi, records=["x"])


def test_gain_is_the_ratio_of_medians_and_beyond_noise_only_when_the_bands_part() -> None:
    q = Question(model_ref="m", model_path=Path("m"), ctx=4096, depth=0, budget_mib=1,
                 budget_source="--memory-budget", scope="host", kv=("f16",), objective="tg", time_budget_s=60)
    slow, fast = [40.0, 41.0, 42.0, 40.5, 41.5, 40.8], [50.0, 51.0, 49.5, 50.5, 51.5, 50.2]
    g = gain_of(q, _choice(slow), _choice(fast))
    assert g is not None and g.beyond_noise and g.low_pct <= g.pct <= g.high_pct
    assert g.pct == round((statistics.median(fast) / statistics.median(slow) - 1) * 100, 2)
    g = gain_of(q, _choice(slow), _choice([41.0, 39.0, 43.0, 44.0, 38.0, 42.5]))
    assert g is not None and not g.beyond_noise  # overlapping bands: no measurable gain



def _search(host: Host, scope: str, lab: ScriptedLab | None = None, model: ModelInfo | None = None,
            **question: object) -> Search:
    q = Question(model_ref="m", model_path=Path("m"), ctx=4096, depth=0, budget_mib=1000,
                 budget_source="--memory-budget", scope=scope, kv=("f16",), objective="tg",  # type: ignore[arg-type]
                 time_budget_s=600)
    q = dataclasses.replace(q, **question)  # type: ignore[arg-type]
    lab = lab or ScriptedLab(lambda c: 0.0, lambda c, n: [1.0])
    return Search(q, lab, host, model or ModelInfo())


def test_settings_tried_depend_on_the_host() -> None:
    cpu = _search(Host(cpu=CpuInfo(cores=8, threads=16)), "host")
    base = LlamaConfig(ctx_size=4096)
    whys = {dim: [why for why, _ in cpu.candidates(dim, base, True)]
            for dim in ("flash_attn", "threads", "split_mode", "ubatch_size")}
    assert whys == {"flash_attn": ["flash attention off"],  # auto resolved to on: only off is new
                    "threads": ["4 threads", "16 threads"],  # 8 (the physical cores) is llama.cpp's default
                    "split_mode": [], "ubatch_size": ["ubatch 256", "ubatch 1024"]}
    gpus = _search(Host(gpus=[GpuInfo(name="A"), GpuInfo(name="B")]), "gpu")
    assert [w for w, _ in gpus.candidates("threads", base, None)] == []
    assert [(w, c.split_mode) for w, c in gpus.candidates("split_mode", base, None)] == [("split mode row", "row")]
    one = _search(Host(gpus=[GpuInfo(name="A")]), "gpu")
    assert one.candidates("split_mode", base, None) == []


# A CPU host with two cores, a model trained on 8192 tokens: llama.cpp's buffers are 100 MiB of weights plus 20 MiB per
# 1024 tokens of f16 KV cache (scaled by the KV type's bytes), 5 MiB per 512 of ubatch, 10 MiB more without flash
# attention.
HOST = Host(cpu=CpuInfo(cores=2, threads=2))
MODEL = ModelInfo(ctx_train=8192, n_layers=30, moe=False)


def memory(c: LlamaConfig) -> float:
    kv = (KV_BYTES[c.cache_type_k or "f16"] + KV_BYTES[c.cache_type_v or "f16"]) / 4
    return 100 + (c.ctx_size or 8192) / 1024 * 20 * kv + (c.ubatch_size or 512) / 512 * 5 + \
        (10 if c.flash_attn == "off" else 0)


def steady(value: float) -> list[float]:
    return [value * 0.99, value, value * 1.01]


def test_ctx_max_finds_the_largest_context_within_the_budget_and_measures_nothing_over_it() -> None:
    lab = ScriptedLab(memory, lambda c, n: steady(50.0))
    s = _search(HOST, "host", lab, MODEL, ctx="max", kv=("f16", "q8_0"), budget_mib=200)
    s.run()
    assert s.done and s.best is not None
    # f16 reaches 4864 tokens (200 - 105 MiB of weights and ubatch at 20 MiB per 1024), q8_0 the training context
    assert (s.best.ctx_size, s.best.cache_type_k, s.best.cache_type_v) == (8192, "q8_0", "q8_0")
    assert any(step == "f16: the largest context within the budget is 4864" for step in s.steps), s.steps
    default, chosen = s.choice(s.default or LlamaConfig()), s.choice(s.best)
    assert default.fits is False and chosen.fits and chosen.memory_mib is not None and chosen.memory_mib <= 200
    for key in lab.measured():  # only the default is measured over the budget: it is the baseline
        c = LlamaConfig.model_validate_json(key)
        assert memory(c) <= 200 or c == s.default, key
    assert len(s.probes) <= 2 * (2 + 5)  # two bisections of 32 steps of 256 tokens
    assert chosen.tg_tps is not None and chosen.tg_tps.n == 6  # screened, then confirmed: two trials of 3 samples


def test_a_challenger_is_kept_only_when_faster_beyond_noise_over_two_alternate_trials() -> None:
    def speed(c: LlamaConfig, n: int) -> list[float]:
        if c.ubatch_size == 1024:
            return steady(70.0 if n == 0 else 60.0)  # faster once: drift, not a setting
        return steady(60.0 if c.threads == 1 else 50.0)  # one thread: faster every time

    lab = ScriptedLab(memory, speed)
    s = _search(HOST, "host", lab, MODEL, ctx=2048, budget_mib=1000)
    s.run()
    assert s.best == LlamaConfig(ctx_size=2048, threads=1)
    assert any(step.startswith("kept 1 threads: 60.0 against 50.0 t/s") for step in s.steps), s.steps
    assert any(step.startswith("not kept ubatch 1024:") and "not faster beyond noise" in step for step in s.steps)
    ub = key_of(LlamaConfig(ctx_size=2048, threads=1, ubatch_size=1024))
    assert lab.measured().count(ub) == 2  # the challenger measured again, alternately with the best
    g = gain_of(s.q, s.choice(s.default or LlamaConfig()), s.choice(s.best))
    assert g is not None and g.beyond_noise and g.pct == pytest.approx(20.0)


def test_noisy_trials_get_one_more_try_and_are_never_kept() -> None:
    def noisy(c: LlamaConfig, n: int) -> bool:
        return c.threads == 1 or c.ctx_size is None  # every trial of one thread, and of the default

    lab = ScriptedLab(memory, lambda c, n: steady(80.0 if c.threads == 1 else 50.0), noisy)
    s = _search(HOST, "host", lab, MODEL, ctx="max", budget_mib=1000)
    s.run()
    one = key_of(LlamaConfig(ctx_size=8192, threads=1))
    assert lab.measured().count(one) == 2  # measured, noisy, one more try, noisy again
    assert "not kept 1 threads: its trials were noisy" in s.steps
    assert s.best is not None and s.best.threads is None  # never kept, however fast its noisy figures
    assert s.choice(s.default or LlamaConfig()).noisy  # every trial of the default noisy: no recommendation


def test_the_time_budget_stops_the_search_before_a_step_it_cannot_pay_for() -> None:
    lab = ScriptedLab(memory, lambda c, n: steady(50.0), trial_s=5.0, probe_s=1.0)
    s = _search(HOST, "host", lab, MODEL, ctx=2048, time_budget_s=12)
    with pytest.raises(OutOfTime, match="the next trial would take about 5 s more"):
        s.run()
    assert lab.now <= 12  # nothing started that the budget could not pay for
    assert s.default is not None and s.choice(s.default).records  # the default it measured is kept
    assert not s.done


def test_a_step_that_runs_into_the_deadline_is_not_recorded() -> None:
    lab = ScriptedLab(memory, lambda c, n: steady(50.0), trial_s=20.0)
    s = _search(HOST, "host", lab, MODEL, ctx=2048, time_budget_s=12)
    with pytest.raises(OutOfTime, match="during a trial, which is not recorded"):
        s.run()
    assert s.trials == []


def test_a_configuration_known_to_be_over_the_budget_is_never_loaded() -> None:
    known = [(LlamaConfig(ctx_size=2048), 400.0, "a probe of tune T")]  # f16 at 2048 tokens needed 400 MiB before
    lab = ScriptedLab(memory, lambda c, n: steady(50.0), known=known)
    s = _search(HOST, "host", lab, MODEL, budget_mib=300)
    assert s.probe(LlamaConfig(ctx_size=4096), "test") is False  # 4096 tokens need at least what 2048 did
    assert s.steps[-1].endswith("over the budget (a probe of tune T needed 400 MiB with no more context, KV or "
                                "ubatch than this), not loaded")
    assert s.take(LlamaConfig(ctx_size=4096, ubatch_size=1024), "test") is None
    assert s.steps[-1].startswith("skipped (test): -c 4096 -ub 1024: over the budget")
    assert s.probe(LlamaConfig(ctx_size=4096, cache_type_k="q8_0", cache_type_v="q8_0"), "test")  # smaller KV: loaded
    assert lab.log == [("probe", key_of(LlamaConfig(ctx_size=4096, cache_type_k="q8_0", cache_type_v="q8_0")))]


def test_the_same_trials_give_the_same_answer_without_measuring() -> None:
    first_lab = ScriptedLab(memory, lambda c, n: steady(60.0 if c.threads == 1 else 50.0))
    first = _search(HOST, "host", first_lab, MODEL, ctx="max", kv=("f16", "q8_0"), budget_mib=200)
    first.run()
    known = [(p.config, p.memory_mib, "an earlier probe") for p in first.probes if p.memory_mib is not None]

    def never(c: LlamaConfig, n: int) -> list[float]:
        raise AssertionError(f"measured again: {key_of(c)}")

    lab = ScriptedLab(memory, never, recorded=first_lab.trials, known=known)  # type: ignore[arg-type]
    again = _search(HOST, "host", lab, MODEL, ctx="max", kv=("f16", "q8_0"), budget_mib=200)
    again.run()
    assert lab.log == [] and again.probes == []  # every trial reused, every memory question answered
    assert again.best == first.best and again.choice(again.best) == first.choice(first.best)  # type: ignore[arg-type]
    assert again.choice(again.default) == first.choice(first.default)  # type: ignore[arg-type]
