"""Which page a record's device is on: one page per catalog device (collector.catalog), however sources spell it.

A GPU set whose every GPU the catalog resolves is named by the canonical names (`NVIDIA GeForce RTX 4090`,
`2x NVIDIA GeForce RTX 3060`) and its page path by the catalog slugs (today's device_slug of the canonical name), so
"NVIDIA RTX 4090" (a post) and "NVIDIA GeForce RTX 4090" (LocalScore) share one page. A GPU the catalog does not
resolve keeps the record's own spelling and a page of its own, labelled "not in the catalog"; CPUs are not
catalogued (their memory bandwidth is the system's) and keep theirs. Resolution is the catalog's: by spelling, never
by likeness.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from collector.catalog import CatalogDevice, resolve
from collector.catalog import default as default_catalog
from collector.records.derived import PerRecord
from collector.records.schema import Host
from collector.records.store import device_slug

_VENDORS = ("NVIDIA", "AMD", "Intel", "Apple", "Qualcomm", "Huawei", "Raspberry Pi", "Zhaoxin")
NOT_STATED = "device-not-stated"  # records whose source names no GPU and no CPU
UNCATALOGUED = "-uncatalogued"  # added to the path of an unresolved spelling whose slug a catalog device has


@dataclass(frozen=True)
class SiteDevice:
    slug: str  # the page path: devices/<slug>/
    label: str
    kind: str  # the catalog's type ("discrete GPU", "Apple SoC", ...), "GPU" when not in the catalog, or "CPU"
    vendor: str | None  # the catalog's; else a maker named in the spelling; None: not known
    count: int  # GPUs (0: a CPU-only host)
    in_catalog: bool
    catalog: tuple[CatalogDevice, ...] = ()  # one per distinct GPU, in the host's order
    memory_gb: tuple[float, ...] = ()  # every total memory the set can have (the catalog's sizes x the GPUs)

    @property
    def gpu(self) -> bool:
        return self.count > 0


def _site_device_of(host: Host) -> SiteDevice:
    return _site_device(tuple(g.name for g in host.gpus), host.cpu.model)


site_device = PerRecord(_site_device_of)  # once per record's host object (asked ~10 times a record and build)


def device_key(host: Host) -> str:
    """The device page's slug for this host."""
    return site_device(host).slug


def _vendor_in(name: str) -> str | None:
    return next((v for v in _VENDORS if re.search(rf"\b{re.escape(v)}\b", name, re.I)), None)


@lru_cache(maxsize=4096)  # a few hundred distinct hosts; asked for every record several times
def _site_device(gpu_names: tuple[str, ...], cpu_model: str | None) -> SiteDevice:
    if not gpu_names and not cpu_model:  # a published table that names no machine (KLD does not depend on it)
        return SiteDevice(NOT_STATED, "Device not stated", "not stated", None, 0, False)
    if not gpu_names:
        name = cpu_model or "unknown"
        return SiteDevice(device_slug(Host.model_validate({"cpu": {"model": cpu_model}})), f"CPU: {name}", "CPU",
                          _vendor_in(name), 0, False)
    resolved = [resolve(n) for n in gpu_names]
    if any(d is None for d in resolved):
        raw = device_slug(Host.model_validate({"gpus": [{"name": n} for n in gpu_names]}))
        counts = Counter(gpu_names)
        label = " + ".join(f"{c}x {n}" if c > 1 else n for n, c in counts.items())
        slug = raw + UNCATALOGUED if raw in default_catalog().by_slug or raw.split("x-", 1)[-1] in \
            default_catalog().by_slug else raw
        return SiteDevice(slug, label, "GPU", _vendor_in(" ".join(gpu_names)), len(gpu_names), False)
    devs = [d for d in resolved if d is not None]
    by: Counter[str] = Counter(d.slug for d in devs)
    order = list(dict.fromkeys(devs))
    slug = "+".join(f"{by[d.slug]}x-{d.slug}" if by[d.slug] > 1 else d.slug for d in order)
    label = " + ".join(f"{by[d.slug]}x {d.name}" if by[d.slug] > 1 else d.name for d in order)
    kinds = {d.type for d in order}
    vendors = {d.vendor for d in order}
    sizes: set[float] = {0.0}
    for d in order:  # every combination of the sizes each GPU is sold with
        if not d.memory_gb:
            sizes = set()
            break
        sizes = {s + by[d.slug] * m for s in sizes for m in d.memory_gb}
    return SiteDevice(slug, label, kinds.pop() if len(kinds) == 1 else "GPU", vendors.pop() if len(vendors) == 1
                      else None, len(devs), True, tuple(order), tuple(sorted(sizes)))
