"""llama-perplexity runs: the base-logits pass and the KL-divergence pass (ref/llama-cpp.md §4).

llama-perplexity only *logs* some fatal problems (too few tokens, a vocabulary or context that does not
match the base-logits file) and then carries on or exits 0; this module turns those log lines into errors.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from collector.errors import CollectorError
from collector.llama.binaries import LlamaTools, clean_env
from collector.llama.kld_parse import parse_kld_summary
from collector.records.schema import KldResults

LOG_TAIL_LINES = 25
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


class LlamaRunError(CollectorError):
    """A llama.cpp tool run that failed; carries the stage and the last lines of its log for the record."""

    def __init__(self, message: str, stage: str, log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.log_tail = log_tail or []


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
    proc = subprocess.run(argv, capture_output=True, env=clean_env(), stdin=subprocess.DEVNULL, timeout=600)
    out = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or not out.startswith("["):
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise CollectorError(f"llama-tokenize failed on {corpus} with {model.name} ({tail[0]}); "
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


def _tail(text: str, n: int = LOG_TAIL_LINES) -> list[str]:
    return [line for line in text.splitlines() if line.strip()][-n:]


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
    tail = _tail(text)
    return tail if line in tail else [line, *tail[1:]]


def run_tool(argv: list[str], stage: str, timeout_s: float | None) -> tuple[str, float]:
    """Run one tool with a clean environment; stdout and stderr interleaved, decoded as UTF-8 (± and Δ)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=clean_env(),
                              stdin=subprocess.DEVNULL, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode("utf-8", "replace")
        raise LlamaRunError(f"{Path(argv[0]).name} ran longer than {timeout_s:.0f} s and was stopped",
                            stage, _tail(text)) from None
    except OSError as exc:
        raise LlamaRunError(f"{argv[0]} could not be started ({exc})", stage) from None
    seconds = time.perf_counter() - t0
    text = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        how = f"was killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited with {proc.returncode}"
        fatal = _fatal_in_log(text)
        raise LlamaRunError(f"{Path(argv[0]).name} {how}" + (f": {fatal[0]}" if fatal else "; see log_tail"),
                            stage, _tail_with(text, fatal[1]) if fatal else _tail(text))
    fatal = _fatal_in_log(text)
    if fatal:
        raise LlamaRunError(fatal[0], stage, _tail_with(text, fatal[1]))
    return text, seconds


def _common(ctx_size: int, batch_size: int, threads: int | None, flash_attn: str | None,
            n_gpu_layers: int | str | None, extra_args: list[str]) -> list[str]:
    args = ["-c", str(ctx_size), "-b", str(batch_size)]
    if threads is not None:
        args += ["-t", str(threads)]
    if flash_attn is not None:
        args += ["-fa", flash_attn]
    if n_gpu_layers is not None:
        args += ["-ngl", str(n_gpu_layers)]
    return args + list(extra_args)


def run_base_pass(tools: LlamaTools, model: Path, corpus: Path, out_file: Path, *, ctx_size: int, chunks: int,
                  batch_size: int, threads: int | None = None, flash_attn: str | None = None,
                  n_gpu_layers: int | str | None = None, extra_args: list[str] | None = None,
                  expected_bytes: int | None = None, timeout_s: float | None = None) -> PassResult:
    """Write the base model's logits over `corpus` to `out_file` (f16 KV cache); LlamaRunError on failure.

    The caller passes a temporary `out_file` and renames it only after this returns, so a killed or
    failed pass never leaves a file that a later run would reuse. `expected_bytes` (the predicted
    size) is checked afterwards: a short file means the pass stopped writing early.
    """
    argv = [str(tools.path("llama-perplexity")), "-m", str(model), "-f", str(corpus), "--chunks", str(chunks),
            *_common(ctx_size, batch_size, threads, flash_attn, n_gpu_layers, extra_args or []),
            "--kl-divergence-base", str(out_file)]
    text, seconds = run_tool(argv, "base-logits", timeout_s)
    if "Final estimate: PPL" not in text:
        raise LlamaRunError("llama-perplexity finished the base pass without a final PPL estimate; see log_tail",
                            "base-logits", _tail(text))
    size = out_file.stat().st_size if out_file.exists() else 0
    if expected_bytes is not None and size != expected_bytes:
        raise LlamaRunError(f"the base-logits file has {size} bytes, expected {expected_bytes}; "
                            "the pass stopped early (disk full?)", "base-logits", _tail(text))
    return PassResult(argv, text, seconds, None, _tail(text))


def run_kld_pass(tools: LlamaTools, model: Path, base_logits: Path, *, ctx_size: int, batch_size: int,
                 threads: int | None = None, cache_type_k: str | None = None, cache_type_v: str | None = None,
                 flash_attn: str | None = None, n_gpu_layers: int | str | None = None,
                 extra_args: list[str] | None = None, timeout_s: float | None = None,
                 expect_vocab: int | None = None) -> PassResult:
    """Score `model` against the base logits; returns the parsed summary or raises LlamaRunError.

    The logits header is checked first: llama-perplexity silently scores with the file's n_ctx when it
    differs from -c (so a record would state the wrong ctx_size) and only logs a vocabulary mismatch
    (then prints a meaningless KLD). `expect_vocab` is the model's n_vocab, when known.
    """
    n_ctx, n_vocab, _ = read_logits_header(base_logits)
    if n_ctx != ctx_size:
        raise LlamaRunError(f"the base logits {base_logits.name} were computed with ctx_size {n_ctx} but this pass "
                            f"uses {ctx_size}: use the same ctx_size as the base pass", "kld")
    if expect_vocab is not None and expect_vocab != n_vocab:
        raise LlamaRunError(f"{model.name} has a vocabulary of {expect_vocab} tokens but the base logits have "
                            f"{n_vocab}: base and quant must be the same model", "kld")
    argv = [str(tools.path("llama-perplexity")), "-m", str(model), "--kl-divergence-base", str(base_logits),
            "--kl-divergence", *_common(ctx_size, batch_size, threads, flash_attn, n_gpu_layers, extra_args or [])]
    if cache_type_k:
        argv += ["-ctk", cache_type_k]
    if cache_type_v:
        argv += ["-ctv", cache_type_v]
    text, seconds = run_tool(argv, "kld", timeout_s)
    try:
        results = parse_kld_summary(text)
    except CollectorError as exc:
        raise LlamaRunError(str(exc), "kld", _tail(text)) from None
    return PassResult(argv, text, seconds, results, _tail(text))


def portable_argv(argv: list[str], replacements: dict[str, str]) -> list[str]:
    """The argv with local paths replaced by placeholders ({model}, {base_logits}, ...) and the tool by its name."""
    out = [os.path.basename(argv[0])]
    for arg in argv[1:]:
        out.append(replacements.get(arg, arg))
    return out
