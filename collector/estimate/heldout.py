"""The speed model's error on what it was not fitted on, per runtime, metric and device class.

- **Leave one device out**: a device is a catalog GPU; every figure of it (one GPU and every set of several) is
  left out, the model is fitted again on the rest, and each left-out figure is predicted with its class's
  efficiency (the median over the class's other devices). This is the error of an estimate for a device nobody
  measured with that runtime.
- **Leave one model out** (llama-bench only: LocalScore states no file sizes): a model is its weights, every quant
  of them; the model is fitted again without it and each of its figures predicted with the device's own
  efficiency. This is the error of an estimate for an unmeasured model on a device that has figures.

A check is one left-out figure. An estimate of a class is shown only when at least MIN_DEVICES (leave-one-device-
out) or MIN_MODELS (leave-one-model-out) were left out and its median absolute error is at most BOUND_PCT; its
interval is the estimate times the 10th and 90th percentiles of measured / estimated over those checks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from collector.base import stats
from collector.estimate.speed import BENCH, Fit, Point, fit, predict

MIN_DEVICES = 3
MIN_MODELS = 2
BOUND_PCT = 25.0
MODES = ("device", "model")


@dataclass(frozen=True)
class Held:
    """One left-out figure and its estimate."""

    mode: str  # device | model
    point: Point
    estimate: float

    @property
    def ratio(self) -> float:
        return self.point.value / self.estimate

    @property
    def error_pct(self) -> float:
        return (self.estimate / self.point.value - 1) * 100


@dataclass(frozen=True)
class ClassError:
    runtime: str
    metric: str
    mode: str
    cls: str
    n: int  # checks
    n_left: int  # devices (or models) left out
    median_pct: float
    p90_pct: float
    low: float  # 10th percentile of measured / estimated
    high: float  # 90th percentile

    @property
    def shown(self) -> bool:
        need = MIN_DEVICES if self.mode == "device" else MIN_MODELS
        return self.n_left >= need and self.median_pct <= BOUND_PCT

    @property
    def why_not(self) -> str | None:
        need = MIN_DEVICES if self.mode == "device" else MIN_MODELS
        what = "devices" if self.mode == "device" else "models"
        if self.n_left < need:
            return f"only {self.n_left} {what} left out in the held-out check (at least {need} needed)"
        if self.median_pct > BOUND_PCT:
            return f"held-out median error {self.median_pct:.0f} % is over the {BOUND_PCT:.0f} % bound"
        return None


def leave_device_out(points: list[Point], full: Fit) -> list[Held]:
    out: list[Held] = []
    for gpu in sorted({p.gpu for p in points}):
        train = [p for p in points if p.gpu != gpu]
        test = [p for p in points if p.gpu == gpu]
        if not train:
            continue
        f = fit(train, full.runtime, full.metric, start=full, rounds=1, steps=12)
        for p in test:
            eta = f.class_eta(p.cls)
            if eta is not None:
                est = predict(f, p, eta)
                if est == est:  # a LocalScore model seen on this device only has no constant: nothing to check
                    out.append(Held("device", p, est))
    return out


def leave_model_out(points: list[Point], full: Fit) -> list[Held]:
    if full.runtime != BENCH:
        return []
    out: list[Held] = []
    for model in sorted({p.model for p in points}):
        train = [p for p in points if p.model != model]
        test = [p for p in points if p.model == model]
        if not train:
            continue
        f = fit(train, full.runtime, full.metric, start=full, rounds=1, steps=12)
        for p in test:
            if p.device in f.eta:
                out.append(Held("model", p, predict(f, p, f.eta[p.device])))
    return out


def summarise(held: list[Held], runtime: str, metric: str) -> list[ClassError]:
    groups: dict[tuple[str, str], list[Held]] = defaultdict(list)
    for h in held:
        groups[(h.mode, h.point.cls)].append(h)
        groups[(h.mode, "all classes")].append(h)
    out = []
    for (mode, cls), hs in sorted(groups.items()):
        errs = [abs(h.error_pct) for h in hs]
        ratios = [h.ratio for h in hs]
        left = {h.point.gpu if mode == "device" else h.point.model for h in hs}
        out.append(ClassError(runtime, metric, mode, cls, len(hs), len(left), stats.median(errs),
                              stats.percentile(errs, 90) or 0.0, stats.percentile(ratios, 10) or 1.0,
                              stats.percentile(ratios, 90) or 1.0))
    return out


def per_device(held: list[Held]) -> dict[str, float]:
    """Median signed % error per left-out device (leave-one-device-out checks): who the class model misses."""
    by: dict[str, list[float]] = defaultdict(list)
    for h in held:
        if h.mode == "device":
            by[h.point.device].append(h.error_pct)
    return {d: stats.median(v) for d, v in sorted(by.items())}
