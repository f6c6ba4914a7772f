"""The real llama-server on a tiny random-weight MoE GGUF: expert counts, --n-cpu-moe, and model_facts."""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from collector.llama.binaries import LlamaTools
from collector.llama.tools import clean_env
from collector.models.info import model_facts
from moe_model import N_FF_EXP, tiny_moe_shapes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@contextmanager
def llama_server(tools: LlamaTools, model: Path, log: Path, *extra: str, lv: int = 4) -> Iterator[str]:
    """A llama-server on a free loopback port (--port 0, read back from the log); stopped on exit."""
    cmd = [str(tools.path("llama-server")), "-m", str(model), "--host", "127.0.0.1", "--port", "0",
           "-c", "256", "-np", "1", "-t", "2", "-lv", str(lv), "--log-file", str(log), *extra]
    proc = subprocess.Popen(cmd, env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        url = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"llama-server exited with {proc.returncode} while loading:\n"
                            + "\n".join(_text(log).splitlines()[-20:]))
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", _text(log))
            if m:
                url = m[1]
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        else:
            pytest.fail(f"llama-server not ready after 30 s (url {url})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _generate(url: str) -> dict:
    body = {"prompt": "def fibonacci(n):", "n_predict": 6, "temperature": 0, "seed": 42, "ignore_eos": True,
            "cache_prompt": False}
    r = httpx.post(f"{url}/completion", json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def test_server_runs_the_tiny_moe(llama_tools: LlamaTools, tiny_moe: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with llama_server(llama_tools, tiny_moe, log) as url:
        out = _generate(url)
        assert out["tokens_predicted"] == 6 and out["tokens_evaluated"] >= 4  # real text was tokenized
    text = _text(log)
    assert re.search(r"print_info: arch\s+= qwen3moe", text)
    assert re.search(r"print_info: n_expert\s+= 4\n", text)
    assert re.search(r"print_info: n_expert_used\s+= 2\n", text)
    # llama.cpp's own parameter count agrees with model_facts
    m = re.search(r"print_info: model params\s+= ([\d.]+) M", text)
    assert m and float(m[1]) == round(model_facts(tiny_moe).params_total / 1e6, 2)
    assert "buffer type overridden" not in text and "tensor overrides to CPU" not in text


def test_n_cpu_moe_keeps_layer_0_experts_on_cpu(llama_tools: LlamaTools, tiny_moe: Path, tmp_path: Path) -> None:
    # The per-tensor override lines are LLAMA_LOG_DEBUG: they need -lv 5 (at -lv 4 only a WARN line shows).
    log = tmp_path / "server.log"
    with llama_server(llama_tools, tiny_moe, log, "--n-cpu-moe", "1", lv=5) as url:
        assert _generate(url)["tokens_predicted"] == 6
    text = _text(log)
    assert "tensor overrides to CPU are used with mmap enabled" in text
    overridden = set(re.findall(r"tensor (\S+) \(.*\) buffer type overridden to CPU", text))
    assert overridden == {f"blk.0.ffn_{kind}_exps.weight" for kind in ("gate", "up", "down")}


def test_model_facts_of_the_tiny_moe(tiny_moe: Path) -> None:
    f = model_facts(tiny_moe)
    assert (f.arch, f.n_experts, f.n_experts_used, f.n_layers, f.n_vocab) == ("qwen3moe", 4, 2, 2, 49152)
    assert (f.quant, f.file_type, f.name) == ("F16", "F16", "Tiny-MoE-Test")
    shapes = tiny_moe_shapes(49152, n_layers=2, n_experts=4)
    n_el = {name: math.prod(shape) for name, shape in shapes.items()}
    experts = sum(v for k, v in n_el.items() if "_exps." in k)
    assert experts == 2 * 3 * 64 * N_FF_EXP * 4
    total = sum(n_el.values())
    assert f.params_total == total
    assert f.params_active == total - experts // 2 < total  # 2 of 4 experts per token
    # bytes: 1-D tensors F32 (4 B), the rest F16 (2 B); token_embd is a lookup (output.weight exists)
    nbytes = {k: v * (4 if len(shapes[k]) == 1 else 2) for k, v in n_el.items()}
    expert_bytes = sum(v for k, v in nbytes.items() if "_exps." in k)
    assert f.bytes_per_token == sum(nbytes.values()) - nbytes["token_embd.weight"] - expert_bytes // 2
