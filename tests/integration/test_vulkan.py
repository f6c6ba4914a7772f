"""The GPU paths for real: llama.cpp's Vulkan backend on Mesa's software device (llvmpipe), through `collector run`.

llvmpipe renders on the CPU, so its speed is no GPU's (~1.3 t/s here): the runs are short (one repetition, depth 0,
a few tokens) and their records say they were measured on a software device. What is real: llama.cpp's device
list, its offload decisions, its buffers per device, and where the collector files the record. llama.cpp uses a
device of type CPU only when GGML_VK_VISIBLE_DEVICES names it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.host import hardware
from collector.llama.binaries import LlamaTools
from collector.llama.devices import list_devices
from collector.measure.plan import load_plan
from collector.measure.runner import run_plan
from collector.models.ref import DEMO_MODEL
from collector.records import store
from collector.records.schema import SpeedRecord

pytestmark = pytest.mark.slow
TINY_SUITE = Path(__file__).parents[1] / "fixtures" / "prompts" / "tiny-v1.yaml"


@pytest.fixture(autouse=True)
def _llvmpipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GGML_VK_VISIBLE_DEVICES", "0")


def _plan(tmp_path: Path, model: str, matrix: str, server: str = "ctx_size: 512") -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(f"""
name: vulkan-test
models: ["{model}"]
server: {{threads: 2, parallel: 1, {server}}}
matrix: {{{matrix}}}
speed:
  prompt_suite: {TINY_SUITE}
  categories: [sql]
  depths: [0]
  n_predict: 4
  repetitions: 1
  warmup: 0
""")
    return path


def _run(tmp_path: Path, tools: LlamaTools, plan: Path) -> dict[str, SpeedRecord]:
    """Every record of the plan by its path under records/, re-read from disk."""
    data = tmp_path / "data"
    report = run_plan(load_plan(plan), tools=tools, data_dir=data)
    assert report.ok and not report.failed, report.failed
    out = {}
    for p in report.ok:
        rec = store.load_record(p)
        assert isinstance(rec, SpeedRecord)
        out[str(p.relative_to(data / "records"))] = rec
    return out


def _matches_estimate(model: Path, rec: SpeedRecord) -> None:
    """collector.estimate's buffers for the record's settings: model (on Vulkan0 and the host's mapped span) and KV
    exactly as llama.cpp logged them (to its two decimals), the compute buffer within 2 MiB (it is modelled)."""
    from collector.estimate.arch import read_gguf
    from collector.estimate.memcheck import mem_config
    from collector.estimate.memory import estimate_memory

    est = estimate_memory(read_gguf(model), mem_config(rec.config, on_gpu=True))
    mem = rec.memory_mib
    assert est.model["gpu"] == pytest.approx(mem.model_buffers["Vulkan0"], abs=0.006), rec.command
    host = sum(v for k, v in mem.model_buffers.items() if not k.startswith("Vulkan"))
    assert est.model["host"] == pytest.approx(host, abs=0.006), (rec.command, mem.model_buffers)
    assert est.kv["gpu"] == pytest.approx(mem.kv_buffers.get("Vulkan0", 0.0), abs=0.006), rec.command
    assert est.compute["gpu"] == pytest.approx(mem.compute_buffers["Vulkan0"], abs=2.0), rec.command


def test_llama_cpp_lists_the_vulkan_device(vulkan_tools: LlamaTools) -> None:
    [dev] = list_devices(vulkan_tools.path("llama-server")) or []
    assert (dev.name, dev.backend) == ("Vulkan0", "Vulkan") and dev.description
    assert dev.description.startswith("llvmpipe") and dev.memory_total_mib and dev.memory_total_mib > 0
    [gpu] = hardware.probe_host(server=vulkan_tools.path("llama-server")).gpus
    assert (gpu.name, gpu.backend, gpu.llama_device, gpu.software) == (dev.description, "Vulkan", "Vulkan0", True)
    assert gpu.vram_total_mib == dev.memory_total_mib and gpu.telemetry is None  # no vendor library for it


def test_full_partial_and_no_offload(tmp_path: Path, vulkan_tools: LlamaTools, smollm2: Path) -> None:
    recs = _run(tmp_path, vulkan_tools, _plan(tmp_path, DEMO_MODEL, "n_gpu_layers: [99, 12, 0]"))
    by_ngl = {r.config.n_gpu_layers: (path, r) for path, r in recs.items()}
    assert set(by_ngl) == {99, 12, 0}
    path, full = by_ngl[99]
    assert path.startswith("llvmpipe/")  # filed under the Vulkan device, not cpu-...
    assert full.llama_cpp.backend == "Vulkan" and full.llama_cpp.build_number == 11434
    [gpu] = full.host.gpus
    assert (gpu.backend, gpu.llama_device, gpu.software) == ("Vulkan", "Vulkan0", True)
    assert any("software device" in w for w in full.warnings)
    n = full.placement.total_layers
    assert n == 31 and full.placement.gpu_layers == n  # SmolLM2-135M: 30 blocks and the output layer
    mem = full.memory_mib
    assert mem.model_buffers["Vulkan0"] > 50 and mem.kv_buffers.get("Vulkan0", 0) > 0
    assert "CPU" not in mem.kv_buffers and (mem.used_mib("gpu") or 0) > mem.model_buffers["Vulkan0"]
    assert full.summary.tg_tps and full.summary.tg_tps.median and full.summary.tg_tps.median > 0

    path, part = by_ngl[12]
    assert path.startswith("llvmpipe/") and part.placement.gpu_layers == 12 and part.placement.total_layers == n
    mem = part.memory_mib
    on_cpu = {k: v for k, v in mem.model_buffers.items() if k.startswith("CPU")}
    assert on_cpu and 0 < mem.model_buffers["Vulkan0"] < full.memory_mib.model_buffers["Vulkan0"]
    assert mem.kv_buffers["Vulkan0"] > 0 and mem.kv_buffers["CPU"] > 0  # the KV cache follows the layers
    # -ngl 12 is the output layer and the last 11 of the 30 blocks: the device holds 11/30 of the KV cache
    kv = mem.kv_buffers["Vulkan0"] + mem.kv_buffers["CPU"]
    assert mem.kv_buffers["Vulkan0"] / kv == pytest.approx(11 / 30, abs=0.001)

    for rec in (full, part):  # the memory estimate against the GPU buffers llama.cpp logged (issue 22)
        _matches_estimate(smollm2, rec)

    path, none = by_ngl[0]
    assert path.startswith("cpu-") and none.host.gpus == []  # llama.cpp put nothing on the device
    assert none.placement.gpu_layers == 0 and not any(k.startswith("Vulkan") for k in none.memory_mib.model_buffers)
    assert "llama.cpp used no GPU of this host: filed as a CPU record" in none.warnings
    assert any(w.startswith("Vulkan0 (llvmpipe") and "holds no layer" in w for w in none.warnings)


def test_n_cpu_moe_keeps_the_experts_on_the_cpu(tmp_path: Path, vulkan_tools: LlamaTools, tiny_moe: Path) -> None:
    # flash attention off: with the experts on the CPU and a prompt of 14 tokens, Mesa 22.3.6's lavapipe segfaults
    # in a worker thread of libvulkan_lvp.so running llama.cpp's flash-attention shader (llama-server alone, gdb)
    recs = _run(tmp_path, vulkan_tools, _plan(tmp_path, str(tiny_moe), "n_cpu_moe: [null, 2]",
                                              'ctx_size: 512, n_gpu_layers: 99, flash_attn: "off"'))
    by = {r.config.n_cpu_moe: r for r in recs.values()}
    gpu_only, moe = by[None], by[2]
    assert all(p.startswith("llvmpipe/") for p in recs)
    assert gpu_only.placement.gpu_layers == moe.placement.gpu_layers == gpu_only.placement.total_layers
    assert moe.placement.cpu_moe_layers == 2
    from gguf import GGUFReader

    experts = sum(int(t.n_bytes) for t in GGUFReader(tiny_moe).tensors if "_exps." in t.name) / 2**20
    a, b = gpu_only.memory_mib.model_buffers, moe.memory_mib.model_buffers
    # the expert tensors of both layers left the device, and nothing else did (the log prints MiB to 2 decimals)
    assert a["Vulkan0"] - b["Vulkan0"] == pytest.approx(experts, abs=0.011) and experts > 0
    assert b["Vulkan0"] > 0  # attention, norms and the output stay on the device
    # they are read from the mapped file now: the CPU_Mapped span grows to reach them (a span of the file, so it
    # can grow by more than the experts' bytes: it also covers the tensors stored between them)
    assert b["CPU_Mapped"] - a["CPU_Mapped"] >= experts - 0.011
    for rec in (gpu_only, moe):
        _matches_estimate(tiny_moe, rec)


def test_tensor_split_over_two_devices(tmp_path: Path, vulkan_tools: LlamaTools, smollm2: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GGML_VK_VISIBLE_DEVICES", "0,0")  # llvmpipe twice: Vulkan0 and Vulkan1
    [(path, rec)] = _run(tmp_path, vulkan_tools, _plan(tmp_path, DEMO_MODEL, 'tensor_split: ["3,1"]',
                                                       "ctx_size: 512, n_gpu_layers: 99")).items()
    assert path.startswith("2x-llvmpipe/")
    assert [g.llama_device for g in rec.host.gpus] == ["Vulkan0", "Vulkan1"]
    assert rec.command[rec.command.index("3,1") - 1] in ("-ts", "--tensor-split")
    kv = rec.memory_mib.kv_buffers
    assert set(kv) == {"Vulkan0", "Vulkan1"} and {"Vulkan0", "Vulkan1"} <= set(rec.memory_mib.model_buffers)
    # llama.cpp gives layer i of the 31 (30 blocks, then the output) to the first device whose cumulative share
    # exceeds i/31: with 3,1 (0.75, 1.0) blocks 0-23 go to Vulkan0, blocks 24-29 and the output to Vulkan1
    assert kv["Vulkan0"] / (kv["Vulkan0"] + kv["Vulkan1"]) == pytest.approx(24 / 30, abs=0.001)


def test_tune_finds_the_offload_boundary_within_a_gpu_budget(tmp_path: Path, vulkan_tools: LlamaTools,
                                                               smollm2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`collector tune` on the Vulkan device: the budget is GPU memory, and the search bisects -ngl to the most
    layers whose Vulkan buffers fit. The tune is interrupted (as Ctrl-C would) once the boundary is found: each of
    its trials takes minutes on llvmpipe, and the interrupted tune record keeps what the search found."""
    from collector.base.progress import NullObserver
    from collector.models.info import model_facts
    from collector.records.schema import TuneRecord
    from collector.tune import lab as tune_lab
    from collector.tune import search as tune_search
    from collector.tune import session as tune

    # shorter trials than a real tune's (one short prompt, 4 tokens, no warmup): the search is the same
    monkeypatch.setattr(tune_lab, "SUITE", str(TINY_SUITE))
    monkeypatch.setattr(tune_lab, "CATEGORY", "sql")
    monkeypatch.setattr(tune_lab, "REPS", 1)
    monkeypatch.setattr(tune_lab, "WARMUP", 0)
    for module in (tune_lab, tune_search):
        monkeypatch.setattr(module, "N_PREDICT", 4)
    server = vulkan_tools.path("llama-server")
    host, llama = hardware.probe_host(server=server), vulkan_tools.version()
    assert tune.scope_of(host, llama) == "gpu"
    budget = 80.0  # MiB of Vulkan0 buffers: all 31 layers need ~117 (model 92, KV 11, compute 14) at ctx 512

    class StopAtBoundary(NullObserver):
        def message(self, text: str) -> None:
            if text.startswith("offload: "):
                raise KeyboardInterrupt

    q = tune.Question(model_ref=DEMO_MODEL, model_path=smollm2, ctx=512, depth=0, budget_mib=budget,
                      budget_source="--memory-budget", scope="gpu", kv=("f16",), objective="tg", time_budget_s=3600)
    data = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        tune.tune(q, tools=vulkan_tools, data_dir=data, observer=StopAtBoundary())
    [rec] = [r for p in data.rglob("*.yaml") if isinstance(r := store.load_record(p), TuneRecord)]
    assert rec.stopped == "interrupted" and rec.question.memory_scope == "gpu"
    assert all(str(p.relative_to(data / "records")).startswith("llvmpipe/") for p in data.rglob("*.yaml"))
    [step] = [s for s in rec.steps if s.startswith("offload: ")]
    k = int(step.split("-ngl ", 1)[1].split()[0])
    probed = {p.config.n_gpu_layers: p for p in rec.probes if p.why == "offload"}
    assert probed[k].fits and probed[k].memory_mib is not None and probed[k].memory_mib <= budget
    assert probed[k + 1].fits is False and probed[k + 1].memory_mib and probed[k + 1].memory_mib > budget
    mibs = [probed[n].memory_mib or 0 for n in sorted(probed)]
    assert mibs == sorted(mibs) and 0 < k < model_facts(smollm2).n_layers  # more layers, more device memory
