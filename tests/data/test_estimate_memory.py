"""The memory estimate against what llama.cpp logged: every measured record and tune probe in data/, the real logs
in tests/fixtures/logs/, and models.yaml's byte counts against the GGUF they were read from."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from collector.base.cache import sha256_files
from collector.base.errors import CollectorError
from collector.estimate.arch import Arch, read_gguf, stated_models
from collector.estimate.memcheck import data_checks, log_checks, summarise
from collector.estimate.memory import MemConfig, estimate_memory, file_bytes, largest_context
from collector.records.index import load_records
from collector.records.schema import SpeedRecord, TuneRecord

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / "tests" / "fixtures" / "logs"


def test_every_measured_record_and_probe_in_data_is_checked_and_within_the_target() -> None:
    records = load_records(REPO / "data")
    checks, skipped = data_checks(records)
    with_memory = [r for r in records if r.measured and isinstance(r, SpeedRecord) and r.memory_mib.model_buffers]
    probes = [p for r in records if r.measured and isinstance(r, TuneRecord) for p in r.probes
              if p.memory_mib is not None]
    assert with_memory and probes and not skipped
    assert {c.what for c in checks if c.what.startswith("record ")} == {f"record {r.id}" for r in with_memory}
    assert sum(1 for c in checks if c.what.startswith("probe ")) == len(probes)
    assert all(c.within for c in checks), [c for c in checks if not c.within]
    # weights and KV cache are sized exactly (to the 0.01 MiB llama.cpp prints); the compute buffer is modelled
    assert all(abs(c.error) <= 0.02 for c in checks if c.kind in ("model", "kv"))
    by_kind = {s.kind: s for s in summarise(checks)}
    assert by_kind["compute"].max_abs_mib < 10 and by_kind["total"].outside == 0
    # llama.cpp's own fit projection is in the logs of these records and agrees to its whole-MiB rounding where the
    # CPU repacks nothing; where it repacks (the ladder's Q4_K_M, Q3_K_M, Q2_K, IQ4_XS and IQ2_XS files on an AVX-512
    # CPU) it projects 15-99 MiB too little, and ours is closer every time
    fits = [c for c in checks if c.fit is not None]
    repacked = {f"record {r.id}" for r in with_memory if "CPU_REPACK" in r.memory_mib.model_buffers}
    assert fits and all(abs(c.fit - c.logged) < 1.0 for c in fits if c.what not in repacked)
    under = [c for c in fits if c.what in repacked]
    assert len(under) >= 5 and all(c.fit < c.logged - 10 and abs(c.error) < abs(c.fit - c.logged) for c in under)


@pytest.mark.parametrize("log, model", [("gemma3-270m-cpu-swa.log", "gemma3"), ("smollm2-cpu-fa-off.log", "smollm2"),
                                        ("smollm2-cpu-fa-on-q8kv-np2.log", "smollm2")])
def test_real_logs_within_the_target(log: str, model: str, request: pytest.FixtureRequest) -> None:
    arch = read_gguf(request.getfixturevalue(model))
    checks = log_checks((LOGS / log).read_text(encoding="utf-8"), arch, log)
    assert [c.kind for c in checks] == ["model", "kv", "compute", "total"]
    assert all(c.within for c in checks)
    assert all(abs(c.error) <= 0.02 for c in checks if c.kind in ("model", "kv"))


def test_gemma_sliding_window_and_repack_are_modelled(gemma3: Path) -> None:
    arch = read_gguf(gemma3)
    assert arch.n_swa == 512 and len(arch.swa_layers) == 15 and arch.n_layer == 18  # every 6th layer is global
    est = estimate_memory(arch, MemConfig(ctx=4096, ubatch=128, on_gpu=False))
    assert [(c.swa, c.cells, c.layers) for c in est.caches] == [(False, 4096, 3), (True, 768, 15)]
    # the log of llama.cpp's own fit undercounts this model: it leaves out the CPU_REPACK copy of the Q4_K matrices
    log = (LOGS / "gemma3-270m-cpu-swa.log").read_text(encoding="utf-8")
    (total,) = [c for c in log_checks(log, arch, "gemma") if c.kind == "total"]
    assert total.fit is not None and abs(total.error) < abs(total.fit - total.logged)


def test_models_yaml_bytes_are_the_gguf_files(smollm2: Path) -> None:
    arch = read_gguf(smollm2)
    stated = stated_models()[arch.name]
    assert stated.files[sha256_files([smollm2])] == file_bytes(arch)
    assert (stated.n_layer, stated.n_embd, stated.n_ff, stated.n_head, stated.n_head_kv, stated.head_dim,
            stated.n_vocab, stated.ctx_train, stated.tied) == (arch.n_layer, arch.n_embd, arch.n_ff, arch.n_head,
                                                               arch.n_head_kv[0], arch.head_k, arch.n_vocab,
                                                               arch.ctx_train, arch.tied)


def test_gpu_split_and_largest_context(smollm2: Path) -> None:
    arch = read_gguf(smollm2)
    full = estimate_memory(arch, MemConfig(ctx=2048))
    # all layers on the GPU: the embeddings stay on the host, the tied output matrix gets its own copy on the GPU
    assert full.model["host"] == pytest.approx(arch.embd_bytes / 2**20)
    assert full.model["gpu"] == pytest.approx((arch.weight_bytes - arch.embd_bytes + arch.embd_bytes) / 2**20)
    half = estimate_memory(arch, MemConfig(ctx=2048, n_gpu_layers=16))  # the output layer and the last 15 layers
    assert 0 < half.kv["gpu"] < full.kv["gpu"] and half.kv["gpu"] == pytest.approx(full.kv["gpu"] * 15 / 30)
    budget = estimate_memory(arch, MemConfig(ctx=4096)).total("gpu")
    assert largest_context(arch, MemConfig(), budget) == 4096
    q8 = MemConfig(type_k="q8_0", type_v="q8_0")
    most = largest_context(arch, q8, budget)
    assert most is not None and 4096 < most < 8192  # half the KV bytes per cell: more context in the same memory
    assert estimate_memory(arch, MemConfig(ctx=most, type_k="q8_0", type_v="q8_0")).total("gpu") <= budget
    assert estimate_memory(arch, MemConfig(ctx=most + 256, type_k="q8_0", type_v="q8_0")).total("gpu") > budget
    assert largest_context(arch, q8, 10 * budget) == 8192  # capped at the training context
    assert largest_context(arch, MemConfig(), 1.0) is None


def test_a_cache_type_llama_cpp_refuses_is_refused(tiny_moe: Path) -> None:
    arch = read_gguf(tiny_moe)  # head size 16: a q8_0 block (32) does not divide it, llama.cpp fails to load
    with pytest.raises(CollectorError, match="does not divide the head size 16"):
        estimate_memory(arch, MemConfig(type_k="q8_0", type_v="q8_0"))
    with pytest.raises(CollectorError, match="unknown cache type 'q3_k'"):
        estimate_memory(arch, MemConfig(type_k="q3_k"))


def test_the_repack_rule_follows_the_cpu_features_llama_cpp_reports(gemma3: Path) -> None:
    """AVX2 repacks Q4_K (gemma-3's Q4_K_M matrices), AVX512 Q2_K as well, a build without REPACK nothing; not known:
    the AVX2 rule (ggml-cpu/repack.cpp, b11434)."""
    arch = read_gguf(gemma3)
    q4k = sum(t.n_bytes for t in arch.tensors if t.type == "Q4_K" and t.rows % 8 == 0 and t.layer is not None) / 2**20

    def host(a: Arch, *features: str) -> float:
        return estimate_memory(a, MemConfig(ctx=512, on_gpu=False, cpu_features=frozenset(features))).model["host"]

    mapped = arch.weight_bytes / 2**20
    assert q4k > 10 and host(arch) == pytest.approx(mapped + q4k) == host(arch, "AVX2", "AVX512", "REPACK")
    assert host(arch, "AVX2", "LLAMAFILE") == pytest.approx(mapped)  # no REPACK: no second copy
    as_q2k = replace(arch, tensors=tuple(replace(t, type="Q2_K") if t.type == "Q4_K" else t for t in arch.tensors))
    assert host(as_q2k, "AVX2", "REPACK") == pytest.approx(mapped)
    assert host(as_q2k, "AVX2", "AVX512", "REPACK") == pytest.approx(mapped + q4k)
    # a stated model's file (models.yaml) keeps the repackable bytes by type, so the same rule applies to it
    fb = file_bytes(as_q2k)
    assert fb.repack_bytes == {"Q2_K": round(q4k * 2**20)}
