"""`collector tune`: measure this host's way to the fastest llama-server command for one question.

The question: a model, the context the user needs (tokens, or "max": the largest that fits), the filled depth the
speed matters at, a memory budget (MiB of llama.cpp's own buffers: host buffers on a CPU, GPU buffers on a GPU)
and the KV cache types allowed, in order of preference. The search is collector.tune.search (pure policy); its
trials and probes run through collector.tune.lab (real llama-server processes, records in the data dir). This
module reads the question, runs the two together under the host's measurement lock, and writes the tune record:
its question, probes, trials, steps, the default and the chosen configuration and the gain, or, when the search
stopped early, was interrupted or stayed noisy, a failed record with no recommendation.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from collector import __version__
from collector.base.errors import CollectorError, short_repr
from collector.base.files import check_writable
from collector.base.lock import host_lock
from collector.base.progress import NullObserver, Observer
from collector.llama.binaries import LlamaTools
from collector.llama.server import check_config_files, free_port
from collector.llama.tools import term_as_interrupt
from collector.measure.server_run import Bench, bench_for
from collector.models.info import model_facts
from collector.records import store
from collector.records.flags import CACHE_TYPES, MAX_TOKENS, LlamaConfig, server_args
from collector.records.schema import TUNE_TAG, ErrorInfo, Host, LlamaCpp, Source, TuneRecord
from collector.tune.lab import CATEGORY, REPS, SUITE, WARMUP, ServerLab
from collector.tune.search import (
    CTX_STEP,
    N_PREDICT,
    PROMPT_ROOM,
    UBATCHES,
    OutOfTime,
    Question,
    Search,
    gain_of,
)

__all__ = ["N_PREDICT", "PROMPT_ROOM", "Question", "describe", "parse_ctx", "parse_kv", "scope_of", "tune"]


def parse_kv(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in CACHE_TYPES]
    if bad or not kinds:
        raise CollectorError(f"--kv {text!r}: {', '.join(bad) or 'empty'} is not a KV cache type; use a comma-"
                             f"separated list of {', '.join(CACHE_TYPES)}")
    return tuple(dict.fromkeys(kinds))


def parse_ctx(text: str) -> int | Literal["max"]:
    if text.strip().lower() == "max":
        return "max"
    digits = text.strip()
    if not re.fullmatch(r"[0-9]{1,9}", digits) or not CTX_STEP <= int(digits) <= MAX_TOKENS:
        raise CollectorError(f"--ctx {short_repr(text)}: give the context you need in tokens (at least {CTX_STEP}, "
                             f"at most {MAX_TOKENS}) or max")
    return int(digits)


def scope_of(host: Host, llama: LlamaCpp) -> Literal["host", "gpu"]:
    """The budget limits GPU memory when llama.cpp has a GPU to use, else host memory."""
    return "gpu" if host.gpus and llama.backend not in (None, "CPU") else "host"


def default_budget(scope: str, nvml: Any = None) -> tuple[float, str]:
    """(MiB, where it comes from): the host's MemAvailable now, or the GPUs' free memory (NVML)."""
    if scope == "gpu":
        from collector.host import hardware

        free = hardware.free_vram_mib(nvml)
        if free is not None:
            return round(free, 1), "free GPU memory at start (NVML)"
        raise CollectorError("could not read the GPUs' free memory; give --memory-budget MiB")
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return round(int(line.split()[1]) / 1024, 1), "MemAvailable at start (/proc/meminfo)"
    raise CollectorError("could not read MemAvailable from /proc/meminfo; give --memory-budget MiB")


def tune(q: Question, *, tools: LlamaTools, data_dir: Path, observer: Observer | None = None, nvml: Any = None,
         port_picker: Callable[[], int] = free_port, wait: bool = False,
         clock: Callable[[], float] = time.monotonic) -> tuple[TuneRecord, Path]:
    """Run the search, write every trial and the tune record; returns the tune record and its path."""
    check_config_files()
    check_writable(Path(data_dir), "--data-dir")  # before the first load: no trial measured for nothing
    observer = observer or NullObserver()
    with host_lock(f"tune {q.model_path.name}", wait=wait, on_wait=observer.message), term_as_interrupt():
        model = model_facts(q.model_path)
        model.origin = q.model_ref
        bench = bench_for(tools, nvml, port_picker)
        tune_id = store.new_id()
        lab = ServerLab(q, bench, data_dir, model, tune_id, clock)
        search = Search(q, lab, bench.host, model, say_to=observer.message)
        stopped: Literal["done", "time budget", "interrupted"] = "done"
        error: ErrorInfo | None = None
        try:
            search.run()
        except OutOfTime as exc:
            stopped = "time budget"
            search.say(str(exc))
        except KeyboardInterrupt:
            search.say("interrupted (Ctrl-C or SIGTERM): the trials so far are kept")
            _save(search, lab, bench, "interrupted", None)
            raise
        except CollectorError as exc:
            error = ErrorInfo(stage="search", message=str(exc))
        return _save(search, lab, bench, stopped, error)


def _save(t: Search, lab: ServerLab, bench: Bench, stopped: Literal["done", "time budget", "interrupted"],
          error: ErrorInfo | None) -> tuple[TuneRecord, Path]:
    d = t.choice(t.default) if t.default is not None else None
    c = t.choice(t.best) if t.best is not None and t.done else None
    gain = gain_of(t.q, d, c) if d and c else None
    if error is None and d and c and (d.noisy or c.noisy):
        error = ErrorInfo(stage="noisy", message="the host was too busy to compare configurations: every trial of "
                          f"the {'default' if d.noisy else 'best'} configuration was noisy; run the tune again on a "
                          "quiet host (its quiet trials are reused)")
    if error is None and not (d and c and d.records and c.records and gain):
        why = {"time budget": "the time budget ran out", "interrupted": "it was interrupted"}.get(stopped)
        error = ErrorInfo(stage=stopped if why else "search",
                          message=f"the search did not finish ({why or 'a trial failed'}): no recommendation from "
                          "half a search; the trials so far are kept and a re-run reuses them")
    if error is None:  # a re-run over the same records: the answer is already recorded, not written twice
        asked = t.q.schema().model_dump(exclude={"time_budget_s", "budget_source"})
        for old, path in lab.earlier:
            if (old.question.model_dump(exclude={"time_budget_s", "budget_source"}) == asked
                    and (old.default, old.chosen, old.gain) == (d, c, gain)):
                t.say(f"the same answer from the same trials as tune {old.id}: not written again")
                return old, path
    rec = TuneRecord(id=lab.id, created_at=store.utc_now(), status="failed" if error else "ok", error=error,
                     source=Source(type="measured", collector_version=__version__), host=bench.host,
                     llama_cpp=bench.llama, model=lab.model, command=c.command if c and not error else [],
                     plan=lab.plan, tags=[TUNE_TAG], question=t.q.schema(), probes=t.probes, trials=t.trials,
                     steps=t.steps, stopped=stopped, seconds=round(lab.elapsed(), 1), default=d,
                     chosen=c if not error else None, gain=gain if not error else None)
    return rec, store.save_record(rec, lab.data_dir)


def describe(q: Question, host: Host) -> list[str]:
    """What a dry run prints: the question and the search it would make."""
    space = ["flash attention on/off"]
    if q.scope == "host":
        space.append(f"threads (beside the {host.cpu.cores or '?'} physical cores llama.cpp uses by default)")
    elif len(host.gpus) > 1:
        space.append("split mode row (beside layer, the default)")
    space.append("ubatch " + "/".join(str(u) for u in UBATCHES) + " (default 512)")
    ctx = "the largest context that fits (bisection in steps of 256)" if q.ctx == "max" else f"ctx {q.ctx}"
    gpu = "; offload boundary (--n-cpu-moe for MoE models, -ngl for dense) by bisection" if q.scope == "gpu" else ""
    return [f"question: {ctx}, speed at depth {q.depth}, {q.objective} ranks; budget {q.budget_mib:g} MiB of "
            f"{q.scope} memory ({q.budget_source}); time budget {q.time_budget_s / 60:g} min",
            "default: " + " ".join(["llama-server", "-m", "{model}", *server_args(
                LlamaConfig(ctx_size=None if q.ctx == "max" else q.ctx))]),
            f"memory: KV types in order {', '.join(q.kv)}{gpu}",
            "speed, one setting at a time: " + "; ".join(space),
            f"each trial: prompt '{CATEGORY}' of {SUITE} at depth {q.depth}, {N_PREDICT} tokens generated, "
            f"{WARMUP} warmup + {REPS} requests; the best and the default measured twice"]
