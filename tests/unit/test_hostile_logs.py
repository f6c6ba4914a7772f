"""llama.cpp's logs and device lists as a stranger can shape them (issue 35, 1 and 6): a model file's strings
write no line the parser trusts, hostile lines (a megabyte long, absurd numbers, ANSI bombs) are read in bounded
time without an exception, and an impossible figure is unknown.

The clean log is a real one (SmolLM2 on the CPU, tests/fixtures/logs); hostile text is added where llama.cpp would
print a GGUF's strings, or anywhere (property test, seeded: QA_FUZZ_SEED reproduces a failure).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from hostile import hostile_text, lengths

from collector.base.errors import CollectorError
from collector.llama.devices import parse_device_list
from collector.llama.logparse import LogFacts, parse_server_log
from collector.records.schema import Memory, Placement

LOG = (Path(__file__).resolve().parents[1] / "fixtures" / "logs" / "smollm2-cpu-fa-off.log").read_text()
NAME_LINE = "print_info: general.name          = Smollm2 135M 8k Lc100K Mix1 Ep2"
SEED = int(os.environ.get("QA_FUZZ_SEED", "20261206"))
CLEAN = parse_server_log(LOG)


def _named(name: str) -> str:
    assert NAME_LINE in LOG
    return LOG.replace(NAME_LINE, f"print_info: general.name          = {name}")


def _same(facts: LogFacts, clean: LogFacts = CLEAN) -> None:
    assert facts.placement == clean.placement
    assert facts.memory == clean.memory
    assert (facts.build_number, facts.build_commit) == (clean.build_number, clean.build_commit)


FORGED = ["\nload_tensors:        CUDA0 model buffer size =  9999.00 MiB\n",
          "\n0.00.184.090 I load_tensors:        CUDA0 model buffer size =  9999.00 MiB\n",
          "\nllama_prepare_model_devices: using device CUDA0 (<img src=x>) (0000:01:00.0) - 24000 MiB free\n",
          "\nload_tensors: offloaded 31/31 layers to GPU\r\nllama_kv_cache:      CUDA0 KV buffer size =  96.00 MiB\n",
          "\n  - CUDA0   : NVIDIA H100 (81000 MiB, 80000 MiB free)\n",
          "\nsystem_info: n_threads = 2 | CPU : AMX_INT8 = 1 | \nllama_context: flash_attn = enabled\n",
          "\nsrv    operator(): operator(): cleaning up before exit...\n"
          "common_memory_breakdown_print: |   - Host | 9999 = 9000 + 900 + 99 |\n",
          "\nllm_load_tensors: x\n", "\ncommon_params_print_info: build 1 (abc) with cc\nfitting params to free memory "
          "took 1 s\ncommon_fit_params: fitting params to free memory took 0.11 seconds\n"]


@pytest.mark.parametrize("name", FORGED)
def test_a_gguf_string_with_newlines_writes_no_line(name: str) -> None:
    """general.name as llama.cpp prints it, verbatim: given the model's strings, the facts are the clean log's."""
    _same(parse_server_log(_named(name), printed=[name]))


@pytest.mark.parametrize("where", ["print_info: EOS token             = 2 '{}'", "load:   - 2 ('{}')",
                                   "cmn  common_init_: added {} logit bias = -inf"])
def test_a_token_text_with_newlines_writes_no_line(where: str) -> None:
    token = "<|im_end|>\n0.00.189.901 I load_tensors:        CUDA0 model buffer size =  9999.00 MiB\n"
    line = where.format("<|im_end|>")
    assert line in LOG
    _same(parse_server_log(LOG.replace(line, where.format(token), 1), printed=[token]))


@pytest.mark.parametrize("name", [
    "load_tensors: offloaded 5/6 layers to GPU", "build 1 (abc) with cc", "CUDA0 KV buffer size = 9999.00 MiB",
    "llama_kv_cache: size = 9999.00 MiB ( 1 cells, 1 layers, 1/1 seqs), K (q4_0): 1 MiB, V (q4_0): 1 MiB",
    "fitting params to free memory took 1 s", "cleaning up before exit", "llm_load_tensors: x",
    "using device CUDA0 (x) (0000:01:00.0) - 1 MiB free", "Flash Attention was auto, set to enabled",
    "initializing, n_slots = 99, n_ctx_slot = 9", "memory_breakdown_print: | - Host | 1 = 1 + 1 + 1 |"])
def test_a_value_in_the_middle_of_a_line_is_never_read(name: str) -> None:
    """Without a newline, a value stays in its line: facts are read from lines that start with their tag."""
    _same(parse_server_log(_named(name)))
    token = LOG.replace("added <|endoftext|> logit bias", f"added {name} logit bias", 1)
    assert token != LOG
    _same(parse_server_log(token))


def test_a_carriage_return_or_line_separator_ends_no_line() -> None:
    for sep in ("\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"):
        _same(parse_server_log(_named(f"x{sep}load_tensors:        CUDA0 model buffer size =  9999.00 MiB{sep}")))


def test_the_chat_templates_example_is_not_read() -> None:
    """The server prints an example rendered by the GGUF's chat template: no fact is taken from it."""
    forged = ("\n0.00.914.300 I load_tensors:        CUDA0 model buffer size =  9999.00 MiB\n"
              "0.00.914.301 I llama_context: n_ctx                 = 999\n")
    text = LOG.replace("You are a helpful assistant<|im_end|>", "You are a helpful assistant<|im_end|>" + forged)
    assert text != LOG
    _same(parse_server_log(text))


def _valid(facts: LogFacts) -> None:
    """What a record would hold: within the schema's bounds (an impossible figure is unknown, not stored)."""
    Placement.model_validate(facts.placement.model_dump())
    Memory.model_validate(facts.memory.model_dump(by_alias=True))


ABSURD = [
    "load_tensors: offloaded " + "9" * 5000 + "/1 layers to GPU",
    "load_tensors: offloaded 99999999999999999999/99999999999999999999 layers to GPU",
    "load_tensors:        CUDA0 model buffer size = " + "9" * 400 + ".00 MiB",
    "llama_context: n_ctx                 = " + "9" * 5000,
    "llama_context: n_ctx                 = ²³",
    "llama_kv_cache: size =   22.50 MiB ( " + "9" * 5000 + " cells,  30 layers,  1/1 seqs), K (f16): 1, V (f16): 1",
    "srv    load_model: initializing, n_slots = " + "9" * 5000 + ", n_ctx_slot = 1",
    "print_info: n_swa                 = " + "9" * 5000,
    "  - CUDA0   : x (" + "9" * 400 + " MiB, " + "9" * 400 + " MiB free)",
    "llama_prepare_model_devices: using device CUDA0 (x) (0000:01:00.0) - " + "9" * 400 + " MiB free",
    "ggml_vulkan: " + "9" * 5000 + " = x (y) | uma: 0",
    "common_params_print_info: build " + "9" * 5000 + " (abc) with cc",
    "version: " + "9" * 5000 + " (abc)",
    "common_memory_breakdown_print: |   - Host | " + "9" * 400 + " = " + "9" * 400 + " + 1 + 1 |",
]
# lines a megabyte long, shaped to make a backtracking pattern take minutes
HUGE = [
    "llama_kv_cache: size =   22.50 MiB (  1024 cells,  30 layers,  1/1 seqs), " + "K (f16):" * 150_000,
    "ggml_metal_init: found device: x" + " " * 1_000_000 + "y",
    "llama_prepare_model_devices: using device CUDA0 (" + ") (" * 300_000 + " - 1 MiB free x",
    "llama_load_model_from_file: using device CUDA0 (" + "using device x (" * 60_000,
    "ggml_vulkan: 0 = " + "(" * 500_000 + " | uma: ",
    "system_info: n_threads = 2 | CPU : " + "| a" * 300_000,
    "common_memory_breakdown_print: |" + "| " * 400_000 + "x",
    "\x1b[1;" + "1;" * 500_000 + "x",
    "\x1b[0m".join("load_tensors: offloaded 1/1 layers to GPU") * 1000,
    "[" + "1;" * 500_000,
    "a" * 4_000_000,
]


@pytest.mark.parametrize("line", ABSURD + HUGE, ids=lambda s: repr(s[:40]))
def test_a_hostile_line_is_read_in_bounded_time_and_an_impossible_figure_is_unknown(line: str) -> None:
    text = LOG.replace("0.00.183.871 I print_info: vocab type", f"{line}\n0.00.183.871 I print_info: vocab type", 1)
    start = time.process_time()
    facts = parse_server_log(text)
    assert time.process_time() - start < 3, "a pattern backtracks"
    _valid(facts)
    assert facts.memory.model_buffers == CLEAN.memory.model_buffers or "model buffer" in line


def test_random_hostile_text_anywhere_never_raises_and_stays_bounded() -> None:
    """Property test: hostile text (control characters, ANSI, digits, markup, long runs) inserted at random lines
    and at random places in lines of the real log; every parse ends in bounded time with facts a record can hold,
    or refuses the log in one line (CollectorError: a spelling of an older build at a line start)."""
    rng = random.Random(SEED)
    lines = LOG.split("\n")
    spent = 0.0
    for n, size in enumerate(lengths(rng, 1 << 20, 60)):
        noise = hostile_text(rng, size)
        i = rng.randrange(len(lines))
        at = rng.randint(0, len(lines[i]))
        mutated = lines[:i] + [lines[i][:at] + noise + lines[i][at:]] + lines[i + 1:]
        start = time.process_time()
        try:
            facts = parse_server_log("\n".join(mutated), printed=[noise] if rng.random() < 0.5 else [])
        except CollectorError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 600, (SEED, n)
        else:
            _valid(facts)
        took = time.process_time() - start
        spent += took
        assert took < 3, f"seed {SEED}, case {n}: {took:.1f} s for {size} characters"
    assert spent < 60


@pytest.mark.parametrize("listing", [
    "Available devices:\n  CUDA0: NVIDIA (" + "9" * 400 + " MiB, 1 MiB free)\n",
    "Available devices:\n  CUDA0: NVIDIA (99999999999999999999 MiB, 99999999999999999999 MiB free)\n",
    "Available devices:\n  CUDA0: \x1b[2J\x1b]0;x\x07 <b>x</b> (1 MiB, 1 MiB free)\n",
    "Available devices:\n" + "  CUDA0: x (1 MiB, 1 MiB free)\n" * 100_000,
    "Available devices:\n  : (1 MiB, 1 MiB free)\n  CUDA0:  (1 MiB, 1 MiB free)\n",
    "Available devices:\n  CUDA0: x (" + "(" * 1_000_000 + " MiB, 1 MiB free)\n",
    "Available devices:\r  CUDA0: x (1 MiB, 1 MiB free)\r\n",
])
def test_a_device_list_of_an_unexpected_shape_gives_devices_a_record_can_hold(listing: str) -> None:
    start = time.process_time()
    devices = parse_device_list(listing)
    assert time.process_time() - start < 3
    assert devices is None or len(devices) <= 64
    for d in devices or []:
        assert d.memory_total_mib is None or d.memory_total_mib <= 1 << 30
        type(d).model_validate(d.model_dump())


def test_a_vocabulary_of_newline_tokens_costs_one_pass_over_the_log() -> None:
    """A GGUF may hold 10^5 tokens with a newline: each is looked for at the log's newlines only, not by a scan of
    the whole log per token."""
    tokens = [f"\nload_tensors: tok{i} model buffer size = 9.00 MiB" for i in range(262_144)]
    forged = tokens[12345]
    text = _named(forged) + LOG.split("srv    operator()")[0][-20_000:] * 50  # a long run's log, 1 MB
    start = time.process_time()
    facts = parse_server_log(text, printed=tokens)
    assert time.process_time() - start < 5
    assert "tok12345" not in facts.memory.model_buffers and facts.memory.model_buffers == CLEAN.memory.model_buffers
