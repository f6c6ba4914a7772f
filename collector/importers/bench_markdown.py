"""Find llama-bench's markdown tables (`-o md`, its default output) in pasted text, cell by cell.

A table is recognised by its header: a markdown row naming a `test` and a `t/s` column, followed by the
separator row. Columns are read by name, in any order and any subset (llama-bench prints only the settings that
differ from its defaults, and its columns changed over the years). What llama.cpp printed around a table is
kept with it: the `build: <commit> (<number>)` line right after it, and the device lines before it
(`Device 0: NVIDIA GeForce RTX 4090, compute capability 8.9`, `ggml_vulkan: 0 = AMD Radeon ... | uma: ...`,
`ggml_metal_init: found device: Apple M1 Max`) since the previous table. Nothing here interprets a cell;
`bench_rows` turns the cells into record fields.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from collector.base.errors import CollectorError, short_repr

_SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+$")
_BUILD = re.compile(r"^build: (?P<commit>[0-9a-fA-F]{1,40}|unknown) \((?P<number>\d{1,9})\)$")
# llama.cpp's own device lines, as its backends print them when they start
_DEVICE_LINES = (
    re.compile(r"^\s*Device (?P<index>\d+): (?P<name>[^,]+), (?:compute capability|gfx)"),  # CUDA, ROCm
    re.compile(r"^ggml_vulkan: (?P<index>\d+) = (?P<name>.+?) \([^()]*\) \| uma:"),  # Vulkan: name (driver) | uma:
    re.compile(r"^ggml_metal_init: found device: (?P<name>.*\S)\s*$"),  # Metal (one device)
)
# what llama.cpp logs to stderr while llama-bench prints its table (a terminal interleaves the two): passed over
# between a table's rows, nothing else is
_INTERLEAVED = re.compile(r"^ggml_vulkan: Compiling shaders\.*\s*Done!$")
MAX_LINES = 200_000  # a pasted page, not a data dump
MAX_COLUMNS = 256  # llama-bench prints about 20
MAX_ROWS = 10_000  # tests in one paste
MAX_DEVICE_LINE = 4096  # llama.cpp's device lines are a hundred characters


@dataclass
class BenchRow:
    line: int  # 1-based line in the text
    cells: dict[str, str]  # column name -> the cell as printed (outer spaces removed), in table order


@dataclass
class BenchTable:
    line: int  # the header's line
    columns: list[str]
    rows: list[BenchRow] = field(default_factory=list)
    build_line: str | None = None  # "build: 4426e298 (2824)" when printed right after the table
    build_commit: str | None = None
    build_number: int | None = None
    device_lines: list[str] = field(default_factory=list)  # llama.cpp's device lines printed before the table
    devices: list[str] = field(default_factory=list)  # the device names those lines give, in order


def _cells(line: str) -> list[str] | None:
    text = line.strip()
    if len(text) < 2 or not (text.startswith("|") and text.endswith("|")):
        return None
    return [c.strip() for c in text[1:-1].split("|")]


def device_line(line: str) -> tuple[str, bool] | None:
    """(device name, whether the line starts a device list: device 0, or Metal's single device)."""
    if len(line) > MAX_DEVICE_LINE:
        return None
    for pattern in _DEVICE_LINES:
        m = pattern.match(line)
        if m:
            index = m.groupdict().get("index")
            return m["name"].strip(), index in (None, "0")
    return None


def _device_name(line: str) -> str | None:
    found = device_line(line)
    return found[0] if found else None


def find_tables(text: str, origin: str) -> list[BenchTable]:
    """Every llama-bench table in `text`; other markdown tables are passed over. A row whose cell count differs
    from its header's fails naming `origin` and the line (a `|` inside a cell, or a cut paste)."""
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise CollectorError(f"{origin}: {len(lines)} lines; a llama-bench paste is at most {MAX_LINES} lines")
    tables: list[BenchTable] = []
    rows = 0
    pending: list[str] = []  # device lines seen since the previous table
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _cells(line)
        if header is None or i + 1 >= len(lines) or not _SEPARATOR.match(lines[i + 1].strip()) \
                or "test" not in header or "t/s" not in header:
            device = device_line(line)
            if device:  # a new list (device 0) replaces one printed by an earlier run that made no table
                pending = [line.rstrip()] if device[1] else [*pending, line.rstrip()]
            i += 1
            continue
        if len(header) > MAX_COLUMNS:
            raise CollectorError(f"{origin}:{i + 1}: a table of {len(header)} columns; llama-bench prints about 20 "
                                 f"(at most {MAX_COLUMNS} are read): paste the table as llama-bench printed it")
        dupes = sorted(c for c, n in Counter(header).items() if n > 1)
        if dupes or "" in header:
            raise CollectorError(f"{origin}:{i + 1}: the table header names {short_repr(dupes or [''])} twice or "
                                 "has an empty column name; paste the table as llama-bench printed it")
        table = BenchTable(line=i + 1, columns=header, device_lines=pending,
                           devices=[n for n in (_device_name(d) for d in pending) if n])
        pending = []
        i += 2
        while i < len(lines):
            if _INTERLEAVED.match(lines[i].strip()):
                i += 1
                continue
            if (cells := _cells(lines[i])) is None:
                break
            if len(cells) != len(header):
                raise CollectorError(f"{origin}:{i + 1}: {len(cells)} cells under a header of {len(header)} columns "
                                     f"(line {table.line}); paste the table unchanged (a cell may not contain '|')")
            table.rows.append(BenchRow(line=i + 1, cells=dict(zip(header, cells, strict=True))))
            rows += 1
            if rows > MAX_ROWS:
                raise CollectorError(f"{origin}:{i + 1}: more than {MAX_ROWS} rows of llama-bench tables; import "
                                     "the paste in parts")
            i += 1
        j = i
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j < len(lines) and (m := _BUILD.match(lines[j].strip())):
            table.build_line = lines[j].strip()
            table.build_commit = None if m["commit"] == "unknown" else m["commit"]
            table.build_number = int(m["number"])
            i = j + 1
        if table.rows:
            tables.append(table)
    return tables
