"""The memory estimate against real llama-server loads of the three test models (SmolLM2, gemma-3-270m with its
sliding window, the MoE test model): for each configuration the settings as asked (llama-server's defaults filled
in), the buffers llama.cpp logged, and llama.cpp's own fit projection beside ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.estimate.arch import read_gguf
from collector.estimate.memcheck import Check, mem_config, summarise
from collector.estimate.memory import estimate_memory
from collector.llama.binaries import LlamaTools
from collector.llama.logparse import parse_server_log
from collector.llama.server import ServerProcess
from collector.records.flags import LlamaConfig, server_args

pytestmark = pytest.mark.slow

CONFIGS = [
    LlamaConfig(ctx_size=512, flash_attn="on", ubatch_size=512, parallel=1),
    LlamaConfig(ctx_size=4096, flash_attn="on", ubatch_size=128, cache_type_k="q8_0", cache_type_v="q8_0",
                parallel=4),
    LlamaConfig(ctx_size=4096, flash_attn="off", ubatch_size=512, parallel=1),
    LlamaConfig(ctx_size=3000, flash_attn="on", ubatch_size=256, cache_type_k="q4_0", cache_type_v="q4_0",
                parallel=2),
    LlamaConfig(ctx_size=4096, flash_attn="auto", parallel=4, extra_args=["-kvu"]),
    LlamaConfig(),  # llama-server's defaults: the training context, 4 slots sharing a unified cache
]


def _checks(tools: LlamaTools, model: Path, cfg: LlamaConfig, work: Path) -> list[Check]:
    arch = read_gguf(model)
    srv = ServerProcess(tools.path("llama-server"), model, [*server_args(cfg), "-t", "2"], log_dir=work,
                        load_timeout_s=120)
    with srv:
        pass
    facts = parse_server_log(srv.log_text())
    mcfg = mem_config(cfg, on_gpu=False)
    est = estimate_memory(arch, mcfg)
    mem = facts.memory
    fit = next((float(x.split("projected to use ")[1].split()[0]) for x in facts.placement.fit
                if "projected to use" in x), None)
    out = [Check(str(cfg), arch.name, "", kind, sum(bufs.values()), sum(mine.values()))
           for kind, bufs, mine in (("model", mem.model_buffers, est.model), ("kv", mem.kv_buffers, est.kv),
                                    ("compute", mem.compute_buffers, est.compute))]
    out.append(Check(str(cfg), arch.name, "", "total", sum(c.logged for c in out), est.total("host") - est.output_mib,
                     fit))
    return out


@pytest.mark.parametrize("model", ["smollm2", "gemma3", "tiny_moe"])
def test_estimate_matches_real_loads(model: str, request: pytest.FixtureRequest, llama_tools: LlamaTools,
                                     tmp_path: Path) -> None:
    path = request.getfixturevalue(model)
    checks: list[Check] = []
    for i, cfg in enumerate(CONFIGS):
        if model == "tiny_moe" and (cfg.cache_type_k or "f16") != "f16":
            continue  # its head size (16) is not a multiple of a quantized block: llama.cpp refuses (a unit test)
        checks += _checks(llama_tools, path, cfg, tmp_path / str(i))
    assert len(checks) >= 16
    assert all(c.within for c in checks), [c for c in checks if not c.within]
    assert all(abs(c.error) <= 0.02 for c in checks if c.kind in ("model", "kv")), \
        [c for c in checks if c.kind in ("model", "kv") and abs(c.error) > 0.02]
    compute = {s.kind: s for s in summarise(checks)}["compute"]
    assert compute.max_abs_mib < 10
    # llama.cpp projects its own total before loading; ours is never further from what it then allocated
    for c in checks:
        if c.kind == "total" and c.fit is not None:
            assert abs(c.error) <= abs(c.fit - c.logged) + 8.0, c
