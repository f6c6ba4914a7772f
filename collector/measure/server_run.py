"""The measurement layer: one configuration measured through a real llama-server, returned as its speed record;
the key of "the same measurement"; and what a data directory already holds for a device and llama.cpp build.

A plan's sweep (collector.measure.runner) and the tune's trials (collector.tune.lab) both measure through
`measure()` and ask `Recorded` what is already measured, so "already recorded" means the same everywhere. Every
expected failure (a server that dies, runs out of memory, times out, a request error) becomes a `status: failed`
record with the stage, a one-line message and the last log lines; nothing here writes a file.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector import __version__
from collector.base.errors import CollectorError
from collector.host import gpus, hardware
from collector.llama.bench import run_llama_bench
from collector.llama.binaries import LlamaTools
from collector.llama.client import LlamaClient, ServerRequestError
from collector.llama.logbuild import check_build
from collector.llama.logparse import LogFacts, parse_server_log
from collector.llama.server import ServerProcess, free_port
from collector.llama.tools import ToolError, exit_words
from collector.measure.concurrent import measure_concurrent
from collector.measure.plan import RunSpec
from collector.measure.speed_run import add_energy, judge_conditions
from collector.measure.speed_run import measure as measure_speed
from collector.prompts import PromptSuite
from collector.records import store
from collector.records.flags import LlamaConfig, server_args
from collector.records.index import load_index
from collector.records.schema import ErrorInfo, Host, LlamaCpp, ModelInfo, Source, SpeedRecord


@dataclass(frozen=True)
class MeasureKey:
    """What makes two speed measurements of one model file the same: the flags, the clients at once (and, for
    several, whether they share a prefix; records from before concurrency was measured had one client) and what was
    measured: the depths as asked ("50%" is not 512 tokens), tokens generated per request and the prompts."""

    config: str  # LlamaConfig as JSON (pydantic models are not hashable)
    clients: int
    shared_prefix: bool
    depths: tuple[int | str, ...]
    n_predict: int | None
    suite_sha: str | None
    categories: tuple[str, ...]

    @classmethod
    def of(cls, config: LlamaConfig, concurrency: int | None, shared_prefix: bool | None, depths: Any,
           n_predict: int | None, suite_sha: str | None, categories: Any) -> MeasureKey:
        n = concurrency or 1
        return cls(config.model_dump_json(), n, bool(shared_prefix) and n > 1,
                   tuple(d.strip() if isinstance(d, str) else d for d in depths), n_predict, suite_sha,
                   tuple(sorted(set(categories))))

    @classmethod
    def of_spec(cls, spec: RunSpec, suite: PromptSuite) -> MeasureKey:
        return cls.of(spec.config, spec.concurrency, spec.speed.shared_prefix, spec.speed.depths,
                      spec.speed.n_predict, suite.sha256, list(suite.prompts))

    @classmethod
    def of_record(cls, rec: SpeedRecord) -> MeasureKey:
        asked = (rec.plan.settings.get("depths") if rec.plan else None) or rec.method.depths
        suite = rec.method.prompt_suite.sha256 if rec.method.prompt_suite else None
        return cls.of(rec.config, rec.method.concurrency, rec.method.shared_prefix, asked, rec.method.n_predict,
                      suite, [s.category for s in rec.samples])


class Recorded:
    """The records this collector measured on one device with one llama.cpp build, under a data directory.

    The build is the binary's hash (a rebuilt llama.cpp measures again). `records` keeps each with its path."""

    def __init__(self, data_dir: Path, device: str, build_key: str | None) -> None:
        self.records: list[tuple[Path, Any]] = []
        if (Path(data_dir) / "records").is_dir():
            self.records = sorted(((path, rec) for path, rec in load_index(data_dir).records.items()
                                   if rec.measured and rec.llama_cpp.build_key == build_key
                                   and store.device_slug(rec.host) == device), key=lambda x: (x[1].created_at, x[1].id))
        self._quiet = {(rec.model.sha256, MeasureKey.of_record(rec)) for _, rec in self.records
                       if isinstance(rec, SpeedRecord) and rec.status == "ok" and not rec.noisy}

    def has(self, sha256: str | None, key: MeasureKey) -> bool:
        """An ok, quiet record of this measurement of this model file (a noisy one is measured again)."""
        return (sha256, key) in self._quiet

    def speed(self, sha256: str | None, tag: str) -> dict[MeasureKey, list[SpeedRecord]]:
        """The ok speed records of this model file carrying `tag`, by key, oldest first (noisy ones included)."""
        out: dict[MeasureKey, list[SpeedRecord]] = {}
        for _, rec in self.records:
            if isinstance(rec, SpeedRecord) and rec.status == "ok" and tag in rec.tags and rec.model.sha256 == sha256:
                out.setdefault(MeasureKey.of_record(rec), []).append(rec)
        return out


@dataclass
class Bench:
    """Where measurements run: the llama.cpp build, the host as probed, and the seams tests replace (the port
    picker, the NVML module)."""

    tools: LlamaTools
    host: Host
    llama: LlamaCpp
    nvml: Any = None
    port_picker: Callable[[], int] = free_port


def bench_for(tools: LlamaTools, nvml: Any = None, port_picker: Callable[[], int] = free_port) -> Bench:
    """The host as probed and the build, refused before anything runs when its logs are of a build older than the
    collector reads (a run would be measured and then refused)."""
    llama = tools.version()
    check_build(llama.build_number)
    # the GPUs llama.cpp lists, vendor facts added
    return Bench(tools, hardware.probe_host(nvml, server=tools.path("llama-server")), llama, nvml, port_picker)


@dataclass
class Measured:
    record: SpeedRecord
    request_s: float  # seconds spent in requests (warmup included)


def server_for(spec: RunSpec, server: Path, log_dir: Path,
               port_picker: Callable[[], int] = free_port) -> ServerProcess:
    return ServerProcess(server, spec.model_path, server_args(spec.config), log_dir=log_dir,
                         load_timeout_s=spec.speed.load_timeout_s, port_picker=port_picker)


def model_of(spec: RunSpec) -> ModelInfo:
    """The GGUF facts of the spec's model file, with the plan's reference to it."""
    from collector.models.info import model_facts

    info = model_facts(spec.model_path)
    info.origin = spec.model_ref
    return info


def measure(spec: RunSpec, bench: Bench, model: ModelInfo, suite: PromptSuite, work: Path,
            after_load: Callable[[ServerProcess], None] | None = None) -> Measured:
    """Start the server, measure, stop, read its log: the run's record, ok or failed.

    `after_load(server)` runs once the server is ready, before any request: a ToolError it raises (a memory budget
    exceeded) fails the run at its stage without measuring."""
    server = server_for(spec, bench.tools.path("llama-server"), work, bench.port_picker)
    # filled in as the run goes; validated once complete (an ok record must hold samples and a summary)
    rec = SpeedRecord.model_construct(id=store.new_id(), created_at=store.utc_now(), status="ok",
                                      source=Source(type="measured", collector_version=__version__), host=bench.host,
                                      llama_cpp=bench.llama, model=model, command=server.published_command(),
                                      plan=spec.plan, config=spec.config)
    s = spec.speed
    stage = "load"
    sampled: Any = None
    request_s = 0.0
    try:
        with server:
            rec.load_seconds = round(server.load_seconds or 0.0, 3)
            if after_load is not None:
                after_load(server)
            stage = "measure"
            with ExitStack() as stack:
                clients = [stack.enter_context(LlamaClient(server.base_url, timeout_s=s.request_timeout_s))
                           for _ in range(spec.concurrency)]
                sampler = hardware.Sampler(server.pid, nvml=bench.nvml,
                                           gpus=gpus.loaded_on(bench.host, server.log_text(), printed(spec)))
                sampler.start()
                try:
                    props = clients[0].props()
                    n_ctx_slot = props.get("default_generation_settings", {}).get("n_ctx")
                    if spec.concurrency > 1:
                        slots = props.get("total_slots")
                        if slots != spec.concurrency:
                            raise CollectorError(f"llama-server runs {slots} slots, not the {spec.concurrency} asked "
                                                 "for with -np; the concurrency would not be what the record says")
                        res = measure_concurrent(clients, suite, depths=s.depths, n_predict=s.n_predict,
                                                 repetitions=s.repetitions, warmup=s.warmup, seed=s.seed,
                                                 n_ctx_slot=n_ctx_slot, shared_prefix=s.shared_prefix)
                    else:
                        res = measure_speed(clients[0], suite, depths=s.depths, n_predict=s.n_predict,
                                            repetitions=s.repetitions, warmup=s.warmup, seed=s.seed,
                                            n_ctx_slot=n_ctx_slot)
                finally:
                    sampled = sampler.stop()
            stage = "stop"
        rec.method, rec.samples, rec.summary, request_s = res.method, res.samples, res.summary, res.request_seconds
        rec.batches = res.batches
        add_energy(rec.summary, getattr(sampled, "energy_j", None), getattr(sampled, "power_w_mean", None),
                   res.gen_tokens, getattr(sampled, "energy_method", None))
    except (ServerRequestError, CollectorError) as exc:
        if isinstance(exc, ToolError):
            stage = exc.stage
        tail = exc.log_tail if isinstance(exc, ToolError) and exc.log_tail else server.log_tail()
        rec.status, rec.error = "failed", ErrorInfo(stage=stage, message=_failure(str(exc), stage, server, tail),
                                                    log_tail=tail)
    _add_log_facts(rec, server, sampled, spec)
    rec.host, notes = gpus.as_used(rec.host, rec.placement, rec.memory_mib)  # the GPUs llama.cpp used
    rec.warnings = [*rec.warnings, *notes]
    if rec.status == "ok":
        rec.conditions = judge_conditions(rec.samples, sampled, rec.batches, spec.concurrency)
    if rec.status == "ok" and s.llama_bench and spec.concurrency == 1:  # llama-bench has one client
        median_prompt = sorted(x.prompt_tokens or 0 for x in rec.samples)[len(rec.samples) // 2]
        try:
            rec.engine_bench = run_llama_bench(bench.tools.path("llama-bench"), spec.model_path, spec.config,
                                               n_prompt=max(median_prompt, 1), n_gen=s.n_predict,
                                               reps=s.repetitions, timeout_s=s.request_timeout_s)
        except CollectorError as exc:
            rec.method.note = f"{rec.method.note}; {exc}"
    return Measured(SpeedRecord.model_validate(rec.model_dump(by_alias=True)), request_s)


def _failure(message: str, stage: str, server: ServerProcess, tail: list[str]) -> str:
    """The failed record's message: when the server ended on its own during the run (killed, crashed), how it
    ended and its last log line; a client error alone ("connection reset") does not say what happened."""
    if server.died is None or stage == "load":  # a failed load says how the server exited already
        return message
    last = tail[-1].strip()[-160:] if tail else "no log line"
    return f"{message}; llama-server {exit_words(server.died)} during the {stage} (last log line: {last})"


def printed(spec: RunSpec) -> tuple[str, ...]:
    """What the spec's model file makes llama.cpp print verbatim (logtext keeps it inside its lines)."""
    from collector.models.info import printed_strings

    return printed_strings(spec.model_path)


def _add_log_facts(rec: SpeedRecord, server: ServerProcess, sampled: Any, spec: RunSpec) -> None:
    try:
        facts = parse_server_log(server.log_text(), printed(spec))
    except CollectorError as exc:  # the run's measurements are kept; the record says what could not be read
        facts = LogFacts()
        rec.warnings = [*rec.warnings, f"llama-server's log could not be read, so placement and memory are not "
                                       f"known: {exc}"]
    rec.placement, rec.memory_mib = facts.placement, facts.memory
    if spec.config.n_cpu_moe and rec.model.n_layers:
        # llama.cpp adds one CPU override per layer 0..N-1 (ref/llama-cpp.md §1); the per-tensor override
        # lines are DEBUG-level and absent from a -lv 4 log, so the count is derived from that rule.
        rec.placement.cpu_moe_layers = min(spec.config.n_cpu_moe, rec.model.n_layers)
    if sampled is not None:
        rec.memory_mib.host_rss_peak = getattr(sampled, "host_rss_peak_mib", None)
        vram = getattr(sampled, "vram_peak_mib", None)
        rec.memory_mib.vram_peak = list(vram) if vram else None
