"""A published KLD table kept under imports/kld/<source>/: the kept copy, checked against its source.yaml, and its
tables read into cells, each with the kept copy's line it stands on.

source.yaml pins where the copy comes from (repository, commit, path, or a URL and date), its sha256 and, for an
excerpt, the source line its first line is (`first_line`). Each entry of `tables` says which lines hold a table and
how to read it:

- `format: rows`: a markdown table, one file per row; `key` names the columns that tell the rows apart.
- `format: columns`: a markdown table, one file per column after the first (the statistic's name).
- `format: lines`: llama-perplexity's summary lines as a post quotes them (`Mean    KLD:   0.014594 ±   0.000064`,
  inside bullets or quotes); each file of `files` names its own `lines`.

`fields` maps each column header (rows), row label (columns) or statistic name (lines) to what it holds; runs of
spaces count as one. What the cells mean (the records) is kld_tables.py's business; this module only reads them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.base.errors import CollectorError, short_repr
from collector.base.yamlcheck import Section, load_yaml_file, read_regular
from collector.importers.intake import IMPORT_MAX_BYTES

SOURCE_KEYS = ("repository", "commit", "commit_date", "path", "url", "kept", "first_line", "sha256", "title", "note",
               "tables")
FORMATS = ("rows", "columns", "lines")
_SEPARATOR = re.compile(r"^:?-+:?$")
_PREFIX = re.compile(r"^(?:>\s?)*\s*(?:[*-]\s+)?")  # quote marks and one bullet before a quoted output line
# the statistics llama-perplexity prints as "<name>: <value>" (and the "Final estimate: PPL = ..." line)
_STAT_LINE = re.compile(r"^(?P<label>(?:Mean|Maximum|Minimum|Median|RMS|Same|Cor|Final|\d+(?:\.\d+)?%)[^:]*?)"
                        r"\s*:\s*(?P<value>\S.*)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def norm_label(text: str) -> str:
    """A header or statistic name with its runs of spaces as one ("Mean    KLD" is "Mean KLD")."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Cell:
    """One figure or fact as written: its line in the kept copy (1-based), the label it stands under, its text."""

    line: int
    label: str
    text: str


@dataclass
class Entry:
    """One file's cells in one table: a row, a column or a block of lines."""

    key: str
    cells: list[Cell] = field(default_factory=list)
    span: tuple[int, int] | None = None  # `format: lines`: the block source.yaml names (its title line included)

    @property
    def lines(self) -> tuple[int, int]:
        if self.span is not None:
            return self.span
        found = [c.line for c in self.cells] or [0]
        return min(found), max(found)


@dataclass
class Table:
    spec: Section
    id: str
    title: str
    format: str
    entries: list[Entry]


@dataclass
class KeptSource:
    root: Path
    name: str  # the folder's name: the first part of every figure key
    spec: Section
    lines: list[str]  # the kept copy split at "\n" (a "\r" before it dropped): line n is lines[n - 1]
    first_line: int  # the source file's line that the kept copy's line 1 is
    tables: list[Table]

    def source_line(self, kept_line: int) -> int:
        return kept_line + self.first_line - 1

    def meta(self, key: str) -> Any:
        return self.spec.data.get(key)


def read_source(root: Path) -> KeptSource:
    """The kept copy under `root` with its tables read; CollectorError naming the file and line otherwise."""
    root = Path(root)
    path = root / "source.yaml"
    top = Section(load_yaml_file(path), path, "", what="source.yaml")
    top.check_keys(SOURCE_KEYS)
    for key in ("title", "kept", "sha256"):
        top.get(key, str)
    if not (top.get("repository", str, None) or top.get("url", str, None)):
        raise top.fail(None, "name where the copy comes from: repository (with commit and path) or url")
    if top.get("repository", str, None):
        for key in ("commit", "path"):
            top.get(key, str)
    kept_name = top.get("kept", str, check=lambda k: None if _NAME.match(k) else "must be a file name in this "
                        "folder (letters, digits, . _ -)")
    first = top.get("first_line", int, 1, check=lambda n: None if n >= 1 else "must be 1 or more")
    raw = read_regular(root / kept_name, IMPORT_MAX_BYTES)
    if len(raw) > IMPORT_MAX_BYTES:
        raise CollectorError(f"{root / kept_name}: larger than {IMPORT_MAX_BYTES >> 20} MiB; a kept table is KiB")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != top.get("sha256", str):
        raise CollectorError(f"{root / kept_name}: its sha256 is {digest[:12]}…, not {top.get('sha256', str)[:12]}… "
                             f"({path}); the kept copy changed: restore it from the pinned source")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CollectorError(f"{root / kept_name}:{line}: not UTF-8 text; restore the kept copy") from None
    lines = [ln.removesuffix("\r") for ln in text.split("\n")]
    src = KeptSource(root, root.resolve().name, top, lines, first, [])
    seen: set[str] = set()
    specs = top.seq("tables")
    for i, raw_spec in enumerate(specs):
        spec = Section(raw_spec, path, f"tables[{i}]", _item_line(top.data.get("tables"), i), "source.yaml")
        table = _read_table(src, spec)
        if table.id in seen:
            raise spec.fail("id", f"{table.id!r} is used twice; table ids must be unique in a source")
        seen.add(table.id)
        src.tables.append(table)
    return src


def _item_line(seq: Any, index: int) -> int | None:
    try:
        return int(seq.lc.item(index)[0])
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def line_range(spec: Section, key: str, src: KeptSource) -> tuple[int, int]:
    """A `[first, last]` pair of kept-copy lines, checked to lie in the file."""
    value = spec.get(key, list)
    if len(value) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
        raise spec.fail(key, f"expected [first, last] line numbers of the kept copy, got {short_repr(list(value))}")
    a, b = int(value[0]), int(value[1])
    if not 1 <= a <= b <= len(src.lines):
        raise spec.fail(key, f"[{a}, {b}] is not within the kept copy's {len(src.lines)} lines")
    return a, b


def _cells(src: KeptSource, n: int) -> list[str]:
    """The cells of markdown table line n; CollectorError when the line is not a table row."""
    text = src.lines[n - 1].strip()
    if not (text.startswith("|") and text.endswith("|") and len(text) > 1):
        raise CollectorError(f"{src.root / src.spec.data['kept']}:{n}: not a markdown table row "
                             f"({short_repr(text)}); fix the table's lines in source.yaml")
    return [c.strip() for c in text[1:-1].split("|")]


def _read_table(src: KeptSource, spec: Section) -> Table:
    tid = spec.get("id", str, check=lambda k: None if _NAME.match(k) else "must be letters, digits, . _ -")
    fmt = spec.get("format", str, check=lambda f: None if f in FORMATS else f"must be one of {', '.join(FORMATS)}")
    title = spec.get("title", str)
    kept = src.root / src.spec.data["kept"]
    if fmt == "lines":
        return Table(spec, tid, title, fmt, _read_lines(src, spec))
    a, b = line_range(spec, "lines", src)
    if b - a < 2:
        raise spec.fail("lines", "a table needs a header, its separator and at least one row")
    header = [norm_label(c) for c in _cells(src, a)]
    if not all(_SEPARATOR.match(c.replace(" ", "")) for c in _cells(src, a + 1)):
        raise CollectorError(f"{kept}:{a + 1}: not the separator row (|---|---|) under the header on line {a}; "
                             "fix the table's lines in source.yaml")
    entries: dict[str, Entry] = {}
    if fmt == "rows":
        key_cols = [norm_label(str(k)) for k in spec.seq("key")]
        missing = [k for k in key_cols if k not in header]
        if missing:
            raise spec.fail("key", f"{', '.join(map(repr, missing))} is not a column of the header on line {a}")
    for n in range(a + 2, b + 1):
        row = _cells(src, n)
        if len(row) != len(header):
            raise CollectorError(f"{kept}:{n}: {len(row)} cells, the header on line {a} has {len(header)}")
        if fmt == "rows":
            named = dict(zip(header, row, strict=True))
            key = re.sub(r"\s+", "-", "-".join(named[k] for k in key_cols))
            if key in entries:
                raise CollectorError(f"{kept}:{n}: a second row {key!r} (first on line "
                                     f"{entries[key].cells[0].line}); rows must differ in {', '.join(key_cols)}")
            entries[key] = Entry(key, [Cell(n, h, c) for h, c in zip(header, row, strict=True)])
        else:
            for col, text in zip(header[1:], row[1:], strict=True):
                entries.setdefault(col, Entry(col)).cells.append(Cell(n, norm_label(row[0]), text))
    if fmt == "columns" and len(entries) != len(header) - 1:
        raise CollectorError(f"{kept}:{a}: two columns share a name; each file's column needs its own")
    return Table(spec, tid, title, fmt, list(entries.values()))


def _read_lines(src: KeptSource, spec: Section) -> list[Entry]:
    """`format: lines`: each file of `files` with its own [first, last] lines of statistic lines."""
    files = spec.section("files")
    entries = []
    for key in files.data:
        one = files.section(str(key))
        a, b = line_range(one, "lines", src)
        entry = Entry(str(key), span=(a, b))
        for n in range(a, b + 1):
            content = _PREFIX.sub("", src.lines[n - 1]).strip()
            m = _STAT_LINE.match(content)
            if m:
                entry.cells.append(Cell(n, norm_label(m["label"]), m["value"].strip()))
        if not entry.cells:
            raise one.fail("lines", f"no statistic line (such as 'Mean KLD: 0.0146') in lines {a}-{b}")
        entries.append(entry)
    return entries


def quote_lines(src: KeptSource, quote: str) -> list[int]:
    """The kept-copy lines a verbatim quote starts on (a quote may span lines, joined with \\n)."""
    text = "\n".join(src.lines)
    found, start = [], text.find(quote)
    while start >= 0:
        found.append(text.count("\n", 0, start) + 1)
        start = text.find(quote, start + 1)
    return found
