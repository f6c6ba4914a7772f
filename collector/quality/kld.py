"""KLD runs: the base logits once, then one llama-perplexity pass and one record per quant / KV-cache type.

N quants and M KV-cache variants cost N+M+1 passes: the base pass writes the logits into
cache_dir("kld-logits"), keyed by (base sha256, corpus sha256, ctx_size, chunks, batch_size), and every
later pass, in this run or a later one, reads them. Each further context size of the section adds M+1 passes:
its own base logits and the KV-cache variants scored against them (the quants are scored at the first size).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector import __version__
from collector.base.cache import cache_dir, sha256_files
from collector.base.errors import CollectorError
from collector.base.files import part_path
from collector.base.progress import NullObserver, Observer
from collector.llama.binaries import LlamaTools
from collector.llama.perplexity import (
    MIN_SCORED_TOKENS,
    PassResult,
    base_pass_argv,
    check_free_space,
    count_tokens,
    logits_size_bytes,
    portable_argv,
    run_base_pass,
    run_kld_pass,
    scored_tokens,
)
from collector.llama.tools import ToolError
from collector.models.info import model_facts
from collector.quality.kld_plan import KldPlan
from collector.records.flags import LlamaConfig
from collector.records.index import load_index
from collector.records.schema import Corpus, ErrorInfo, Host, KldRecord, KldTiming, LlamaCpp, ModelInfo, PlanRef, Source
from collector.records.store import new_id, save_record, utc_now


@dataclass(frozen=True)
class Job:
    """One pass against the base logits: a quant (f16 KV cache) or the base with a quantized KV cache."""

    label: str
    ref: str
    path: Path
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"

    @property
    def is_kv_variant(self) -> bool:
        return (self.cache_type_k, self.cache_type_v) != ("f16", "f16")


def _host() -> Host:
    try:
        from collector.host.hardware import probe_host
    except ImportError:  # the hardware module is optional for KLD: a record without host facts is still valid
        return Host()
    return probe_host()


def _facts(path: Path, origin: str) -> ModelInfo:
    info = model_facts(path)
    info.origin = origin
    return info


def _models(plan: KldPlan, tools: LlamaTools, observer: Observer) -> tuple[str, Path, list[Job], float, float]:
    """(base ref, base path, jobs, quantize seconds, imatrix seconds); builds the ladder when the plan has one."""
    q_s = im_s = 0.0
    jobs: list[Job] = []
    if plan.ladder is not None:
        ladder = plan.build_ladder(tools, observer)
        q_s, im_s = ladder.quantize_seconds, ladder.imatrix_seconds
        base_ref, base_path = plan.ladder_ref(plan.ladder.base_type), ladder.base
        jobs += [Job(t, plan.ladder_ref(t), p) for t, p in ladder.quants]
    else:
        assert plan.base is not None  # parse_kld guarantees base or ladder
        base_ref, base_path = plan.base, plan.resolve(plan.base)
    for ref in plan.quants:
        path = plan.resolve(ref)
        jobs.append(Job(path.name.removesuffix(".gguf"), ref, path))
    for k, v in plan.kv_cache:
        jobs.append(Job(f"base KV {k}/{v}", base_ref, base_path, k, v))
    return base_ref, base_path, jobs, q_s, im_s


def _done_keys(data_dir: Path) -> set[tuple[Any, ...]]:
    keys: set[tuple[Any, ...]] = set()
    if not (data_dir / "records").exists():
        return keys
    for rec in load_index(data_dir).valid:
        if isinstance(rec, KldRecord) and rec.status == "ok" and rec.corpus and rec.base_model:
            keys.add(_key(rec.model.sha256, rec.base_model.sha256, rec.corpus, rec.config, rec.llama_cpp))
    return keys


def _key(model_sha: str | None, base_sha: str | None, corpus: Corpus, config: LlamaConfig, llama: LlamaCpp) -> tuple:
    """What makes a KLD record the same measurement: the files, the corpus, the settings and the build."""
    settings = config.model_dump(mode="json", exclude={"ctx_size"})  # the chunk size is the corpus's ctx_size
    return (model_sha, base_sha, corpus.sha256, corpus.ctx_size, corpus.chunks, json.dumps(settings, sort_keys=True),
            llama.build_key)


def logits_name(plan: KldPlan, base_info: ModelInfo, corpus_sha: str) -> str:
    return f"{(base_info.sha256 or '')[:16]}-{corpus_sha[:16]}-c{plan.ctx_size}-n{plan.chunks}-b{plan.batch_size}.kld"


def ensure_base_logits(plan: KldPlan, tools: LlamaTools, base_path: Path, base_info: ModelInfo, corpus_sha: str,
                       n_chunk: int) -> tuple[Path, PassResult | None]:
    """The cached base-logits file (computing it when missing) and the pass that produced it, if any.

    The size (bytes) is predicted from ctx_size, chunks and n_vocab before the pass; a disk without room
    for it stops the run before anything starts.
    """
    final = cache_dir("kld-logits") / logits_name(plan, base_info, corpus_sha)
    if not base_info.n_vocab:
        raise CollectorError(f"{base_path}: the GGUF has no tokenizer.ggml.tokens; a KLD base needs a vocabulary")
    expected = logits_size_bytes(plan.ctx_size, n_chunk, base_info.n_vocab)
    if final.is_file() and final.stat().st_size == expected:
        return final, None
    check_free_space(final.parent, expected, f"the base logits of {base_path.name} ({n_chunk} chunks)")
    part = part_path(final)
    try:
        result = run_base_pass(tools, base_path, plan.corpus_path, part, plan.config, chunks=plan.chunks,
                               expected_bytes=expected, timeout_s=plan.timeout_s)
        os.replace(part, final)  # only a finished, full-size file ever carries the final name
    finally:
        part.unlink(missing_ok=True)
    return final, result


@dataclass
class _Size:
    """One context size of a KLD section: its settings, its corpus block and the jobs scored at it."""

    plan: KldPlan
    corpus: Corpus
    n_chunk: int
    jobs: list[Job]
    logits: Path

    @property
    def ctx(self) -> int:
        return self.plan.ctx_size


def run_kld_plan(kld_plan: KldPlan, *, tools: LlamaTools, data_dir: Path, force: bool = False,
                 observer: Observer | None = None, keep_logits: bool | None = None,
                 plan_ref: PlanRef | None = None) -> list[Path]:
    """Run a plan's kld section; returns the record files written (ok and failed).

    Quants already recorded with the same quant, base and corpus sha256, config and llama.cpp version are
    skipped unless `force`. A failed pass gives a failed record and the next quant runs; a failed base pass
    gives a failed record for every pending quant of its context size. Problems found before any pass (disk
    space for every base-logits file still to compute, corpus too short, unknown model) raise CollectorError.
    With several context sizes, the quants are scored at the first and the KV-cache types at each; the base
    logits are computed once per size. `keep_logits` (None = the plan's keep_logits) decides whether the base
    logits stay in the cache for later runs.
    """
    observer = observer or NullObserver()
    plan = kld_plan
    t_start = time.perf_counter()
    base_ref, base_path, jobs, _, _ = _models(plan, tools, observer)
    base_info = _facts(base_path, base_ref)
    corpus_sha = sha256_files([plan.corpus_path])
    tokens = count_tokens(tools, base_path, plan.corpus_path)
    sizes: list[_Size] = []
    for k, ctx in enumerate(plan.sizes):
        sub = plan.at(ctx)
        n_chunk = min(sub.chunks, tokens // ctx)
        if tokens < 2 * ctx or scored_tokens(ctx, n_chunk) < MIN_SCORED_TOKENS:
            raise CollectorError(f"{plan.where}: kld: corpus {plan.corpus_path.name} has {tokens} tokens, which at "
                                 f"ctx_size {ctx} scores {scored_tokens(ctx, max(n_chunk, 0))} "
                                 f"(llama-perplexity needs {MIN_SCORED_TOKENS} and 2 x ctx_size tokens); "
                                 "use a longer corpus or a smaller ctx_size")
        corpus = Corpus(name=plan.corpus_name, sha256=corpus_sha, tokens=n_chunk * ctx, ctx_size=ctx, chunks=n_chunk)
        logits = cache_dir("kld-logits") / logits_name(sub, base_info, corpus_sha)
        sizes.append(_Size(sub, corpus, n_chunk, jobs if k == 0 else [j for j in jobs if j.is_kv_variant], logits))
    llama = tools.version()
    host = _host()
    done = set() if force else _done_keys(data_dir)

    def config(size: _Size, job: Job) -> LlamaConfig:
        return size.plan.config.model_copy(update={"cache_type_k": job.cache_type_k,
                                                   "cache_type_v": job.cache_type_v})

    total = sum(len(size.jobs) for size in sizes)
    pending: list[tuple[_Size, list[tuple[int, Job, ModelInfo]]]] = []
    i = 0
    for size in sizes:
        todo = []
        for job in size.jobs:
            i += 1
            info = base_info if job.path == base_path else _facts(job.path, job.ref)
            if _key(info.sha256, base_info.sha256, size.corpus, config(size, job), llama) in done:
                observer.run_finished(i, total, "skipped", None, f"{_label(job, size, sizes)}: already recorded")
            else:
                todo.append((i, job, info))
        if todo:
            pending.append((size, todo))
    paths: list[Path] = []
    if not pending:
        return paths
    _check_logits_room([size for size, _ in pending], base_info, base_path)

    for size, todo in pending:
        paths += _score_size(size, todo, sizes, total, config, tools=tools, base_path=base_path,
                             base_info=base_info, corpus_sha=corpus_sha, host=host, llama=llama, plan_ref=plan_ref,
                             data_dir=data_dir, observer=observer)
        if not (plan.keep_logits if keep_logits is None else keep_logits):
            size.logits.unlink(missing_ok=True)
    observer.message(f"kld: {len(paths)} records in {time.perf_counter() - t_start:.1f} s")
    return paths


def _label(job: Job, size: _Size, sizes: list[_Size]) -> str:
    return job.label if len(sizes) == 1 else f"{job.label} at ctx {size.ctx}"


def _check_logits_room(sizes: list[_Size], base_info: ModelInfo, base_path: Path) -> None:
    """Every base-logits file still to compute must fit on the cache's disk together, checked before any pass."""
    if not base_info.n_vocab:
        raise CollectorError(f"{base_path}: the GGUF has no tokenizer.ggml.tokens; a KLD base needs a vocabulary")
    missing = [(s, logits_size_bytes(s.ctx, s.n_chunk, base_info.n_vocab)) for s in sizes]
    missing = [(s, n) for s, n in missing if not (s.logits.is_file() and s.logits.stat().st_size == n)]
    if missing:
        what = " + ".join(f"ctx {s.ctx} x {s.n_chunk} chunks" for s, _ in missing)
        check_free_space(cache_dir("kld-logits"), sum(n for _, n in missing),
                         f"the base logits of {base_path.name} ({what})")


def _score_size(size: _Size, todo: list[tuple[int, Job, ModelInfo]], sizes: list[_Size], total: int,
                config: Any, *, tools: LlamaTools, base_path: Path, base_info: ModelInfo, corpus_sha: str, host: Host,
                llama: LlamaCpp, plan_ref: PlanRef | None, data_dir: Path, observer: Observer) -> list[Path]:
    """The base logits at one context size (computed or cached), then one pass and one record per pending job."""
    plan = size.plan
    base_cmd = portable_argv(base_pass_argv(tools, base_path, plan.corpus_path, size.logits, plan.config,
                                            size.n_chunk),
                             {str(base_path): "{base_model}", str(plan.corpus_path): "{corpus}",
                              str(size.logits): "{base_logits}"})

    def record(job: Job, info: ModelInfo, **kw: Any) -> Path:
        rec = KldRecord(id=new_id(), created_at=utc_now(),
                        source=Source(type="measured", collector_version=__version__, tool="llama-perplexity"),
                        host=host, llama_cpp=llama, model=info, base_model=base_info, corpus=size.corpus,
                        config=config(size, job), base_command=base_cmd, plan=plan_ref,
                        tags=["kv-cache"] if job.is_kv_variant else [], **kw)
        return save_record(rec, data_dir)

    paths: list[Path] = []
    observer.message(f"kld: base logits of {base_path.name} over {plan.corpus_name} "
                     f"({size.n_chunk} chunks of {size.ctx})")
    try:
        logits, base_pass = ensure_base_logits(plan, tools, base_path, base_info, corpus_sha, size.n_chunk)
    except ToolError as exc:
        for i, job, info in todo:
            path = record(job, info, status="failed",
                          error=ErrorInfo(stage=exc.stage, message=str(exc), log_tail=exc.log_tail))
            observer.run_finished(i, total, "failed", path, str(exc))
            paths.append(path)
        return paths
    timing_base: dict[str, Any] = {"base_seconds": round(base_pass.seconds, 3) if base_pass else None,
                                   "base_cached": base_pass is None}
    for i, job, info in todo:
        label = _label(job, size, sizes)
        observer.run_started(i, total, f"kld {label}")
        try:
            res = run_kld_pass(tools, job.path, logits, config(size, job), timeout_s=plan.timeout_s,
                               expect_vocab=info.n_vocab)
        except ToolError as exc:
            path = record(job, info, status="failed", timing=KldTiming(**timing_base),
                          error=ErrorInfo(stage=exc.stage, message=str(exc), log_tail=exc.log_tail))
            observer.run_finished(i, total, "failed", path, str(exc))
        else:
            cmd = portable_argv(res.argv, {str(job.path): "{model}", str(logits): "{base_logits}"})
            assert res.results is not None
            path = record(job, info, status="ok", command=cmd, results=res.results,
                          timing=KldTiming(seconds=round(res.seconds, 3), **timing_base))
            observer.run_finished(i, total, "ok", path,
                                  f"{label}: mean KLD {res.results.kld_mean:.6f}, "
                                  f"same top p {res.results.same_top_p:.2f} %")
        paths.append(path)
    return paths
