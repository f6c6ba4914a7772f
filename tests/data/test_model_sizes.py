"""The model table without the files (issue 32, part 3): the sizes computed from models.yaml's hyperparameters and
llama-quantize's type rules (collector/estimate/quantmix.py) against sizes published for real files.

Each published figure is llama.cpp's own "model size" (the tensors' bytes, what llama-bench's `size` column, its JSON
`model_size` and `print_info: file size` report), quoted with its source: a GitHub issue or pull request, or a file of
a public repository at a pinned commit. Where a source names a fine-tune of the model (same tensors), it says so."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from collector.estimate import table
from collector.estimate.quantmix import FILE_TYPES, ModelFacts, Source, assign

LHL = "lhl/strix-halo-testing@5ee14b5b0ecfbd16b7fd0aa41a91581c32b33b61"
KYUZ0_STRIX = "kyuz0/amd-strix-halo-toolboxes@d1a34bee0900be574fc31be9dcdc02a925581889"
KYUZ0_R9700 = "kyuz0/amd-r9700-ai-toolboxes@8ad62bc"
KYUZ0_MI50 = "kyuz0/mi50-gfx906-toolboxes@2ee996a"
R9700_LOG = "benchmark/results/{}__rocm-7-nightly-rocwmma__fa1__{}.log"

# (model, quant, imatrix used, published size, published params, source, the source's words)
PUBLISHED: list[tuple[str, str, bool | None, str, str | None, str, str]] = [
    ("Llama 3.1 8B", "Q4_K_M", None, "4912898304 bytes", "8030261312",
     f"{LHL}:llm-bench/shisa-v2-llama3.1-8b.i1-Q4_K_M/raw_runs.jsonl:1",
     '"model_filename": "/models/gguf/shisa-v2-llama3.1-8b.i1-Q4_K_M.gguf", "model_type": "llama 8B Q4_K - Medium", '
     '"model_size": 4912898304, "model_n_params": 8030261312'),  # a Llama 3.1 8B fine-tune: the same tensors
    ("Llama 3.3 70B", "Q4_K_M", None, "42512531712 bytes", "70553706560",
     f"{LHL}:llm-bench/shisa-v2-llama3.3-70b.i1-Q4_K_M/raw_runs.jsonl:1",
     '"model_filename": "/models/gguf/shisa-v2-llama3.3-70b.i1-Q4_K_M.gguf", "model_type": "llama 70B Q4_K - Medium", '
     '"model_size": 42512531712, "model_n_params": 70553706560'),  # a Llama 3.3 70B fine-tune
    ("Llama 3.2 1B", "Q4_K_M", None, "799862912 bytes", "1235814432",
     f"{LHL}:llama-cpp-fix-wmma/llama32-1b.default-hip.jsonl:1",
     '"model_filename": "/models/gguf/Llama-3.2-1B-Instruct-Q4_K_M.gguf", "model_type": "llama 1B Q4_K - Medium", '
     '"model_size": 799862912, "model_n_params": 1235814432'),
    ("Llama 3.2 3B", "Q4_K_M", None, "1.87 GiB", "3.21 B", "https://github.com/geerlingguy/ai-benchmarks/issues/53",
     "| llama 3B Q4_K - Medium         |   1.87 GiB |     3.21 B | CPU        |       2 |           pp512 |"),
    ("Qwen3 8B", "Q6_K", None, "6.26 GiB", "8.19 B", "https://github.com/halo-box/strix-llama.cpp/pull/38",
     "| qwen3 8B Q6_K                  |   6.26 GiB |     8.19 B | ROCm       |  99 |      128 |          pp2048 |"),
    ("Qwen3 14B", "Q4_K_S", True, "7.98 GiB", "14.77 B", f"{KYUZ0_MI50}:llama.cpp/readme.md:39",
     "| 6.3.4 | 982e3472  | qwen3 14B Q4_K - Small               |   7.98 GiB |    14.77 B | ROCm       |  99 |"),
    ("Qwen3 14B", "Q4_0", True, "7.95 GiB", "14.77 B", f"{KYUZ0_MI50}:llama.cpp/readme.md:41",
     "| 6.3.4 | 982e3472  | qwen3 14B Q4_0                       |   7.95 GiB |    14.77 B | ROCm       |  99 |"),
    ("Qwen3 14B", "BF16", None, "27.51 GiB", "14.77 B", f"{KYUZ0_MI50}:llama.cpp/readme.md:43",
     "| 6.3.4 | 982e3472  | qwen3 14B BF16                       |  27.51 GiB |    14.77 B | ROCm       |  99 |"),
    ("Qwen3 32B", "Q8_0", None, "34811744256 bytes", "32762123264", f"{LHL}:llm-bench/Qwen3-32B-Q8_0/raw_runs.jsonl:1",
     '"model_filename": "/models/gguf/Qwen3-32B-Q8_0.gguf", "model_type": "qwen3 32B Q8_0", "model_size": 34811744256, '
     '"model_n_params": 32762123264'),
    ("Qwen3-30B-A3B", "Q4_K_M", True, "17.35 GiB", None, "https://github.com/ggml-org/llama.cpp/issues/13217",
     "print_info: file type   = Q4_K - Medium\nprint_info: file size   = 17.35 GiB (4.88 BPW)"),
    ("Qwen3-Coder-30B-A3B", "Q4_K_M", None, "17.35 GiB", "30.53 B",
     f"{KYUZ0_R9700}:" + R9700_LOG.format("Qwen3-Coder-30B-A3B-Instruct-Q4_K_M", "longctx16384__single") + ":7",
     "| qwen3moe 30B.A3B Q4_K - Medium |  17.35 GiB |    30.53 B | ROCm       |  99 |     2048 |  1 |"),
    ("Qwen3-Coder-30B-A3B", "BF16", None, "56.89 GiB", "30.53 B",
     f"{KYUZ0_R9700}:" + R9700_LOG.format("Qwen3-Coder-30B-A3B-Instruct-BF16-00001-of-00002", "dual") + ":8",
     "| qwen3moe 30B.A3B BF16          |  56.89 GiB |    30.53 B | ROCm       |  99 |  1 |           pp512 |"),
    ("Qwen3-Next-80B-A3B", "Q4_K_M", None, "45.10 GiB", "79.67 B", "https://github.com/ggml-org/llama.cpp/pull/16095",
     "| qwen3next ?B Q4_K - Medium     |  45.10 GiB |    79.67 B | Vulkan     | 999 |  1 |           pp512 |"),
    ("gpt-oss-20b", "MXFP4_MOE", None, "11.27 GiB", "20.91 B",
     f"{KYUZ0_STRIX}:benchmark/results/gpt-oss-20b-mxfp4__rocm-7_2_3__fa1.log:5",
     "| gpt-oss 20B MXFP4 MoE          |  11.27 GiB |    20.91 B | ROCm       |  99 |  1 |    0 |           pp512 |"),
    ("gpt-oss-120b", "MXFP4_MOE", None, "59.02 GiB", "116.83 B",
     f"{KYUZ0_STRIX}:benchmark/results/gpt-oss-120b-mxfp4-00001-of-00003__rocm-7_2_3__fa1.log:5",
     "| gpt-oss 120B MXFP4 MoE         |  59.02 GiB |   116.83 B | ROCm       |  99 |  1 |    0 |           pp512 |"),
    ("Gemma 3 4B", "Q3_K_S", None, "1.80 GiB", "3.88 B",
     f"{KYUZ0_R9700}:" + R9700_LOG.format("gemma-3-4b-it-Q3_K_S", "longctx16384__single") + ":7",
     "| gemma3 4B Q3_K - Small         |   1.80 GiB |     3.88 B | ROCm       |  99 |     2048 |  1 |"),
    ("Gemma 3 12B", "Q8_0", None, "11.64 GiB", "11.77 B", f"{KYUZ0_MI50}:llama.cpp/readme.md:37",
     "| 6.3.4 | 982e3472  | gemma3 12B Q8_0                      |  11.64 GiB |    11.77 B | ROCm       |  99 |"),
    ("Gemma 3 27B", "Q8_0", None, "26.73 GiB", "27.01 B", "https://github.com/ggml-org/llama.cpp/pull/14203",
     "| gemma3 27B Q8_0                |  26.73 GiB |    27.01 B | CUDA       |  99 |"),
    ("Gemma 3 27B", "F16", None, "50.31 GiB", "27.01 B", f"{KYUZ0_MI50}:llama.cpp/readme.md:45",
     "| 6.3.4 | 982e3472  | gemma3 27B F16                       |  50.31 GiB |    27.01 B | ROCm       |  99 |"),
    ("Gemma 3 27B", "BF16", None, "50.31 GiB", "27.01 B",
     f"{KYUZ0_R9700}:" + R9700_LOG.format("gemma-3-27b-it-BF16-00001-of-00002", "dual") + ":8",
     "| gemma3 27B BF16                |  50.31 GiB |    27.01 B | ROCm       |  99 |  1 |           pp512 |"),
    # Devstral-Small-2-24B-Instruct-2512-Q4_K_M.gguf (the PR's command line): Mistral Small 24B's tensors (23.57 B)
    ("Mistral Small 24B", "Q4_K_M", None, "13.34 GiB", "23.57 B", "https://github.com/ggml-org/llama.cpp/pull/19378",
     "| mistral3 14B Q4_K - Medium     |  13.34 GiB |    23.57 B | ROCm       |  99 | tensor |  1 |           pp512 |"),
]

# llama.cpp's `model params` of published files whose mix is custom (unsloth UD-*: their size is theirs, not
# llama-quantize's) or whose experts stay MXFP4 in an "F16" file: the parameter count depends on the tensors only
PARAMS: list[tuple[str, int, str]] = [
    ("GLM-4.5-Air", 110468824832, f"{LHL}:llm-bench/GLM-4.5-Air-UD-Q4_K_XL/raw_runs.jsonl:1"),
    ("Qwen3-30B-A3B", 30532122624, f"{LHL}:llm-bench/Qwen3-30B-A3B-UD-Q4_K_XL/raw_runs.jsonl:1"),
    ("Qwen3-235B-A22B", 235093634560, f"{LHL}:llm-bench/Qwen3-235B-A22B-Instruct-2507-UD-Q3_K_XL/raw_runs.jsonl:1"),
    ("Gemma 3 27B", 27009346304, f"{LHL}:llm-bench/gemma-3-27b-it-UD-Q4_K_XL/raw_runs.jsonl:1"),
    ("Mistral Small 24B", 23572403200,
     f"{LHL}:llm-bench/Mistral-Small-3.1-24B-Instruct-2503-UD-Q4_K_XL/raw_runs.jsonl:1"),
    ("gpt-oss-120b", 116829156672, f"{LHL}:llm-bench/gpt-oss-120b-F16/raw_runs.jsonl:1"),
    ("gpt-oss-20b", 20914757184, f"{LHL}:llama-cpp-fix-wmma/gpt-oss-20b.default-hip.jsonl:1"),
]

# tensors per ggml type as llama.cpp's loader lists them for a published file
TYPE_COUNTS: list[tuple[str, str, dict[str, int], str]] = [
    ("gpt-oss-120b", "MXFP4_MOE", {"F32": 433, "Q8_0": 146, "MXFP4": 108},
     "https://github.com/ggml-org/llama.cpp/issues/15253"),  # "type  f32:  433 tensors" ... "type mxfp4:  108"
    ("Llama 3.1 8B", "Q4_K_M", {"F32": 66, "Q4_K": 193, "Q6_K": 33},
     "https://github.com/abetlen/llama-cpp-python/issues/1693"),  # LongWriter-llama3.1-8b, a Llama 3.1 8B fine-tune
]
_SIZE = re.compile(r"^([\d.]+) (GiB|MiB|bytes)$")


def _bytes(text: str) -> float:
    m = _SIZE.match(text)
    assert m, text
    return float(m.group(1)) * {"GiB": 2**30, "MiB": 2**20, "bytes": 1}[m.group(2)]


def _error_pct(model: str, quant: str, imatrix: bool | None, published: str) -> float:
    return (table.build(model, quant, imatrix).weight_bytes / _bytes(published) - 1) * 100


@pytest.mark.parametrize(("model", "quant", "imatrix", "published", "params", "source", "quote"), PUBLISHED,
                         ids=[f"{p[0]} {p[1]}" for p in PUBLISHED])
def test_computed_size_is_within_one_percent_of_the_published_file(model: str, quant: str, imatrix: bool | None,
                                                                   published: str, params: str | None, source: str,
                                                                   quote: str) -> None:
    assert source.startswith("https://github.com/") or "@" in source
    number = published.split()[0]
    assert number in quote  # the figure is the source's, as quoted
    assert abs(_error_pct(model, quant, imatrix, published)) < 1.0
    if params is not None:
        n = table.params(model)
        assert (str(n) == params) if params.isdigit() else f"{n / 1e9:.2f} B" == params


def test_at_least_twenty_published_files_are_checked() -> None:
    assert len({(p[0], p[1]) for p in PUBLISHED}) >= 20
    assert {p[0] for p in PUBLISHED} >= {"Llama 3.1 8B", "Qwen3-30B-A3B", "gpt-oss-120b", "Gemma 3 27B"}


def test_exact_where_the_source_gives_bytes() -> None:
    exact = [p for p in PUBLISHED if p[3].endswith("bytes")]
    assert len(exact) == 4
    for model, quant, imatrix, published, *_ in exact:
        assert table.build(model, quant, imatrix).weight_bytes == int(published.split()[0])


@pytest.mark.parametrize(("model", "params", "source"), PARAMS)
def test_parameter_counts_of_published_files(model: str, params: int, source: str) -> None:
    assert source.startswith(LHL)
    assert table.params(model) == params


@pytest.mark.parametrize(("model", "quant", "counts", "source"), TYPE_COUNTS)
def test_tensor_types_as_published_files_list_them(model: str, quant: str, counts: dict[str, int],
                                                   source: str) -> None:
    arch = table.build(model, quant)
    assert dict(Counter(t.type for t in arch.tensors)) == counts


def test_the_importance_matrix_changes_what_the_rules_say_it_changes() -> None:
    with_im, without = table.build("Qwen3 14B", "Q4_0", True), table.build("Qwen3 14B", "Q4_0", False)
    bumped = {t.name for t in with_im.tensors if t.type == "Q4_1"}
    assert bumped == {f"blk.{i}.ffn_down.weight" for i in range(40 // 8)}  # the first eighth of ffn_down
    assert not any(t.type == "Q4_1" for t in without.tensors)


def test_every_table_model_builds_for_every_standard_type() -> None:
    for name in table.table():
        sizes = {q: table.build(name, q).weight_bytes for q in FILE_TYPES if q != "F32"}
        assert sizes["Q2_K"] < sizes["Q4_K_M"] < sizes["Q8_0"] < sizes["F16"] == sizes["BF16"], name
        arch = table.build(name, "Q4_K_M")
        assert 0 < arch.read_bytes <= arch.weight_bytes and arch.n_layer_all >= arch.n_layer


def test_a_row_length_that_does_not_fit_the_block_falls_back_as_llama_quantize_does() -> None:
    facts = ModelFacts("llama", 1, 8, 8)
    t = [Source("blk.0.ffn_up.weight", (2880, 64), "BF16"), Source("blk.0.ffn_gate.weight", (100, 64), "BF16")]
    assert assign(t, facts, "Q4_K_M") == {"blk.0.ffn_up.weight": "Q5_0", "blk.0.ffn_gate.weight": "F16"}


def test_every_table_model_quotes_its_config_and_says_what_it_was_checked_against() -> None:
    for s in table.table().values():
        assert s.url.startswith("https://huggingface.co/") and s.url.endswith("config.json"), s.name
        assert s.checked, s.name
        for key, value in (("hidden_size", s.n_embd), ("num_hidden_layers", s.n_layer),
                           ("num_attention_heads", s.n_head), ("num_key_value_heads", s.n_head_kv)):
            assert f'"{key}": {value}' in s.quote, (s.name, key)
        if "vocab_size" in s.quote:
            assert f'"vocab_size": {s.n_vocab}' in s.quote, s.name
        if s.layout.get("n_expert"):
            assert f": {s.layout['n_expert']}," in s.quote and f": {s.layout['n_ff_exp']}," in s.quote, s.name
