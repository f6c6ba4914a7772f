"""llama-perplexity runs: the base-logits pass and the KL-divergence pass (ref/llama-cpp.md §4).

llama-perplexity only *logs* some fatal problems (too few tokens, a vocabulary or context that does not
match the base-logits file) and then carries on or exits 0; this module turns those log lines into errors.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

from collector.base.errors import CollectorError
from collector.base.lock import host_lock
from collector.llama.binaries import LlamaTools
from collector.llama.kld_parse import parse_kld_summary
from collector.llama.tools import ToolError, exit_words, run_tool, tail
from collector.records.flags import LlamaConfig, perplexity_args
from collector.records.schema import KldResults

MIN_SCORED_TOKENS = 100  # llama-perplexity prints no KLD summary below this (perplexity.cpp:1887)

# Log lines of perplexity.cpp (this build) that mean the run is worthless even though it carries on.
_FATAL_LINES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"inconsistent vocabulary \((\d+) vs (\d+)\)"),
     "the base logits have a vocabulary of {0} tokens but the model has {1}: base and quant must be the same model"),
    (re.compile(r"has been computed with (\d+), while the current context is (-?\d+)"),
     "the base logits were computed with ctx_size {0} but this pass used {1}: use the same ctx_size as the base pass"),
    (re.compile(r"you need at least (\d+) tokens to evaluate perplexity with a context of (\d+)"),
     "the corpus is too short: ctx_size {1} needs at least {0} tokens; use a longer corpus or a smaller ctx_size"),
    (re.compile(r"does not look like a file containing log-probabilities"),
     "the base-logits file is not a llama-perplexity logits file; delete it so it is computed again"),
    (re.compile(r"failed reading (n_vocab, n_chunk|evaluation tokens)"),
     "the base-logits file is truncated; delete it so it is computed again"),
)


@dataclass
class PassResult:
    """One finished llama-perplexity pass; seconds are wall-clock."""

    argv: list[str]
    text: str
    seconds: float
    results: KldResults | None = None
    log_tail: list[str] = field(default_factory=list)


def logits_size_bytes(n_ctx: int, n_chunk: int, n_vocab: int) -> int:
    """Exact size in bytes of a --kl-divergence-base file (ref/llama-cpp.md §4)."""
    scored = n_ctx - 1 - n_ctx // 2
    return 20 + 4 * n_ctx * n_chunk + n_chunk * scored * (4 * ((n_vocab + 1) // 2) + 8)


def scored_tokens(n_ctx: int, n_chunk: int) -> int:
    """Tokens scored in a pass: the second half of each chunk, minus the first of that half."""
    return n_chunk * (n_ctx - 1 - n_ctx // 2)


def count_tokens(tools: LlamaTools, model: Path, corpus: Path) -> int:
    """Tokens of the corpus under the model's tokenizer (llama-tokenize, BOS included like llama-perplexity)."""
    argv = [str(tools.path("llama-tokenize")), "-m", str(model), "-f", str(corpus), "--ids", "--log-disable"]
    res = run_tool(argv, "tokenize", 600, merge=False, check=False)
    out = res.text.strip()
    if res.returncode != 0 or not out.startswith("["):
        last = res.stderr.strip().splitlines()[-1:] or ["no output"]
        raise CollectorError(f"llama-tokenize failed on {corpus} with {model.name} ({last[0]}); "
                             "check that the corpus is a UTF-8 text file and the model loads")
    body = out[1:out.index("]")].strip()
    return len(body.split(",")) if body else 0


def check_free_space(directory: Path, need_bytes: int, what: str) -> None:
    """CollectorError before a run when `directory`'s file system cannot hold `need_bytes` (plus 1% slack)."""
    free = shutil.disk_usage(directory).free
    if free < need_bytes * 1.01:
        raise CollectorError(f"{directory}: {what} needs {need_bytes / 2**20:,.0f} MiB but only "
                             f"{free / 2**20:,.0f} MiB are free; free some space, use fewer chunks, "
                             "or set COLLECTOR_CACHE_DIR to a larger disk")


def read_logits_header(path: Path) -> tuple[int, int, int]:
    """(n_ctx, n_vocab, n_chunk) from a base-logits file; CollectorError when it is not one."""
    with open(path, "rb") as fh:
        head = fh.read(20)
    if len(head) < 20 or head[:8] != b"_logits_":
        raise CollectorError(f"{path}: not a llama-perplexity base-logits file; delete it so it is computed again")
    n_ctx, n_vocab, n_chunk = struct.unpack("<iii", head[8:20])
    return n_ctx, n_vocab, n_chunk


def _fatal_in_log(text: str) -> tuple[str, str] | None:
    """(message, the log line) for the first fatal log line found."""
    for pattern, message in _FATAL_LINES:
        m = pattern.search(text)
        if m:
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            return message.format(*m.groups()), text[start:end if end >= 0 else None].strip()
    return None


def _tail_with(text: str, line: str) -> list[str]:
    """The log tail, led by the fatal line when it scrolled out of the tail."""
    lines = tail(text)
    return lines if line in lines else [line, *lines[1:]]


def run_checked(argv: list[str], stage: str, timeout_s: float | None) -> tuple[str, float]:
    """Run llama-perplexity; ToolError for a failed exit and for the fatal lines it only logs."""
    with host_lock(f"llama-perplexity ({stage})"):  # held already inside a run: a no-op there
        res = run_tool(argv, stage, timeout_s, check=False)
    fatal = _fatal_in_log(res.text)
    if res.returncode != 0:
        raise ToolError(f"{Path(argv[0]).name} {exit_words(res.returncode)}" + (f": {fatal[0]}" if fatal else
                        "; see log_tail"), stage, _tail_with(res.text, fatal[1]) if fatal else res.log_tail)
    if fatal:
        raise ToolError(fatal[0], stage, _tail_with(res.text, fatal[1]))
    return res.text, res.seconds


def base_pass_argv(tools: LlamaTools, model: Path, corpus: Path, out_file: Path, config: LlamaConfig,
                   chunks: int) -> list[str]:
    """llama-perplexity argv that writes the base logits (the config's KV cache types are not passed: f16)."""
    f16 = config.model_copy(update={"cache_type_k": None, "cache_type_v": None})
    return [str(tools.path("llama-perplexity")), "-m", str(model), "-f", str(corpus), "--chunks", str(chunks),
            *perplexity_args(f16), "--kl-divergence-base", str(out_file)]


def run_base_pass(tools: LlamaTools, model: Path, corpus: Path, out_file: Path, config: LlamaConfig, *,
                  chunks: int, expected_bytes: int | None = None, timeout_s: float | None = None) -> PassResult:
    """Write the base model's logits over `corpus` to `out_file` (f16 KV cache); ToolError on failure.

    `config.ctx_size` is the chunk size. The caller passes a temporary `out_file` and renames it only after
    this returns, so a killed or failed pass never leaves a file that a later run would reuse. `expected_bytes`
    (the predicted size) is checked afterwards: a short file means the pass stopped writing early.
    """
    argv = base_pass_argv(tools, model, corpus, out_file, config, chunks)
    text, seconds = run_checked(argv, "base-logits", timeout_s)
    if "Final estimate: PPL" not in text:
        raise ToolError("llama-perplexity finished the base pass without a final PPL estimate; see log_tail",
                        "base-logits", tail(text))
    size = out_file.stat().st_size if out_file.exists() else 0
    if expected_bytes is not None and size != expected_bytes:
        raise ToolError(f"the base-logits file has {size} bytes, expected {expected_bytes}; "
                        "the pass stopped early (disk full?)", "base-logits", tail(text))
    return PassResult(argv, text, seconds, None, tail(text))


def run_kld_pass(tools: LlamaTools, model: Path, base_logits: Path, config: LlamaConfig, *,
                 timeout_s: float | None = None, expect_vocab: int | None = None) -> PassResult:
    """Score `model` against the base logits; returns the parsed summary or raises ToolError.

    The logits header is checked first: llama-perplexity silently scores with the file's n_ctx when it
    differs from -c (so a record would state the wrong ctx_size) and only logs a vocabulary mismatch
    (then prints a meaningless KLD). `expect_vocab` is the model's n_vocab, when known.
    """
    n_ctx, n_vocab, _ = read_logits_header(base_logits)
    if n_ctx != config.ctx_size:
        raise ToolError(f"the base logits {base_logits.name} were computed with ctx_size {n_ctx} but this pass "
                        f"uses {config.ctx_size}: use the same ctx_size as the base pass", "kld")
    if expect_vocab is not None and expect_vocab != n_vocab:
        raise ToolError(f"{model.name} has a vocabulary of {expect_vocab} tokens but the base logits have "
                        f"{n_vocab}: base and quant must be the same model", "kld")
    argv = [str(tools.path("llama-perplexity")), "-m", str(model), "--kl-divergence-base", str(base_logits),
            "--kl-divergence", *perplexity_args(config)]
    text, seconds = run_checked(argv, "kld", timeout_s)
    try:
        results = parse_kld_summary(text)
    except CollectorError as exc:
        raise ToolError(str(exc), "kld", tail(text)) from None
    return PassResult(argv, text, seconds, results, tail(text))


def portable_argv(argv: list[str], replacements: dict[str, str]) -> list[str]:
    """The argv with local paths replaced by placeholders ({model}, {base_logits}, ...) and the tool by its name."""
    out = [os.path.basename(argv[0])]
    for arg in argv[1:]:
        out.append(replacements.get(arg, arg))
    return out
