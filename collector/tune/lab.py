"""The tune's real lab (collector.tune.search.Lab): probes and trials through the real llama-server.

Each trial is measured by collector.measure.server_run and written to the data dir as a speed record tagged `tune` and
`tune:<id>`. Earlier tune trials of the same model file, device and build in the data dir are handed out first, in
recorded order (a cursor per configuration; noisy ones are passed over, so a re-run on a quiet host measures them
anew), and earlier probes and trials stopped over a budget tell the search their memory. The deadline is the lab's
to enforce: a server still running at it is stopped (SIGKILL after 0.5 s: llama-server would finish the request
under way first) and the step is not recorded.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path

from collector.base.errors import CollectorError
from collector.base.files import work_dir
from collector.llama.logparse import parse_server_log
from collector.llama.server import ServerProcess
from collector.llama.tools import ToolError
from collector.measure.plan import RunSpec, SpeedSettings
from collector.measure.server_run import Bench, MeasureKey, Recorded, measure
from collector.prompts import load_suite
from collector.records import store
from collector.records.flags import LlamaConfig, server_args
from collector.records.pool import values_at
from collector.records.schema import TUNE_TAG, ModelInfo, PlanRef, SpeedRecord, TuneRecord
from collector.tune.search import N_PREDICT, OutOfTime, Probe, Question, Trial

# How each trial measures: one prompt of the coding suite at the question's depth, greedy, a warmup request, then
# REPS requests (screening) - the confirmation adds as many again for the best and the default.
SUITE, CATEGORY, REPS, WARMUP, SEED = "coding-v1", "algorithm", 2, 1, 42


class ServerLab:
    def __init__(self, q: Question, bench: Bench, data_dir: Path, model: ModelInfo, tune_id: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.q, self.bench, self.data_dir, self.model, self.id, self.clock = q, bench, data_dir, model, tune_id, clock
        self.suite = load_suite(SUITE, (CATEGORY,))
        self.settings = SpeedSettings(prompt_suite=SUITE, categories=(CATEGORY,), depths=(q.depth,),
                                      n_predict=N_PREDICT, repetitions=REPS, warmup=WARMUP, seed=SEED)
        self.plan = PlanRef(name=f"tune {tune_id}", settings={"depths": [q.depth], "tune": tune_id,
                                                               **q.schema().model_dump(mode="json")})
        recorded = Recorded(data_dir, store.device_slug(bench.host), bench.llama.build_key)
        self.measured: dict[MeasureKey, list[SpeedRecord]] = recorded.speed(model.sha256, TUNE_TAG)  # ok, in order
        self.cursor: dict[MeasureKey, int] = {}  # how many of each configuration's trials this search has used
        self.earlier: list[tuple[TuneRecord, Path]] = []  # ok tunes of this question's scope already recorded
        self._known: list[tuple[LlamaConfig, float, str]] = []
        for path, rec in recorded.records:
            if TUNE_TAG not in rec.tags or rec.model.sha256 != model.sha256:
                continue
            if isinstance(rec, SpeedRecord) and rec.error and rec.error.stage == "budget":
                mib = rec.memory_mib.used_mib(q.scope)
                if mib is not None:
                    self._known.append((rec.config, mib, f"trial {rec.id}"))
            elif isinstance(rec, TuneRecord) and rec.question.memory_scope == q.scope:
                if rec.status == "ok":
                    self.earlier.append((rec, path))
                self._known += [(p.config, p.memory_mib, f"a probe of tune {rec.id}") for p in rec.probes
                                if p.fits is not None and p.memory_mib is not None and not p.error]
        self.t0 = clock()

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def known_memory(self) -> list[tuple[LlamaConfig, float, str]]:
        return list(self._known)

    def _key(self, config: LlamaConfig) -> MeasureKey:
        return MeasureKey.of(config, 1, False, [self.q.depth], N_PREDICT, self.suite.sha256, [CATEGORY])

    def _trial(self, rec: SpeedRecord) -> Trial:
        error = f"{rec.error.stage}: {rec.error.message}" if rec.error else None
        return Trial(id=rec.id, ok=rec.status == "ok", noisy=rec.noisy,
                     reasons=tuple(rec.conditions.reasons) if rec.conditions else (),
                     tg=tuple(values_at([rec], self.q.depth, "tg_tps")),
                     pp=tuple(values_at([rec], self.q.depth, "pp_tps")),
                     memory_mib=rec.memory_mib.used_mib(self.q.scope), flash_attn=rec.placement.flash_attn,
                     error=error)

    def reuse(self, config: LlamaConfig) -> Trial | None:
        key = self._key(config)
        have = self.measured.get(key, [])
        pos = self.cursor.get(key, 0)
        while pos < len(have) and have[pos].noisy:
            pos += 1
        if pos >= len(have):
            return None
        self.cursor[key] = pos + 1
        return self._trial(have[pos])

    def taken(self, config: LlamaConfig) -> list[Trial]:
        key = self._key(config)
        return [self._trial(r) for r in self.measured.get(key, [])[:self.cursor.get(key, 0)]]

    def _left(self, deadline_s: float) -> float:
        return max(deadline_s - self.elapsed(), 1.0)

    def _loaded(self, server: ServerProcess, config: LlamaConfig) -> tuple[float | None, str | None]:
        """What a loaded server's log says: llama.cpp's buffers in the budget's scope (MiB), and why the context
        does not count as fitting when llama.cpp's fit shrank it (None: it did not)."""
        from collector.models.info import printed_strings

        facts = parse_server_log(server.log_text(), printed_strings(self.q.model_path))
        n_ctx = facts.placement.n_ctx
        shrunk = (f"llama.cpp's fit reduced the context from {config.ctx_size} to {n_ctx} (not enough memory)"
                  if config.ctx_size and n_ctx and n_ctx < config.ctx_size else None)
        return facts.memory.used_mib(self.q.scope), shrunk

    def _past(self, deadline_s: float, what: str) -> None:
        """A step cut off by the deadline is not recorded: it measured nothing whole."""
        if self.elapsed() > deadline_s:
            raise OutOfTime(f"stopped at the time budget ({deadline_s:.0f} s) during {what}, which is not recorded")

    def probe(self, config: LlamaConfig, deadline_s: float) -> Probe:
        error = shrunk = mib = None
        with work_dir("tune") as work:
            server = ServerProcess(self.bench.tools.path("llama-server"), self.q.model_path, server_args(config),
                                   log_dir=Path(work), port_picker=self.bench.port_picker,
                                   load_timeout_s=self._left(deadline_s))
            try:
                with server:
                    mib, shrunk = self._loaded(server, config)
            except CollectorError as exc:
                error = str(exc)
        self._past(deadline_s, "a probe")
        return Probe(mib, shrunk, error)

    def measure(self, config: LlamaConfig, budget_mib: float | None, deadline_s: float) -> Trial:
        left = self._left(deadline_s)  # the server is stopped at the deadline: a trial never runs past it
        spec = RunSpec(model_ref=self.q.model_ref, model_path=self.q.model_path, config=config,
                       speed=dataclasses.replace(self.settings, load_timeout_s=left, request_timeout_s=left),
                       plan=self.plan)
        timers: list[threading.Timer] = []

        def check(server: ServerProcess) -> None:
            timers.append(threading.Timer(max(deadline_s - self.elapsed(), 0.0), server.stop, kwargs={"grace_s": 0.5}))
            timers[0].start()
            mib, shrunk = self._loaded(server, config)
            if shrunk:
                raise ToolError(shrunk, "budget", server.log_tail())
            if budget_mib is not None and mib is not None and mib > budget_mib:
                raise ToolError(f"llama.cpp's buffers need {mib:g} MiB of {self.q.scope} memory, over the tune's "
                                f"budget of {budget_mib:g} MiB; not measured", "budget", server.log_tail())

        try:
            with work_dir("tune") as work:
                rec = measure(spec, self.bench, self.model, self.suite, Path(work), after_load=check).record
        finally:
            for timer in timers:  # a stop the deadline started finishes here: no server outlives the trial
                timer.cancel()
                timer.join()
        self._past(deadline_s, "a trial")
        rec.tags = [TUNE_TAG, f"tune:{self.id}"]
        store.save_record(rec, self.data_dir)
        if rec.status == "ok":
            have = self.measured.setdefault(self._key(config), [])
            have.append(rec)
            self.cursor[self._key(config)] = len(have)
        return self._trial(rec)
