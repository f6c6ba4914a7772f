"""llama-bench markdown tables as records: one speed record per row, every cell as printed.

The table states less than llama-bench's JSON: a mean and standard deviation per test (`130.58 ± 0.66`, kept as
text and as the two numbers), no repetition count, the model as llama.cpp describes it (`llama 8B Q4_K - Medium`,
no file name), sizes rounded (`4.58 GiB`, `8.03 B`, kept as written), and only the settings that differ from
llama-bench's defaults of its build. So: the figure is the stated mean with its stddev; n stays unknown; the
settings in the table become the config, every other setting stays unknown (not llama-bench's default); the
command is reconstructed from the stated columns only and marked so; every cell is kept in `source.raw`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from collector.base.errors import CollectorError, short_repr
from collector.importers.bench_markdown import BenchRow, BenchTable
from collector.importers.intake import one_line
from collector.models.info import FILE_TYPES
from collector.records import store
from collector.records.flags import LlamaConfig, check_value
from collector.records.schema import (
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

RUNTIME = "llama.cpp (llama-bench)"
_TEST = re.compile(r"^(?:pp ?(?P<pg_p>\d+)\+tg ?(?P<pg_g>\d+)|(?P<kind>pp|tg) ?(?P<n>\d+))(?: @ d(?P<depth>\d+))?$")
# "Â±": a ± whose UTF-8 bytes were pasted as Latin-1; " + ": a ± a Windows console's code page has no glyph for,
# written as its nearest character (a Windows paste, ipex-llm#13309). Both seen in published pastes; still a mean and
# stddev, the cell's text kept as written
_RATE = re.compile(r"^(?P<mean>\d+(?:\.\d+)?)(?: (?:±|Â±|\+) (?P<sd>\d+(?:\.\d+)?))?$")
_SHORT_QUANT = {name: short for short, name in FILE_TYPES.values()}
_FTYPE_NAMES = sorted({pre + n for n in _SHORT_QUANT for pre in ("", "mostly ")}, key=len, reverse=True)
# column -> llama-bench flag, for the reconstructed command (llama-bench's markdown names, llama-bench.cpp)
_BENCH_FLAGS = {"ngl": "-ngl", "threads": "-t", "n_batch": "-b", "n_ubatch": "-ub", "type_k": "-ctk",
                "type_v": "-ctv", "fa": "-fa", "ts": "-ts", "sm": "-sm", "mmap": "-mmp", "nkvo": "-nkvo",
                "mg": "-mg", "embd": "-embd", "dev": "-dev", "ot": "-ot", "n_cpu_moe": "-ncmoe", "cpu_mask": "-C",
                "cpu_strict": "--cpu-strict", "poll": "--poll", "nopo": "-nopo"}
_FA = {"0": "off", "1": "on", "-1": "auto", "on": "on", "off": "off", "auto": "auto"}


@dataclass
class Context:
    """What the table does not say and the importer is told (CLI flags or an importer of a known source)."""

    citation: str  # where the table comes from: required for every import
    url: str | None = None
    date: str | None = None  # the date the source states (ISO)
    gpus: list[str] = field(default_factory=list)  # as the source states them, when llama.cpp printed no device
    cpu: str | None = None
    model_name: str | None = None  # the model as the source names it; default: the table's model cell
    vram_stated: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Test:
    label: str
    kind: str  # pp, tg or pg
    n_prompt: int
    n_gen: int
    depth: int


def parse_test(text: str) -> Test | None:
    """`pp 512`, `pp512`, `tg128 @ d4096`, `pp512+tg128` (llama-bench's test names over the years)."""
    m = _TEST.match(text)
    if not m:
        return None
    depth = int(m["depth"] or 0)
    if m["pg_p"]:
        return Test(text, "pg", int(m["pg_p"]), int(m["pg_g"]), depth)
    n = int(m["n"])
    return Test(text, m["kind"], n if m["kind"] == "pp" else 0, n if m["kind"] == "tg" else 0, depth)


def parse_rate(text: str) -> Stat | None:
    """`130.58 ± 0.66` as the mean and stddev llama-bench printed, with the text kept as written."""
    m = _RATE.match(text)
    if not m:
        return None
    return Stat(mean=float(m["mean"]), stddev=float(m["sd"]) if m["sd"] else None, text=text)


def _config(cells: dict[str, str], where: str) -> LlamaConfig:
    """The stated settings llama.cpp's config knows; the others stay in source.raw (and in the command)."""
    values: dict[str, Any] = {}

    def number(col: str) -> int:
        try:
            return int(cells[col])
        except ValueError:
            raise CollectorError(f"{where}: column {col}: {short_repr(cells[col])} is not a whole number") from None

    if "ngl" in cells:
        ngl = number("ngl")
        values["n_gpu_layers"] = "all" if ngl < 0 else ngl  # llama-bench: -1 = every layer
    for col, key in (("threads", "threads"), ("n_batch", "batch_size"), ("n_ubatch", "ubatch_size")):
        if col in cells:
            values[key] = number(col)
    if cells.get("n_cpu_moe") not in (None, "0"):
        values["n_cpu_moe"] = number("n_cpu_moe")
    for col, key in (("type_k", "cache_type_k"), ("type_v", "cache_type_v"), ("sm", "split_mode")):
        if col in cells:
            values[key] = cells[col]
    if "fa" in cells:
        values["flash_attn"] = _FA.get(cells["fa"], cells["fa"])
    split = cells.get("ts", "")
    if split and any(float(x or 0) for x in re.findall(r"[\d.]+", split)):
        values["tensor_split"] = split.replace("/", ",")
    for key, raw in list(values.items()):
        value, problem = check_value(key, raw)
        if problem:
            raise CollectorError(f"{where}: {key}: {problem}")
        values[key] = value
    return LlamaConfig(**values)


def _command(test: Test, cells: dict[str, str]) -> list[str]:
    if test.kind == "pg":
        argv = ["llama-bench", "-m", "{model}", "-p", "0", "-n", "0", "-pg", f"{test.n_prompt},{test.n_gen}"]
    else:
        argv = ["llama-bench", "-m", "{model}", "-p", str(test.n_prompt), "-n", str(test.n_gen)]
    if test.depth:
        argv += ["-d", str(test.depth)]
    for col, flag in _BENCH_FLAGS.items():
        if col in cells:
            argv += [flag, cells[col]]
    return argv


def split_model_desc(desc: str | None) -> tuple[str | None, str | None, str | None]:
    """llama.cpp's model description, "<arch> <size> <ftype name>" (old builds: "mostly Q4_0"), as (arch, size,
    file type). A size may hold a space ("llama4 17Bx16E (Scout) Q4_K - Medium"), so a known file type name is
    taken from the end first."""
    if not desc:
        return None, None, None
    known = next((n for n in _FTYPE_NAMES if desc.endswith(" " + n)), None)
    if known is not None:
        arch, _, size = desc[:-len(known) - 1].partition(" ")
        return arch or None, size or None, known
    parts = desc.split(" ", 2)
    return parts[0] or None, parts[1] if len(parts) > 1 else None, parts[2] if len(parts) == 3 else None


def _model(cells: dict[str, str], ctx: Context, where: str) -> ModelInfo:
    desc = cells.get("model")
    if not desc and not ctx.model_name:
        raise CollectorError(f"{where}: the table has no model column; pass --model-name as the source names it")
    arch, size, file_type = split_model_desc(desc)
    short = _SHORT_QUANT.get((file_type or "").removeprefix("mostly "))
    return ModelInfo(name=ctx.model_name or desc, arch=arch, size_label=size, file_type=file_type,
                     quant=short or file_type, size_stated=cells.get("size"), params_stated=cells.get("params"))


def _host(table: BenchTable, ctx: Context, backend: str | None, where: str) -> Host:
    names = table.devices or ctx.gpus
    if not names and not ctx.cpu:
        raise CollectorError(f"{where}: llama.cpp printed no device line before this table; pass --gpu NAME "
                             "(once per GPU, as the source names it) or --cpu NAME")
    gpus = [GpuInfo(name=n, backend=backend, vram_stated=ctx.vram_stated) for n in names]
    return Host(cpu=CpuInfo(model=ctx.cpu), gpus=gpus)


def figure_key(prefix: str, table: BenchTable, row: BenchRow, seen: dict[str, int]) -> str:
    """Re-import key: the row's cells with the build and devices that frame it (the same paste imported twice,
    from any file, is the same figure); identical rows in one text keep their order."""
    content = json.dumps([row.cells, table.build_line, table.devices], sort_keys=True, ensure_ascii=False)
    seen[content] = seen.get(content, 0) + 1
    digest = hashlib.sha256(f"{content}#{seen[content]}".encode()).hexdigest()[:16]
    return f"{prefix}#{digest}"


def row_record(table: BenchTable, row: BenchRow, ctx: Context, origin: str, figure: str) -> SpeedRecord:
    """One table row as a record; raises CollectorError naming origin:line for a cell it cannot read (a figure past
    what a record holds, a number of 5000 digits, a split of "1.2.3" are one line, never a traceback)."""
    try:
        return _row_record(table, row, ctx, origin, figure)
    except (ValueError, TypeError, OverflowError) as exc:  # pydantic's ValidationError is a ValueError
        raise CollectorError(f"{origin}:{row.line}: a cell it cannot take ({one_line(exc)}); paste the table as "
                             "llama-bench printed it") from None


def _row_record(table: BenchTable, row: BenchRow, ctx: Context, origin: str, figure: str) -> SpeedRecord:
    where = f"{origin}:{row.line}"
    cells = row.cells
    test = parse_test(cells["test"])
    if test is None:
        raise CollectorError(f"{where}: test {short_repr(cells['test'])} is not a llama-bench test name such as "
                             "pp512, tg128, pp512+tg128 or tg128 @ d4096")
    rate = parse_rate(cells["t/s"])
    if rate is None:
        raise CollectorError(f"{where}: t/s {short_repr(cells['t/s'])} is not a figure such as 130.58 ± 0.66")
    backend = cells.get("backend") or None
    summary = Summary()
    setattr(summary, {"pp": "pp_tps", "tg": "tg_tps", "pg": "pg_tps"}[test.kind], rate)
    sample = Sample(category=test.label, depth_tokens=test.depth, prompt_tokens=test.n_prompt, gen_tokens=test.n_gen)
    if test.kind == "pg":
        sample.note = (f"combined rate of {test.label}: (prompt + generated tokens) / total time; not a prompt or "
                       "generation rate (summary.pg_tps)")
    build = table.build_number or None  # "build: unknown (0)": a build without git metadata, not build 0
    notes = [f"llama-bench markdown table, {origin} line {row.line} (header line {table.line})",
             "the figure is llama-bench's mean over its repetitions ± their standard deviation; the number of "
             "repetitions is not printed",
             "settings not in the table are not stated (llama-bench prints only those that differ from its "
             "defaults); the command is rebuilt from the stated columns"]
    if build is None:
        notes.append("no build line with a build number follows the table: the llama.cpp build is not stated")
    if ctx.note:
        notes.append(ctx.note)
    raw: dict[str, Any] = {"cells": dict(cells), "line": row.line, "header_line": table.line}
    if table.build_line:
        raw["build_line"] = table.build_line
    if table.device_lines:
        raw["device_lines"] = list(table.device_lines)
    return SpeedRecord(
        id=store.new_id(), created_at=store.utc_now(), status="ok",
        source=Source(type="imported", tool="llama-bench", runtime=RUNTIME, citation=ctx.citation, url=ctx.url,
                      date=ctx.date, note="; ".join(notes) + ".", raw=raw, figure=figure, command="reconstructed"),
        host=_host(table, ctx, backend, where),
        llama_cpp=LlamaCpp(version=None if build is None else f"b{build}", build_number=build,
                           commit=table.build_commit if build else None,
                           build_source=None if build is None else "the build line llama-bench printed",
                           backend=backend),
        model=_model(cells, ctx, where),
        command=_command(test, cells),
        config=_config(cells, where),
        method=Method(endpoint="llama-bench", n_predict=test.n_gen, depths=[test.depth],
                      note="llama-bench markdown: mean ± stddev per test, repetitions not printed"),
        samples=[sample], summary=summary)


def markdown_records(text: str, origin: str, ctx: Context, prefix: str = "llama-bench-md") -> list[SpeedRecord]:
    """Every row of every llama-bench table in `text` as a record (nothing is written)."""
    from collector.importers.bench_markdown import find_tables

    if not ctx.citation.strip():
        raise CollectorError(f"{origin}: a pasted table needs --citation (where it was published: thread, post, "
                             "repository file) so every figure can be traced")
    tables = find_tables(text, origin)
    if not tables:
        raise CollectorError(f"{origin}: no llama-bench table found (a markdown table with test and t/s columns); "
                             "paste llama-bench's output as it printed it")
    seen: dict[str, int] = {}
    return [row_record(t, r, ctx, origin, figure_key(prefix, t, r, seen)) for t in tables for r in t.rows]


def check_date(text: str | None, flag: str) -> str | None:
    """A stated date as given (ISO: a day, or a day and a time), checked, never completed."""
    from datetime import datetime

    if text is None:
        return None
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CollectorError(f"{flag} {short_repr(text)}: not an ISO date such as 2025-05-03 or "
                             "2025-05-03T21:50:00") from None
    return text
