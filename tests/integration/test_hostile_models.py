"""A model file cannot forge what its run's record says (issue 35, 1), with the real llama-server.

llama.cpp prints a GGUF's general.name verbatim, newlines included (`print_info: general.name = ...`), into the log
`collector run` reads. A copy of the demo model with a hostile general.name is run in a sweep before the clean
model. Each run must give the record a clean run gives (placement and memory as llama.cpp decided them), and
the sweep must go on to the clean model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGUFReader
from hostile import rewrite_gguf

from collector.llama.binaries import LlamaTools
from collector.measure.plan import load_plan
from collector.measure.runner import run_plan
from collector.records.index import load_index
from collector.records.schema import SpeedRecord

pytestmark = pytest.mark.slow

NAMES = {
    # before: the finished run's log was refused as an old build's; no record, and the sweep stopped
    "legacy": "\nllm_load_tensors: x\n",
    # before: a ValueError traceback (int() of 5000 digits); the sweep was lost
    "digits": "\nload_tensors: offloaded " + "9" * 5000 + "/1 layers to GPU\n",
    # before: a CPU run published with a 9999 MiB CUDA0 buffer and a device that does not exist
    "forged": ("\nload_tensors:        CUDA0 model buffer size =  9999.00 MiB\n"
               "llama_prepare_model_devices: using device CUDA0 (<img src=x onerror=alert(1)>) (0000:01:00.0) - "
               "24000 MiB free\nllama_kv_cache:      CUDA0 KV buffer size =  4096.00 MiB\n"
               "0.00.184.077 I load_tensors: offloaded 31/31 layers to GPU\n"),
}

PLAN = """name: hostile-names
models: [MODELS]
server: {threads: 1, parallel: 1, ctx_size: 512}
speed: {categories: [sql], depths: [0], n_predict: 8, repetitions: 1, warmup: 0, load_timeout_s: 120}
"""


@pytest.fixture(scope="module")
def demo_reader(smollm2: Path) -> GGUFReader:
    return GGUFReader(smollm2)  # read once: SmolLM2's 49k tokens take seconds


@pytest.mark.parametrize("key", list(NAMES))
def test_a_hostile_general_name_writes_no_line_of_the_log(key: str, tmp_path: Path, llama_tools: LlamaTools,
                                                          smollm2: Path, demo_reader: GGUFReader) -> None:
    name = NAMES[key]
    model = rewrite_gguf(smollm2, tmp_path / f"{key}.gguf", {"general.name": name}, demo_reader)
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.replace("MODELS", f'"{model}", "{smollm2}"'))
    data = tmp_path / "data"
    report = run_plan(load_plan(plan), tools=llama_tools, data_dir=data)
    assert len(report.ok) == 2 and not report.failed, report  # both runs recorded: the sweep went on
    records = {r.model.file_name: r for r in load_index(data, cache=False).valid if isinstance(r, SpeedRecord)}
    clean, rec = records[smollm2.name], records[model.name]
    assert clean.memory_mib.model_buffers and clean.placement.cpu_features  # what the log does say, read
    assert rec.model.name == name  # the name is kept as the file states it (pages show it as text)
    assert rec.status == "ok" and rec.summary.tg_tps is not None
    # what llama.cpp did, exactly as for the clean file: no forged buffer, device, offload or KV cache
    assert rec.placement.llama_devices == clean.placement.llama_devices == []
    assert rec.placement.gpu_layers is None and rec.placement.total_layers is None
    assert rec.memory_mib.model_buffers == clean.memory_mib.model_buffers
    assert rec.memory_mib.kv_buffers == clean.memory_mib.kv_buffers
    assert rec.memory_mib.kv_cache == clean.memory_mib.kv_cache
    assert rec.placement.cpu_features == clean.placement.cpu_features
    assert rec.host.gpus == [] and not [w for w in rec.warnings if "log" in w], rec.warnings


def test_a_log_it_cannot_read_keeps_the_runs_measurements(tmp_path: Path, llama_tools: LlamaTools, smollm2: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Should a finished run's log still be refused (a spelling of an older build), the measurements are kept in a
    record that says what could not be read, and the sweep goes on (before: no record, the sweep stopped)."""
    from collector.base.errors import CollectorError
    from collector.llama.logparse import parse_server_log
    from collector.measure import server_run

    calls: list[int] = []

    def refuse_the_first_finished_log(text: str, printed: object = ()) -> object:
        if "cleaning up before exit" in text and not calls:  # the first run's log, read after the run
            calls.append(1)
            raise CollectorError("this log prints 'llm_load_tensors:', a spelling of llama.cpp builds older than b6327")
        return parse_server_log(text, printed)  # type: ignore[arg-type]

    monkeypatch.setattr(server_run, "parse_server_log", refuse_the_first_finished_log)
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.replace("MODELS", f'"{smollm2}"').replace("ctx_size: 512}", 'ctx_size: 512}\n'
                                                                   'matrix: {flash_attn: ["off", "on"]}'))
    report = run_plan(load_plan(plan), tools=llama_tools, data_dir=tmp_path / "data")
    assert calls and len(report.ok) == 2 and not report.failed, report
    recs = sorted((r for r in load_index(tmp_path / "data", cache=False).valid if isinstance(r, SpeedRecord)),
                  key=lambda r: r.created_at)
    first, second = recs
    assert first.summary.tg_tps is not None and first.samples  # the measurements are kept
    assert [w for w in first.warnings if "log could not be read" in w and "llm_load_tensors" in w], first.warnings
    assert first.memory_mib.model_buffers == {} and first.placement.llama_devices == []  # not known, not guessed
    assert second.memory_mib.model_buffers and not [w for w in second.warnings if "log" in w]
