"""Issue 33 part 6, for real: llama-server on the Vulkan device (Mesa's llvmpipe) loads a Mixture-of-Experts model
with experts in system RAM (--n-cpu-moe, -ot exps=CPU, -ngl below the layer count, several ubatches) and with
llama.cpp's own fit moving experts off a device whose free memory --fit-target squeezes; the placement and the
buffers llama.cpp logs against collector.estimate's (speed on llvmpipe is the CPU's: not checked here)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from collector.estimate.arch import read_gguf
from collector.estimate.memory import MemConfig, estimate_memory
from collector.estimate.placement import Request, parse_overrides, place
from collector.llama.binaries import LlamaTools
from collector.llama.logparse import parse_server_log

pytestmark = pytest.mark.slow
_FREE = re.compile(r"using device Vulkan0 .* - (\d+) MiB free")
EXPERT_MIB = 1.0  # one expert matrix of the model below: 256 experts x 64 x 32, f16


@pytest.fixture(scope="module")
def moe8(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> Path:
    """The MoE test model with eight layers of 256 experts (38 MiB): layers large against the buffers' errors."""
    from moe_model import write_tiny_moe_gguf  # tests/ is on sys.path (rootdir conftest)

    return write_tiny_moe_gguf(tmp_path_factory.mktemp("moe8") / "moe8.gguf", n_layers=8, n_experts=256,
                               n_experts_used=4, tokenizer_from=smollm2)


def _load(tools: LlamaTools, model: Path, tmp: Path, *args: str) -> str:
    """llama-server's log (-lv 4) up to listening; the server is stopped then."""
    log = tmp / "server.log"
    server = tools.path("llama-server")
    env = {**os.environ, "GGML_VK_VISIBLE_DEVICES": "0", "LD_LIBRARY_PATH": str(server.parent)}
    with log.open("w") as out:
        proc = subprocess.Popen([str(server), "-m", str(model), "--port", "0", "-lv", "4", "-t", "2", "-np", "1",
                                 "-c", "4096", *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and proc.poll() is None:
                if "llama_server: listening" in log.read_text(errors="replace"):
                    break
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert "llama_server: listening" in text, text[-2000:]
    return text


@pytest.mark.parametrize("args", [
    ("-ngl", "99", "--n-cpu-moe", "1"), ("-ngl", "99", "--n-cpu-moe", "4"), ("-ngl", "99", "--n-cpu-moe", "8"),
    ("-ngl", "99", "-ot", "exps=CPU"), ("-ngl", "5"), ("-ngl", "99", "--n-cpu-moe", "4", "-ub", "128"),
    ("-ngl", "99", "--n-cpu-moe", "4", "-ub", "1024", "-b", "1024")], ids=" ".join)
def test_buffers_with_experts_in_system_ram(args: tuple[str, ...], tmp_path: Path, vulkan_tools: LlamaTools,
                                            moe8: Path) -> None:
    mem = parse_server_log(_load(vulkan_tools, moe8, tmp_path, *args)).memory
    flags = dict(zip(args[::2], args[1::2]))
    cfg = MemConfig(ctx=4096, n_seq=1, n_gpu_layers=int(flags["-ngl"]), n_cpu_moe=int(flags.get("--n-cpu-moe", 0)),
                    overrides=parse_overrides((flags["-ot"],)) if "-ot" in flags else (),
                    ubatch=int(flags.get("-ub", 512)), batch=int(flags.get("-b", 2048)))
    est = estimate_memory(read_gguf(moe8), cfg)
    assert est.model["gpu"] == pytest.approx(mem.model_buffers["Vulkan0"], abs=0.006)
    assert est.model["host"] == pytest.approx(mem.model_buffers["CPU_Mapped"], abs=0.006)
    assert est.kv["gpu"] == pytest.approx(mem.kv_buffers["Vulkan0"], abs=0.006)
    assert est.kv.get("host", 0.0) == pytest.approx(mem.kv_buffers.get("CPU", 0.0), abs=0.006)
    # the compute buffer is modelled (the largest CPU-resident matrix's copy included): within 1.5 MiB
    assert est.compute["gpu"] == pytest.approx(mem.compute_buffers["Vulkan0"], abs=1.5)


def test_llama_cpps_fit_as_modelled(tmp_path: Path, vulkan_tools: LlamaTools, moe8: Path) -> None:
    """--fit-target leaves 28 MiB of the device for the 40 MiB the model needs: llama.cpp's fit moves the experts of
    the last layers (and part of one more) to system RAM; the model says the same placement, within one matrix."""
    text = _load(vulkan_tools, moe8, tmp_path, "-fitt", "2020")
    free = float(_FREE.search(text).group(1))  # type: ignore[union-attr]
    assert "successfully fit params to free device memory" in text
    logged = parse_server_log(text).memory.model_buffers["Vulkan0"]
    ours = place(read_gguf(moe8), Request(ctx=4096, n_seq=1, fit_target_mib=2020), free / 1024, free=free)
    assert ours.by == "llama.cpp's fit" and ours.n_gpu_layers == ours.total_layers == 9
    assert abs(ours.devices[0].weights - logged) <= EXPERT_MIB * 1.05  # one matrix of the fit's last step
    assert 3 <= ours.n_cpu_moe <= 5
