"""Run a plan: one speed record per RunSpec (ok or failed), then the plan's kld section.

Each record is written the moment its run ends, so a later crash, Ctrl-C or kill never loses finished
runs. A failed run (server died, out of memory, timeout, request error) becomes a `status: failed` record
with the stage, a one-line message and the last log lines, and the sweep goes on with the next run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from collector.base.cache import cache_dir
from collector.base.errors import CollectorError
from collector.base.files import check_writable, clean_stale, clean_work_dirs, work_dir
from collector.base.lock import host_lock
from collector.base.progress import NullObserver, Observer
from collector.host import hardware
from collector.llama.binaries import LlamaTools, help_flags
from collector.llama.server import check_config_files, free_port
from collector.llama.server import server_args as server_args_of
from collector.llama.tools import term_as_interrupt
from collector.measure.plan import Plan, RunSpec
from collector.measure.server_run import MeasureKey, Recorded, bench_for, measure, model_of, server_for
from collector.prompts import PromptSuite, load_suite
from collector.records import store
from collector.records.figures import record_headline
from collector.records.flags import gpu_only_settings, unknown_flags
from collector.records.schema import Host, LlamaCpp, SpeedRecord

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
        host = hardware.probe_host(nvml, server=tools.path("llama-server"))
        done = Recorded(Path(data_dir), store.device_slug(host), tools.version().build_key)
        suites = _suites(plan)
        for i, spec in enumerate(plan.runs):
            suite = suites[(spec.speed.prompt_suite, spec.speed.categories)]
            recorded[i] = (bool(done.records) and spec.model_path.is_file()  # a ladder quant not built yet: not
                           and done.has(model_of(spec).sha256, MeasureKey.of_spec(spec, suite)))
    webui = "--no-webui" in help_flags(server) if tools is not None else True
    argv = []
    for spec in plan.runs:
        srv = server_for(spec, server, Path(DRY_RUN_DIR))
        argv.append(server_args_of(srv.server, srv.model, srv.flags, port=DRY_PORT, log_file=srv.log_file,
                                   webui_flag=webui))
    return [(spec.label(), cmd, rec) for spec, cmd, rec in zip(plan.runs, argv, recorded)]


def _suites(plan: Plan) -> dict[tuple[str, tuple[str, ...]], PromptSuite]:
    """Every prompt suite the plan's runs use, loaded once (a bad suite fails before the first server starts)."""
    suites: dict[tuple[str, tuple[str, ...]], PromptSuite] = {}
    for spec in plan.runs:
        key = (spec.speed.prompt_suite, spec.speed.categories)
        if key not in suites:
            suites[key] = load_suite(*key)
    return suites


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
    tools.path("llama-server")  # no llama-server: say so before anything starts
    check_config_files()
    check_plan_flags(plan, tools)
    check_writable(Path(data_dir), "--data-dir")  # before the first server starts: nothing measured is thrown away
    with host_lock(f"plan {plan.name}", wait=wait, on_wait=observer.message), term_as_interrupt():
        for path in [*clean_stale([Path(data_dir) / "records", cache_dir()]), *clean_work_dirs()]:
            observer.message(f"removed {path} (left by a process that is gone)")
        if only != "kld" and plan.runs:
            suites = _suites(plan)
            if plan.kld is not None and any(spec.ladder for spec in plan.runs):
                plan.kld.build_ladder(tools, observer)  # the files of `models: ladder` (reused when built)
            bench = bench_for(tools, nvml, port_picker)
            done = Recorded(data_dir, store.device_slug(bench.host), bench.llama.build_key)
            total = len(plan.runs)
            with work_dir("run") as work:
                for i, spec in enumerate(plan.runs, 1):
                    observer.run_started(i, total, spec.label())
                    model = model_of(spec)
                    suite = suites[(spec.speed.prompt_suite, spec.speed.categories)]
                    if not force and done.has(model.sha256, MeasureKey.of_spec(spec, suite)):
                        report.skipped.append(spec.label())
                        observer.run_finished(i, total, "skipped", None, "already recorded (use --force)")
                        continue
                    warnings = _gpu_warnings(spec, bench.host, bench.llama)
                    for w in warnings:
                        observer.message(f"warning: {spec.label()}: {w}")
                    got = measure(spec, bench, model, suite, Path(work) / f"run-{i}")
                    rec = got.record
                    rec.warnings = [*warnings, *rec.warnings]  # the device notes measure() added
                    report.phases.append((spec.label(), rec.load_seconds or 0.0, got.request_s))
                    path = store.save_record(rec, data_dir)
                    (report.ok if rec.status == "ok" else report.failed).append(path)
                    observer.run_finished(i, total, rec.status, path, _detail(rec))
        if only != "speed" and plan.kld is not None:
            from collector.quality.kld import run_kld_plan

            for path in run_kld_plan(plan.kld, tools=tools, data_dir=data_dir, force=force, observer=observer,
                                     plan_ref=plan.ref, keep_logits=keep_logits):
                (report.ok if store.load_record(path).status == "ok" else report.failed).append(path)
    return report


def _detail(rec: SpeedRecord) -> str:
    if rec.error is not None:
        return f"{rec.error.stage}: {rec.error.message}"
    head = record_headline(rec)
    tg = head.tg_tps if head else None
    figures = f"tg {tg.median:.1f} t/s (n={tg.n}, depth {head.depth_tokens})" if head and tg and tg.median is not None \
        else ""
    c = rec.conditions
    if c is not None and c.noisy:  # kept, but never pooled or recommended: the line says so, like the record
        return f"noisy ({'; '.join(c.reasons)}): {figures}, not counted as recorded"
    return figures
