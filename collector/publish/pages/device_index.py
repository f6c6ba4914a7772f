"""The device index: every device with its vendor, memory and how many figures it has, measured and imported,
filterable by vendor and by memory size ("I have 16 GB").

Memory is the GPUs' memory together: the size the records measured or state where it is one the catalog lists for
the device (a card sold with 8 and 12 GB whose records say 12 GB is a 12 GB card), else every size the catalog
lists; for a device the catalog does not list, what its records state. A CPU's memory is the system's RAM, which
differs per machine: not listed.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from collector.publish.answers.fits import memory_gb
from collector.publish.pages.files import GeneratedFile
from collector.publish.rows.devices import NOT_STATED, SiteDevice, site_device
from collector.publish.rows.frame import Frames
from collector.publish.rows.names import label_of
from collector.publish.words.links import device_src
from collector.publish.words.render import render
from collector.records.schema import KldRecord, SpeedRecord
from collector.records.store import AnyRecord


def _memory(dev: SiteDevice, recs: list[AnyRecord]) -> tuple[list[float], str]:
    """(sizes in GB, how they are known)."""
    if not dev.gpu:
        return [], "system RAM (differs per machine)"
    seen = set()
    for r in recs:
        got = memory_gb(r)
        if got and got[1] != "the catalog's size":
            seen.add(round(got[0], 1))
    if dev.memory_gb:
        known = [m for m in dev.memory_gb if m in seen]
        return (known, "as the records state it") if known else (list(dev.memory_gb), "the catalog's sizes")
    return sorted(seen), "as the records state it" if seen else "not stated"


def device_rows(f: Frames) -> list[dict[str, Any]]:
    by: dict[str, list[AnyRecord]] = defaultdict(list)
    for rec in f.records.values():
        by[site_device(rec.host).slug].append(rec)
    items = []
    for slug, recs in sorted(by.items(), key=lambda kv: site_device(kv[1][0].host).label.casefold()):
        if slug == NOT_STATED:
            continue
        dev = site_device(recs[0].host)
        sizes, how = _memory(dev, recs)
        measured = [r for r in recs if r.source.type == "measured" and isinstance(r, (SpeedRecord, KldRecord))]
        imported = [r for r in recs if r.source.type == "imported"]
        runtimes: dict[str, int] = defaultdict(int)
        for r in imported:
            runtimes[r.source.runtime or "as the source states"] += 1
        items.append({"href": device_src(slug), "label": dev.label, "kind": dev.kind, "in_catalog": dev.in_catalog,
                      "vendor": dev.vendor or "not stated", "gpu": dev.gpu,
                      "memory": " or ".join(f"{m:g}" for m in sizes) + " GB" if sizes else "—", "memory_how": how,
                      "sizes": " ".join(f"{m:g}" for m in sizes), "sort_memory": sizes[0] if sizes else None,
                      "measured": len(measured), "imported": len(imported),
                      "runtimes": sorted(runtimes.items(), key=lambda kv: -kv[1]),
                      "klds": sum(1 for r in recs if isinstance(r, KldRecord)),
                      "models": len({label_of(r) for r in recs})})
    return items


def devices_index(f: Frames) -> GeneratedFile:
    src = "devices/index.md"
    items = device_rows(f)
    vendors = sorted({i["vendor"] for i in items}, key=str.casefold)
    sizes = sorted({float(s) for i in items for s in i["sizes"].split()})
    crowd_only = {"llamafile (LocalScore)"}
    cpus = [i for i in items if not i["gpu"]]
    crowd = [i for i in items if i["gpu"] and not i["measured"] and {rt for rt, _ in i["runtimes"]} <= crowd_only]
    setups = [i for i in items if i["gpu"] and i not in crowd]
    return GeneratedFile(src, render("devices.md.j2", src=src, setups=setups, crowd=crowd, cpus=cpus,
                                     vendors=vendors,
                                     sizes=[f"{s:g}" for s in sizes],
                                     n_gpu=sum(1 for i in items if i["gpu"]),
                                     n_catalog=sum(1 for i in items if i["in_catalog"])))
