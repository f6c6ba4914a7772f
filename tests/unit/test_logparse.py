"""The -lv 4 server log parser on real logs captured from this build (CPU); GPU logs: test_logparse_real.py."""

from __future__ import annotations

from pathlib import Path

from collector.llama.logparse import parse_server_log

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"


def test_real_cpu_log_fa_off() -> None:
    # captured: llama-server -m SmolLM2-135M-Instruct.Q4_1.gguf -c 1024 -t 2 -np 1 -fa off -lv 4 (this build)
    f = parse_server_log((LOGS / "smollm2-cpu-fa-off.log").read_text())
    p, m = f.placement, f.memory
    assert (p.n_ctx, p.n_ctx_seq, p.n_slots, p.flash_attn) == (1024, 1024, 1, False)
    assert p.gpu_layers is None and p.total_layers is None  # a CPU-only build prints no offload line
    assert m.model_buffers == {"CPU_Mapped": 92.10}
    assert m.kv_buffers == {"CPU": 22.50} and m.kv_cache == 22.50
    assert m.compute_buffers == {"CPU": 27.51}
    assert p.devices == ["CPU: AMD EPYC (24105 MiB)"]
    assert any("no changes needed" in line for line in p.fit)
    assert f.build_line == "build 0 (unknown) with GNU 12.2.0 for Linux x86_64"
    [host] = m.breakdown
    assert (host.name, host.self_, host.model, host.context, host.compute) == ("Host", 142, 92, 22, 27)


def test_real_cpu_log_fa_on_two_slots() -> None:
    # captured: ... -c 2048 -t 2 -np 2 -fa on -ctk q8_0 -ctv q8_0 -lv 4
    f = parse_server_log((LOGS / "smollm2-cpu-fa-on-q8kv-np2.log").read_text())
    p, m = f.placement, f.memory
    assert (p.n_ctx, p.n_ctx_seq, p.n_slots, p.flash_attn) == (2048, 1024, 2, True)
    assert m.kv_cache == 23.91 and m.compute_buffers == {"CPU": 15.67}
    # the fit trial prints a table first; the exit table is the one kept (same numbers here, one row)
    assert [r.name for r in m.breakdown] == ["Host"] and m.breakdown[0].self_ == 131


def test_missing_facts_stay_none() -> None:
    f = parse_server_log("0.00.001.000 I srv  llama_server: model loaded\n")
    assert f.placement.n_ctx is None and f.placement.flash_attn is None and f.memory.breakdown == []
    assert f.memory.used_mib("host") is None and f.placement.llama_devices == []
