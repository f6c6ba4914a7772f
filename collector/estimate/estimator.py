"""One question answered from the fitted speed model, its held-out error and the memory estimate: how fast and
what fits for a model on a device.

`Estimator.of(records)` fits every runtime and metric and runs the held-out checks once (kept in the collector's
cache under a digest of the figures it was fitted on and this package's code: a build whose new record changes
none of them fits nothing again). Speeds are llama.cpp's as llama-bench measures them (the runtime the device
pages use); LocalScore's llamafile fit is reported with its own error, never applied to llama.cpp.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from collector.base.cache import Blob, code_stamp, digest
from collector.base.errors import CollectorError
from collector.catalog import CatalogDevice
from collector.estimate.arch import Arch, from_stated, stated_models
from collector.estimate.heldout import ClassError, Held, leave_device_out, leave_model_out, summarise
from collector.estimate.memory import MemConfig, largest_context
from collector.estimate.speed import (
    BENCH,
    RUNTIMES,
    Fit,
    Point,
    bandwidth,
    collect,
    device_class,
    fit,
    predict,
    terms,
)
from collector.estimate.speed import stated_bytes as parse_size
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord

FIT_MARGIN_MIB = 1024  # llama.cpp's own --fit-target: the free memory its fit leaves on each device
KV_TYPES = ("f16", "q8_0", "q4_0")
SIZE_REACH = 2.0  # speed is estimated only for models within this factor of the fitted models' sizes
METRICS = ("tg", "pp")


@dataclass(frozen=True)
class SpeedAnswer:
    metric: str
    value: float | None  # t/s (None: cannot be estimated at all)
    low: float | None
    high: float | None
    basis: str  # whose efficiency: the device's own fit or its class's median
    error: ClassError | None  # the held-out error that applies
    shown: bool
    why_not: str | None = None
    notes: tuple[str, ...] = ()


@dataclass
class Fitted:
    fits: dict[tuple[str, str], Fit] = field(default_factory=dict)
    held: dict[tuple[str, str], list[Held]] = field(default_factory=dict)
    errors: list[ClassError] = field(default_factory=list)


def _code() -> str:
    return code_stamp(tuple(sorted(Path(__file__).resolve().parent.glob("*.py"))))


def fit_all(points: list[Point]) -> Fitted:
    """Every runtime and metric fitted, and its held-out checks; cached by the points and this code."""
    key = digest(_code(), *map(repr, points))
    blob = Blob("estimate", "heldout.pickle")
    hit = blob.get(key)
    if isinstance(hit, Fitted):
        return hit
    out = Fitted()
    for runtime in RUNTIMES:
        for metric in METRICS:
            pts = [p for p in points if p.runtime == runtime and p.metric == metric]
            if not pts:
                continue
            f = fit(pts, runtime, metric)
            held = leave_device_out(pts, f) + leave_model_out(pts, f)
            out.fits[(runtime, metric)], out.held[(runtime, metric)] = f, held
            out.errors += summarise(held, runtime, metric)
    blob.put(key, out)
    return out


def record_models(records: list[AnyRecord]) -> list[Arch]:
    """The models (and quants) in the data whose facts an estimate needs are known: hyperparameters in models.yaml
    and a file size as measured or as the record's source states it."""
    seen: dict[tuple[str, str | None, int], Arch] = {}
    for rec in records:
        if not isinstance(rec, SpeedRecord):
            continue
        st = stated_models().get(rec.model.name or "")
        if st is None or st.layout:  # the model table answers for its models by layout (estimate.table), not here
            continue
        m = rec.model
        if m.sha256 and m.sha256 in st.files:
            arch = from_stated(st, m.quant, 0, "", m.sha256)
        else:
            size = parse_size(m.size_stated) or m.size_bytes
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
        quant, size = rec.model.quant or "", parse_size(rec.model.size_stated)
        if st is None or not st.layout or not size or quant_label(quant):
            continue
        origin = (rec.source.citation or "its source").split(",")[0]
        out.setdefault((st.name, quant), (size, f"{rec.model.size_stated} as {origin} states it"))
    return out


class Estimator:
    def __init__(self, points: list[Point], left: Counter[str], fitted: Fitted, models: list[Arch]) -> None:
        self.points, self.left, self.fitted, self.models = points, left, fitted, models
        self.mixes: dict[tuple[str, str], tuple[float, str]] = {}  # see stated_mixes
        bench = [p.base for p in points if p.runtime == BENCH and p.metric == "tg"]
        self.size_range = (min(bench), max(bench)) if bench else None
        self.figures = Counter((p.device, p.metric) for p in points if p.runtime == BENCH)

    @classmethod
    def of(cls, records: list[AnyRecord], held: Collection[tuple[str, str]] = ()) -> Estimator:
        """Fitted on every usable figure but those `held` ((record id, tg|pp) the judge holds back)."""
        points, left = collect(records, held)
        est = cls(points, left, fit_all(points), record_models(records))
        est.mixes = stated_mixes(records)
        return est

    def error(self, runtime: str, metric: str, mode: str, klass: str) -> ClassError | None:
        return next((e for e in self.fitted.errors if (e.runtime, e.metric, e.mode, e.cls) ==
                     (runtime, metric, mode, klass)), None)

    def n_figures(self, device: str, metric: str) -> int:
        return self.figures[(device, metric)]

    def speed(self, dev: CatalogDevice, n_gpus: int, arch: Arch, metric: str, depth: int = 0,
              prompt: int = 512, vram_stated: str | None = None, vram_gb: float | None = None) -> SpeedAnswer:
        """llama.cpp's tg (generating at this filled depth) or pp (a prompt of this length), as llama-bench
        would measure it, with the interval its held-out error gives; `shown` says whether the site shows it.
        vram_gb: the memory size a reader gives (--vram), which picks the variant's bandwidth."""
        if arch.read_bytes <= 0:
            return SpeedAnswer(metric, None, None, None, "", None, False, "a published custom mix known by its stated "
                               "size only: the bytes a token reads are not known without its GGUF")
        f = self.fitted.fits.get((BENCH, metric))
        bw = bandwidth(dev, vram_stated, vram_gb=vram_gb)
        klass = device_class(dev, n_gpus)
        if f is None or bw is None:
            return SpeedAnswer(metric, None, None, None, "", None, False, "no llama-bench figure to fit on"
                               if f is None else "the catalog states no single bandwidth for this device (its "
                               "variants differ: give its memory size, --vram GB)")
        base, per_depth = terms(arch, metric)
        point = Point(record="", runtime=BENCH, metric=metric, device="", gpu=dev.name, n_gpus=n_gpus, cls=klass,
                      model=arch.name, quant=arch.quant or "unknown", base=base, per_depth=per_depth,
                      depth=depth if metric == "tg" else depth + prompt / 2, layers=arch.n_layer, bw=bw * 1e9,
                      value=1.0)
        key = dev.name if n_gpus == 1 else f"{dev.name} x {n_gpus}"
        notes: list[str] = []
        if point.quant not in f.kappa:
            notes.append(f"no llama-bench figure of a {point.quant} file: its cost per byte is taken as F16's")
        own = f.eta.get(key)
        err = self.error(BENCH, metric, "model", klass) if own is not None else None
        eta: float | None = own
        if own is not None and err is not None and err.shown:
            basis = f"this device's own efficiency ({self.n_figures(key, metric)} llama-bench figures)"
        else:
            eta = f.class_eta(klass)
            err = self.error(BENCH, metric, "device", klass)
            basis = f"the median efficiency of the {klass} devices in the fit"
        if eta is None:
            return SpeedAnswer(metric, None, None, None, basis, None, False,
                               f"no llama-bench figure of any {klass} device")
        value = predict(f, point, eta)
        why: str | None = err.why_not if err is not None else "no held-out check for this class"
        if why is None and notes:
            why = notes[0]
        if why is None and self.size_range and not (self.size_range[0] / SIZE_REACH <= arch.read_bytes
                                                    <= self.size_range[1] * SIZE_REACH):
            lo, hi = self.size_range
            why = (f"the model reads {arch.read_bytes / 1e9:.2f} GB per token, outside the sizes the fit and its "
                   f"check cover ({lo / 1e9 / SIZE_REACH:.1f}-{hi / 1e9 * SIZE_REACH:.0f} GB)")
        low = value * err.low if err else None
        high = value * err.high if err else None
        return SpeedAnswer(metric, value, low, high, basis, err, why is None, why, tuple(notes))


def vram_mib(dev: CatalogDevice) -> list[float]:
    """Every memory size the device is sold with, in MiB (the catalog's GB are the binary sizes GPUs are sold in)."""
    return [gb * 1024 for gb in dev.memory_gb]


@lru_cache(maxsize=4096)  # every device of one memory size asks the same question of every model
def fits(arch: Arch, vram: float, n_gpus: int, kv: str) -> int | None:
    """The largest context whose GPU buffers fit n GPUs of `vram` MiB, each keeping llama.cpp's fit margin free,
    with llama-server's defaults (flash attention, ubatch 512, one slot); None when the model does not fit at 256
    tokens (or llama.cpp would refuse the cache type)."""
    try:
        return largest_context(arch, MemConfig(type_k=kv, type_v=kv), n_gpus * (vram - FIT_MARGIN_MIB))
    except CollectorError:
        return None
