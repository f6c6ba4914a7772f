"""Sizes in llama.cpp's logs (MiB): sanity checks, and the memory breakdown table it prints at exit.

A size that cannot be real (negative where llama.cpp sums unsigned sizes, not finite, or past `MAX_MIB`) is
refused as unknown (None) rather than stored: a record never carries an impossible figure.
"""

from __future__ import annotations

import math
import re

from collector.records.schema import BreakdownRow

# 1 PiB: more memory than any one host or device holds; a larger figure is a misread or a wrapped value
MAX_MIB = float(1 << 30)

# Builds up to early 2026 computed the table's `free` (Vulkan, when a model spills past the heap) and `unaccounted`
# columns in size_t: a negative figure of -x bytes printed as (2**64 - x) // 2**20 MiB, i.e. 2**44 - ceil(x / MiB),
# e.g. 17592186039468 for a Vulkan device 4948 MiB over its heap (PR ggml-org/llama.cpp#20858). Anything at or
# above 2**43 MiB (8 EiB) is such a wrap: 2**44 is subtracted back, which gives floor(-x / MiB), the same
# round-down the table applies to every positive figure. Only the two signed columns can wrap; a wrap in any other
# column is refused.
_WRAP = 1 << 44
_WRAP_FROM = 1 << 43
_SIGNED = ("free", "unaccounted")

_TABLE = re.compile(r"^\w{0,40}memory_breakdown_print: \|(.*)\|\s*$")
_NUM = re.compile(r"-?\d+(?:\.\d+)?")


def mib(text: str) -> float | None:
    """A size as logged (MiB); None when it cannot be real."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value <= MAX_MIB else None


def _cell(value: float, column: str) -> float | None:
    if column in _SIGNED and value >= _WRAP_FROM:
        value -= _WRAP
    if not math.isfinite(value) or abs(value) > MAX_MIB or (value < 0 and column not in _SIGNED):
        return None
    return value


def _row(label: str, rest: str) -> BreakdownRow | None:
    nums = [float(x) for x in _NUM.findall(rest)[:8]]
    cols: tuple[str, ...]
    # a device row: total = free + (self = model + context + compute) + unaccounted
    if "=" in rest and "(" in rest and len(nums) >= 7:
        cols = ("total", "free", "self_", "model", "context", "compute", "unaccounted")
    elif len(nums) >= 4:  # the host or a buffer type: self = model + context + compute
        cols = ("self_", "model", "context", "compute")
    else:
        return None
    cells = {c: _cell(v, c.rstrip("_")) for c, v in zip(cols, nums, strict=False)}
    return BreakdownRow(name=label, **cells)


def parse_breakdown(lines: list[str]) -> list[BreakdownRow]:
    """The rows of the LAST memory breakdown table that has any (the exit table); [] when none was printed.

    Fit trial loads print a table each; the one printed at exit comes last."""
    tables: list[list[BreakdownRow]] = []
    for raw in lines:
        m = _TABLE.match(raw)
        if not m:
            continue
        cells = m.group(1).split("|")
        if len(cells) < 2:
            continue
        name, rest = cells[0].strip(), cells[1]
        if name.startswith("memory breakdown"):
            tables.append([])
        elif tables and name.startswith("- ") and (row := _row(name[2:].strip(), rest)) is not None:
            tables[-1].append(row)
    filled = [t for t in tables if t]
    return filled[-1] if filled else []
