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
    assert a["memory_mib"]["NVIDIA GeForce RTX 3060"] <= a["fit_budget_mib"] == 12 * 1024 - 1024
    assert 4096 <= a["ctx"] <= 131072 and "ctx_note" in a  # the training context, shrunk to what fits
    tg, pp = a["tg"], a["pp"]
    assert tg["low"] < tg["value"] < tg["high"] and tg["depth"] == 0 and 0 < tg["coverage"] <= 1
    assert pp["low"] < pp["value"] < pp["high"] and pp["prompt"] == 512
    assert tg["held_out"]["class"] == "NVIDIA discrete GPU"


def test_the_size_in_the_name_is_the_size_flag() -> None:
    by_flag = _answer("Llama 3.1 8B Q4_K_M", "--device", "RTX 3060", "--vram", "12", "--ctx", "8192")
    by_name = _answer("Llama 3.1 8B Q4_K_M", "--device", "RTX 3060 12GB", "--ctx", "8192")
    assert by_flag == by_name and by_flag["ctx"] == 8192


def test_what_cannot_be_given_is_not_estimated_with_the_reason() -> None:
    a = _answer("Llama 3.1 8B Q4_K_M", "--device", "RTX 3060", "--ctx", "4096")  # 8 or 12 GB: not said which
    assert a["fits"] == {"not_estimated": "NVIDIA GeForce RTX 3060 is sold with 8 or 12 GB; give --vram GB"}
    assert "not_estimated" in a["tg"] and "--vram" in a["tg"]["not_estimated"]
    big = _answer("Qwen3-235B-A22B Q4_K_M", "--device", "RTX 4090")
    assert big["fits"] is False and big["tg"] == big["pp"] == {
        "not_estimated": "the model does not fit the device's memory with every layer on the GPU (partial offload "
                         "is not modelled)"}
    amd = _answer("Qwen3-30B-A3B Q4_K_M", "--device", "RX 7900 XTX", "--backend", "ROCm", "--ctx", "8192")
    assert amd["fits"] is True and amd["tg"] == {"not_estimated": "no llama-bench figure of any AMD discrete GPU "
                                                                  "device"}
    assert amd["backend"]["asked"] == "ROCm" and "no backend dimension" in amd["backend"]["note"]


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
    (["Gemma 3 27B Q4_K_M", "--device", "RTX 4090", "--kv", "q5_7"], "unknown cache type 'q5_7'"),
])
def test_bad_input_is_one_line_naming_what_to_give(args: list[str], message: str) -> None:
    code, out = invoke(["estimate", *args, "--json", *DATA])
    assert code == 1 and message in out and "\n" not in out.strip() and "Traceback" not in out


def test_a_published_custom_mix_counts_by_its_stated_size_only() -> None:
    a = _answer("Qwen3-Coder-Next UD-IQ2_XXS", "--device", "RTX PRO 6000 Blackwell Workstation Edition",
                "--ctx", "200000", "--kv", "q4_0")
    assert a["weights_bytes"] == 26_000_000_000 and a["read_bytes_per_token"] is None
    assert "size: 26 GB as 00" in a["model_facts"] and "a custom mix" in a["model_facts"]
    assert a["fits"] is True
    assert a["tg"] == {"not_estimated": "a published custom mix known by its stated size only: the bytes a token "
                                        "reads are not known without its GGUF"}


def test_the_text_answer_takes_the_size_in_the_name_too() -> None:
    code, out = invoke(["estimate", "Llama 3.1 8B Q4_K_M", "--device", "RTX 3060 12GB", "--ctx", "8192", *DATA])
    assert code == 0 and "on NVIDIA GeForce RTX 3060 (12 GiB, 360 GB/s;" in out and "tg @ depth 0: ~" in out
