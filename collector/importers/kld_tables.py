"""Published full-vocabulary KLD tables (imports/kld/<source>/) as `kind: kld` records, one per file measured.

Each row (or column, or block of quoted llama-perplexity lines) of a kept table becomes one record holding the
figures it states and nothing else: mean KLD with its ±, the KLD and Δp percentiles, max KL, same-top-p, PPL of
the quant (and of the base, a ratio or a difference where stated), exactly as written (the cell text is kept in
`source.raw.cells` with its line). What makes two KLDs comparable is kept per record as source.yaml states it for
the table, backed by verbatim quotes that must appear in the kept copy: the reference (`base_model`, e.g. F16,
BF16 or Q8_0), the corpus with its context and chunks where stated, the program (`kld_method`, null when the
source does not name it), the build and host where stated. A KLD belongs to a file, not to a quant name: the
uploader, repository, file name, size and importance matrix are recorded where the source states them, and each
such fact must appear in the row or in a quote of the file's entry. A column that repeats a run of another table
(the same figures, more statistics) is merged into that run's record (`same_as`), after checking that every figure
both state is the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from collector.base.errors import CollectorError, short_repr
from collector.base.yamlcheck import Section
from collector.importers.intake import one_line, write_records
from collector.importers.kld_source import (
    Cell,
    Entry,
    KeptSource,
    Table,
    line_range,
    norm_label,
    quote_lines,
    read_source,
)
from collector.models.info import FILE_TYPES
from collector.records import store
from collector.records.schema import (
    Corpus,
    CpuInfo,
    GpuInfo,
    Host,
    KldRecord,
    KldResults,
    LlamaCpp,
    ModelInfo,
    Source,
)

TABLE_KEYS = ("id", "title", "format", "lines", "key", "author", "date", "model", "reference", "corpus", "host",
              "llama_cpp", "kld_method", "size_unit", "fields", "quotes", "note", "files", "skip")
FILE_KEYS = ("name", "quant", "uploader", "repo", "file_name", "size_stated", "imatrix", "lines", "note", "quotes",
             "same_as")
FACT_KEYS = {"model": ("name", "moe"), "reference": ("name", "quant", "stated", "repo", "file_name", "size_stated"),
             "corpus": ("name", "ctx_size", "chunks"), "host": ("cpu", "gpus", "backend"),
             "llama_cpp": ("version", "commit", "backend")}
RESULTS = tuple(k for k in KldResults.model_fields if not k.endswith("_unc"))
PERCENT = {k for k in RESULTS if k.startswith("dp_")} | {"cor_ln_ppl", "same_top_p"}
MODEL_TARGETS = ("quant", "file", "imatrix", "size_stated", "raw")  # "raw": kept in source.raw only
STATED_FACTS = ("uploader", "repo", "file_name", "size_stated", "imatrix")  # must appear in the row or a quote
NOT_STATED = ("", "-", "—", "n/a", "N/A")
_FIGURE = re.compile(r"^(?P<num>[-+]?\d+(?:\.\d+)?)\s*(?:(?:±|\+/-)\s*(?P<unc>\d+(?:\.\d+)?)\s*)?(?P<pct>%)?$")
_ANNOTATED = re.compile(r"^(?P<body>.*?)\s*`(?P<note>[^`]*)`$")
_LLAMA_TYPES = {short for short, _ in FILE_TYPES.values()}


def parse_figure(text: str) -> tuple[float, float | None, bool, str | None] | None:
    """A cell as (value, its ±, written with %, a trailing `annotation`); None for a cell that states nothing
    ("", "-", "n/a"). ValueError for anything else: a figure is never guessed from a malformed cell."""
    body, note = text.strip(), None
    m = _ANNOTATED.match(body)
    if m:
        body, note = m["body"], m["note"]
    if body in NOT_STATED:
        return None
    if body.startswith("~"):
        raise ValueError(f"{short_repr(text)} is approximate (~); a KLD record holds stated figures only")
    f = _FIGURE.match(body)
    if f is None:
        raise ValueError(f"{short_repr(text)} is not a figure such as 0.0123, 6.2332 ± 0.0378 or -0.019 ± 0.003 %")
    return float(f["num"]), float(f["unc"]) if f["unc"] else None, bool(f["pct"]), note


def quant_label(text: str) -> str:
    """llama.cpp's spelling of its own types (q4_K_M is Q4_K_M); an uploader's label (UD-Q4_K_XL) as written."""
    return text.upper() if text.upper() in _LLAMA_TYPES else text


@dataclass
class _Run:
    """One file's record being assembled from one or more table entries."""

    table: Table
    key: str
    model: dict[str, Any]
    results: dict[str, float] = field(default_factory=dict)
    origin: dict[str, Cell] = field(default_factory=dict)  # results field -> the cell it was read from
    parts: list[tuple[Table, Entry]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    quotes: list[str] = field(default_factory=list)


def _kept(src: KeptSource) -> str:
    return str(src.root / src.spec.data["kept"])


def _facts(spec: Section, key: str) -> dict[str, Any]:
    sub = spec.section(key)
    sub.check_keys(FACT_KEYS[key])
    return {k: v for k, v in sub.data.items() if v is not None}


def _check_stated(spec: Section, where: str, facts: dict[str, Any], quotes: Sequence[str], skip: Sequence[str] = ())\
        -> None:
    """Every fact source.yaml states for a table must appear (ignoring case) in the table's quotes."""
    text = "\n".join(quotes).lower()
    for name, value in facts.items():
        if name in skip or isinstance(value, bool):
            continue
        for one in value if isinstance(value, list) else [value]:
            if str(one).lower() not in text:
                raise spec.fail(where, f"{name} {short_repr(one)} appears in none of the table's quotes; quote the "
                                       "source's words that state it")


def _quotes(src: KeptSource, spec: Section, key: str = "quotes") -> list[str]:
    found = [str(q) for q in spec.seq(key, [])]
    for index, q in enumerate(found):
        if not quote_lines(src, q):
            raise CollectorError(f"{spec.item_where(key, index)}: {spec.keypath(key)}[{index}] {short_repr(q)} is "
                                 f"not in {_kept(src)}; quote the kept copy verbatim")
    return found


def _date(spec: Section) -> str | None:
    text = spec.get("date", str, None)
    if text is not None:
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise spec.fail("date", f"{short_repr(text)} is not an ISO date such as 2025-05-02") from None
    return text


def _put(run: _Run, name: str, value: float, cell: Cell, src: KeptSource) -> None:
    """A figure into the run; one already there (a repeated row, a merged column) must be the same."""
    old = run.origin.get(name)
    if name in run.results and run.results[name] != value:
        raise CollectorError(f"{_kept(src)}:{cell.line}: {cell.label} {short_repr(cell.text)} differs from line "
                             f"{old.line if old else '?'} ({short_repr(old.text if old else '')}) for the same run; "
                             "it is not the same run: remove same_as or the repeated row")
    run.results[name] = value
    run.origin.setdefault(name, cell)


def _read_cells(run: _Run, table: Table, entry: Entry, fields: dict[str, str], corpus: str, src: KeptSource,
                size_unit: str | None) -> None:
    for cell in entry.cells:
        target = fields.get(cell.label)
        where = f"{_kept(src)}:{cell.line}"
        if target is None:
            raise CollectorError(f"{where}: {cell.label!r} is not in the table's fields "
                                 f"({table.spec.where('fields')}); map it to a statistic, or to raw to keep it as "
                                 "written only")
        if target == "raw":
            continue
        if target in MODEL_TARGETS:
            _model_cell(run, target, cell, size_unit)
            continue
        try:
            parsed = parse_figure(cell.text)
        except ValueError as exc:
            raise CollectorError(f"{where}: {cell.label}: {exc}") from None
        if parsed is None:
            continue
        value, unc, pct, note = parsed
        if pct != (target in PERCENT):
            raise CollectorError(f"{where}: {cell.label} {short_repr(cell.text)} "
                                 + ("lacks the % of" if target in PERCENT else "has a % but") + f" {target}")
        if note is not None and note != corpus:
            raise CollectorError(f"{where}: {cell.label} is marked `{note}`, not the table's corpus {corpus!r}; "
                                 "map it to raw")
        _put(run, target, value, cell, src)
        if unc is not None:
            if f"{target}_unc" not in KldResults.model_fields:
                raise CollectorError(f"{where}: {cell.label} states a ± that {target} has no place for")
            _put(run, f"{target}_unc", unc, cell, src)


def _model_cell(run: _Run, target: str, cell: Cell, size_unit: str | None) -> None:
    text = cell.text
    if text in NOT_STATED:
        return
    if target == "file":  # "ubergarm/mix-IQ4_K": uploader and label; "Q8_0": the label alone
        uploader, _, label = text.rpartition("/")
        run.model.update({"uploader": uploader or None, "quant": quant_label(label)})
    elif target == "quant":
        run.model["quant"] = quant_label(text)
    elif target == "size_stated":
        run.model["size_stated"] = f"{text} {size_unit}" if size_unit else text
    else:
        run.model[target] = text


def _file_facts(run: _Run, one: Section, entry: Entry, src: KeptSource) -> None:
    """A file's own facts (files: in source.yaml): those the row does not state, backed by its text or quotes."""
    quotes = _quotes(src, one)
    run.quotes += quotes
    block = []
    if run.table.format == "lines":  # the block's own lines name the file (its bullet title, its size)
        a, b = line_range(one, "lines", src)
        block = src.lines[a - 1:b]
    text = "\n".join([c.text for c in entry.cells] + block + quotes)
    for key in ("name", "quant", *STATED_FACTS):
        value = one.get(key, str, None)
        if value is None:
            continue
        if key in STATED_FACTS and value not in text:
            raise one.fail(key, f"{short_repr(value)} is neither in the entry's cells nor in its quotes; quote the "
                                "source's words that state it")
        if run.model.get(key) not in (None, value):
            raise one.fail(key, f"{short_repr(value)} contradicts the table's {short_repr(run.model[key])}")
        run.model[key] = value
    if one.get("note", str, None):
        run.notes.append(one.get("note", str))


def _figure_key(src: KeptSource, table_id: str, key: str) -> str:
    return f"{src.name}#{table_id}/{key}"


def _where(src: KeptSource, table: Table, entry: Entry) -> str:
    a, b = (src.source_line(n) for n in entry.lines)
    if table.format == "rows":
        return f'"{table.title}" line {a} ({entry.key})'
    span = f"line {a}" if a == b else f"lines {a}-{b}"
    return f'"{table.title}" ' + (f'column "{entry.key}", {span}' if table.format == "columns" else
                                  f"{span} ({entry.key})")


def _url(src: KeptSource, entry: Entry) -> str | None:
    base = src.meta("url")
    if not base:
        return None
    a, b = (src.source_line(n) for n in entry.lines)
    return f"{base}#L{a}" + (f"-L{b}" if b != a else "") if src.meta("repository") else str(base)


def _record(src: KeptSource, run: _Run, table_facts: dict[str, Any]) -> KldRecord:
    table = run.table
    spec = table.spec
    head = (f"{src.meta('repository')} {src.meta('path')} at commit {str(src.meta('commit'))[:8]}"
            if src.meta("repository") else str(src.meta("url")))
    citation = f"{head}: " + "; ".join(_where(src, t, e) for t, e in run.parts)
    notes = [spec.get("note", str, ""), *run.notes, src.spec.get("note", str, "")]
    host, llama, ref, corpus = (table_facts[k] for k in ("host", "llama_cpp", "reference", "corpus"))
    cells = [{"table": t.id, "entry": e.key, "line": c.line, "label": c.label, "text": c.text}
             for t, e in run.parts for c in e.cells]
    first = run.parts[0][1]
    record = KldRecord(
        id=store.new_id(), created_at=store.utc_now(), status="ok",
        source=Source(type="imported", citation=citation, title=f"{src.spec.get('title', str)}: {table.title}",
                      author=spec.get("author", str, None), url=_url(src, first), date=_date(spec),
                      note=" ".join(n.strip() for n in notes if n.strip()) or None,
                      quotes=[*table_facts["quotes"], *run.quotes], figure=_figure_key(src, table.id, run.key),
                      raw={"source": src.name, "kept": src.spec.get("kept", str), "first_line": src.first_line,
                           "cells": cells}),
        host=Host(cpu=CpuInfo(model=host.get("cpu")),
                  gpus=[GpuInfo(name=g, backend=host.get("backend")) for g in host.get("gpus", [])]),
        llama_cpp=LlamaCpp(**llama),
        model=ModelInfo(**run.model),
        base_model=ModelInfo(**{k: v for k, v in ref.items() if k != "stated"}) if ref else None,
        corpus=Corpus(**corpus),
        kld_method=spec.get("kld_method", str, None),
        results=KldResults(**run.results))
    return record


def _table_facts(src: KeptSource, table: Table) -> dict[str, Any]:
    spec = table.spec
    spec.check_keys(TABLE_KEYS)
    quotes = _quotes(src, spec)
    facts = {k: _facts(spec, k) for k in FACT_KEYS}
    if "name" not in facts["corpus"]:
        raise spec.fail("corpus", "name the corpus the KLD was computed on, as the source states it")
    for key, values in facts.items():
        skip = ("quant",) if key == "reference" and "stated" in values else ()
        _check_stated(spec, key, values, quotes, skip)
    gpus = facts["host"].get("gpus", [])
    if not isinstance(gpus, list) or not all(isinstance(g, str) for g in gpus):
        raise spec.fail("host", "gpus must be a list of GPU names as the source writes them")
    return {**facts, "quotes": quotes}


def _fields(spec: Section) -> dict[str, str]:
    fields = spec.section("fields")
    out = {}
    for label in fields.data:
        target = fields.get(str(label), str, check=lambda t: None if t in RESULTS or t in MODEL_TARGETS else
                            f"must be a statistic ({', '.join(RESULTS[:4])}, ...) or one of "
                            f"{', '.join(MODEL_TARGETS)}")
        out[norm_label(str(label))] = target
    return out


def source_records(src: KeptSource) -> list[KldRecord]:
    """Every file of every table of one kept source as a validated record (nothing is written)."""
    runs: dict[str, _Run] = {}
    merges: list[tuple[Section, Table, Entry, dict[str, str]]] = []
    facts: dict[str, dict[str, Any]] = {}
    for table in src.tables:
        spec = table.spec
        facts[table.id] = table_facts = _table_facts(src, table)
        fields = _fields(spec)
        files, skip = spec.section("files"), spec.section("skip")
        keys = {e.key for e in table.entries}
        for key in [*files.data, *skip.data]:
            if str(key) not in keys:
                raise (files if key in files.data else skip).fail(str(key), f"no entry {key!r} in the table (its "
                                                                            f"entries: {short_repr(sorted(keys))})")
        for entry in table.entries:
            if entry.key in skip.data:
                continue
            one = files.section(entry.key) if entry.key in files.data else Section(None, spec.file, "")
            one.check_keys(FILE_KEYS)
            same_as = one.get("same_as", str, None)
            if same_as:
                if set(one.data) - {"same_as", "note", "quotes"}:
                    raise one.fail(None, "a same_as entry adds figures to another run's record: it takes only "
                                         "same_as, note and quotes")
                merges.append((one, table, entry, fields))
                continue
            run = _Run(table, entry.key, {**table_facts["model"]}, parts=[(table, entry)])
            _read_cells(run, table, entry, fields, table_facts["corpus"]["name"], src, spec.get("size_unit", str, None))
            _file_facts(run, one, entry, src)
            runs[f"{table.id}/{entry.key}"] = run
    for one, table, entry, fields in merges:
        same_as = one.get("same_as", str)
        target = runs.get(same_as)
        if target is None:
            raise one.fail("same_as", f"{same_as!r} names no run of this source (table-id/key, e.g. "
                                      f"{short_repr(next(iter(runs), ''))})")
        if facts[table.id]["corpus"] != facts[target.table.id]["corpus"] or \
                facts[table.id]["reference"].get("quant") != facts[target.table.id]["reference"].get("quant"):
            raise one.fail("same_as", f"{same_as!r} is a run of another corpus or reference than this table's")
        _read_cells(target, table, entry, fields, facts[table.id]["corpus"]["name"], src, None)
        target.parts.append((table, entry))
        target.notes.append(one.get("note", str, ""))
        target.quotes += [q for q in facts[table.id]["quotes"] if q not in facts[target.table.id]["quotes"]]
        target.quotes += _quotes(src, one)
    records = []
    for run in runs.values():
        first = run.parts[0][1]
        try:
            records.append(_record(src, run, facts[run.table.id]))
        except (ValueError, TypeError) as exc:  # pydantic: a figure out of range, no mean KLD, ...
            raise CollectorError(f"{_kept(src)}:{first.cells[0].line}: {run.key}: not a usable KLD record "
                                 f"({one_line(exc)})") from None
    return records


def source_dirs(paths: Sequence[Path]) -> list[Path]:
    """The kept sources named: a folder with a source.yaml, or a folder of such folders (imports/kld)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / "source.yaml").is_file():
            found.append(path)
        elif path.is_dir():
            subs = sorted(p for p in path.iterdir() if (p / "source.yaml").is_file())
            if not subs:
                raise CollectorError(f"{path}: no source.yaml in it or in its folders; pass imports/kld or one of "
                                     "its sources")
            found += subs
        else:
            raise CollectorError(f"{path}: no such folder; pass imports/kld or one of its sources")
    return found


def load_records(paths: Sequence[Path]) -> list[KldRecord]:
    """Every record of the kept sources under `paths`; figure keys must be unique across them."""
    records: list[KldRecord] = []
    seen: dict[str, Path] = {}
    for root in source_dirs(paths):
        if root.resolve().name in seen:
            raise CollectorError(f"{root}: a second source named {root.resolve().name!r} (first {seen[root.name]})")
        seen[root.resolve().name] = root
        records += source_records(read_source(root))
    return records


def import_kld_tables(paths: Sequence[Path], data_dir: Path, force: bool = False) -> tuple[list[Path], list[str]]:
    """Write the records of the kept sources under data_dir; files already imported are skipped unless `force`.
    Every source is read and every record validated before the first file is written."""
    return write_records(load_records(paths), data_dir, force=force)
