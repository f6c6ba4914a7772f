"""The compute buffers of GPU builds against the memory model, on real logs of CUDA, Vulkan and Metal builds (each
fixture names its source; builds b2796-b9849, older than the server logs the collector reads, so the few settings
needed are read here). The host's buffer holds the graph's inputs (the token rows and the f32 attention masks); each
GPU's the layers' graph or the output stage, whichever peaks (these builds and tools reserve a ubatch of logit rows;
llama-server since n_outputs_max one per slot and draft token). Three runs keep tensors in system RAM by -ot: the
copy of the largest of them that llama.cpp makes for the GPU's op is part of the layers' stage. The recurrent state
of a hybrid model's log is checked too."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from collector.estimate import table
from collector.estimate.memcheck import Check
from collector.estimate.memory import MemConfig, estimate_memory

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "logs" / "real"
# older builds (b2824 and b2843 here) print these as llama_new_context_with_model
_SET = re.compile(r"(?:llama_context|llama_new_context_with_model): "
                  r"(n_ctx|n_batch|n_ubatch|n_seq_max|flash_attn|kv_unified|n_rs_seq|n_outputs_max)\s+=\s*(\S+)")
_COMPUTE = re.compile(r"(\S+) compute buffer size =\s*([\d.]+) MiB")
_RS = re.compile(r"(\S+) RS buffer size =\s*([\d.]+) MiB")

# log -> (model table entry, quant, the run's -ot placement: every layer is on the GPU(s), these tensors in system RAM)
_BLK_5_93_FFN = ((r"blk\.([5-9]|[1-8][0-9]|9[0-3])\.ffn", "CPU"),)  # the source's -ot: ffn of blk 0-4 stay on CUDA0
_BLK_13_93_FFN = ((r"blk\.(1[3-9]|[2-8][0-9]|9[0-3])\.ffn", "CPU"),)
LOGS: dict[str, tuple[str, str, tuple[tuple[str, str], ...]]] = {
    "cuda-h100pcie-llama3-8b-q4_k_m-fa0-c8k-b2843.log": ("Llama 3.1 8B", "Q4_K_M", ()),
    "cuda-rtx3090-qwen3-235b-a22b-q6_k-partial-ot-fa1-c16k-q8kv.log": ("Qwen3-235B-A22B", "Q6_K", _BLK_5_93_FFN),
    "cuda-rtx3090ti-qwen3-30b-a3b-q4_k_m-fa1-c32k.log": ("Qwen3-30B-A3B", "Q4_K_M", ()),
    "cuda-rtx4090-llama3-8b-q4_k_m-fa0-c8k-b2824.log": ("Llama 3.1 8B", "Q4_K_M", ()),
    "cuda-rtx4090-rtx5090-qwen3-30b-a3b-q4_k_m-partial-ot-fa0-c16k.log": (
        "Qwen3-30B-A3B", "Q4_K_M", ((r".ffn_.*_exps.", "CPU"),)),
    "cuda-rtxa6000-qwen3-235b-a22b-q8_0-partial-ot-fa1-c32k.log": ("Qwen3-235B-A22B", "Q8_0", _BLK_13_93_FFN),
    "cuda-rtxpro6000-glm45-air-mix-iq4xs-fa1-c131k-ub4096.log": ("GLM-4.5-Air", "IQ4_XS", ()),
    "metal-apple-m5-gpt-oss-20b-mxfp4-fa-auto-c131k.log": ("gpt-oss-20b", "MXFP4_MOE", ()),
    "metal-m1-llama3-8b-q4_k_m-fa0-c512-b2797.log": ("Llama 3.1 8B", "Q4_K_M", ()),
    "metal-m2ultra-llama3-8b-q4_k_m-fa0-c8k-b2796.log": ("Llama 3.1 8B", "Q4_K_M", ()),
    "metal-apple-m5-gpt-oss-20b-unsloth-q4_k_m-fa-auto-c131k.log": ("gpt-oss-20b", "MXFP4_MOE", ()),
    "vulkan-rtx4080-llama31-8b-q4_0-fa1-c16k.log": ("Llama 3.1 8B", "Q4_0", ()),
    # a hybrid model (48 delta-net layers with a recurrent state, 16 with a KV cache), 4 slots, MTP drafting
    "vulkan-3090-hybrid-mtp-b9849.log": ("Qwen3.8-27B", "Q4_K_M", ()),
}
# Llama 3 8B has Llama 3.1 8B's tensors (the 3.1 entry differs only in its training context and rope scaling, and the
# logs state n_ctx); the GLM-4.5-Air file is a per-tensor mix (q8_0/q5_K/q6_K/iq4_nl/iq4_xs, its file type line
# says IQ1_S): the compute buffers do not depend on the weights' types.

# outside the target, as measured (strict: the case fails while the gap stands)
GAPS = {
    "cuda-rtxpro6000-glm45-air-mix-iq4xs-fa1-c131k-ub4096.log":
        "b6168, n_ubatch 4096: CUDA0 logged 3584.09 MiB, estimated 2560 MiB (the output stage; the log's 3584 is "
        "it plus the 1024 MiB f16 mask, which the Metal logs do not hold); the host's 2112.11 is met",
    "vulkan-3090-hybrid-mtp-b9849.log":
        "b9849, n_ubatch 2048: Vulkan0 logged 568.53 MiB, estimated 640 (the feed-forward stage of a 2,048-token "
        "ubatch beside the mask; the per-token constants come from CPU logs, and one hybrid log cannot refit them); "
        "the host's 112.07 is met (104) and the recurrent state exactly (test_recurrent_state)",
}


def _read(text: str, rs: dict[str, float] | None = None) -> tuple[MemConfig, dict[str, float]]:
    """The first context's settings and compute buffers (a log with an MTP draft has a second context); its
    recurrent-state buffers go into `rs`."""
    seen: dict[str, str] = {}
    bufs: dict[str, float] = {}
    for line in text.splitlines():
        if m := _SET.search(line):
            seen.setdefault(m.group(1), m.group(2))
        elif m := _COMPUTE.search(line):
            bufs.setdefault(m.group(1), float(m.group(2)))
        elif (m := _RS.search(line)) and rs is not None:
            rs.setdefault(m.group(1), float(m.group(2)))
    cfg = MemConfig(ctx=int(seen["n_ctx"]), n_seq=int(seen.get("n_seq_max", "1")),
                    unified=seen.get("kv_unified") == "true", flash_attn=seen["flash_attn"] not in ("0", "false"),
                    ubatch=int(seen["n_ubatch"]), batch=int(seen.get("n_batch", "2048")),
                    # builds before n_outputs_max (llama.cpp #23861) reserve a ubatch of logit rows
                    ubatch_outputs=int(seen.get("n_outputs_max", "0")) >= int(seen["n_ubatch"]) or
                    "n_outputs_max" not in seen,
                    draft_n_max=int(seen.get("n_rs_seq", "0")))  # the MTP log: n_rs_seq 2 = its --spec-draft-n-max
    return cfg, bufs


def _within(logged: float, estimated: float) -> bool:
    """memcheck's target (within 5 % or 64 MiB of the logged figure)."""
    return Check("log", "", "", "compute", logged, estimated).within


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=GAPS[n])) if n in GAPS else n for n in sorted(LOGS)])
def test_gpu_builds_compute_buffers(name: str) -> None:
    model, quant, overrides = LOGS[name]
    cfg, bufs = _read((REAL / name).read_text(encoding="utf-8"))
    est = estimate_memory(table.build(model, quant), replace(cfg, overrides=overrides))
    metal = "MTL0" in bufs or "Metal" in bufs  # Metal's buffers: MTL0 and CPU (older builds: Metal and CPU)
    host = sum(v for k, v in bufs.items() if k.endswith("_Host") or (k == "CPU" and metal))
    assert host and _within(host, est.compute["host"]), (host, est.compute)
    gpus = [v for k, v in bufs.items() if re.fullmatch(r"(CUDA|Vulkan|MTL)\d+|Metal", k)]
    assert gpus
    for gpu in gpus:  # each GPU holds the layers' graph (the RTX 4090 + 5090 run: 1,080 MiB on both)
        if name.startswith("vulkan-rtx4080"):
            # not reached, asserted as measured: 549 MiB for 613 (the output stage of a 1,024-token ubatch: the
            # logits' 501 MiB, and 112 MiB beside them where the model counts 48)
            assert est.compute["gpu"] - gpu == pytest.approx(-64.0, abs=0.5)
        else:
            assert _within(gpu, est.compute["gpu"]), (gpu, est.compute)


def test_recurrent_state() -> None:
    """The recurrent state of every log that prints one: (1 + n_rs_seq) rows of conv and SSM state per slot and
    delta-net layer (Qwen3.8-27B: 4 slots x 3 x 48 layers x 3.12 MiB)."""
    checked = 0
    for name, (model, quant, overrides) in LOGS.items():
        rs: dict[str, float] = {}
        cfg, _ = _read((REAL / name).read_text(encoding="utf-8"), rs)
        if rs:
            est = estimate_memory(table.build(model, quant), replace(cfg, overrides=overrides))
            assert sum(rs.values()) == pytest.approx(est.recurrent["gpu"], abs=0.01), (name, rs, est.recurrent)
            checked += 1
    assert checked


def test_the_host_keeps_the_masks() -> None:
    """The old rule (the token rows alone) was 263 MiB short at 131,072 cells; the masks are what fills it."""
    cfg, bufs = _read((REAL / "metal-apple-m5-gpt-oss-20b-mxfp4-fa-auto-c131k.log").read_text(encoding="utf-8"))
    est = estimate_memory(table.build("gpt-oss-20b", "MXFP4_MOE"), cfg)
    assert est.compute["host"] == pytest.approx(bufs["CPU"], abs=8) and bufs["CPU"] > 256
