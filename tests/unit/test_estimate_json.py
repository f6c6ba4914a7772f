"""`collector estimate ... --json` (issue 32, part 6): one JSON object a script can read, for the model table's
models on today's devices, with {"not_estimated": reason} for what it cannot give and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import invoke

REPO = Path(__file__).resolve().parents[2]
DATA = ["--data-dir", str(REPO / "data")]


def _answer(*args: str) -> dict:
    code, out = invoke(["estimate", *args, "--json", *DATA])
    assert code == 0, out
    return json.loads(out)


def test_llama_31_8b_on_a_12_gb_rtx_3060_answers() -> None:
    a = _answer("Llama 3.1 8B Q4_K_M", "--device", "RTX 3060", "--vram", "12")
    assert a["estimate"] is True and a["label"].startswith("ESTIMATE, not a measurement")
    assert a["device"] == "NVIDIA GeForce RTX 3060" and a["memory_gb"] == 12.0 and a["bandwidth_gbs"] == 360.0
    assert a["weights_bytes"] == 4912898304 and a["quant"] == "Q4_K_M"
    assert a["fits"] is True and set(a["memory_mib"]) == {"NVIDIA GeForce RTX 3060", "host"}
    # llama.cpp's fit keeps 1024 MiB free of what the device reports free, a driver's share (968 MiB) less than its size
    assert a["memory_mib"]["NVIDIA GeForce RTX 3060"] <= a["fit_budget_mib"] == 12 * 1024 - 968 - 1024
    assert 4096 <= a["ctx"] <= 131072 and "ctx_note" in a  # the training context, shrunk to what fits
    tg, pp = a["tg"], a["pp"]
    assert tg["low"] < tg["value"] < tg["high"] and tg["depth"] == 0 and 0 < tg["coverage"] <= 1
    assert pp["low"] < pp["value"] < pp["high"] and pp["prompt"] == 512
    assert tg["held_out"]["class"] == "NVIDIA" and tg["held_out"]["left_out"] == "source"
    placement = a["placement"]
    assert placement["n_gpu_layers"] == placement["total_layers"] == 33 and placement["n_cpu_moe"] == 0
    assert a["command"].startswith("llama-server -m MODEL.gguf -c ") and "-ngl 99" in a["command"]


def test_the_size_in_the_name_is_the_size_flag() -> None:
    by_flag = _answer("Llama 3.1 8B Q4_K_M", "--device", "RTX 3060", "--vram", "12", "--ctx", "8192")
    by_name = _answer("Llama 3.1 8B Q4_K_M", "--device", "RTX 3060 12GB", "--ctx", "8192")
    assert by_flag == by_name and by_flag["ctx"] == 8192


def test_what_cannot_be_given_is_not_estimated_with_the_reason() -> None:
    a = _answer("Llama 3.1 8B Q4_K_M", "--device", "RTX 3060", "--ctx", "4096")  # 8 or 12 GB: not said which
    assert a["fits"] == {"not_estimated": "NVIDIA GeForce RTX 3060 is sold with 8 or 12 GB; give --vram GB"}
    assert "not_estimated" in a["tg"] and "--vram" in a["tg"]["not_estimated"]
    big = _answer("Qwen3-235B-A22B Q4_K_M", "--device", "RTX 4090")  # in system RAM, but its bandwidth not given
    assert big["fits"] is True and big["placement"]["n_cpu_moe"] > 80
    assert "--ram" in big["tg"]["not_estimated"]
    amd = _answer("Qwen3-30B-A3B Q4_K_M", "--device", "RX 7900 XTX", "--backend", "Vulkan", "--ctx", "8192")
    assert amd["fits"] is True and amd["backend"] == "Vulkan" and amd["tg"]["held_out"]["class"] == "AMD"


def test_moe_models_read_their_used_experts_only() -> None:
    a = _answer("Qwen3-30B-A3B Q4_K_M", "--device", "RTX 4090", "--ctx", "8192", "--depth", "4096")
    assert a["read_bytes_per_token"] < a["weights_bytes"] / 5 and a["tg"]["depth"] == 4096


@pytest.mark.parametrize(("args", "message"), [
    (["Llama 9 8B Q4_K_M", "--device", "RTX 4090"], "is not in the model table"),
    (["Llama 3.1 8B Q9_K", "--device", "RTX 4090"], "'Q9_K' of Llama 3.1 8B is not a standard llama-quantize type"),
    (["Llama 3.1 8B Q4_K_M", "--device", "RTX 9999"], "is not in the device catalog"),
    (["Llama 3.1 8B Q4_K_M", "--device", "RTX 3060", "--vram", "16"], "is not sold with 16 GB"),
    (["Llama 3.1 8B Q4_K_M", "--device", "H100"], "names 3 catalog devices"),
    (["Llama 3.1 8B Q4_K_M", "--device", "RTX 4090", "--backend", "DirectML"], "--backend 'DirectML': use one of"),
    (["Llama 3.1 8B Q4_K_M", "--device", "RTX 4090", "--ram", "fast"], "--ram 'fast'"),
    (["Llama 3.1 8B Q4_K_M", "--device", "RTX 4090", "-ot", "exps"], "-ot 'exps': give PATTERN=CPU"),
    (["Llama 3.1 8B Q4_K_M", "--device", "RTX 4090", "--pcie", "x16"], "--pcie 'x16'"),
    (["Gemma 3 27B Q4_K_M", "--device", "RTX 4090", "--kv", "q5_7"], "unknown cache type 'q5_7'"),
])
def test_bad_input_is_one_line_naming_what_to_give(args: list[str], message: str) -> None:
    code, out = invoke(["estimate", *args, "--json", *DATA])
    assert code == 1 and message in out and "\n" not in out.strip() and "Traceback" not in out


def test_a_published_custom_mix_takes_the_nearest_layout_scaled_to_its_stated_size() -> None:
    a = _answer("Qwen3-Coder-Next UD-IQ2_XXS", "--device", "RTX PRO 6000 Blackwell Workstation Edition",
                "--ctx", "200000", "--kv", "q4_0")
    assert a["weights_bytes"] == pytest.approx(26_000_000_000, rel=1e-6) and a["read_bytes_per_token"]
    assert "size: 26 GB as 00" in a["model_facts"] and "a custom mix: the tensor layout of" in a["model_facts"]
    assert a["fits"] is True and a["placement"]["n_cpu_moe"] == 0
    # the command gives the context asked for; the memory is of the 256-cell padded cache llama.cpp makes of it
    assert " -c 200000 " in a["command"] and a["placement"]["ctx"] == 200_192


def test_experts_in_system_ram_with_the_ram_given() -> None:
    a = _answer("Qwen3-30B-A3B Q4_K_M", "--device", "RTX 4060 Ti 8GB", "--ctx", "16384", "--ram", "DDR5-6000 2ch")
    p = a["placement"]
    assert p["by"] == "llama.cpp's fit" and p["n_cpu_moe"] > 0 and p["cpu_moe_side"] == "back"
    assert p["memory_mib"]["host"]["experts"] > 0 and a["ram_gbs"] == 96.0
    dev = next(k for k in p["memory_mib"] if k != "host")
    assert p["memory_mib"][dev]["total"] <= p["memory_mib"][dev]["budget"] and p["memory_mib"][dev]["fits"]
    assert f"--n-cpu-moe {p['n_cpu_moe']}" in a["command"] and "not measured" in a["command_note"]
    tg = a["tg"]
    assert tg["low"] < tg["value"] < tg["high"] and tg["held_out"]["class"] == "weights in system RAM"
    pinned = _answer("Qwen3-30B-A3B Q4_K_M", "--device", "RTX 4060 Ti 8GB", "--ctx", "16384", "--n-cpu-moe", "40",
                     "-ngl", "99", "--ram-gbs", "96")
    assert pinned["placement"]["by"] == "the flags given" and pinned["placement"]["n_cpu_moe"] == 40
    assert pinned["placement"]["cpu_expert_layers"] == list(range(40))
    assert pinned["tg"]["value"] < tg["value"]  # more experts read from system RAM
    few = _answer("Qwen3-30B-A3B Q4_K_M", "--device", "RTX 4060 Ti 8GB", "--ctx", "16384", "--ram", "DDR5-6000 2ch",
                  "-t", "4")
    assert few["threads"] == 4 and "with 4 threads" in few["tg"]["basis"] and "threads not given" in tg["basis"]
    assert few["tg"]["value"] < tg["value"]  # four threads read less than two channels of DDR5 give
