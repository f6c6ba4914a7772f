"""The tune's search, pure: what to measure next and what to keep, over a small protocol (a `Lab`).

The lab answers two questions, and knows nothing of the search's policy: `probe(config)` (load it, read
llama.cpp's buffers, stop: memory) and `measure(config)` (a speed trial: figures), plus the trials recorded
before (`reuse`, in recorded order) and the clock. The real lab (collector.tune.lab) holds the processes, timers
and cursors; unit tests script one. The policy (docs/tuning.md):

1. the default, `llama-server -m MODEL [-c C]`, measured whatever its memory, as the baseline;
2. memory: the first KV type (the user's order) holding the context within the budget; for `--ctx max` the largest
   context any allowed type reaches, by bisection with probes; on a GPU first the offload boundary
   (`--n-cpu-moe` for MoE models, `-ngl` for dense ones);
3. speed, one setting at a time from that base (flash attention, threads on a CPU, split mode on several GPUs,
   ubatch): a value whose trial beats the best's latest is measured again alternately with the best, and kept only
   when faster beyond noise over both pairs. A configuration an earlier probe or trial shows over the budget is
   not started;
4. confirmation: the best and the default measured once more each.

A noisy trial gets one more try; a comparison with a noisy trial keeps nothing. The search stops before a step the
time budget cannot pay for, judged by the longest step of its kind so far.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from collector.base.errors import CollectorError
from collector.base.stats import STEP, faster_beyond_noise, gain, median, median_band
from collector.records.flags import LlamaConfig, quantized_v_without_fa, server_args
from collector.records.schema import Host, ModelInfo, Stat, TuneChoice, TuneGain, TuneProbe, TuneQuestion

PROMPT_ROOM = 512  # tokens the prompt needs beside the depth (the suite's prompts are 150-400 tokens)
N_PREDICT = 64  # tokens generated per trial request (32 gave tg over 0.6 s, too short to time on a CPU)
CTX_STEP = 256  # libllama pads n_ctx to a multiple of 256: the context bisection's resolution
UBATCHES = (256, 1024)  # tried beside llama.cpp's default of 512
KV_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32,
            "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32}  # bytes per element: KV memory order


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
    """The next step would not finish within the time budget, or a step ran into it (and is not recorded)."""


@dataclass(frozen=True)
class Probe:
    """A load without a speed run: llama.cpp's buffers in the budget's scope (MiB; None: not logged), or why the
    context does not count as fitting (llama.cpp's fit shrank it), or why the load failed."""

    memory_mib: float | None = None
    shrunk: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Trial:
    """A speed trial as the search sees it: the samples at the question's depth and llama.cpp's memory."""

    id: str
    ok: bool
    noisy: bool = False
    reasons: tuple[str, ...] = ()  # why it is noisy
    tg: tuple[float, ...] = ()  # tokens/s, every sample at the question's depth
    pp: tuple[float, ...] = ()
    memory_mib: float | None = None  # llama.cpp's buffers in the budget's scope
    flash_attn: bool | None = None  # what llama.cpp resolved (its log), when known
    error: str | None = None  # "stage: message" when not ok

    def values(self, objective: str) -> tuple[float, ...]:
        return self.tg if objective == "tg" else self.pp


class Lab(Protocol):
    def elapsed(self) -> float:
        """Seconds since the search started."""

    def known_memory(self) -> list[tuple[LlamaConfig, float, str]]:
        """(config, MiB of llama.cpp's buffers, which earlier probe or trial said so) recorded before."""

    def reuse(self, config: LlamaConfig) -> Trial | None:
        """The next quiet recorded trial of config this search has not used yet (recorded order), or None."""

    def measure(self, config: LlamaConfig, budget_mib: float | None, deadline_s: float) -> Trial:
        """A new speed trial, recorded; stopped after its load when over `budget_mib` (a failed trial). Raises
        OutOfTime when it ran into `deadline_s` (elapsed seconds): it is then not recorded."""

    def probe(self, config: LlamaConfig, deadline_s: float) -> Probe:
        """Load config, read its memory, stop; OutOfTime as for measure."""

    def taken(self, config: LlamaConfig) -> list[Trial]:
        """The trials of config this search used (reused or measured), in order."""


def with_(config: LlamaConfig, **changes: Any) -> LlamaConfig:
    return config.model_copy(update=changes)


def key_of(config: LlamaConfig) -> str:
    return config.model_dump_json(exclude_none=True)


def command(config: LlamaConfig) -> list[str]:
    return ["llama-server", "-m", "{model}", *server_args(config)]


def flags_of(config: LlamaConfig) -> str:
    return " ".join(server_args(config)) or "defaults"


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


def gain_of(q: Question, default: TuneChoice, chosen: TuneChoice) -> TuneGain | None:
    d = getattr(default, f"{q.objective}_tps")
    c = getattr(chosen, f"{q.objective}_tps")
    if not (d and c and d.median and c.median and default.band_low and default.band_high and chosen.band_low
            and chosen.band_high):
        return None
    g = gain(c.median, (chosen.band_low, chosen.band_high), d.median, (default.band_low, default.band_high))
    return TuneGain(metric=q.objective, pct=round(g.pct, 2), low_pct=round(g.low_pct, 2),
                    high_pct=round(g.high_pct, 2), beyond_noise=g.beyond_noise)


@dataclass
class Search:
    """One search; `default` and `best` say how far it got when it stops early (time budget, Ctrl-C, an error)."""

    q: Question
    lab: Lab
    host: Host
    model: ModelInfo
    say_to: Callable[[str], None] = lambda _: None
    probes: list[TuneProbe] = field(default_factory=list)
    trials: list[str] = field(default_factory=list)  # trial ids in the order used
    steps: list[str] = field(default_factory=list)
    memory: dict[str, tuple[float | None, bool | None, str]] = field(default_factory=dict)  # config -> (MiB, fits, by)
    longest: dict[str, float] = field(default_factory=dict)  # "probe"/"trial" -> longest seconds so far
    default: LlamaConfig | None = None
    best: LlamaConfig | None = None
    done: bool = False

    def __post_init__(self) -> None:
        for config, mib, by in self.lab.known_memory():
            self._note_memory(config, mib, by)

    def say(self, text: str) -> None:
        self.steps.append(text)
        self.say_to(text)

    # ---- time ----

    def _afford(self, kind: str) -> None:
        elapsed = self.lab.elapsed()
        if elapsed + self.longest.get(kind, 0.0) > self.q.time_budget_s:
            raise OutOfTime(f"stopped at the time budget: {elapsed:.0f} s of {self.q.time_budget_s:.0f} s spent, "
                            f"the next {kind} would take about {self.longest.get(kind, 0.0):.0f} s more")

    def _timed(self, kind: str, started: float) -> None:
        self.longest[kind] = max(self.longest.get(kind, 0.0), self.lab.elapsed() - started)

    # ---- memory ----

    def _note_memory(self, config: LlamaConfig, mib: float | None, by: str) -> bool | None:
        fits = None if mib is None else mib <= self.q.budget_mib
        self.memory[key_of(config)] = (mib, fits, by)
        return fits

    def over_budget_by(self, config: LlamaConfig) -> str | None:
        """An earlier probe or trial of a configuration needing no more memory than this one that was over the
        budget: this one is too (llama.cpp's buffers grow with context, KV type size and ubatch)."""
        for key, (mib, fits, by) in self.memory.items():
            if fits is False and smaller_or_equal(LlamaConfig.model_validate_json(key), config, self.model.ctx_train):
                return f"{by} needed {mib:g} MiB with no more context, KV or ubatch than this"
        return None

    def probe(self, config: LlamaConfig, why: str) -> bool | None:
        """Does `config` fit? Known from an earlier probe or trial, implied by a smaller one over the budget, or a
        load (None: the load failed)."""
        known = self.memory.get(key_of(config))
        if known is not None:
            self.say(f"probe ({why}): {flags_of(config)}: {known[0]} MiB, "
                     f"{'fits' if known[1] else 'over'} the budget (known from {known[2]})")
            return known[1]
        over = self.over_budget_by(config)
        if over:
            self.say(f"probe ({why}): {flags_of(config)}: over the budget ({over}), not loaded")
            return False
        self._afford("probe")
        started = self.lab.elapsed()
        got = self.lab.probe(config, self.q.time_budget_s)
        self._timed("probe", started)
        by = f"probe {len(self.probes) + 1}"
        fits: bool | None = None
        if got.shrunk:
            self.memory[key_of(config)] = (got.memory_mib, False, by)
            fits = False
        elif not got.error:
            fits = self._note_memory(config, got.memory_mib, by)
        self.probes.append(TuneProbe(config=config, command=command(config), memory_mib=got.memory_mib, fits=fits,
                                     error=got.error or got.shrunk, why=why))
        verdict = f"load failed: {got.error}" if got.error else got.shrunk or (
            f"{got.memory_mib} MiB, {'fits' if fits else 'over'} the {self.q.budget_mib:g} MiB budget")
        self.say(f"probe {len(self.probes)} ({why}): {flags_of(config)}: {verdict}")
        return fits

    # ---- trials ----

    def _figure(self, trials: Sequence[Trial]) -> str:
        values = [v for t in trials for v in t.values(self.q.objective)]
        return f"{self.q.objective} {self.median(trials):.1f} t/s (n={len(values)})" if values else "no samples"

    def median(self, trials: Sequence[Trial]) -> float:
        values = [v for t in trials for v in t.values(self.q.objective)]
        return median(values) if values else 0.0

    def take(self, config: LlamaConfig, why: str, *, enforce_budget: bool = True) -> Trial | None:
        """The configuration's next trial: the next quiet recorded one this search has not used yet, else a new
        measurement, and one more when that is noisy. Returns the trial (noisy when both new ones were), or None
        when the configuration is over the budget or failed."""
        flags = flags_of(config)
        old = self.lab.reuse(config)
        if old is not None:
            self.say(f"trial ({why}): {flags}: already measured ({self._figure([old])}, {old.id}), reused")
            if key_of(config) not in self.memory:
                self._note_memory(config, old.memory_mib, f"trial {old.id}")
            if old.id not in self.trials:
                self.trials.append(old.id)
            return old
        over = self.over_budget_by(config) if enforce_budget else None
        if over:
            self.say(f"skipped ({why}): {flags}: over the budget ({over})")
            return None
        for _ in range(2):
            self._afford("trial")
            started = self.lab.elapsed()
            trial = self.lab.measure(config, self.q.budget_mib if enforce_budget else None, self.q.time_budget_s)
            self._timed("trial", started)
            self.trials.append(trial.id)
            self._note_memory(config, trial.memory_mib, f"trial {trial.id}")
            if not trial.ok:
                self.say(f"trial ({why}): {flags}: {trial.error}")
                return None
            noisy = f" (noisy: {'; '.join(trial.reasons)})" if trial.noisy else ""
            mib = trial.memory_mib if trial.memory_mib is not None else "?"
            self.say(f"trial ({why}): {flags}: {self._figure([trial])}, {mib} MiB{noisy}")
            if not trial.noisy:
                break
        return trial

    def taken(self, config: LlamaConfig) -> list[Trial]:
        """The trials of the configuration this search used, quiet ones only unless all were noisy."""
        used = self.lab.taken(config)
        return [t for t in used if not t.noisy] or used

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

    def run(self) -> None:
        """The default measured, the memory base, one setting at a time, then the confirmation."""
        self.default = default = self.default_config()
        self.say(f"default: {' '.join(command(default))} (what llama.cpp picks), measured as the baseline")
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
            for why, cand in self.candidates(dim, best, d.flash_attn):
                if quantized_v_without_fa(cand):
                    self.say(f"skipped ({why}): llama.cpp refuses a quantized V cache without flash attention")
                    continue
                first = self.take(cand, why)
                if first is not None and first.noisy:
                    self.say(f"not kept {why}: its trials were noisy")
                if first is None or first.noisy or self.median([first]) <= self.median([last]):
                    continue
                # a challenger: the best and it measured again, back to back, so that a host whose speed drifts
                # between trials does not crown whichever ran later; kept when more than 5 % faster over both pairs
                again = self.take(best, f"the best again, against {why}")
                second = self.take(cand, f"{why} again")
                if again is None or second is None or any(t.noisy for t in (first, second, again, last)):
                    self.say(f"not kept {why}: a trial of the comparison was noisy or failed")
                    last = again or last
                    continue
                new = [v for t in (first, second) for v in t.values(self.q.objective)]
                old = [v for t in (last, again) for v in t.values(self.q.objective)]
                words = f"{median(new):.1f} against {median(old):.1f} t/s, two trials each measured alternately"
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
        trials = self.taken(config)
        obj = [v for t in trials for v in t.values(self.q.objective)]
        lo, hi = median_band(obj) if obj else (None, None)
        mib, fits, _ = self.memory.get(key_of(config), (None, None, ""))
        tg = Stat.of([v for t in trials for v in t.tg], digits=2)
        pp = Stat.of([v for t in trials for v in t.pp], digits=2)
        return TuneChoice(config=config, command=command(config), records=[t.id for t in trials], memory_mib=mib,
                          fits=fits, noisy=bool(trials) and all(t.noisy for t in trials), tg_tps=tg, pp_tps=pp,
                          band_low=lo, band_high=hi)
