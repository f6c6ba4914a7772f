"""Published llama-bench and llama-sweep-bench figures kept under `imports/llama-bench/<source>/`, as records.

A source is a folder: `source.yaml` (the manifest) and the kept copies it names. A kept copy is the source's text
byte for byte (a repository file at a pinned commit) or a verbatim excerpt of it (a thread's comment as published);
the manifest records where each came from and its sha256, and an import refuses a copy that changed. Each kept
file is divided into parts, one per run as its author posted it (a comment, a section): the lines it spans and what
the author states there that the tables do not (the device when llama.cpp printed no device line, the host's CPU
and RAM, the model file, flags such as `-ot exps=CPU` or `--n-cpu-moe`, the runtime: llama.cpp or a fork). Every
stated value that is not a table cell comes with `quotes`, the author's own words, which must appear in the kept
file. Tables, read by their header names:

- llama-bench's markdown (`| model | ... | test | t/s |`): one record per row (`llama_bench_md`);
- llama-sweep-bench's (`| PP | TG | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s |`): one row is one prompt of PP
  tokens and one generation of TG tokens, both at depth N_KV; it becomes two records (pp and tg), each figure the
  single measurement the row prints (`Stat.stated`, as written);
- llama-bench `-o jsonl` lines (llama-bench's own objects, or nested under a key of a harness's line): one record
  per listed line (`llama_bench.bench_record`).

Every figure's re-import key names the kept file and its line (`<source>/<file>:<line>`, `:pp`/`:tg` for sweep
rows), so each traces to its source row. Records whose source states that weights stay in system RAM (a CPU
override of expert tensors, `--n-cpu-moe`, `--cpu-moe`, layers kept on the CPU) carry the tag
`weights-in-system-ram`; nothing else about the host is inferred.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.base.errors import CollectorError, short_repr
from collector.base.yamlcheck import Section, load_yaml_file
from collector.importers.bench_markdown import BenchTable, device_line, find_tables
from collector.importers.intake import loads_json, one_line, write_records
from collector.importers.llama_bench_md import Context, check_date, row_record
from collector.records import store
from collector.records.flags import LlamaConfig
from collector.records.schema import (
    CpuInfo,
    GpuInfo,
    Host,
    LlamaCpp,
    Method,
    ModelInfo,
    Placement,
    Sample,
    Source,
    SpeedRecord,
    Stat,
    Summary,
)

OFFLOAD_TAG = "weights-in-system-ram"
# what ran the benchmark; a fork's builds are not llama.cpp's (ipex-llm: Intel's llama.cpp portable build, SYCL)
RUNTIMES = ("llama.cpp", "ik_llama.cpp", "ipex-llm")
SWEEP_HEADER = ("PP", "TG", "N_KV", "T_PP s", "S_PP t/s", "T_TG s", "S_TG t/s")
MAX_KEPT_BYTES = 8 << 20
_LOG_BUILD = re.compile(r"^build: (?P<number>\d+) \((?P<commit>[0-9a-f]+)\)(?: with .*)?$")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_PART_KEYS = ("lines", "url", "author", "date", "runtime", "gpus", "vram_stated", "cpu", "ram_stated", "model_name",
              "model_repo", "file_name", "quant", "size_stated", "config", "command", "placement", "build",
              "build_quote", "json_key", "rows", "depths", "quotes", "note")
_KEPT_KEYS = ("file", "sha256", "repository", "commit", "path", "url", "taken", "excerpt", "source_lines", "parts")


@dataclass
class Part:
    """One run as its author posted it: the kept file's lines [first, last] and what the author states."""

    where: str  # source.yaml:line of the part, for errors
    first: int
    last: int
    url: str
    runtime: str
    author: str | None = None
    date: str | None = None
    gpus: list[str] = field(default_factory=list)
    vram_stated: str | None = None
    cpu: str | None = None
    ram_stated: str | None = None
    model_name: str | None = None
    model_repo: str | None = None
    file_name: str | None = None
    quant: str | None = None
    size_stated: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    placement: dict[str, Any] = field(default_factory=dict)
    build: int | None = None
    build_quote: str | None = None
    json_key: str | None = None
    rows: list[int] | None = None
    depths: list[int] | None = None  # sweep tables: the N_KV values to import (default: every row)
    quotes: list[str] = field(default_factory=list)
    note: str | None = None


@dataclass
class Kept:
    """One kept copy: the file under the source folder, where its bytes come from, and its parts."""

    path: Path
    rel: str  # imports/llama-bench/<source>/<file>, as records cite it
    sha256: str
    origin: str  # "repository@commit:path" or the thread's address
    excerpt: bool
    parts: list[Part]
    source_lines: list[int] | None = None  # an excerpt of whole lines: the source file's line of each kept line

    def source_line(self, line: int) -> int:
        """The line of the source file a kept line was taken from."""
        return self.source_lines[line - 1] if self.source_lines else line


@dataclass(frozen=True)
class SweepRow:
    line: int
    cells: dict[str, str]


@dataclass
class SweepTable:
    line: int
    rows: list[SweepRow]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _strings(sec: Section, key: str) -> list[str]:
    values = sec.seq(key, default=[])
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v:
            raise sec.fail(key, f"item {i + 1}: expected a non-empty string, got {short_repr(v)}")
    return [str(v) for v in values]


def _line(raw: Any) -> int | None:
    """The 0-based line a YAML mapping starts on (ruamel keeps it), for errors that name source.yaml:line."""
    lc = getattr(raw, "lc", None)
    return getattr(lc, "line", None)


def _ints(sec: Section, key: str, least: int, what: str) -> list[int] | None:
    """An optional list of whole numbers (None when absent)."""
    if not sec.has(key):
        return None
    values = sec.seq(key)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= least for n in values):
        raise sec.fail(key, f"expected {what}")
    return [int(n) for n in values]


def _part(raw: Any, manifest: Path, name: str) -> Part:
    sec = Section(raw, manifest, name, line=_line(raw), what="part")
    sec.check_keys(_PART_KEYS)
    lines = sec.seq("lines")
    if len(lines) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in lines) \
            or lines[0] > lines[1]:
        raise sec.fail("lines", f"expected [first, last], two line numbers of the kept file, got {short_repr(lines)}")
    runtime = sec.get("runtime", str)
    if runtime not in RUNTIMES:
        raise sec.fail("runtime", f"{short_repr(runtime)}: one of {', '.join(RUNTIMES)} (what ran the benchmark)")
    rows = _ints(sec, "rows", 1, "line numbers of the kept file")
    depths = _ints(sec, "depths", 0, "N_KV values of the sweep table (token counts)")
    date = sec.get("date", str, default=None)
    config = sec.get("config", dict, default={})
    placement = sec.get("placement", dict, default={})
    build = sec.get("build", int, default=None)
    build_quote = sec.get("build_quote", str, default=None)
    if (build is None) != (build_quote is None):
        raise sec.fail("build", "a stated build needs build_quote (the words that state it), and the other way round")
    if build is not None and build_quote is not None and str(build) not in build_quote:
        raise sec.fail("build_quote", f"does not contain the build number {build}")
    return Part(
        where=sec.where(), first=lines[0], last=lines[1], url=sec.get("url", str), runtime=runtime,
        author=sec.get("author", str, default=None), date=check_date(date, f"{sec.where('date')}: date"),
        gpus=_strings(sec, "gpus"), vram_stated=sec.get("vram_stated", str, default=None),
        cpu=sec.get("cpu", str, default=None), ram_stated=sec.get("ram_stated", str, default=None),
        model_name=sec.get("model_name", str, default=None), model_repo=sec.get("model_repo", str, default=None),
        file_name=sec.get("file_name", str, default=None), quant=sec.get("quant", str, default=None),
        size_stated=sec.get("size_stated", str, default=None), config=dict(config), command=_strings(sec, "command"),
        placement=dict(placement), build=build, build_quote=build_quote,
        json_key=sec.get("json_key", str, default=None), rows=rows, depths=depths,
        quotes=_strings(sec, "quotes"), note=sec.get("note", str, default=None))


def load_manifest(root: Path) -> tuple[str, list[Kept]]:
    """The source's title and its kept copies, each checked against the sha256 the manifest records."""
    manifest = root / "source.yaml"
    top = Section(load_yaml_file(manifest), manifest, "", what="source")
    top.check_keys(("title", "licence", "kept"))
    title = top.get("title", str)
    kept: list[Kept] = []
    for i, raw in enumerate(top.seq("kept")):
        sec = Section(raw, manifest, f"kept[{i}]", line=_line(raw), what="kept copy")
        sec.check_keys(_KEPT_KEYS)
        name = sec.get("file", str)
        path = root / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise sec.fail("file", f"{short_repr(name)}: a file name inside {root}")
        sha = sec.get("sha256", str)
        if not _SHA.match(sha):
            raise sec.fail("sha256", "expected 64 lowercase hex digits")
        data = _read_kept(path)
        if _sha256(data) != sha:
            raise CollectorError(f"{path}: its sha256 is not the one {manifest} records ({sec.where('sha256')}); "
                                 "the kept copy changed: restore it from its source")
        if sec.has("repository"):
            origin = f"{sec.get('repository', str)}@{sec.get('commit', str)}:{sec.get('path', str)}"
        else:
            origin = sec.get("url", str)
        parts = [_part(p, manifest, f"kept[{i}].parts[{j}]") for j, p in enumerate(sec.seq("parts"))]
        source_lines = _ints(sec, "source_lines", 1, "line numbers of the source file")
        n_lines = len(data.decode("utf-8", errors="replace").splitlines())
        if source_lines is not None and len(source_lines) != n_lines:
            raise sec.fail("source_lines", f"expected one source line number per kept line ({n_lines})")
        kept.append(Kept(path=path, rel=f"imports/llama-bench/{root.name}/{name}", sha256=sha, origin=origin,
                         excerpt=bool(sec.get("excerpt", bool)), parts=parts,
                         source_lines=source_lines))
    return title, kept


def _read_kept(path: Path) -> bytes:
    from collector.base.yamlcheck import read_regular

    if path.is_symlink():  # a kept copy is the file itself, not a pointer to whatever sits elsewhere
        raise CollectorError(f"{path}: a symbolic link, not a kept copy; put the source's text in the file")
    data = read_regular(path, MAX_KEPT_BYTES)
    if len(data) > MAX_KEPT_BYTES:
        raise CollectorError(f"{path}: larger than {MAX_KEPT_BYTES >> 20} MiB; a kept copy is a page or a file")
    return data


def sweep_tables(lines: list[str], first: int, last: int) -> list[SweepTable]:
    """llama-sweep-bench's tables within lines [first, last] (1-based)."""
    tables: list[SweepTable] = []
    i = first - 1
    while i < last:
        cells = _cells(lines[i])
        if cells is not None and tuple(cells) == SWEEP_HEADER and i + 1 < last and _is_rule(lines[i + 1]):
            table = SweepTable(line=i + 1, rows=[])
            i += 2
            while i < last and (row := _cells(lines[i])) is not None:
                if len(row) != len(SWEEP_HEADER):
                    raise CollectorError(f"line {i + 1}: {len(row)} cells under a sweep-bench header of "
                                         f"{len(SWEEP_HEADER)} (line {table.line}); keep the table unchanged")
                table.rows.append(SweepRow(line=i + 1, cells=dict(zip(SWEEP_HEADER, row, strict=True))))
                i += 1
            tables.append(table)
            continue
        i += 1
    return tables


def _cells(line: str) -> list[str] | None:
    text = line.strip()
    if len(text) < 2 or not (text.startswith("|") and text.endswith("|")):
        return None
    return [c.strip() for c in text[1:-1].split("|")]


def _is_rule(line: str) -> bool:
    return re.match(r"^\|(\s*:?-+:?\s*\|)+$", line.strip()) is not None


def _check_quotes(part: Part, text: str, kept: Kept) -> None:
    stated = list(part.quotes)
    if part.build_quote:
        stated.append(part.build_quote)
    for q in stated:
        if q not in text:
            raise CollectorError(f"{part.where}: quote {short_repr(q)} is not in {kept.rel}; quote the kept copy "
                                 "verbatim")
    for word in part.command:
        if word != "{model}" and word not in text:
            raise CollectorError(f"{part.where}: command word {short_repr(word)} is not in {kept.rel}; give the "
                                 "command as printed (the model path as {model})")
    named: list[tuple[str, str | None]] = [("ram_stated", part.ram_stated), ("cpu", part.cpu),
                                           ("vram_stated", part.vram_stated)]
    for label, value in named + [("gpus", g) for g in part.gpus]:
        if value and not any(value in q for q in part.quotes):
            raise CollectorError(f"{part.where}: {label} {short_repr(value)} is in none of the part's quotes; quote "
                                 "the words that state it")


def _offloaded(config: LlamaConfig, placement: Placement) -> bool:
    """The source states that weights stay in system RAM: experts or layers on the CPU."""
    args = config.extra_args
    overrides = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-ot", "--override-tensor")]
    return bool(config.n_cpu_moe or "--cpu-moe" in args or "-cmoe" in args
                or any("=CPU" in v for o in overrides for v in o.split(","))
                or placement.cpu_moe_layers or placement.cpu_layers)


def _merged_config(base: LlamaConfig, part: Part, where: str) -> LlamaConfig:
    """The table's settings with the part's stated ones; a stated value that contradicts a cell is refused."""
    values = base.model_dump(exclude_defaults=True)
    for key, value in part.config.items():
        if key == "extra_args":
            continue
        if key in values and values[key] != value:
            raise CollectorError(f"{where}: config.{key} {short_repr(value)} contradicts the table's "
                                 f"{short_repr(values[key])}")
        values[key] = value
    extra = list(values.get("extra_args", [])) + [str(a) for a in part.config.get("extra_args", [])]
    if extra:
        values["extra_args"] = extra
    try:
        return LlamaConfig(**values)
    except ValueError as exc:
        raise CollectorError(f"{where}: config: {one_line(exc)}") from None


def _placement(part: Part) -> Placement:
    try:
        return Placement(**part.placement)
    except ValueError as exc:
        raise CollectorError(f"{part.where}: placement: {one_line(exc)}") from None


def _ot_args(cells: dict[str, str]) -> list[str]:
    """llama-bench's `ot` column (its -ot overrides, as printed) as the llama-server flag that states them."""
    value = cells.get("ot", "")
    return ["-ot", value] if value and value not in ("none", "-") else []


def _citation(title: str, kept: Kept, part: Part, line: int) -> str:
    by = ", ".join(x for x in (part.author, part.date) if x)
    at = f" (line {kept.source_line(line)} of the source file)" if kept.source_lines else ""
    return f"{title}: {part.url}{f' ({by})' if by else ''}; kept copy {kept.rel} line {line}{at}"


def _source_note(kept: Kept, part: Part) -> str:
    how = "a verbatim excerpt" if kept.excerpt else "the file byte for byte"
    note = f"kept copy {kept.rel} ({how} of {kept.origin}; sha256 {kept.sha256[:12]}), lines {part.first}-{part.last}"
    return note + (f"; {part.note}" if part.note else "")


def _finish(rec: SpeedRecord, title: str, kept: Kept, part: Part, line: int, figure: str, tool: str) -> SpeedRecord:
    """What every record of a part shares: citation, runtime, the author's stated host, model and flags."""
    rec.source.citation = _citation(title, kept, part, line)
    rec.source.title = title
    rec.source.url = part.url
    rec.source.author = part.author
    rec.source.date = part.date
    rec.source.figure = figure
    rec.source.runtime = f"{part.runtime} ({tool})"
    rec.source.quotes = list(part.quotes) + ([part.build_quote] if part.build_quote else [])
    if part.cpu:
        rec.host.cpu = CpuInfo(model=part.cpu)
    rec.host.ram_stated = part.ram_stated
    for attr in ("model_repo", "file_name", "size_stated"):
        value = getattr(part, attr)
        if value is not None:
            setattr(rec.model, "repo" if attr == "model_repo" else attr, value)
    if part.file_name is not None and part.model_name is None:  # the file the author ran, not llama.cpp's class
        rec.model.name = _file_model(part.file_name) or rec.model.name
    rec.placement = _placement(part)
    if _offloaded(rec.config, rec.placement):
        rec.tags = [OFFLOAD_TAG]
    if part.runtime != "llama.cpp":  # a fork numbers its own builds: not a llama.cpp build
        kept_line = (rec.source.raw or {}).get("build_line")
        rec.llama_cpp = LlamaCpp(backend=rec.llama_cpp.backend)
        rec.source.note = (rec.source.note or "") + (f" Run with {part.runtime}, not llama.cpp: its build "
                                                     f"({kept_line or 'as printed'}) is not a llama.cpp build, so "
                                                     "llama_cpp names none.")
    return rec


def _bench_rows(title: str, kept: Kept, part: Part, lines: list[str]) -> list[SpeedRecord]:
    text = "\n".join(lines[part.first - 1:part.last])
    stated_args = [str(a) for a in part.config.get("extra_args", [])]
    out: list[SpeedRecord] = []
    for table in find_tables(text, f"{kept.rel}:{part.first}"):
        _shift(table, part.first - 1)
        if not table.devices and not part.gpus and not part.cpu:
            raise CollectorError(f"{part.where}: llama.cpp printed no device line before the table at "
                                 f"{kept.rel}:{table.line}; state gpus (as the author names them) or cpu")
        for row in table.rows:
            if part.rows is not None and row.line not in part.rows:
                continue
            ctx = Context(citation=title, url=part.url, date=part.date, gpus=[] if table.devices else part.gpus,
                          cpu=part.cpu, model_name=part.model_name, vram_stated=part.vram_stated,
                          note=_source_note(kept, part))
            rec = row_record(table, row, ctx, kept.rel, "")
            if part.gpus and table.devices:  # the author's names win; llama.cpp's device lines stay in source.raw
                rec.host.gpus = [GpuInfo(name=g, backend=rec.llama_cpp.backend, vram_stated=part.vram_stated)
                                 for g in part.gpus]
            if part.build is not None and rec.llama_cpp.build_number is None:
                rec.llama_cpp = LlamaCpp(version=f"b{part.build}", build_number=part.build,
                                         build_source=f"stated by the author: {part.build_quote}",
                                         backend=rec.llama_cpp.backend)
            config = _merged_config(rec.config, part, part.where)
            ot = _ot_args(row.cells)
            if ot and ot != stated_args[:2]:
                config = LlamaConfig(**{**config.model_dump(exclude_defaults=True),
                                        "extra_args": ot + list(config.extra_args)})
            rec.config = config
            rec.command += _bench_flags(part, rec.command) + stated_args
            out.append(_finish(rec, title, kept, part, row.line,
                               f"{Path(kept.rel).parent.name}/{kept.path.name}:{row.line}", "llama-bench"))
    return out


def _bench_flags(part: Part, argv: list[str]) -> list[str]:
    """The part's stated settings that the table's columns did not print, in llama-bench's spelling."""
    from collector.records.flags import FLAGS

    out: list[str] = []
    for key, value in part.config.items():
        flag = FLAGS.get(key)
        if key == "extra_args" or flag is None or flag.bench is None or flag.bench in argv:
            continue
        out += [flag.bench, flag.bench_value(value) if flag.bench_value else str(value)]
    return out


def _shift(table: BenchTable, offset: int) -> None:
    table.line += offset
    for row in table.rows:
        row.line += offset


def _log_build(lines: list[str], part: Part) -> tuple[int, str, str] | None:
    """The build llama.cpp's log printed within the part (`build: 5274 (d541533a) with cc ...`)."""
    for text in lines[part.first - 1:part.last]:
        m = _LOG_BUILD.match(text.strip())
        if m:
            return int(m["number"]), m["commit"], text.strip()
    return None


_BACKEND_LINES = ((re.compile(r"ggml_cuda_init: found \d+ CUDA devices"), "CUDA"),
                  (re.compile(r"ggml_cuda_init: found \d+ ROCm devices"), "ROCm"),
                  (re.compile(r"^ggml_vulkan: Found \d+ Vulkan devices"), "Vulkan"),
                  (re.compile(r"^ggml_metal_init: found device"), "Metal"))


def _backend(lines: list[str], part: Part) -> str | None:
    """The GPU backend llama.cpp's log names within the part (`ggml_cuda_init: found 1 CUDA devices:`)."""
    for text in lines[part.first - 1:part.last]:
        for pattern, name in _BACKEND_LINES:
            if pattern.search(text.strip()):
                return name
    return None


def _devices(lines: list[str], part: Part) -> list[str]:
    names: list[str] = []
    for text in lines[part.first - 1:part.last]:
        found = device_line(text)
        if found:
            names = [found[0]] if found[1] else [*names, found[0]]
    return names


def _rate(cell: str, where: str, column: str) -> Stat:
    if not _NUMBER.match(cell):
        raise CollectorError(f"{where}: {column} {short_repr(cell)} is not a rate such as 1054.84")
    return Stat(stated=float(cell), text=cell)


def _count(cell: str, where: str, column: str) -> int:
    if not cell.isdigit():
        raise CollectorError(f"{where}: {column} {short_repr(cell)} is not a token count")
    return int(cell)


def _sweep_rows(title: str, kept: Kept, part: Part, lines: list[str]) -> list[SpeedRecord]:
    tables = sweep_tables(lines, part.first, part.last)
    if not tables:
        return []
    if not part.model_name:
        raise CollectorError(f"{part.where}: a sweep-bench table names no model; state model_name as the author "
                             "names it")
    devices = _devices(lines, part)
    if not devices and not part.gpus and not part.cpu:
        raise CollectorError(f"{part.where}: llama.cpp printed no device line in lines {part.first}-{part.last}; "
                             "state gpus (as the author names them) or cpu")
    build = _log_build(lines, part)
    if build is None and part.build is not None:
        llama = LlamaCpp(version=f"b{part.build}", build_number=part.build,
                         build_source=f"stated by the author: {part.build_quote}")
    elif build is not None:
        llama = LlamaCpp(version=f"b{build[0]}", build_number=build[0], commit=build[1],
                         build_source="the build line llama.cpp's log printed")
    else:
        llama = LlamaCpp()
    config = _merged_config(config_from_command(part.command, part.where), part, part.where)
    backend = _backend(lines, part)
    llama.backend = backend
    out: list[SpeedRecord] = []
    seen: set[int] = set()
    for table in tables:
        for row in table.rows:
            if part.rows is not None and row.line not in part.rows:
                continue
            where = f"{kept.rel}:{row.line}"
            c = row.cells
            pp, tg, depth = (_count(c[k], where, k) for k in ("PP", "TG", "N_KV"))
            if part.depths is not None and depth not in part.depths:
                continue
            seen.add(depth)
            for kind, n, column in (("pp", pp, "S_PP t/s"), ("tg", tg, "S_TG t/s")):
                label = f"{kind}{n} @ d{depth}"
                rate = _rate(c[column], where, column)
                summary = Summary(pp_tps=rate) if kind == "pp" else Summary(tg_tps=rate)
                raw: dict[str, Any] = {"cells": dict(c), "line": row.line, "header_line": table.line}
                if build is not None:
                    raw["build_line"] = build[2]
                notes = [f"llama-sweep-bench table, {kept.rel} line {row.line} (header line {table.line}): one "
                         f"prompt of {pp} tokens and one generation of {tg} tokens at depth {depth}; this record "
                         f"holds the {kind} figure ({column}), one measurement as printed, no repetitions",
                         _source_note(kept, part)]
                rec = SpeedRecord(
                    id=store.new_id(), created_at=store.utc_now(), status="ok",
                    source=Source(type="imported", tool="llama-sweep-bench", citation=title,
                                  note="; ".join(notes) + ".", raw=raw,
                                  command="printed" if part.command else None),
                    host=Host(gpus=[GpuInfo(name=n, vram_stated=part.vram_stated, backend=backend)
                                    for n in (devices or part.gpus)]),
                    llama_cpp=llama.model_copy(),
                    model=ModelInfo(name=part.model_name, quant=part.quant),
                    command=list(part.command), config=config.model_copy(),
                    method=Method(endpoint="llama-sweep-bench", n_predict=tg if kind == "tg" else None,
                                  depths=[depth], note="llama-sweep-bench: one measurement per row"),
                    samples=[Sample(category=label, depth_tokens=depth, prompt_tokens=pp if kind == "pp" else 0,
                                    gen_tokens=tg if kind == "tg" else 0)],
                    summary=summary)
                out.append(_finish(rec, title, kept, part, row.line,
                                   f"{Path(kept.rel).parent.name}/{kept.path.name}:{row.line}:{kind}",
                                   "llama-sweep-bench"))
    missing = sorted(set(part.depths or []) - seen)
    if missing:
        raise CollectorError(f"{part.where}: depths {missing}: no sweep row at that N_KV in lines "
                             f"{part.first}-{part.last}")
    return out


# llama-server / sweep-bench spellings of the settings a printed command states (the registry's, plus the old
# boolean -fa); every other word of the command is kept, in order, in extra_args
_VALUE_FLAGS = {"-c": "ctx_size", "--ctx-size": "ctx_size", "-ngl": "n_gpu_layers", "--n-gpu-layers": "n_gpu_layers",
                "--gpu-layers": "n_gpu_layers", "--n-cpu-moe": "n_cpu_moe", "-ncmoe": "n_cpu_moe",
                "-ctk": "cache_type_k", "--cache-type-k": "cache_type_k", "-ctv": "cache_type_v",
                "--cache-type-v": "cache_type_v", "-b": "batch_size", "--batch-size": "batch_size",
                "-ub": "ubatch_size", "--ubatch-size": "ubatch_size", "-t": "threads", "--threads": "threads",
                "-ts": "tensor_split", "--tensor-split": "tensor_split", "-sm": "split_mode",
                "--split-mode": "split_mode"}
_INT_KEYS = ("ctx_size", "n_gpu_layers", "n_cpu_moe", "batch_size", "ubatch_size", "threads")


def config_from_command(argv: list[str], where: str) -> LlamaConfig:
    """The settings of a printed command (its program and model path left out), as a config."""
    values: dict[str, Any] = {}
    extra: list[str] = []
    i = 1
    while i < len(argv):
        word = argv[i]
        if word in ("-m", "--model") and i + 1 < len(argv):
            i += 2
            continue
        key = _VALUE_FLAGS.get(word)
        if key and i + 1 < len(argv):
            value: Any = argv[i + 1]
            if key in _INT_KEYS:
                if not value.lstrip("-").isdigit():
                    raise CollectorError(f"{where}: command {word} {short_repr(value)}: not a whole number")
                value = int(value)
                if key == "n_gpu_layers" and value < 0:
                    value = "all"
            values[key] = value
            i += 2
            continue
        if word in ("-fa", "--flash-attn"):
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            if nxt in ("on", "off", "auto", "0", "1"):
                values["flash_attn"] = {"0": "off", "1": "on"}.get(nxt, nxt)
                i += 2
            else:
                values["flash_attn"] = "on"  # the boolean -fa of builds before flash attention took a value
                i += 1
            continue
        extra.append(word)
        i += 1
    if extra:
        values["extra_args"] = extra
    try:
        return LlamaConfig(**values)
    except ValueError as exc:
        raise CollectorError(f"{where}: command: {one_line(exc)}") from None


def _json_rows(title: str, kept: Kept, part: Part, lines: list[str]) -> list[SpeedRecord]:
    from collector.importers.llama_bench import bench_record

    out: list[SpeedRecord] = []
    for n in part.rows if part.rows is not None else range(part.first, part.last + 1):
        if not part.first <= n <= part.last:
            raise CollectorError(f"{part.where}: row {n} is outside lines {part.first}-{part.last}")
        where = f"{kept.rel}:{n}"
        try:
            obj = loads_json(lines[n - 1])
            test = obj[part.json_key] if part.json_key else obj
            if not isinstance(test, dict):
                raise ValueError("not a llama-bench object")
            rec = bench_record(test, kept.path, n)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise CollectorError(f"{where}: not a llama-bench test ({one_line(exc)}); keep the line as published") \
                from None
        rec.source.raw = {"line": n, "source_line": kept.source_line(n), "object": obj}
        rec.source.note = (f"llama-bench JSON test, {where}; " + _source_note(kept, part) + "; created_at is its "
                           "test_time; the figure's mean is llama-bench's avg_ts, its samples are samples_ts")
        rec.model.name = part.model_name or _bench_name(test)
        if part.gpus:
            backend = rec.llama_cpp.backend
            rec.host.gpus = [GpuInfo(name=g, backend=backend, vram_stated=part.vram_stated) for g in part.gpus]
        rec.config = _merged_config(rec.config, part, part.where)
        out.append(_finish(rec, title, kept, part, n, f"{Path(kept.rel).parent.name}/{kept.path.name}:{n}",
                           "llama-bench"))
    return out


def _file_model(path: str) -> str | None:
    """The model a GGUF file's path names (store.file_model of its name); None where it names no .gguf file."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return store.file_model(name) if name.endswith(".gguf") and name != ".gguf" else None


def _bench_name(test: dict[str, Any]) -> str | None:
    """The model, named by the file the test names as the author ran it ("Mistral-Small-3.1-24B-Instruct-2503-UD-
    Q4_K_XL.gguf": "Mistral-Small-3.1-24B-Instruct-2503"); else as llama-bench names it. llama-bench's own name is
    llama.cpp's architecture and size class, which names different models alike: "llama 13B Q4_K - Medium" is any
    40-layer llama (this Mistral Small 24B), "gpt-oss ?B F16" a gpt-oss of a size the build did not know (a 20B and
    a 120B file: one model whose figures "disagreed"). A file the part states (`file_name`) names it the same way."""
    return _file_model(str(test.get("model_filename") or "")) or str(test.get("model_type") or "") or None


def load_records(root: Path) -> list[SpeedRecord]:
    """Every figure of the source folder `root` (imports/llama-bench/<source>) as a record; nothing is written."""
    title, kept_files = load_manifest(root)
    records: list[SpeedRecord] = []
    for kept in kept_files:
        try:
            text = _read_kept(kept.path).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CollectorError(f"{kept.rel}: not UTF-8 text (byte {exc.start}); keep the source's text as "
                                 "published, in UTF-8") from None
        lines = text.splitlines()
        for part in kept.parts:
            if part.last > len(lines):
                raise CollectorError(f"{part.where}: lines {part.first}-{part.last}: {kept.rel} has {len(lines)}")
            _check_quotes(part, text, kept)
            if part.json_key is not None or kept.path.suffix == ".jsonl":
                got = _json_rows(title, kept, part, lines)
            else:
                got = _bench_rows(title, kept, part, lines) + _sweep_rows(title, kept, part, lines)
            if not got:
                raise CollectorError(f"{part.where}: no llama-bench or sweep-bench row in {kept.rel} lines "
                                     f"{part.first}-{part.last}")
            records += got
    keys = [r.source.figure for r in records]
    dupes = sorted({k for k in keys if keys.count(k) > 1 and k})
    if dupes:
        raise CollectorError(f"{root}/source.yaml: two parts cover the same rows ({dupes[0]}); let parts not overlap")
    return records


def import_bench_set(root: Path, data_dir: Path, force: bool = False) -> tuple[list[Path], list[str]]:
    """Write every figure of the source folder `root`; nothing is written if any part is bad."""
    if not (root / "source.yaml").is_file():
        raise CollectorError(f"{root}: no source.yaml; give a folder such as imports/llama-bench/<source>")
    return write_records(load_records(root), data_dir, force=force)
