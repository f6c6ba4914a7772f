"""`also: [{models: ladder}]`: the speed of the very files the KLD section scores, built by the real llama-quantize
and measured by the real llama-server, so the site joins each file's speed to its KLD by sha256."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.base.cache import sha256_files
from collector.base.progress import RecordingObserver
from collector.estimate.arch import read_gguf, stated_models
from collector.estimate.memory import file_bytes
from collector.llama.binaries import LlamaTools
from collector.measure.plan import load_plan
from collector.measure.runner import dry_run, run_plan
from collector.models.ref import DEMO_MODEL
from collector.publish.rows.frame import build_frames
from collector.records.index import load_records
from collector.records.schema import KldRecord, SpeedRecord

pytestmark = pytest.mark.slow

PLAN = f"""
name: ladder-speed
models: ["{DEMO_MODEL}"]
server: {{threads: 2, ctx_size: 512}}
speed: {{categories: [sql], depths: [0], n_predict: 8, repetitions: 1, warmup: 0}}
also:
  - models: ladder
kld:
  ladder:
    source: "{DEMO_MODEL}"
    types: [Q8_0, Q2_K]
  ctx_size: 256
  chunks: 2
  threads: 2
"""


def test_ladder_quants_get_speed_records_that_join_their_kld(tmp_path: Path, llama_tools: LlamaTools,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path / "cache"))  # the ladder is built here, for real
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    plan = load_plan(plan_file)
    assert [(r.model_path.name, r.ladder) for r in plan.runs] == [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", False), ("SmolLM2-135M-Instruct.Q8_0.gguf", True),
        ("SmolLM2-135M-Instruct.Q2_K.gguf", True)]
    assert not any(r.model_path.exists() for r in plan.runs[1:])  # nothing is built by loading the plan
    data = tmp_path / "data"
    listed = dry_run(plan, llama_tools, data)  # a dry run neither builds the ladder nor trips over its absence
    assert [rec for _, _, rec in listed] == [False, False, False]
    assert not any(r.model_path.exists() for r in plan.runs[1:])

    obs = RecordingObserver()
    report = run_plan(plan, tools=llama_tools, data_dir=data, observer=obs)
    assert not report.failed and len(report.ok) == 3 + 2, obs.events  # 3 speed, 2 KLD records
    recs = load_records(data)
    speed = {r.model.quant: r for r in recs if isinstance(r, SpeedRecord)}
    kld = {r.model.quant: r for r in recs if isinstance(r, KldRecord)}
    assert set(speed) == {"Q4_1", "Q8_0", "Q2_K"} and set(kld) == {"Q8_0", "Q2_K"}
    for q in ("Q8_0", "Q2_K"):
        assert speed[q].status == "ok" and speed[q].model.sha256 == kld[q].model.sha256
        assert speed[q].model.origin == kld[q].model.origin == f"{DEMO_MODEL} -> {q}"
    rows = {r.rec.model.quant: r for r in build_frames(recs).rows}
    assert rows["Q4_1"].kld is None  # the source file has no KLD of its own
    assert {q: (rows[q].kld_join, rows[q].kld.rec.id) for q in ("Q8_0", "Q2_K")} == {  # type: ignore[union-attr]
        q: ("sha256", kld[q].id) for q in ("Q8_0", "Q2_K")}

    # the KLD part reused the files the speed part had built, and a later build reuses them too
    assert [e[1] for e in obs.events if e[0] == "message" and e[1].startswith("ladder:")] == [
        "ladder: SmolLM2-135M-Instruct.Q4_1.gguf -> F16", "ladder: SmolLM2-135M-Instruct.F16.gguf -> Q8_0",
        "ladder: SmolLM2-135M-Instruct.F16.gguf -> Q2_K"], obs.events
    assert plan.kld is not None and plan.kld.build_ladder(llama_tools).built == []
    # the same files as the demo's ladder (llama-quantize gives the same bytes on any CPU for types without an
    # importance matrix): models.yaml keeps their byte counts, read from these files
    stated = stated_models()["Smollm2 135M 8k Lc100K Mix1 Ep2"]
    for run in plan.runs:
        assert stated.files[sha256_files([run.model_path])] == file_bytes(read_gguf(run.model_path)), run.model_path
