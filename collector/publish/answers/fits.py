"""Whether a model file fits the GPU memory of the device it ran on, from what the records measured or state.

A file larger than the GPUs' memory together runs partly from system RAM (llama.cpp keeps the layers or experts
that do not fit there), which is why such a configuration is slower; the page says so next to its speed. Sizes
are compared only as the records give them: bytes and MiB measured, or figures a source states in GB on both
sides (a stated "31 GB" file against a stated "24GB" card, never converted from another unit), or the catalog's
memory size where the device has only one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from collector.publish.rows.devices import site_device
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord

# (a bounded number: a 400-digit figure is no size; "\s*~?\s*" would backtrack over a long run of spaces)
_GB = re.compile(r"^\s*(?:~\s*)?(\d{1,12}(?:\.\d{1,12})?)\s*GB\s*$", re.I)


def stated_gb(text: str | None) -> float | None:
    """The number of a size written in GB ("31 GB", "24GB", "~21 GB"); None for anything else."""
    m = _GB.match(text or "")
    return float(m.group(1)) if m else None


def file_gb(rec: SpeedRecord) -> tuple[float, str] | None:
    """(size in GB, how it is known) of the model file."""
    m = rec.model
    if m.size_bytes:
        return m.size_bytes / 1e9, "measured"
    gb = stated_gb(m.size_stated)
    return (gb, "as stated") if gb is not None else None


def memory_gb(rec: AnyRecord) -> tuple[float, str] | None:
    """(the GPUs' memory together in GB, how it is known); None for a CPU-only host or when nothing says it."""
    gpus = rec.host.gpus
    if not gpus:
        return None
    if all(g.vram_total_mib for g in gpus):
        return sum(g.vram_total_mib or 0 for g in gpus) * 1048576 / 1e9, "measured"
    total = stated_gb(rec.host.gpus_vram_stated)
    if total is not None:
        return total, "as stated"
    each = [stated_gb(g.vram_stated) for g in gpus]
    if all(x is not None for x in each):
        return sum(x or 0.0 for x in each), "as stated"
    sizes = site_device(rec.host).memory_gb
    return (sizes[0], "the catalog's size") if len(sizes) == 1 else None


@dataclass(frozen=True)
class Spill:
    """The file is larger than the GPU memory: the part that does not fit runs from system RAM (slower)."""

    file_gb: float
    file_how: str
    memory_gb: float
    memory_how: str


def spill(rec: SpeedRecord) -> Spill | None:
    f, mem = file_gb(rec), memory_gb(rec)
    if f is None or mem is None or f[0] <= mem[0]:
        return None
    return Spill(f[0], f[1], mem[0], mem[1])
