"""The tune search's pure parts: bisection, the memory order of configurations, the budget's scope, the gain."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from collector.errors import CollectorError
from collector.llama.binaries import LlamaTools
from collector.llama.flags import LlamaConfig
from collector.records.schema import CpuInfo, GpuInfo, Host, LlamaCpp, Memory, ModelInfo, Stat, TuneChoice
from collector.stats import median_band
from collector.tune import (
    Question,
    Tuner,
    bisect_largest,
    bisect_smallest,
    gain_of,
    parse_ctx,
    parse_kv,
    smaller_or_equal,
)


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



def _tuner(tmp_path: Path, host: Host, scope: str) -> Tuner:
    q = Question(model_ref="m", model_path=Path("m"), ctx=4096, depth=0, budget_mib=1000,
                 budget_source="--memory-budget", scope=scope, kv=("f16",), objective="tg",  # type: ignore[arg-type]
                 time_budget_s=60)
    return Tuner(q, LlamaTools(tmp_path, "test"), tmp_path / "data", host, LlamaCpp(), ModelInfo())


def test_settings_tried_depend_on_the_host(tmp_path: Path) -> None:
    cpu = _tuner(tmp_path, Host(cpu=CpuInfo(cores=8, threads=16)), "host")
    base = LlamaConfig(ctx_size=4096)
    whys = {dim: [why for why, _ in cpu.candidates(dim, base, True)]
            for dim in ("flash_attn", "threads", "split_mode", "ubatch_size")}
    assert whys == {"flash_attn": ["flash attention off"],  # auto resolved to on: only off is new
                    "threads": ["4 threads", "16 threads"],  # 8 (the physical cores) is llama.cpp's default
                    "split_mode": [], "ubatch_size": ["ubatch 256", "ubatch 1024"]}
    gpus = _tuner(tmp_path, Host(gpus=[GpuInfo(name="A"), GpuInfo(name="B")]), "gpu")
    assert [w for w, _ in gpus.candidates("threads", base, None)] == []
    assert [(w, c.split_mode) for w, c in gpus.candidates("split_mode", base, None)] == [("split mode row", "row")]
    one = _tuner(tmp_path, Host(gpus=[GpuInfo(name="A")]), "gpu")
    assert one.candidates("split_mode", base, None) == []
