"""One question answered from the fitted speed model, its held-out error and the memory estimate: how fast and
what fits for a model on a device.

`Estimator.of(records, held=...)` fits each metric on every usable llama.cpp figure but those the judge holds back,
and runs the held-out checks once (kept in the collector's cache under a digest of the figures it was fitted on and
this package's code: a build whose new record changes none of them fits nothing again). Speeds are llama.cpp's as
llama-bench measures them, with every layer on the GPU (estimate.offload answers for weights in system RAM).
LocalScore's llamafile fit is reported with its own error, never applied to llama.cpp.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from collector.base.cache import Blob, code_stamp, digest
from collector.base.errors import CollectorError
from collector.catalog import CatalogDevice
from collector.estimate import crowd, offload
from collector.estimate.arch import Arch, from_stated, stated_models
from collector.estimate.facts import Facts, of_arch
from collector.estimate.heldout import (
    GroupError,
    Held,
    Range,
    apart_classes,
    class_error,
    fitted_all,
    gate_name,
    gate_of,
    range_for,
    summarise,
)
from collector.estimate.memory import MemConfig, largest_context
from collector.estimate.points import (
    DEFAULT_BACKEND,
    Point,
    bandwidth,
    collect,
    compute,
    device_class,
    stated_bytes,
    vendor_class,
)
from collector.estimate.speed import SpeedFit, backend_key, predict
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord

FIT_MARGIN_MIB = 1024  # llama.cpp's own --fit-target: the free memory its fit leaves on each device
KV_TYPES = ("f16", "q8_0", "q4_0")
SIZE_REACH = 2.0  # speed is shown only for models within this factor of the fitted models' bytes per token
METRICS = ("tg", "pp")


@dataclass(frozen=True)
class SpeedAnswer:
    metric: str
    value: float | None  # t/s (None: cannot be estimated at all)
    low: float | None
    high: float | None
    basis: str  # which effects the estimate takes (the device's own, or its class's)
    error: GroupError | None  # the vendor class's leave-one-source-out error
    shown: bool
    why_not: str | None = None
    notes: tuple[str, ...] = ()
    range: Range | None = None

    @property
    def coverage(self) -> float | None:
        """The share of held-out figures the range stated this way held (measured per left-out source)."""
        return self.error.coverage if self.error else None


@dataclass
class Fitted:
    fits: dict[str, SpeedFit] = field(default_factory=dict)
    checks: dict[str, list[Held]] = field(default_factory=dict)
    errors: list[GroupError] = field(default_factory=list)
    apart: dict[str, frozenset[str]] = field(default_factory=dict)  # per metric: heldout.apart_classes
    crowd: list[crowd.CrowdError] = field(default_factory=list)
    off_fits: dict[str, offload.OffloadFit] = field(default_factory=dict)  # weights in system RAM, per metric
    off_checks: dict[str, list[offload.OffHeld]] = field(default_factory=dict)
    off_errors: dict[str, offload.OffError] = field(default_factory=dict)
    off_ranges: dict[str, offload.OffRange] = field(default_factory=dict)  # the stated range of each metric


def _code() -> str:
    return code_stamp(tuple(sorted(Path(__file__).resolve().parent.glob("*.py"))))


def fit_key(points: list[Point], crowd_points: list[crowd.Point], off_points: list[offload.OffPoint]) -> str:
    return digest(_code(), *map(repr, points), *map(repr, crowd_points), *map(repr, off_points))


def fit_all(points: list[Point], crowd_points: list[crowd.Point], off_points: list[offload.OffPoint]) -> Fitted:
    """Every metric fitted, and its held-out checks; the offload model and its checks; LocalScore's own fit and
    error. Cached by the points and this code."""
    key = fit_key(points, crowd_points, off_points)
    blob = Blob("estimate", "heldout.pickle")
    hit = blob.get(key)
    if isinstance(hit, Fitted):
        return hit
    out = Fitted()
    for metric in METRICS:
        f, checks = fitted_all(points, metric)
        out.fits[metric], out.checks[metric] = f, checks
        out.errors += summarise(checks, metric)
        out.apart[metric] = apart_classes(checks)
    out.crowd = crowd.crowd_errors(crowd_points)
    for metric in METRICS:
        out.off_fits[metric] = offload.fit_off(off_points, out.fits[metric], metric)
        out.off_checks[metric] = offload.leave_source_out(off_points, lambda m: out.fits[m], metric)
        err = offload.summarise_off(out.off_checks[metric], metric)
        if err is not None:
            out.off_errors[metric] = err
        if (rng := offload.off_range(out.off_checks[metric])) is not None:
            out.off_ranges[metric] = rng
    blob.put(key, out)
    return out


def record_models(records: list[AnyRecord]) -> list[Arch]:
    """The models (and quants) of the data known by models.yaml's first part (hyperparameters a source states and
    a file size as measured or stated): what `collector estimate "LLaMA 3 8B Q4_K_M"` finds."""
    seen: dict[tuple[str, str | None, int], Arch] = {}
    for rec in records:
        if not isinstance(rec, SpeedRecord):
            continue
        st = stated_models().get(rec.model.name or "")
        if st is None or st.layout:
            continue
        m = rec.model
        if m.sha256 and m.sha256 in st.files:
            arch = from_stated(st, m.quant, 0, "", m.sha256)
        else:
            size = stated_bytes(m.size_stated) or m.size_bytes
            if not size:
                continue
            origin = (rec.source.citation or "its source").split(",")[0]
            source = f"{m.size_stated} as {origin} states it" if m.size_stated else "the file's (the record)"
            arch = from_stated(st, m.quant, int(size), source)
        seen.setdefault((arch.name, arch.quant, arch.weight_bytes), arch)
    return sorted(seen.values(), key=lambda a: (a.weight_bytes, a.name))


def stated_mixes(records: list[AnyRecord]) -> dict[tuple[str, str], tuple[float, str]]:
    """(table model, quant) -> (bytes, source) for the files of the model table whose quant is no standard
    llama-quantize type (published custom mixes, unsloth UD-*): their size as the record's source states it."""
    from collector.estimate.table import quant_label

    out: dict[tuple[str, str], tuple[float, str]] = {}
    for rec in records:
        st = stated_models().get(rec.model.name or "") if isinstance(rec, SpeedRecord) else None
        quant, size = rec.model.quant or "", stated_bytes(rec.model.size_stated)
        if st is None or not st.layout or not size or quant_label(quant):
            continue
        origin = (rec.source.citation or "its source").split(",")[0]
        out.setdefault((st.name, quant), (size, f"{rec.model.size_stated} as {origin} states it"))
    return out


class Estimator:
    def __init__(self, points: list[Point], left: Counter[str], fitted: Fitted, models: list[Arch],
                 off_points: list[offload.OffPoint] | None = None, off_left: Counter[str] | None = None) -> None:
        self.points, self.left, self.fitted, self.models = points, left, fitted, models
        self.off_points = off_points or []
        self.off_left = off_left or Counter()
        self.mixes: dict[tuple[str, str], tuple[float, str]] = {}  # see stated_mixes
        tg = [p.facts.read_bytes for p in points if p.metric == "tg"]
        self.size_range = (min(tg), max(tg)) if tg else None
        self.figures = Counter((p.device, p.metric) for p in points)
        years = sorted({p.year for p in points if p.year})
        self.year = years[-1] if years else None  # estimates are for the newest builds the fit has
        self._ranges: dict[tuple[str, str], Range | None] = {}
        # a digest of everything this estimator's answers are a function of, besides the code (Estimator.of sets
        # it): the same key, the same answer to every question; None: not known (answers are not kept)
        self.key: str | None = None

    @classmethod
    def of(cls, records: list[AnyRecord], held: Collection[tuple[str, str]] = ()) -> Estimator:
        """Fitted on every usable figure but those `held` ((record id, tg|pp) the judge holds back)."""
        points, left = collect(records, held)
        off_points, off_left = offload.collect(records, frozenset(held))
        crowd_points = crowd.collect(records, held)
        est = cls(points, left, fit_all(points, crowd_points, off_points), record_models(records), off_points,
                  off_left)
        est.mixes = stated_mixes(records)
        # not the counts of figures left out (the Methodology page's, never kept): one more run of our own adds one
        est.key = digest(fit_key(points, crowd_points, off_points), *map(repr, est.models),
                         repr(sorted(est.mixes.items())))
        return est

    def range_of(self, metric: str, group: str) -> Range | None:
        """The stated range of a gate's estimates (heldout.gate_of; the same for every question of it: kept)."""
        key = (metric, group)
        if key not in self._ranges:
            self._ranges[key] = range_for(self.fitted.checks.get(metric, []), group,
                                          apart=self.fitted.apart.get(metric, frozenset()))
        return self._ranges[key]

    def n_figures(self, device: str, metric: str) -> int:
        return self.figures[(device, metric)]

    def measured(self, device: str, name: str, quant: str | None) -> int:
        """Figures in the fit of this model and quant on this device (one GPU or a set: 'X x 2')."""
        return sum(1 for p in self.points if p.device == device and p.model == name and p.quant == quant)

    def point(self, dev: CatalogDevice, n_gpus: int, facts: Facts, metric: str, depth: int = 0, prompt: int = 512,
              vram_gb: float | None = None, backend: str | None = None, type_k: str = "f16", type_v: str = "f16",
              ubatch: int = 512, batch: int = 2048) -> Point | None:
        """The question as a point of the model (None: the device has no single bandwidth)."""
        bw = bandwidth(dev, None, vram_gb=vram_gb)
        if bw is None:
            return None
        flops, arch_key = compute(dev)
        n_tok = 128 if metric == "tg" else prompt
        return Point(record="", metric=metric, source="", year=self.year,
                     device=dev.name if n_gpus == 1 else f"{dev.name} x {n_gpus}", gpu=dev.name, n_gpus=n_gpus,
                     cls=device_class(dev, n_gpus), backend=backend or "", arch_key=arch_key, facts=facts,
                     depth=depth if metric == "tg" else depth + prompt / 2, ubatch=max(1, min(ubatch, batch, prompt)),
                     prompt=n_tok, batch=batch, type_k=type_k, type_v=type_v, bw=bw * 1e9, flops=flops,
                     clock=dev.boost_mhz, value=1.0, flash="on")  # llama.cpp's default (auto) on a GPU

    def speed(self, dev: CatalogDevice, n_gpus: int, arch: Arch | Facts, metric: str, depth: int = 0,
              prompt: int = 512, vram_gb: float | None = None, backend: str | None = None, type_k: str = "f16",
              type_v: str = "f16", ubatch: int = 512) -> SpeedAnswer:
        """llama.cpp's tg (generating at this filled depth) or pp (a prompt of this length) with every layer on the
        GPU, as llama-bench would measure it, with the range its held-out checks give; `shown` says whether the
        site shows it. vram_gb: the memory size a reader gives (--vram), which picks the variant's bandwidth."""
        facts = arch if isinstance(arch, Facts) else of_arch(arch)
        f = self.fitted.fits.get(metric)
        if f is None or not f.n:
            return SpeedAnswer(metric, None, None, None, "", None, False, "no llama.cpp figure to fit on")
        p = self.point(dev, n_gpus, facts, metric, depth, prompt, vram_gb, backend, type_k, type_v, ubatch)
        if p is None:
            return SpeedAnswer(metric, None, None, None, "", None, False, "the catalog states no single bandwidth "
                               "for this device (its variants differ: give its memory size, --vram GB)")
        value = predict(f, p)
        if value != value:
            return SpeedAnswer(metric, None, None, None, "", None, False,
                               "the catalog states no compute figure for this device")
        group = gate_of(p, self.fitted.apart.get(metric, frozenset()))
        err = class_error(self.fitted.errors, metric, group)
        rng = self.range_of(metric, group)
        notes: list[str] = []
        own = f.seen(p, "device")
        if own:
            basis = (f"this device's own effect ({own} figures) with its class's, backend's and year's")
        elif f.seen(p, "cls"):
            basis = f"the effects of its class ({p.cls}), backend and year: no figure of this device is in the fit"
        else:
            basis = f"the overall level: no figure of a {p.cls} is in the fit"
        if not f.seen(p, "quant"):
            notes.append(f"no figure of a {facts.quant} file is in the fit: its cost per byte is the fitted quants' "
                         "average")
        b = backend_key(p)
        if b and not f.seen(p, "backend"):
            notes.append(f"no figure of the {b} backend is in the fit")
        if facts.scaled != 1.0:
            notes.append(f"model facts: {facts.basis}")
        why = None
        if err is None or not err.meets:
            why = (f"figures of {gate_name(group)}, left out by source: {err.shortfall}" if err else
                   f"no figure of a {vendor_class(p.cls)} GPU was left out by source and checked")
        elif self.size_range and metric == "tg" and not (
                self.size_range[0] / SIZE_REACH <= facts.read_bytes <= self.size_range[1] * SIZE_REACH):
            lo, hi = self.size_range
            why = (f"the model reads {facts.read_bytes / 1e9:.2f} GB per token, outside the sizes the fit and its "
                   f"checks cover ({lo / 1e9 / SIZE_REACH:.2f}-{hi / 1e9 * SIZE_REACH:.0f} GB)")
        low = value * rng.low if rng else None
        high = value * rng.high if rng else None
        return SpeedAnswer(metric, value, low, high, basis, err, why is None and rng is not None, why, tuple(notes),
                           rng)


def default_backend(dev: CatalogDevice) -> str:
    return DEFAULT_BACKEND.get(dev.vendor, "")


def vram_mib(dev: CatalogDevice) -> list[float]:
    """Every memory size the device is sold with, in MiB (the catalog's GB are the binary sizes GPUs are sold in)."""
    return [gb * 1024 for gb in dev.memory_gb]


@lru_cache(maxsize=4096)  # every device of one memory size asks the same question of every model
def fits(arch: Arch, vram: float, n_gpus: int, kv: str) -> int | None:
    """The largest context whose GPU buffers fit n GPUs of `vram` MiB, each keeping llama.cpp's fit margin free of
    what it reports free (estimate.placement.FREE_SHORT_MIB), with llama-server's defaults (flash attention, ubatch
    512, one slot); None when the model does not fit at 256 tokens (or llama.cpp would refuse the cache type)."""
    from collector.estimate.placement import FREE_SHORT_MIB

    try:
        return largest_context(arch, MemConfig(type_k=kv, type_v=kv), n_gpus * (vram - FREE_SHORT_MIB - FIT_MARGIN_MIB))
    except CollectorError:
        return None


def rate_ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0
