"""What a device page says about the device itself: the catalog's facts with their source, and what the records
measured or state (a memory stated for the GPUs together stays a total; hosts that differ between records are
not described as one)."""

from __future__ import annotations

from typing import Any

from collector.publish.rows.devices import SiteDevice
from collector.publish.words.render import mib, num
from collector.records.store import AnyRecord


def _gb(x: float) -> str:
    return f"{x:g} GB"


def catalog_facts(dev: SiteDevice) -> dict[str, Any] | None:
    """The catalog's name, kind, vendor, memory and bandwidth of each distinct GPU, with the source; None for a
    device the catalog does not list."""
    if not dev.in_catalog:
        return None
    items = []
    for d in dev.catalog:
        memory = " or ".join(_gb(m) for m in d.memory_gb) if d.memory_gb else "shared or unified (set per machine)"
        kinds = {v.memory_type for v in d.variants if v.memory_type}
        bw = d.bandwidth_gbs
        bws = sorted({v.bandwidth_gbs for v in d.variants if v.bandwidth_gbs})
        items.append({"name": d.name, "type": d.type, "vendor": d.vendor, "memory": memory,
                      "memory_type": " or ".join(sorted(kinds)) if kinds else None,
                      "bandwidth": f"{num(bw, 4)} GB/s" if bw else (" to ".join(f"{num(b, 4)}" for b in
                                                                                 (bws[0], bws[-1])) + " GB/s, by "
                                                                    "variant" if len(bws) > 1 else "not stated"),
                      "citation": d.citation, "url": next((v.url for v in d.variants if v.url), None)})
    return {"devices": items}


def hardware(records: list[AnyRecord], dev: SiteDevice) -> dict[str, Any]:
    """The device as its records describe it: measured facts first, what a source states otherwise."""
    rec = max(records, key=lambda r: (r.source.type == "measured", r.created_at))
    gpus: list[dict[str, Any]] = []
    total = rec.host.gpus_vram_stated
    for g in rec.host.gpus:
        vram = (mib(g.vram_total_mib) if g.vram_total_mib else f"{g.vram_stated} (as stated)" if g.vram_stated
                else None)
        info = {"name": g.name, "vram": vram, "bandwidth": g.mem_bandwidth_gbps, "driver": g.driver,
                "backend": g.backend, "count": 1}
        same = next((x for x in gpus if {k: v for k, v in x.items() if k != "count"} ==
                     {k: v for k, v in info.items() if k != "count"}), None)
        if same:
            same["count"] += 1
        else:
            gpus.append(info)
    for x in gpus:  # the memory stated for the GPUs together is a total, never split into a figure per GPU
        x["vram_text"] = (f"VRAM {x['vram']}" + (" each" if x["count"] > 1 else "") if x["vram"] else
                          f"VRAM {total} in total (as stated)" if total else "VRAM not stated")
    hosts = {(r.host.cpu.model, r.host.ram_total_mib, r.host.ram_stated, r.host.os) for r in records}
    host = rec.host
    ram = mib(host.ram_total_mib) if host.ram_total_mib else (f"{host.ram_stated} (as stated)" if host.ram_stated
                                                                else "not stated")
    backends = sorted({r.llama_cpp.backend for r in records if r.llama_cpp.backend})
    runtimes = sorted({r.source.runtime for r in records if r.source.runtime})
    spellings = sorted({g.name for r in records for g in r.host.gpus} if dev.gpu else
                       {r.host.cpu.model or "unknown" for r in records})
    return {"gpus": gpus, "cpu": host.cpu.model or "not stated", "cores": host.cpu.cores, "ram": ram,
            "os": host.os, "backends": backends, "runtimes": runtimes, "hosts": len(hosts),
            "catalog": catalog_facts(dev), "in_catalog": dev.in_catalog, "kind": dev.kind, "gpu": dev.gpu,
            "spellings": spellings if len(spellings) > 1 else []}
