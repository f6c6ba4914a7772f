"""End to end through run_plan with the real llama-server and SmolLM2: records, numbers, skip and --force."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.base.progress import RecordingObserver
from collector.llama.binaries import LlamaTools
from collector.measure.plan import load_plan
from collector.measure.runner import dry_run, run_plan
from collector.models.ref import DEMO_MODEL
from collector.records import index, store
from collector.records.schema import SpeedRecord
from fakes import RTX_4090, FakeNVML

pytestmark = pytest.mark.slow

PLAN = f"""
name: speed-test
models: ["{DEMO_MODEL}"]
server: {{threads: 1, parallel: 1, ctx_size: 1024}}
matrix: {{flash_attn: ["off", "on"]}}
speed:
  categories: [sql]
  depths: [0, 256]
  n_predict: 16
  repetitions: 2
  warmup: 1
"""


def _plan(tmp_path: Path, text: str = PLAN) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


def test_speed_run_end_to_end_skip_and_force(tmp_path: Path, llama_tools: LlamaTools, smollm2: Path) -> None:
    plan = load_plan(_plan(tmp_path))
    data = tmp_path / "data"
    obs = RecordingObserver()
    report = run_plan(plan, tools=llama_tools, data_dir=data, observer=obs)
    assert len(report.ok) == 2 and not report.failed and not report.skipped, obs.events
    recs = [store.load_record(p) for p in report.ok]  # re-read from disk: what a reader gets
    assert all(isinstance(r, SpeedRecord) and r.status == "ok" for r in recs)
    by_fa = {r.config.flash_attn: r for r in recs}
    assert set(by_fa) == {"on", "off"}
    for fa, rec in by_fa.items():
        assert rec.placement.flash_attn is (fa == "on")  # what llama.cpp did, read from the -lv 4 log
        assert rec.placement.n_ctx == 1024 and rec.memory_mib.kv_cache and rec.memory_mib.model_buffers
        assert rec.memory_mib.breakdown and rec.memory_mib.host_rss_peak and rec.memory_mib.host_rss_peak > 50
        assert rec.load_seconds and 0 < rec.load_seconds < 60
        assert rec.command[:3] == ["llama-server", "-m", "{model}"] and "--port" not in rec.command
        assert str(smollm2) not in " ".join(rec.command)
        assert rec.model.sha256 and rec.llama_cpp.version and rec.host.cpu.cores
        assert rec.method.prompt_suite and rec.method.prompt_suite.name == "coding-v1"
        assert len(rec.method.prompt_suite.sha256 or "") == 64
        assert [(s.category, s.depth_tokens) for s in rec.samples] == [("sql", 0), ("sql", 256)]
        for s in rec.samples:
            assert len(s.tg_tps) == len(s.pp_tps) == len(s.ttft_ms) == len(s.tg_tps_client) == 2
            assert s.gen_tokens == 16
            assert s.prompt_tokens and s.prompt_tokens >= s.depth_tokens + 100  # prompts are >= 150 tokens
            assert all(v > 0 for v in s.tg_tps + s.pp_tps + s.ttft_ms)
            if not rec.noisy:  # on a host the record finds busy, the client's clock waits for the CPU too
                for server_tps, client_tps in zip(s.tg_tps, s.tg_tps_client):
                    assert abs(client_tps - server_tps) / server_tps < 0.25
        depth0 = {s.category: s.prompt_tokens for s in rec.samples if s.depth_tokens == 0}
        for s in rec.samples:
            if s.depth_tokens == 256:  # depth adds exactly the filler (plus a separator of a few tokens)
                assert 256 <= s.prompt_tokens - depth0[s.category] <= 256 + 4
        assert rec.summary.tg_tps and rec.summary.tg_tps.n == 4
        assert rec.summary.tg_tps.min <= rec.summary.tg_tps.median <= rec.summary.tg_tps.max
    assert [e[0] for e in obs.events] == ["start", "finish", "start", "finish"]

    # quiet runs are "already recorded"; a run this busy 2-core host measured as noisy is measured again
    noisy = [r for r in recs if r.conditions and r.conditions.noisy]
    # the dry run says so first (the same check, nothing started)
    ahead = dry_run(plan, llama_tools, data)
    assert [recorded for _, _, recorded in ahead] == [
        not any(r.conditions and r.conditions.noisy for r in recs if r.config.flash_attn == fa) for fa in ("off", "on")]
    again = run_plan(plan, tools=llama_tools, data_dir=data)
    assert len(again.skipped) == 2 - len(noisy) and len(again.ok) == len(noisy), [r.conditions for r in recs]
    assert len(index.record_files(data)) == 2 + len(noisy)

    one = load_plan(_plan(tmp_path, PLAN.replace('["off", "on"]', '["on"]').replace("repetitions: 2",
                                                                                       "repetitions: 1")
                                 .replace("warmup: 1", "warmup: 0\n  llama_bench: true")))
    forced = run_plan(one, tools=llama_tools, data_dir=data, force=True)
    assert len(forced.ok) == 1 and not forced.skipped
    assert len(index.record_files(data)) == 3 + len(noisy)
    bench = store.load_record(forced.ok[0]).engine_bench  # llama-bench with the same model and flags
    assert bench and bench.tg_tps and bench.tg_tps.median and bench.tg_tps.median > 0 and bench.n_gen == 16
    assert bench.command[:3] == ["llama-bench", "-m", "{model}"] and "-fa" in bench.command


def test_an_nvidia_gpu_this_build_does_not_list_is_not_the_records_device(tmp_path: Path, llama_tools: LlamaTools,
                                                                          smollm2: Path) -> None:
    """The real CPU build on a host where (fake) NVML sees an RTX 4090: llama.cpp lists no device for it and runs
    on the CPU, so the record is a CPU record that says so, with no GPU memory or energy sampled for it."""
    nv = FakeNVML([RTX_4090], used_mib=[1000.0, 3000.0, 2000.0])
    text = PLAN.replace('["off", "on"]', '["off"]').replace("depths: [0, 256]", "depths: [0]") \
        .replace("repetitions: 2", "repetitions: 1").replace("warmup: 1", "warmup: 0")
    report = run_plan(load_plan(_plan(tmp_path, text)), tools=llama_tools, data_dir=tmp_path / "data", nvml=nv)
    [path] = report.ok
    rec = store.load_record(path)
    assert path.relative_to(tmp_path / "data" / "records").parts[0].startswith("cpu-")
    assert rec.host.gpus == [] and rec.llama_cpp.backend == "CPU"
    assert "NVIDIA GeForce RTX 4090 is not a device this llama.cpp build lists (a CPU build?): not used" \
        in rec.warnings
    assert rec.warnings[-1] == "llama.cpp used no GPU of this host: filed as a CPU record"
    assert rec.memory_mib.vram_peak is None and rec.summary.energy_j is None  # the idle GPU is not sampled
    assert nv.calls["mem0"] == 1  # the probe read its total memory; the sampler never read it
