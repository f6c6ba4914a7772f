"""Run a plan: one speed record per RunSpec (ok or failed), then the plan's kld section.

Each record is written the moment its run ends, so a later crash, Ctrl-C or kill never loses finished
runs. A failed run (server died, out of memory, timeout, request error) becomes a `status: failed` record
with the stage, a one-line message and the last log lines, and the sweep goes on with the next run.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from collector import __version__
from collector.cache import cache_dir
from collector.concurrent import measure_concurrent
from collector.errors import CollectorError
from collector.files import check_writable, clean_stale, clean_work_dirs, work_dir
from collector.llama import tools as llama_tools
from collector.llama.bench import run_llama_bench
from collector.llama.binaries import LlamaTools, help_flags
from collector.llama.client import LlamaClient, ServerRequestError
from collector.llama.flags import LlamaConfig, gpu_only_settings, server_args, unknown_flags
from collector.llama.logparse import parse_server_log
from collector.llama.server import ServerProcess, check_config_files, free_port
from collector.llama.server import server_args as server_args_of
from collector.llama.tools import ToolError
from collector.lock import host_lock
from collector.plan import Plan, RunSpec
from collector.progress import NullObserver, Observer
from collector.prompts import PromptSuite, load_suite
from collector.records import store
from collector.records.index import load_index
from collector.records.schema import ErrorInfo, Host, LlamaCpp, ModelInfo, Source, SpeedRecord
from collector.speed import add_energy, judge_conditions, measure

Only = Literal["speed", "kld"] | None


@dataclass
class RunReport:
    """Record files written by status, and the labels of runs skipped as already recorded."""

    ok: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    phases: list[tuple[str, float, float]] = field(default_factory=list)  # (label, load s, requests s) per run

    def summary_line(self) -> str:
        return f"{len(self.ok)} ok, {len(self.failed)} failed, {len(self.skipped)} skipped"


DRY_PORT, DRY_RUN_DIR = "PORT", "RUN_DIR"  # what a dry run shows for the values only a run knows


def dry_run(plan: Plan, tools: LlamaTools | None = None, data_dir: Path | None = None,
            nvml: Any = None) -> list[tuple[str, list[str], bool]]:
    """(label, the argv that will run, already recorded) for every run; starts nothing. The argv is exactly what
    `run` executes, with the free port and the run's temporary folder as DRY_PORT and DRY_RUN_DIR. "Already
    recorded" is the check `run_plan` makes (an ok, quiet record of this device, build and run in data_dir)."""
    if tools is not None:
        check_plan_flags(plan, tools)
    server = tools.path("llama-server") if tools else Path("llama-server")
    recorded = [False] * len(plan.runs)
    if tools is not None and data_dir is not None and (Path(data_dir) / "records").is_dir() and plan.runs:
        from collector import hardware

        done = _recorded_keys(Path(data_dir), store.device_slug(hardware.probe_host(nvml)), tools.version())
        suites: dict[tuple[str, tuple[str, ...]], PromptSuite] = {}
        for i, spec in enumerate(plan.runs):
            key = (spec.speed.prompt_suite, spec.speed.categories)
            suite = suites[key] if key in suites else suites.setdefault(key, load_suite(*key))
            recorded[i] = bool(done) and (_model_info(spec).sha256, _spec_key(spec, suite)) in done
    webui = "--no-webui" in help_flags(server) if tools is not None else True
    argv = []
    for spec in plan.runs:
        srv = _server_for(spec, server, Path(DRY_RUN_DIR))
        argv.append(server_args_of(srv.server, srv.model, srv.flags, port=DRY_PORT, log_file=srv.log_file,
                                   webui_flag=webui))
    return [(spec.label(), cmd, rec) for spec, cmd, rec in zip(plan.runs, argv, recorded)]


def check_plan_flags(plan: Plan, tools: LlamaTools) -> None:
    """Every flag in extra_args must be one this llama-server build lists in --help: a typo is a plan error
    now, not a failed load for every run later."""
    known = help_flags(tools.path("llama-server"))
    if not known:
        return  # a build whose --help cannot be read: llama-server will say so itself
    for spec in plan.runs:
        bad = unknown_flags(spec.config.extra_args, known)
        if bad:
            raise CollectorError(f"{plan.extra_args_where or plan.file}: extra_args: {', '.join(bad)} is not a flag "
                                 "of this llama-server "
                                 f"({tools.bin_dir}); check `llama-server --help` and fix the plan")


def _server_for(spec: RunSpec, server: Path, log_dir: Path,
                port_picker: Callable[[], int] = free_port) -> ServerProcess:
    return ServerProcess(server, spec.model_path, server_args(spec.config), log_dir=log_dir,
                         load_timeout_s=spec.speed.load_timeout_s, port_picker=port_picker)


def _gpu_warnings(spec: RunSpec, host: Host, llama: LlamaCpp) -> list[str]:
    """GPU-only settings on a host where llama.cpp has no GPU to use them on."""
    if host.gpus or llama.backend not in (None, "CPU", "CUDA"):
        return []  # NVML sees the GPU, or a Vulkan/ROCm/Metal build whose GPU NVML cannot see
    return [f"{s} has no effect here: no GPU llama.cpp can use on this host (llama.cpp backend "
            f"{llama.backend or 'unknown'})" for s in gpu_only_settings(spec.config)]


def run_plan(plan: Plan, *, tools: LlamaTools, data_dir: Path, force: bool = False, only: Only = None,
             observer: Observer | None = None, port_picker: Callable[[], int] = free_port,
             nvml: Any = None, keep_logits: bool | None = None, wait: bool = False) -> RunReport:
    """Run every speed run (unless only == "kld"), then the kld section (unless only == "speed").

    Raises CollectorError for problems found before anything starts (bad prompt suite, config file,
    missing llama-server, an unknown flag, another collector measuring on this host unless `wait`);
    KeyboardInterrupt stops the current tool and propagates after the finished records are on disk.
    `nvml` replaces the pynvml module (tests inject a fake GPU); `keep_logits` (None = the plan's setting)
    keeps or removes the cached base logits after the KLD part.
    """
    observer = observer or NullObserver()
    report = RunReport()
    server_bin = tools.path("llama-server")
    check_config_files()
    check_plan_flags(plan, tools)
    check_writable(Path(data_dir), "--data-dir")  # before the first server starts: nothing measured is thrown away
    with host_lock(f"plan {plan.name}", wait=wait, on_wait=observer.message), term_as_interrupt():
        for path in [*clean_stale([Path(data_dir) / "records", cache_dir()]), *clean_work_dirs()]:
            observer.message(f"removed {path} (left by a process that is gone)")
        if only != "kld" and plan.runs:
            suites: dict[tuple[str, tuple[str, ...]], PromptSuite] = {}
            for spec in plan.runs:  # a bad suite fails before the first server starts
                key = (spec.speed.prompt_suite, spec.speed.categories)
                if key not in suites:
                    suites[key] = load_suite(*key)
            from collector import hardware  # host/GPU probing and the sampler thread

            host = hardware.probe_host(nvml)
            llama = tools.version()
            done = _recorded_keys(data_dir, store.device_slug(host), llama)
            total = len(plan.runs)
            with work_dir("run") as work:
                for i, spec in enumerate(plan.runs, 1):
                    observer.run_started(i, total, spec.label())
                    model = _model_info(spec)
                    suite = suites[(spec.speed.prompt_suite, spec.speed.categories)]
                    if not force and (model.sha256, _spec_key(spec, suite)) in done:
                        report.skipped.append(spec.label())
                        observer.run_finished(i, total, "skipped", None, "already recorded (use --force)")
                        continue
                    warnings = _gpu_warnings(spec, host, llama)
                    for w in warnings:
                        observer.message(f"warning: {spec.label()}: {w}")
                    rec, request_s = _one_run(spec, server_bin, tools, Path(work) / f"run-{i}", host, llama,
                                              model, suite, port_picker, hardware, nvml)
                    rec.warnings = warnings
                    report.phases.append((spec.label(), rec.load_seconds or 0.0, request_s))
                    path = store.save_record(rec, data_dir)
                    (report.ok if rec.status == "ok" else report.failed).append(path)
                    observer.run_finished(i, total, rec.status, path, _detail(rec))
        if only != "speed" and plan.kld is not None:
            from collector.kld import run_kld_plan

            for path in run_kld_plan(plan.kld, tools=tools, data_dir=data_dir, force=force, observer=observer,
                                     plan_ref=plan.ref, keep_logits=keep_logits):
                (report.ok if store.load_record(path).status == "ok" else report.failed).append(path)
    return report


def _one_run(spec: RunSpec, server_bin: Path, tools: LlamaTools, work: Path, host: Host, llama: LlamaCpp,
             model: ModelInfo, suite: Any, port_picker: Callable[[], int],
             hardware: Any, nvml: Any = None,
             after_load: Callable[[ServerProcess], None] | None = None) -> tuple[SpeedRecord, float]:
    """Start, measure, stop, parse; every expected failure becomes a failed record. Also: seconds in requests.
    `after_load(server)` runs once the server is ready, before any request: a ToolError it raises (e.g. a memory
    budget exceeded) fails the run at its stage without measuring."""
    server = _server_for(spec, server_bin, work, port_picker)
    # filled in as the run goes; validated once complete (an ok record must hold samples and a summary)
    rec = SpeedRecord.model_construct(id=store.new_id(), created_at=store.utc_now(), status="ok",
                                      source=Source(type="measured", collector_version=__version__), host=host,
                                      llama_cpp=llama, model=model, command=server.published_command(),
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
                sampler = hardware.Sampler(server.pid, nvml=nvml)
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
                        res = measure(clients[0], suite, depths=s.depths, n_predict=s.n_predict,
                                      repetitions=s.repetitions, warmup=s.warmup, seed=s.seed, n_ctx_slot=n_ctx_slot)
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
    if rec.status == "ok":
        rec.conditions = judge_conditions(rec.samples, sampled, rec.batches, spec.concurrency)
    if rec.status == "ok" and s.llama_bench and spec.concurrency == 1:  # llama-bench has one client
        median_prompt = sorted(x.prompt_tokens or 0 for x in rec.samples)[len(rec.samples) // 2]
        try:
            rec.engine_bench = run_llama_bench(tools.path("llama-bench"), spec.model_path, spec.config,
                                               n_prompt=max(median_prompt, 1), n_gen=s.n_predict,
                                               reps=s.repetitions, timeout_s=s.request_timeout_s)
        except CollectorError as exc:
            rec.method.note = f"{rec.method.note}; {exc}"
    return SpeedRecord.model_validate(rec.model_dump(by_alias=True)), request_s


def _add_log_facts(rec: SpeedRecord, server: ServerProcess, sampled: Any, spec: RunSpec) -> None:
    facts = parse_server_log(server.log_text())
    rec.placement, rec.memory_mib = facts.placement, facts.memory
    if spec.config.n_cpu_moe and rec.model.n_layers:
        # llama.cpp adds one CPU override per layer 0..N-1 (ref/llama-cpp.md §1); the per-tensor override
        # lines are DEBUG-level and absent from a -lv 4 log, so the count is derived from that rule.
        rec.placement.cpu_moe_layers = min(spec.config.n_cpu_moe, rec.model.n_layers)
    if sampled is not None:
        rec.memory_mib.host_rss_peak = getattr(sampled, "host_rss_peak_mib", None)
        vram = getattr(sampled, "vram_peak_mib", None)
        rec.memory_mib.vram_peak = list(vram) if vram else None


def _model_info(spec: RunSpec) -> ModelInfo:
    from collector.model_info import model_facts

    info = model_facts(spec.model_path)
    info.origin = spec.model_ref
    return info


def _spec_key(spec: RunSpec, suite: PromptSuite) -> str:
    return _run_key(spec.config, spec.concurrency, spec.speed.shared_prefix, spec.speed.depths,
                    spec.speed.n_predict, suite.sha256, list(suite.prompts))


def _record_key(rec: SpeedRecord) -> str:
    asked = (rec.plan.settings.get("depths") if rec.plan else None) or rec.method.depths
    suite = rec.method.prompt_suite.sha256 if rec.method.prompt_suite else None
    return _run_key(rec.config, rec.method.concurrency, rec.method.shared_prefix, asked, rec.method.n_predict, suite,
                    [s.category for s in rec.samples])


def _run_key(config: LlamaConfig, concurrency: int | None, shared_prefix: bool | None, depths: Any,
             n_predict: int | None, suite_sha: str | None, categories: list[str]) -> str:
    """What "already recorded" compares: the flags, the clients at once (and, for several, whether they share a
    prefix; records from before concurrency was measured had one client) and what was measured: the depths as
    asked ("50%" is not 512 tokens), tokens generated per request and the prompts."""
    n = concurrency or 1
    asked = [d.strip() if isinstance(d, str) else d for d in depths]
    method = json.dumps([asked, n_predict, suite_sha, sorted(set(categories))])
    return f"{config.model_dump_json()}|clients={n}|shared={bool(shared_prefix) and n > 1}|{method}"


def _recorded_keys(data_dir: Path, device: str, llama: LlamaCpp) -> set[tuple[str | None, str]]:
    """(model sha256, run key) of ok, quiet speed records of this device and llama.cpp build already in data_dir.

    The build is the binary's hash (a rebuilt llama.cpp measures again); a noisy run is measured again."""
    keys: set[tuple[str | None, str]] = set()
    if not (data_dir / "records").exists():
        return keys
    for rec in load_index(data_dir).valid:
        if (isinstance(rec, SpeedRecord) and rec.status == "ok" and rec.measured
                and not (rec.conditions and rec.conditions.noisy) and rec.llama_cpp.build_key == llama.build_key
                and store.device_slug(rec.host) == device):
            keys.add((rec.model.sha256, _record_key(rec)))
    return keys


def _failure(message: str, stage: str, server: ServerProcess, tail: list[str]) -> str:
    """The failed record's message: when the server ended on its own during the run (killed, crashed), how it
    ended and its last log line; a client error alone ("connection reset") does not say what happened."""
    if server.died is None or stage == "load":  # a failed load says how the server exited already
        return message
    last = tail[-1].strip()[-160:] if tail else "no log line"
    return f"{message}; llama-server {llama_tools.exit_words(server.died)} during the {stage} (last log line: {last})"


def _detail(rec: SpeedRecord) -> str:
    if rec.error is not None:
        return f"{rec.error.stage}: {rec.error.message}"
    tg = rec.summary.tg_tps
    figures = f"tg {tg.median:.1f} t/s (n={tg.n})" if tg and tg.median is not None else ""
    c = rec.conditions
    if c is not None and c.noisy:  # kept, but never pooled or recommended: the line says so, like the record
        return f"noisy ({'; '.join(c.reasons)}): {figures}, not counted as recorded"
    return figures


@contextmanager
def term_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C during a sweep, so the server is stopped and finished records stay."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except BaseException:
        llama_tools.kill_all()  # belt and braces: nothing may outlive an aborted sweep
        raise
    finally:
        signal.signal(signal.SIGTERM, old)
