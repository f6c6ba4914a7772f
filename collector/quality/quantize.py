"""Quant ladders: a base (F16/BF16/Q8_0) and its quantizations, built with llama-quantize.

Types whose tensors llama.cpp refuses to quantize without an importance matrix get one from
llama-imatrix, computed once on the base with the corpus and cached next to the ladder
(ref/llama-cpp.md §6). Every output is written under a temporary name and renamed on success, so a
killed build never leaves a file that a later run would take for finished.

Reproducible: llama-quantize writes the importance matrix's file name and llama-imatrix the corpus's into the
GGUF metadata, so both tools run in the folder that holds those files and are given bare names. The same
inputs then give the same bytes (and sha256) on every machine, whatever the cache path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from collector.base.cache import cache_dir, sha256_files
from collector.base.errors import CollectorError
from collector.base.files import part_path
from collector.base.lock import host_lock
from collector.base.progress import NullObserver, Observer
from collector.llama.binaries import LlamaTools
from collector.llama.tools import ToolError, run_tool

QUANT_TYPES = ("Q4_0", "Q4_1", "MXFP4_MOE", "Q5_0", "Q5_1", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M",
               "TQ1_0", "TQ2_0", "Q2_K", "Q2_K_S", "IQ3_XXS", "IQ3_S", "IQ3_M", "Q3_K", "IQ3_XS", "Q3_K_S", "Q3_K_M",
               "Q3_K_L", "IQ4_NL", "IQ4_XS", "Q4_K", "Q4_K_S", "Q4_K_M", "Q5_K", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0",
               "F16", "BF16", "F32")
BASE_TYPES = ("F16", "BF16", "Q8_0", "F32")
# llama-quantize stops with "this quantization requires an importance matrix" for these (llama-quant.cpp:856-875).
IMATRIX_TYPES = frozenset({"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "Q2_K_S"})
_LABEL_RE = re.compile(r"[.\-_](" + "|".join(sorted(QUANT_TYPES, key=len, reverse=True)) + r")$", re.IGNORECASE)


def needs_imatrix(qtype: str) -> bool:
    return qtype.upper() in IMATRIX_TYPES


def check_type(qtype: str) -> str | None:
    """An error text when llama-quantize does not know `qtype` (for plan validation), else None."""
    if qtype.upper() not in QUANT_TYPES:
        return f"unknown quantization type {qtype!r}; known: {', '.join(QUANT_TYPES)}"
    return None


@dataclass
class Ladder:
    """A built ladder: the base file, the quantized files by type, and where the time went (seconds)."""

    base: Path
    quants: list[tuple[str, Path]]
    imatrix: Path | None = None
    quantize_seconds: float = 0.0
    imatrix_seconds: float = 0.0
    built: list[str] = field(default_factory=list)  # the files this call produced (the rest were reused)


def _stem(source: Path) -> str:
    """The model name without its quant label: SmolLM2-135M-Instruct.Q4_1.gguf -> SmolLM2-135M-Instruct."""
    return _LABEL_RE.sub("", source.name.removesuffix(".gguf"))


def _run_into(argv: list[str], stage: str, part: Path, dst: Path, what: str, cwd: Path | None = None) -> float:
    """Run a tool that writes `part`, rename it to `dst` only on success; returns the tool's seconds."""
    try:
        with host_lock(what):  # held already by build_ladder or a run: a no-op there
            seconds = run_tool(argv, stage, None, cwd=cwd).seconds
        if not part.is_file():
            raise ToolError(f"the tool wrote no {part.name}", stage)
        os.replace(part, dst)
    except ToolError as exc:
        raise CollectorError(f"{what} failed: {exc} "
                             f"(last log line: {(exc.log_tail or ['-'])[-1].strip()})") from None
    finally:
        part.unlink(missing_ok=True)
    return seconds


def quantize(tools: LlamaTools, src: Path, dst: Path, qtype: str, *, imatrix: Path | None = None,
             allow_requantize: bool = False, threads: int | None = None) -> float:
    """One llama-quantize run into `dst` (temp name, renamed on success); returns its seconds.

    Runs in the importance matrix's folder, naming it bare: its name, not its path, goes into the GGUF."""
    part = part_path(dst)
    argv = [str(tools.path("llama-quantize"))]
    if allow_requantize:
        argv.append("--allow-requantize")
    if imatrix is not None:
        argv += ["--imatrix", imatrix.name]
    argv += [str(src.resolve()), str(part.resolve()), qtype.upper()]
    if threads is not None:
        argv.append(str(threads))
    return _run_into(argv, "quantize", part, dst, f"llama-quantize {qtype} of {src.name}",
                     cwd=imatrix.parent if imatrix is not None else None)


def compute_imatrix(tools: LlamaTools, model: Path, corpus: Path, dst: Path, *, ctx_size: int, chunks: int,
                    threads: int | None = None) -> float:
    """One llama-imatrix run over the corpus into `dst` (temp name, renamed on success); returns its seconds.

    Runs in the corpus's folder, naming it bare: its name, not its path, goes into the imatrix file."""
    part = part_path(dst).with_suffix(".gguf")  # llama-imatrix picks its output format from the extension
    argv = [str(tools.path("llama-imatrix")), "-m", str(model.resolve()), "-f", corpus.name, "-c", str(ctx_size),
            "--chunks", str(chunks), "-o", str(part.resolve()), "--no-ppl"]
    if threads is not None:
        argv += ["-t", str(threads)]
    return _run_into(argv, "imatrix", part, dst, f"llama-imatrix on {model.name} with {corpus.name}",
                     cwd=corpus.resolve().parent)


def ladder_files(source: Path, types: list[str], *, base_type: str = "F16", corpus: Path | None = None,
                 imatrix_ctx: int = 512, imatrix_chunks: int = 16,
                 out_dir: Path | None = None) -> tuple[Path, Path | None, list[tuple[str, Path]]]:
    """Where build_ladder puts the base, the importance matrix (None: no type needs one) and each type's file,
    without building anything (a plan measures the speed of these files: `also: [{models: ladder}]`)."""
    out_dir = out_dir or cache_dir("ladder") / sha256_files([source])[:16]
    stem = _stem(source)
    base = out_dir / f"{stem}.{base_type.upper()}.gguf"
    imatrix = None
    if any(needs_imatrix(t) for t in types) and corpus is not None:
        # the imatrix and the files quantized with it live in a folder named after the imatrix's inputs, so the
        # quant files keep plain names (SmolLM2-135M-Instruct.IQ2_XS.gguf) and the same inputs give the same bytes
        corpus_sha = sha256_files([corpus])[:12]
        imatrix = out_dir / f"imatrix-{corpus_sha}-c{imatrix_ctx}-n{imatrix_chunks}" / "imatrix.gguf"
    quants = []
    for t in types:
        qtype = t.upper()
        if qtype == base_type.upper():
            continue
        folder = imatrix.parent if imatrix is not None and needs_imatrix(qtype) else out_dir
        quants.append((qtype, folder / f"{stem}.{qtype}.gguf"))
    return base, imatrix, quants


def build_ladder(tools: LlamaTools, source: Path, types: list[str], *, base_type: str = "F16",
                 corpus: Path | None = None, imatrix_ctx: int = 512, imatrix_chunks: int = 16,
                 threads: int | None = None, out_dir: Path | None = None,
                 observer: Observer | None = None, wait: bool = False) -> Ladder:
    """Build (or reuse) base_type from `source`, then every type in `types` from that base.

    The base is requantized with --allow-requantize when the source is itself quantized (a demo
    convenience: such a base carries the source's rounding, which is fine for comparing quants with
    each other but is not the original model). Outputs live in out_dir, by default
    cache_dir("ladder")/<first 16 hex of the source sha256>/. Imatrix types need `corpus`. llama-quantize and
    llama-imatrix load the machine: the host's measurement lock is held (`wait`: wait for another holder).
    """
    with host_lock(f"quant ladder of {source.name}", wait=wait, on_wait=(observer or NullObserver()).message):
        return _build_ladder(tools, source, types, base_type=base_type, corpus=corpus, imatrix_ctx=imatrix_ctx,
                             imatrix_chunks=imatrix_chunks, threads=threads, out_dir=out_dir, observer=observer)


def _build_ladder(tools: LlamaTools, source: Path, types: list[str], *, base_type: str, corpus: Path | None,
                  imatrix_ctx: int, imatrix_chunks: int, threads: int | None, out_dir: Path | None,
                  observer: Observer | None) -> Ladder:
    observer = observer or NullObserver()
    for t in [base_type, *types]:
        if check_type(t):
            raise CollectorError(f"ladder: {check_type(t)}")
    if not source.is_file():
        raise CollectorError(f"{source}: ladder source model not found; check the path")
    if any(needs_imatrix(t) for t in types) and corpus is None:
        raise CollectorError(f"ladder: {', '.join(t for t in types if needs_imatrix(t))} need an importance "
                             "matrix, which is computed from a corpus; give the plan a corpus")
    base, imatrix, files = ladder_files(source, types, base_type=base_type, corpus=corpus, imatrix_ctx=imatrix_ctx,
                                        imatrix_chunks=imatrix_chunks, out_dir=out_dir)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name (FileExistsError), no permission, a read-only disk
        raise CollectorError(f"{'--out-dir ' if out_dir is not None else ''}{base.parent}: cannot hold the ladder "
                             f"({exc.strerror or exc}); give a folder that can be written") from None
    ladder = Ladder(base=base, quants=[])
    if not ladder.base.is_file():
        observer.message(f"ladder: {source.name} -> {base_type.upper()}")
        ladder.quantize_seconds += quantize(tools, source, ladder.base, base_type, allow_requantize=True,
                                            threads=threads)
        ladder.built.append(ladder.base.name)
    if imatrix is not None:
        assert corpus is not None
        imatrix.parent.mkdir(exist_ok=True)
        ladder.imatrix = imatrix
        if not imatrix.is_file():
            observer.message(f"ladder: importance matrix of {ladder.base.name} over {corpus.name}")
            ladder.imatrix_seconds += compute_imatrix(tools, ladder.base, corpus, imatrix, ctx_size=imatrix_ctx,
                                                      chunks=imatrix_chunks, threads=threads)
            ladder.built.append(imatrix.name)
    for qtype, dst in files:
        imat = imatrix if needs_imatrix(qtype) else None
        if not dst.is_file():
            observer.message(f"ladder: {ladder.base.name} -> {qtype}")
            ladder.quantize_seconds += quantize(tools, ladder.base, dst, qtype, imatrix=imat, threads=threads)
            ladder.built.append(dst.name)
        ladder.quants.append((qtype, dst))
    return ladder
