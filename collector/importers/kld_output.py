"""Import a saved llama-perplexity `--kl-divergence` output (stdout+stderr text) as a KLD record."""

from __future__ import annotations

import re
from pathlib import Path

from collector.base.errors import CollectorError
from collector.importers.intake import local_model_facts, one_line, read_input, write_records
from collector.importers.llama_bench import content_key
from collector.llama.kld_parse import parse_kld_summary
from collector.records import store
from collector.records.flags import LlamaConfig
from collector.records.schema import Corpus, KldRecord, LlamaCpp, ModelInfo, Source

_COMPUTING = re.compile(r"kl_divergence: computing over (?P<chunks>\d+) chunks, n_ctx=(?P<ctx>\d+), "
                        r"batch_size=(?P<batch>\d+), n_seq=(?P<seq>\d+)")
_THREADS = re.compile(r"system_info: n_threads = (?P<t>\d+)")
_BUILD = re.compile(r"build: (?P<num>\d+) \((?P<commit>[0-9a-f]+|unknown)\)")


def kld_record(text: str, file: Path, base_model: Path | None = None, model: Path | None = None,
               corpus_name: str | None = None, model_name: str | None = None) -> KldRecord:
    """The KLD summary of `text` as a KldRecord; model facts are read from the GGUF paths when given.

    The output itself does not say which model it scored, so the model is named by its file (`model`) or by
    `model_name`; without either the import is refused."""
    results = parse_kld_summary(text)
    if model is None and not (model_name or "").strip():
        raise CollectorError(f"{file}: the output does not say which model it scored; pass --model FILE (the GGUF "
                             "under test) or --model-name NAME")
    run = _COMPUTING.search(text)
    if run is None:
        raise CollectorError(f"{file}: no 'kl_divergence: computing over N chunks, n_ctx=...' line; pass the "
                             "complete stdout+stderr of `llama-perplexity --kl-divergence`")
    threads = _THREADS.search(text)
    build = _BUILD.search(text)
    ctx, chunks = int(run["ctx"]), int(run["chunks"])
    facts = local_model_facts(model, "--model")
    return KldRecord(
        id=store.new_id(), created_at=store.utc_now(), status="ok",
        source=Source(type="imported", tool="llama-perplexity",
                      citation=f"{file.name}: llama-perplexity --kl-divergence output",
                      note=(f"imported from {file.name}; created_at is the import time (the log carries no date); "
                            f"n_seq={run['seq']}" + ("" if model else "; no --model given, so no model facts")),
                      figure=content_key("llama-perplexity", text)),
        llama_cpp=LlamaCpp(version=f"b{build['num']}", build_number=int(build["num"]), commit=build["commit"])
        if build else LlamaCpp(),
        model=facts or ModelInfo(name=model_name),
        base_model=local_model_facts(base_model, "--base-model"),
        corpus=Corpus(name=corpus_name or "unknown (not given at import)", ctx_size=ctx, chunks=chunks,
                      tokens=ctx * chunks),
        config=LlamaConfig(ctx_size=ctx, batch_size=int(run["batch"]), threads=int(threads["t"]) if threads else None),
        results=results)


def import_perplexity(file: Path, data_dir: Path, base_model: Path | None = None, model: Path | None = None,
                      corpus_name: str | None = None, force: bool = False,
                      model_name: str | None = None) -> Path | None:
    """Parse FILE and write one KLD record under data_dir; returns its path (None: already imported, skipped)."""
    text = read_input(Path(file), "llama-perplexity output")
    try:
        rec = kld_record(text, Path(file), base_model, model, corpus_name, model_name)
    except CollectorError as exc:
        msg = str(exc)
        raise CollectorError(msg if msg.startswith(str(file)) else f"{file}: {msg}") from None
    except (ValueError, OverflowError) as exc:  # a value the schema refuses (pydantic's ValidationError)
        raise CollectorError(f"{file}: not a usable KLD output ({one_line(exc)}); pass unmodified "
                             "llama-perplexity output") from None
    written, _ = write_records([rec], data_dir, force=force)
    return written[0] if written else None
