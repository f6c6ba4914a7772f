"""LocalScore's crowd figures (llamafile, not llama.cpp): fitted apart, reported with their own held-out error, never
applied to llama.cpp. LocalScore states no file sizes and no test shape, so W is one fitted constant per model and
quant and tau a fixed cost per token; that checks the device side only (leave-one-device-out).

    seconds per token = W / (eta x bandwidth) + tau

eta is fitted per device, tau per device class; fitting minimises the mean absolute log error by coordinate descent
(golden-section search on tau, eta in closed form as the geometric mean of what each record implies).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

import numpy as np

from collector.catalog import resolve
from collector.estimate.points import LOCALSCORE, bandwidth, device_class, source_key
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord


@dataclass(frozen=True)
class Point:
    """One LocalScore figure of one record."""

    record: str
    runtime: str
    metric: str  # tg | pp
    device: str  # catalog name, with " x N" for several GPUs
    gpu: str  # catalog name: what leave-one-device-out leaves out
    n_gpus: int
    cls: str
    model: str  # model and quant as LocalScore names them
    quant: str
    source: str
    bw: float  # bytes/s of one GPU
    value: float  # t/s as the source states it
    layers: int = 1


def record_points(rec: AnyRecord) -> list[Point]:
    """A LocalScore record's tg and pp figures on a catalog GPU with one bandwidth (none otherwise)."""
    if not isinstance(rec, SpeedRecord) or rec.status != "ok" or rec.source.type != "imported":
        return []
    if rec.source.runtime != LOCALSCORE or not rec.host.gpus or len({g.name for g in rec.host.gpus}) > 1:
        return []
    dev = resolve(rec.host.gpus[0].name)
    bw = bandwidth(dev, rec.host.gpus[0].vram_stated, rec.host.gpus[0].vram_total_mib) if dev else None
    if dev is None or bw is None:
        return []
    n = len(rec.host.gpus)
    out = []
    for metric, stat in (("tg", rec.summary.tg_tps), ("pp", rec.summary.pp_tps)):
        if stat is not None and stat.value > 0:
            out.append(Point(rec.id, LOCALSCORE, metric, dev.name if n == 1 else f"{dev.name} x {n}", dev.name, n,
                             device_class(dev, n), f"{rec.model.name} {rec.model.quant}", rec.model.quant or "",
                             source_key(rec), bw * 1e9, stat.value))
    return out


def collect(records: list[AnyRecord], held: Collection[tuple[str, str]] = ()) -> list[Point]:
    """Every LocalScore figure the model can take, but those the judge holds back."""
    return [p for rec in records for p in record_points(rec) if (p.record, p.metric) not in held]


@dataclass
class Fit:
    """LocalScore's fitted parameters of one metric."""

    metric: str
    eta: dict[str, float] = field(default_factory=dict)  # device -> efficiency
    tau: dict[str, float] = field(default_factory=dict)  # class -> seconds per token
    const: dict[str, float] = field(default_factory=dict)  # model -> W
    classes: dict[str, str] = field(default_factory=dict)  # device -> class
    runtime: str = LOCALSCORE

    def class_eta(self, cls: str, without: str | None = None) -> float | None:
        """The class's efficiency: the median over its devices (None: no device of the class was fitted)."""
        vals = sorted(e for d, e in self.eta.items() if self.classes[d] == cls and d != without)
        return float(np.median(vals)) if vals else None


def _index(keys: list[str]) -> tuple[list[str], np.ndarray]:
    names = sorted(set(keys))
    pos = {k: i for i, k in enumerate(names)}
    return names, np.array([pos[k] for k in keys], dtype=int)


class _Arrays:
    def __init__(self, pts: list[Point]) -> None:
        self.t = np.array([1.0 / p.value for p in pts])
        self.bw = np.array([p.bw for p in pts])
        self.devs, self.dev = _index([p.device for p in pts])
        self.classes, self.cls_idx = _index([p.cls for p in pts])
        self.models, self.model = _index([p.model for p in pts])


def _work(a: _Arrays, f: Fit) -> np.ndarray:
    return np.array([f.const.get(m, 1.0) for m in a.models])[a.model]


def _tau(a: _Arrays, f: Fit) -> np.ndarray:
    return np.array([f.tau.get(c, 0.0) for c in a.classes])[a.cls_idx]


def _eta(a: _Arrays, f: Fit) -> np.ndarray:
    """Per device: the geometric mean of the efficiency each of its figures implies, given tau and W."""
    spare = a.t - _tau(a, f)
    implied = np.log(_work(a, f) / (np.maximum(spare, a.t * 1e-3) * a.bw))
    sums = np.bincount(a.dev, weights=implied, minlength=len(a.devs))
    counts = np.bincount(a.dev, minlength=len(a.devs))
    return np.exp(sums / np.maximum(counts, 1))


def _loss(a: _Arrays, f: Fit) -> float:
    eta = _eta(a, f)[a.dev]
    pred_t = _work(a, f) / (eta * a.bw) + _tau(a, f)
    return float(np.mean(np.abs(np.log(pred_t / a.t))))


def golden(f: Callable[[float], float], lo: float, hi: float, steps: int) -> float:
    """The minimum of a unimodal function on [lo, hi], to (hi - lo) x 0.618^steps."""
    g = (math.sqrt(5) - 1) / 2
    x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(steps):
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - g * (hi - lo)
            f1 = f(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + g * (hi - lo)
            f2 = f(x2)
    return (lo + hi) / 2


def fit(points: list[Point], metric: str, start: Fit | None = None, rounds: int = 3, steps: int = 18) -> Fit:
    """Fit the model's parameters on these points (all of one metric)."""
    a = _Arrays(points)
    f = replace(start, eta={}, classes={}) if start else Fit(metric)
    f.tau = {c: f.tau.get(c, 0.0) for c in a.classes}
    f.const = {m: f.const.get(m, float(np.median(a.t[a.model == i] * a.bw[a.model == i])))
               for i, m in enumerate(a.models)}
    for _ in range(rounds):
        for c in list(f.tau):
            small = float(np.min(a.t[a.cls_idx == a.classes.index(c)]) / 2)

            def loss(x: float, c: str = c) -> float:
                return _loss(a, replace(f, tau={**f.tau, c: x}))

            f.tau[c] = golden(loss, 0.0, small / 2, steps)
        eta = _eta(a, f)[a.dev]
        spare = np.maximum(a.t - _tau(a, f), a.t * 1e-3)
        f.const = {m: float(np.exp(np.mean(np.log((spare * eta * a.bw)[a.model == i]))))
                   for i, m in enumerate(a.models)}
    scale = float(np.median(_eta(a, f)))  # W and eta trade off: scale so the median device has eta 1
    f.const = {m: w / scale for m, w in f.const.items()}
    f.eta = dict(zip(a.devs, (float(e) for e in _eta(a, f))))
    f.classes = {p.device: p.cls for p in points}
    return f


def predict(f: Fit, p: Point, eta: float) -> float:
    """t/s for a point's model and device with this efficiency (nan: a model the fit has no constant for)."""
    work = f.const.get(p.model)
    if work is None:
        return math.nan
    return 1.0 / (work / (eta * p.bw) + f.tau.get(p.cls, 0.0))


@dataclass(frozen=True)
class CrowdError:
    """LocalScore's leave-one-device-out error of one metric and class (reported, never applied)."""

    metric: str
    cls: str
    n: int
    n_devices: int
    median_pct: float
    p90_pct: float


def crowd_errors(points: list[Point]) -> list[CrowdError]:
    """Leave each device out, refit (one round from the full fit) and predict its figures with its class's median
    efficiency; the median and 90th percentile absolute error per metric and class."""
    from collector.base import stats

    out = []
    for metric in ("tg", "pp"):
        pts = [p for p in points if p.metric == metric]
        if not pts:
            continue
        full = fit(pts, metric)
        errs: dict[str, list[tuple[str, float]]] = {}
        for gpu in sorted({p.gpu for p in pts}):
            train = [p for p in pts if p.gpu != gpu]
            if not train:
                continue
            f = fit(train, metric, start=full, rounds=1, steps=12)
            for p in pts:
                if p.gpu != gpu:
                    continue
                eta = f.class_eta(p.cls)
                est = predict(f, p, eta) if eta is not None else math.nan
                if est == est:
                    errs.setdefault(p.cls, []).append((gpu, abs(est / p.value - 1) * 100))
        for cls, v in sorted(errs.items()):
            e = [x for _, x in v]
            out.append(CrowdError(metric, cls, len(e), len({g for g, _ in v}), stats.median(e),
                                  stats.percentile(e, 90) or 0.0))
    return out
