"""`collector tune`: measure this host's way to the fastest llama-server command for one question.

The question: a model, the context the user needs (tokens, or "max": the largest that fits), the filled depth the
speed matters at, a memory budget (MiB of llama.cpp's own buffers: host buffers on a CPU, GPU buffers on a GPU)
and the KV cache types allowed, in order of preference. The search (README, "Tuning"):

1. the default: `llama-server -m MODEL [-c C]`, what a user gets (llama.cpp's own fit and defaults), measured
   whatever its memory, as the baseline;
2. memory: the first KV type (in the user's order) that holds the context within the budget; for `--ctx max` the
   largest context any allowed type reaches, found by bisection with loads that only read llama.cpp's buffers
   (probes); on a GPU also the offload boundary (`--n-cpu-moe` for MoE models, `-ngl` for dense ones);
3. speed, one setting at a time from that base: flash attention, threads (CPU), ubatch; a value whose trial beats
   the best's latest is measured again alternately with the best, and kept only when faster beyond noise over
   both pairs. A configuration over the budget stops right after its load (a failed trial, stage `budget`); one
   that an earlier probe or trial already shows over the budget is not started;
4. confirmation: the best and the default measured once more each; the gain is the ratio of their medians with
   the range the medians' 95 % intervals allow.

Every speed trial is a speed record tagged `tune`; earlier tune trials of the same configuration, method, host
and build in the data dir are used, in recorded order, before anything is measured again, so the same records give
the same answer. The search stops before a step the time budget cannot pay for (estimated from the longest step of
its kind so far), and a step still running at the deadline is stopped and not recorded.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from collector import __version__
from collector.errors import CollectorError
from collector.files import work_dir
from collector.llama.binaries import LlamaTools
from collector.llama.flags import CACHE_TYPES, LlamaConfig, quantized_v_without_fa, server_args
from collector.llama.logparse import parse_server_log
from collector.llama.server import ServerProcess, free_port
from collector.llama.tools import ToolError
from collector.lock import host_lock
from collector.plan import RunSpec, SpeedSettings
from collector.progress import NullObserver, Observer
from collector.prompts import PromptSuite, load_suite
from collector.publish.history import STEP, median_band
from collector.records import store
from collector.records.index import load_index
from collector.records.schema import (
    TUNE_TAG,
    ErrorInfo,
    Host,
    LlamaCpp,
    ModelInfo,
    PlanRef,
    Source,
    SpeedRecord,
    Stat,
    TuneChoice,
    TuneGain,
    TuneProbe,
    TuneQuestion,
    TuneRecord,
)

# How each trial measures: one prompt of the coding suite at the question's depth, greedy, a warmup request, then
# REPS requests (screening) - the confirmation adds as many again for the best and the default.
SUITE, CATEGORY, N_PREDICT, REPS, WARMUP, SEED = "coding-v1", "algorithm", 64, 2, 1, 42
PROMPT_ROOM = 512  # tokens the prompt needs beside the depth (the suite's prompts are 150-400 tokens)
CTX_STEP = 256  # libllama pads n_ctx to a multiple of 256: the context bisection's resolution
UBATCHES = (256, 1024)  # tried beside llama.cpp's default of 512
KV_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32,
            "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32}  # bytes per element: KV memory order
TAG = TUNE_TAG


@dataclass(frozen=True)
class Question:
    model_ref: str
    model_path: Path
    ctx: int | Literal["max"]
    depth: int
    budget_mib: float
    budget_source: str
    scope: Literal["host", "gpu"]
    kv: tuple[str, ...]
    objective: Literal["tg", "pp"]
    time_budget_s: float

    def schema(self) -> TuneQuestion:
        return TuneQuestion(ctx=self.ctx, depth=self.depth, memory_budget_mib=self.budget_mib,
                            budget_source=self.budget_source, memory_scope=self.scope, kv=list(self.kv),
                            objective=self.objective, time_budget_s=self.time_budget_s)


class OutOfTime(Exception):
    """The next step would not finish within the time budget."""


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
    if not text.strip().isdigit() or int(text) < CTX_STEP:
        raise CollectorError(f"--ctx {text!r}: give the context you need in tokens (at least {CTX_STEP}) or max")
    return int(text)


def scope_of(host: Host, llama: LlamaCpp) -> Literal["host", "gpu"]:
    """The budget limits GPU memory when llama.cpp has a GPU to use, else host memory."""
    return "gpu" if host.gpus and llama.backend not in (None, "CPU") else "host"


def default_budget(scope: str, nvml: Any = None) -> tuple[float, str]:
    """(MiB, where it comes from): the host's MemAvailable now, or the GPUs' free memory (NVML)."""
    if scope == "gpu":
        from collector import hardware

        free = hardware.free_vram_mib(nvml)
        if free is not None:
            return round(free, 1), "free GPU memory at start (NVML)"
        raise CollectorError("could not read the GPUs' free memory; give --memory-budget MiB")
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return round(int(line.split()[1]) / 1024, 1), "MemAvailable at start (/proc/meminfo)"
    raise CollectorError("could not read MemAvailable from /proc/meminfo; give --memory-budget MiB")


def key_of(config: LlamaConfig) -> str:
    return config.model_dump_json(exclude_none=True)


def with_(config: LlamaConfig, **changes: Any) -> LlamaConfig:
    return config.model_copy(update=changes)


def smaller_or_equal(a: LlamaConfig, b: LlamaConfig, ctx_default: int | None = None) -> bool:
    """Whether `a` needs no more memory than `b` by llama.cpp's rules: the same but for a context, KV types and
    ubatch each no larger (an unset ctx is `ctx_default`, the model's training context, when known)."""
    keep = ("n_gpu_layers", "n_cpu_moe", "flash_attn", "batch_size", "parallel", "tensor_split", "split_mode",
            "extra_args")  # threads change no buffer
    if any(getattr(a, k) != getattr(b, k) for k in keep):
        return False
    ca, cb = a.ctx_size or ctx_default, b.ctx_size or ctx_default
    if ca is None or cb is None:
        if (a.ctx_size is None) != (b.ctx_size is None):
            return False
    elif ca > cb:
        return False
    if KV_BYTES[a.cache_type_k or "f16"] > KV_BYTES[b.cache_type_k or "f16"] or \
            KV_BYTES[a.cache_type_v or "f16"] > KV_BYTES[b.cache_type_v or "f16"]:
        return False
    return (a.ubatch_size or 512) <= (b.ubatch_size or 512)


def bisect_largest(lo: int, hi: int, fits: Callable[[int], bool | None], step: int = 1) -> int | None:
    """The largest multiple of `step` in [lo, hi] for which fits() holds, given fits is monotone (true up to a
    boundary); None when even lo does not fit. `fits` returning None (a failed load) counts as not fitting."""
    lo, hi = math.ceil(lo / step), hi // step
    if lo > hi or not fits(lo * step):
        return None
    if fits(hi * step):
        return hi * step
    while hi - lo > 1:  # fits(lo) and not fits(hi)
        mid = (lo + hi) // 2
        if fits(mid * step):
            lo = mid
        else:
            hi = mid
    return lo * step


def bisect_smallest(lo: int, hi: int, fits: Callable[[int], bool | None]) -> int | None:
    """The smallest value in [lo, hi] for which fits() holds, given fits is monotone (false up to a boundary)."""
    if lo > hi or not fits(hi):
        return None
    if fits(lo):
        return lo
    while hi - lo > 1:  # not fits(lo) and fits(hi)
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


def is_noisy(rec: SpeedRecord) -> bool:
    return bool(rec.conditions and rec.conditions.noisy)


def noisy(records: list[SpeedRecord]) -> bool:
    """Only noisy trials: figures a recommendation may not rest on."""
    return bool(records) and all(is_noisy(r) for r in records)


def used(records: list[SpeedRecord]) -> list[SpeedRecord]:
    """The trials a configuration's figures come from: the quiet ones, or every one when all are noisy."""
    return [r for r in records if not is_noisy(r)] or list(records)


def samples_at(records: list[SpeedRecord], depth: int, what: str) -> list[float]:
    return [v for r in records for s in r.samples if s.depth_tokens == depth for v in getattr(s, what)]


@dataclass
class Tuner:
    q: Question
    tools: LlamaTools
    data_dir: Path
    host: Host
    llama: LlamaCpp
    model: ModelInfo
    observer: Observer = field(default_factory=NullObserver)
    nvml: Any = None
    port_picker: Callable[[], int] = free_port
    clock: Callable[[], float] = time.monotonic
    id: str = field(default_factory=store.new_id)
    probes: list[TuneProbe] = field(default_factory=list)
    trials: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    measured: dict[str, list[SpeedRecord]] = field(default_factory=dict)  # run key -> ok trials, in time order
    cursor: dict[str, int] = field(default_factory=dict)  # run key -> how many of them this search has used
    memory: dict[str, tuple[float | None, bool | None, str]] = field(default_factory=dict)  # config -> (MiB, fits, by)
    longest: dict[str, float] = field(default_factory=dict)  # "probe"/"trial" -> longest seconds so far
    t0: float = 0.0
    earlier: list[tuple[TuneRecord, Path]] = field(default_factory=list)  # ok tunes already in the data dir
    default: LlamaConfig | None = None  # set as the search reaches them
    best: LlamaConfig | None = None
    done: bool = False

    def __post_init__(self) -> None:
        self.suite: PromptSuite = load_suite(SUITE, (CATEGORY,))
        self.settings = SpeedSettings(prompt_suite=SUITE, categories=(CATEGORY,), depths=(self.q.depth,),
                                      n_predict=N_PREDICT, repetitions=REPS, warmup=WARMUP, seed=SEED)
        self.plan = PlanRef(name=f"tune {self.id}", settings={"depths": [self.q.depth], "tune": self.id,
                                                               **self.q.schema().model_dump(mode="json")})
        self.t0 = self.clock()
        self._reuse()

    # ---- bookkeeping ----

    def say(self, text: str) -> None:
        self.steps.append(text)
        self.observer.message(text)

    def _reuse(self) -> None:
        """What earlier tunes of this model on this host and build measured in the data dir: ok trials by run key
        (they count as measured), and the memory of probes and of trials stopped over a budget (llama.cpp's buffers
        for a configuration do not change between runs; whether they fit is judged against this tune's budget)."""
        if not (self.data_dir / "records").is_dir():
            return
        from collector.runner import _record_key

        device = store.device_slug(self.host)
        for path, rec in load_index(self.data_dir).records.items():
            if not (TAG in rec.tags and rec.measured and rec.model.sha256 == self.model.sha256
                    and rec.llama_cpp.build_key == self.llama.build_key and store.device_slug(rec.host) == device):
                continue
            if isinstance(rec, SpeedRecord) and rec.status == "ok":
                self.measured.setdefault(_record_key(rec), []).append(rec)
            elif isinstance(rec, SpeedRecord) and rec.error and rec.error.stage == "budget":
                self._note_memory(rec.config, rec.memory_mib.used_mib(self.q.scope), f"trial {rec.id}")
            elif isinstance(rec, TuneRecord) and rec.question.memory_scope == self.q.scope:
                if rec.status == "ok":
                    self.earlier.append((rec, path))
                for p in rec.probes:
                    if p.fits is not None and p.memory_mib is not None and not p.error:
                        self._note_memory(p.config, p.memory_mib, f"a probe of tune {rec.id}")
        for recs in self.measured.values():
            recs.sort(key=lambda r: (r.created_at, r.id))

    def _key(self, config: LlamaConfig) -> str:
        from collector.runner import _run_key

        return _run_key(config, 1, False, [self.q.depth], N_PREDICT, self.suite.sha256, [CATEGORY])

    def _afford(self, kind: str) -> None:
        elapsed = self.clock() - self.t0
        if elapsed + self.longest.get(kind, 0.0) > self.q.time_budget_s:
            raise OutOfTime(f"stopped at the time budget: {elapsed:.0f} s of {self.q.time_budget_s:.0f} s spent, "
                            f"the next {kind} would take about {self.longest.get(kind, 0.0):.0f} s more")

    def _timed(self, kind: str, started: float) -> None:
        self.longest[kind] = max(self.longest.get(kind, 0.0), self.clock() - started)

    def _left(self) -> float:
        return max(self.q.time_budget_s - (self.clock() - self.t0), 1.0)

    def _past_deadline(self, what: str) -> None:
        """A step cut off by the deadline is not recorded: it measured nothing whole."""
        if self.clock() - self.t0 > self.q.time_budget_s:
            raise OutOfTime(f"stopped at the time budget ({self.q.time_budget_s:.0f} s) during {what}, which is not "
                            "recorded")

    def command(self, config: LlamaConfig) -> list[str]:
        return ["llama-server", "-m", "{model}", *server_args(config)]

    def over_budget_by(self, config: LlamaConfig) -> str | None:
        """An earlier probe or trial of a configuration needing no more memory than this one that was over the
        budget: this one is too (llama.cpp's buffers grow with context, KV type size and ubatch)."""
        for key, (mib, fits, by) in self.memory.items():
            if fits is False and smaller_or_equal(LlamaConfig.model_validate_json(key), config, self.model.ctx_train):
                return f"{by} needed {mib:g} MiB with no more context, KV or ubatch than this"
        return None

    def _note_memory(self, config: LlamaConfig, mib: float | None, by: str) -> bool | None:
        fits = None if mib is None else mib <= self.q.budget_mib
        self.memory[key_of(config)] = (mib, fits, by)
        return fits

    # ---- probes and trials ----

    def probe(self, config: LlamaConfig, why: str) -> bool | None:
        """Load `config`, read llama.cpp's buffers from the log, stop: does it fit? (None: the load failed)"""
        known = self.memory.get(key_of(config))
        if known is not None:
            self.say(f"probe ({why}): {' '.join(server_args(config)) or 'defaults'}: {known[0]} MiB, "
                     f"{'fits' if known[1] else 'over'} the budget (known from {known[2]})")
            return known[1]
        over = self.over_budget_by(config)
        if over:
            self.say(f"probe ({why}): {' '.join(server_args(config))}: over the budget ({over}), not loaded")
            return False
        self._afford("probe")
        started = self.clock()
        error = shrunk = mib = None
        with work_dir("tune") as work:
            server = ServerProcess(self.tools.path("llama-server"), self.q.model_path, server_args(config),
                                   log_dir=Path(work), port_picker=self.port_picker, load_timeout_s=self._left())
            try:
                with server:
                    mib, shrunk = self._loaded(server, config)
            except CollectorError as exc:
                error = str(exc)
        self._past_deadline("a probe")
        self._timed("probe", started)
        by = f"probe {len(self.probes) + 1}"
        fits: bool | None = None
        if shrunk:
            self.memory[key_of(config)] = (mib, False, by)
            fits = False
        elif not error:
            fits = self._note_memory(config, mib, by)
        self.probes.append(TuneProbe(config=config, command=self.command(config), memory_mib=mib, fits=fits,
                                     error=error or shrunk, why=why))
        verdict = f"load failed: {error}" if error else shrunk or (
            f"{mib} MiB, {'fits' if fits else 'over'} the {self.q.budget_mib:g} MiB budget")
        self.say(f"probe {len(self.probes)} ({why}): {' '.join(server_args(config)) or 'defaults'}: {verdict}")
        return fits

    def _loaded(self, server: ServerProcess, config: LlamaConfig) -> tuple[float | None, str | None]:
        """What a loaded server's log says: llama.cpp's buffers in the budget's scope (MiB), and why the context
        does not count as fitting when llama.cpp's fit shrank it (None: it did not)."""
        facts = parse_server_log(server.log_text())
        n_ctx = facts.placement.n_ctx
        shrunk = (f"llama.cpp's fit reduced the context from {config.ctx_size} to {n_ctx} (not enough memory)"
                  if config.ctx_size and n_ctx and n_ctx < config.ctx_size else None)
        return facts.memory.used_mib(self.q.scope), shrunk

    def take(self, config: LlamaConfig, why: str, *, enforce_budget: bool = True) -> SpeedRecord | None:
        """The configuration's next trial: the next quiet recorded one this search has not used yet, else a new
        measurement, and one more when that is noisy. Returns the trial (noisy when both new ones were), or None
        when the configuration is over the budget or failed. The search uses each configuration's quiet trials in
        the order recorded, so a re-run over the same records takes the same trials for the same decisions; noisy
        recorded trials are passed over, so a re-run on a quiet host measures what was noisy before."""
        key = self._key(config)
        have = self.measured.setdefault(key, [])
        flags = " ".join(server_args(config)) or "defaults"
        pos = self.cursor.get(key, 0)
        while pos < len(have) and is_noisy(have[pos]):
            pos += 1
        if pos < len(have):
            rec = have[pos]
            self.cursor[key] = pos + 1
            self.say(f"trial ({why}): {flags}: already measured ({self._figure([rec])}, {rec.id}), reused")
            if key_of(config) not in self.memory:
                self._note_memory(config, rec.memory_mib.used_mib(self.q.scope), f"trial {rec.id}")
            if rec.id not in self.trials:
                self.trials.append(rec.id)
            return rec
        over = self.over_budget_by(config) if enforce_budget else None
        if over:
            self.say(f"skipped ({why}): {flags}: over the budget ({over})")
            return None
        for _ in range(2):
            rec = self._trial(config, why, enforce_budget)
            if rec.status != "ok":
                return None
            have.append(rec)
            self.cursor[key] = len(have)
            if not is_noisy(rec):
                break
        return rec

    def taken(self, config: LlamaConfig) -> list[SpeedRecord]:
        """The trials of the configuration this search has used, quiet ones only unless all were noisy."""
        key = self._key(config)
        return used(self.measured.get(key, [])[:self.cursor.get(key, 0)])

    def _trial(self, config: LlamaConfig, why: str, enforce_budget: bool) -> SpeedRecord:
        from collector import hardware
        from collector.runner import _one_run

        self._afford("trial")
        started = self.clock()
        left = self._left()  # the server is stopped at the deadline: a trial never runs past the time budget
        spec = RunSpec(model_ref=self.q.model_ref, model_path=self.q.model_path, config=config,
                       speed=dataclasses.replace(self.settings, load_timeout_s=left, request_timeout_s=left),
                       plan=self.plan)
        budget = self.q.budget_mib
        deadline: list[threading.Timer] = []

        def check(server: ServerProcess) -> None:
            # SIGKILL after 0.5 s: on SIGTERM llama-server would finish the request under way first
            deadline.append(threading.Timer(max(self.q.time_budget_s - (self.clock() - self.t0), 0.0), server.stop,
                                            kwargs={"grace_s": 0.5}))
            deadline[0].start()
            mib, shrunk = self._loaded(server, config)
            if shrunk:
                raise ToolError(shrunk, "budget", server.log_tail())
            if enforce_budget and mib is not None and mib > budget:
                raise ToolError(f"llama.cpp's buffers need {mib:g} MiB of {self.q.scope} memory, over the tune's "
                                f"budget of {budget:g} MiB; not measured", "budget", server.log_tail())

        try:
            with work_dir("tune") as work:
                rec, _ = _one_run(spec, self.tools.path("llama-server"), self.tools, Path(work), self.host,
                                  self.llama, self.model, self.suite, self.port_picker, hardware, self.nvml,
                                  after_load=check)
        finally:
            for timer in deadline:
                timer.cancel()
        self._past_deadline("a trial")
        rec.tags = [TAG, f"tune:{self.id}"]
        store.save_record(rec, self.data_dir)
        self._timed("trial", started)
        self.trials.append(rec.id)
        mib = rec.memory_mib.used_mib(self.q.scope)
        self._note_memory(config, mib, f"trial {rec.id}")
        flags = " ".join(server_args(config)) or "defaults"
        if rec.status == "ok":
            noisy = " (noisy: " + "; ".join(rec.conditions.reasons) + ")" if rec.conditions and rec.conditions.noisy \
                else ""
            self.say(f"trial ({why}): {flags}: {self._figure([rec])}, {mib if mib is not None else '?'} MiB{noisy}")
        else:
            assert rec.error is not None
            self.say(f"trial ({why}): {flags}: {rec.error.stage}: {rec.error.message}")
        return rec

    def median(self, recs: list[SpeedRecord]) -> float:
        values = samples_at(recs, self.q.depth, f"{self.q.objective}_tps")
        return statistics.median(values) if values else 0.0

    def _figure(self, recs: list[SpeedRecord]) -> str:
        n = len(samples_at(recs, self.q.depth, f"{self.q.objective}_tps"))
        return f"{self.q.objective} {self.median(recs):.1f} t/s (n={n})" if n else "no samples"

    # ---- the search ----

    def default_config(self) -> LlamaConfig:
        return LlamaConfig(ctx_size=None if self.q.ctx == "max" else self.q.ctx)

    def memory_base(self) -> LlamaConfig | None:
        """The first KV type (user's order) that holds the context within the budget; for ctx max, the largest
        context any type reaches (bisection), then the first type reaching it. None: nothing fits."""
        need = math.ceil((self.q.depth + PROMPT_ROOM + N_PREDICT) / CTX_STEP) * CTX_STEP
        offload = self.offload_base()

        def cfg(kv: str, ctx: int, **extra: Any) -> LlamaConfig:
            kv_set = None if kv == "f16" else kv
            return with_(offload, ctx_size=ctx, cache_type_k=kv_set, cache_type_v=kv_set, **extra)

        if self.q.ctx == "max":
            top = self.model.ctx_train or 131072
            best: dict[str, int] = {}
            for kv in self.q.kv:
                if best and max(best.values()) == top:
                    self.say(f"{kv}: not probed, {', '.join(best)} already reaches the training context {top}")
                    break
                def fits(c: int, kv: str = kv) -> bool | None:
                    return self.probe(cfg(kv, c), f"largest context, {kv}")

                got = bisect_largest(need, top, fits, CTX_STEP)
                if got is not None:
                    best[kv] = got
                    self.say(f"{kv}: the largest context within the budget is {got}")
                else:
                    self.say(f"{kv}: not even {need} tokens of context fit the budget")
            if not best:
                return None
            ctx = max(best.values())
            kv = next(k for k in self.q.kv if best.get(k) == ctx)
            self.say(f"memory: ctx {ctx} with {kv} KV (the largest context within the budget; the first type of "
                     "--kv reaching it)")
            return cfg(kv, ctx)
        for kv in self.q.kv:
            for ub in (None, 256, 128):
                c = cfg(kv, self.q.ctx, ubatch_size=ub)
                if self.probe(c, f"ctx {self.q.ctx} with {kv} KV" + (f", ubatch {ub}" if ub else "")):
                    self.say(f"memory: ctx {self.q.ctx} fits with {kv} KV" + (f" and ubatch {ub}" if ub else ""))
                    return c
        return None

    def offload_base(self) -> LlamaConfig:
        """On a GPU: the offload boundary at the question's context with f16 KV - MoE models keep all layers on
        the GPU and move the fewest layers' experts to the CPU (--n-cpu-moe); dense models put the most layers on
        the GPU (-ngl). On the CPU: nothing to offload."""
        if self.q.scope != "gpu" or not self.model.n_layers:
            return LlamaConfig()
        n = self.model.n_layers
        ctx = self.q.ctx if self.q.ctx != "max" else None
        if self.model.moe:
            got = bisect_smallest(0, n, lambda k: self.probe(LlamaConfig(ctx_size=ctx, n_gpu_layers="all",
                                                                        n_cpu_moe=k or None), "MoE offload"))
            if got is not None:
                self.say(f"offload: --n-cpu-moe {got} is the fewest expert layers on the CPU within the budget")
                return LlamaConfig(n_gpu_layers="all", n_cpu_moe=got or None)
        else:
            got = bisect_largest(0, n + 1, lambda k: self.probe(LlamaConfig(ctx_size=ctx, n_gpu_layers=k), "offload"))
            if got is not None:
                self.say(f"offload: -ngl {got} is the most layers on the GPU within the budget")
                return LlamaConfig(n_gpu_layers=got)
        self.say("offload: no offload within the budget; llama.cpp's own fit decides")
        return LlamaConfig()

    def candidates(self, dim: str, best: LlamaConfig, default_fa: bool | None) -> list[tuple[str, LlamaConfig]]:
        """(why, config) for the values of one setting other than the best's: flash attention (the default's
        resolved value is what `auto` gave), threads (CPU; llama.cpp's default is the physical cores), split mode
        (several GPUs), ubatch."""
        if dim == "flash_attn":
            now = best.flash_attn or ("on" if default_fa else "off" if default_fa is False else None)
            return [(f"flash attention {fa}", with_(best, flash_attn=fa)) for fa in ("on", "off") if fa != now]
        if dim == "threads":
            if self.q.scope != "host":
                return []
            cores = self.host.cpu.cores or 1
            values = {max(1, cores // 2), cores, self.host.cpu.threads or cores} - {best.threads or cores}
            return [(f"{t} threads", with_(best, threads=t)) for t in sorted(values)]
        if dim == "split_mode":  # several GPUs: rows of each layer across them, beside whole layers (the default)
            several = self.q.scope == "gpu" and len(self.host.gpus) > 1
            return [("split mode row", with_(best, split_mode="row"))] if several and best.split_mode is None else []
        return [(f"ubatch {ub}", with_(best, ubatch_size=ub)) for ub in (*UBATCHES, 512)
                if ub != (best.ubatch_size or 512)]

    def search(self) -> None:
        """The default measured, the memory base, one setting at a time, then the confirmation; `default` and
        `best` say how far it got when it stops early."""
        self.default = default = self.default_config()
        self.say(f"default: {' '.join(self.command(default))} (what llama.cpp picks), measured as the baseline")
        d = self.take(default, "the default", enforce_budget=False)
        if d is None:
            raise CollectorError("the default command failed; see its failed record")
        base = self.memory_base()
        if base is None:
            raise CollectorError(f"no configuration fits the {self.q.budget_mib:g} MiB budget; raise --memory-budget, "
                                 "allow smaller KV types (--kv) or ask for less context")
        last = self.take(base, "memory base")  # the best's most recent trial
        if last is None:
            raise CollectorError("the configuration that fits the budget failed to run; see its failed record")
        self.best = best = base
        for dim in ("flash_attn", "threads", "split_mode", "ubatch_size"):
            for why, cand in self.candidates(dim, best, d.placement.flash_attn):
                if quantized_v_without_fa(cand):
                    self.say(f"skipped ({why}): llama.cpp refuses a quantized V cache without flash attention")
                    continue
                first = self.take(cand, why)
                if first is not None and is_noisy(first):
                    self.say(f"not kept {why}: its trials were noisy")
                if first is None or is_noisy(first) or self.median([first]) <= self.median([last]):
                    continue
                # a challenger: the best and it measured again, back to back, so that a host whose speed drifts
                # between trials does not crown whichever ran later; kept when more than 5 % faster over both pairs
                again = self.take(best, f"the best again, against {why}")
                second = self.take(cand, f"{why} again")
                if again is None or second is None or any(map(is_noisy, (first, second, again, last))):
                    self.say(f"not kept {why}: a trial of the comparison was noisy or failed")
                    last = again or last
                    continue
                metric = f"{self.q.objective}_tps"
                new, old = samples_at([first, second], self.q.depth, metric), samples_at([last, again], self.q.depth,
                                                                                          metric)
                words = (f"{statistics.median(new):.1f} against {statistics.median(old):.1f} t/s, two trials each "
                         "measured alternately")
                if faster_beyond_noise(new, old):
                    self.say(f"kept {why}: {words}")
                    self.best, best, last = cand, cand, second
                else:
                    self.say(f"not kept {why}: {words}, not faster beyond noise (95 % intervals of the medians apart "
                             f"and more than {STEP * 100:g} %)")
                    last = again
        self.take(best, "confirm the best")
        self.take(default, "confirm the default", enforce_budget=False)
        self.done = True

    def choice(self, config: LlamaConfig) -> TuneChoice:
        recs = self.taken(config)
        obj = samples_at(recs, self.q.depth, f"{self.q.objective}_tps")
        lo, hi = median_band(obj) if obj else (None, None)
        mib, fits, _ = self.memory.get(key_of(config), (None, None, ""))
        def stat(what: str) -> Stat | None:
            return Stat.of(samples_at(recs, self.q.depth, what), digits=2)

        return TuneChoice(config=config, command=self.command(config), records=[r.id for r in recs],
                          memory_mib=mib, fits=fits, noisy=noisy(recs), tg_tps=stat("tg_tps"), pp_tps=stat("pp_tps"),
                          band_low=lo, band_high=hi)


def faster_beyond_noise(new: list[float], old: list[float]) -> bool:
    """The same test as the gain's and the history pages': the medians' 95 % intervals do not overlap and the
    median is more than 5 % higher."""
    if not new or not old:
        return False
    return median_band(new)[0] > median_band(old)[1] and statistics.median(new) > statistics.median(old) * (1 + STEP)


def gain_of(q: Question, default: TuneChoice, chosen: TuneChoice) -> TuneGain | None:
    d = getattr(default, f"{q.objective}_tps")
    c = getattr(chosen, f"{q.objective}_tps")
    if not (d and c and d.median and c.median and default.band_low and default.band_high and chosen.band_low
            and chosen.band_high):
        return None
    pct = (c.median / d.median - 1) * 100
    low = (chosen.band_low / default.band_high - 1) * 100
    high = (chosen.band_high / default.band_low - 1) * 100
    apart = chosen.band_low > default.band_high or chosen.band_high < default.band_low
    return TuneGain(metric=q.objective, pct=round(pct, 2), low_pct=round(low, 2), high_pct=round(high, 2),
                    beyond_noise=apart and abs(pct) > STEP * 100)


def tune(q: Question, *, tools: LlamaTools, data_dir: Path, observer: Observer | None = None, nvml: Any = None,
         port_picker: Callable[[], int] = free_port, wait: bool = False,
         clock: Callable[[], float] = time.monotonic) -> tuple[TuneRecord, Path]:
    """Run the search, write every trial and the tune record; returns the tune record and its path."""
    from collector import hardware
    from collector.files import check_writable
    from collector.llama.server import check_config_files
    from collector.model_info import model_facts
    from collector.runner import term_as_interrupt

    check_config_files()
    check_writable(Path(data_dir), "--data-dir")  # before the first load: no trial measured for nothing
    observer = observer or NullObserver()
    with host_lock(f"tune {q.model_path.name}", wait=wait, on_wait=observer.message), term_as_interrupt():
        host = hardware.probe_host(nvml)
        llama = tools.version()
        model = model_facts(q.model_path)
        model.origin = q.model_ref
        t = Tuner(q, tools, data_dir, host, llama, model, observer, nvml, port_picker, clock)
        stopped: Literal["done", "time budget", "interrupted"] = "done"
        error: ErrorInfo | None = None
        try:
            t.search()
        except OutOfTime as exc:
            stopped = "time budget"
            t.say(str(exc))
        except KeyboardInterrupt:
            t.say("interrupted (Ctrl-C or SIGTERM): the trials so far are kept")
            _save(t, "interrupted", None, clock)
            raise
        except CollectorError as exc:
            error = ErrorInfo(stage="search", message=str(exc))
        return _save(t, stopped, error, clock)


def _save(t: Tuner, stopped: Any, error: ErrorInfo | None, clock: Callable[[], float]) -> tuple[TuneRecord, Path]:
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
        for old, path in t.earlier:
            if (old.question.model_dump(exclude={"time_budget_s", "budget_source"}) == asked
                    and (old.default, old.chosen, old.gain) == (d, c, gain)):
                t.say(f"the same answer from the same trials as tune {old.id}: not written again")
                return old, path
    rec = TuneRecord(id=t.id, created_at=store.utc_now(), status="failed" if error else "ok", error=error,
                     source=Source(type="measured", collector_version=__version__), host=t.host, llama_cpp=t.llama,
                     model=t.model, command=c.command if c and not error else [], plan=t.plan, tags=[TAG],
                     question=t.q.schema(), probes=t.probes, trials=t.trials, steps=t.steps, stopped=stopped,
                     seconds=round(clock() - t.t0, 1), default=d, chosen=c if not error else None,
                     gain=gain if not error else None)
    path = store.save_record(rec, t.data_dir)
    return rec, path


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
