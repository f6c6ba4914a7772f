"""Speed with part of the model in system RAM: experts of some layers (--n-cpu-moe, -ot exps=CPU, llama.cpp's fit)
or whole layers (-ngl below the layer count) read by the CPU from system memory.

    tg: seconds per token = GPU part + CPU bytes / min(eta_cpu x RAM bandwidth, threads x beta)
                            + tau_cpu x whole CPU layers + sigma x GPU<->CPU switches
    pp: seconds per token = the GPU's pp (every weight's FLOPs on the GPU)
                            + CPU-resident bytes / (ubatch x PCIe bandwidth x rho)   (ubatch >= 32)

- GPU part: the full-GPU model (estimate.speed) for the GPU's share of what a token reads (its layers' dense
  tensors, the experts left on it by their used share, the KV cache of its layers) and its layers' fixed cost.
- CPU bytes: the experts in system RAM by their used share, and every tensor of the layers the CPU runs whole.
- RAM bandwidth: given (--ram "DDR5-6000 2ch", --ram-gbs 96) or, for a published figure, from the RAM its source
  states (type and speed; the channels as stated, else as the stated CPU's platform has them: CPU_CHANNELS).
- threads x beta: what the CPU's kernels reach on the weights with that many threads (beta per thread: dequantising
  and multiplying, each thread streams its rows), which bounds many-channel servers run with few threads (a 12-channel
  DDR4 pair of sockets at -t 16 reads ~40 GB/s, not ~250); threads: the -t a source or a reader states (--threads),
  else the CPU's stated cores (llama.cpp's default), else not known and not bounded.
- pp: llama.cpp copies the weights in system RAM to the GPU for every ubatch of at least 32 tokens, so pp rises with
  -ub; PCIe bandwidth is given (--pcie 4x16), or for a published figure the GPU's own link, taken as PCIe 4.0 x16
  (the records state none; rho absorbs the difference).

eta_cpu (with an effect for ik_llama.cpp, whose CPU kernels differ), beta, tau_cpu, sigma and rho are fitted on
the published figures with weights in system RAM (the `weights-in-system-ram` records and the issue's posts), by
golden-section search on the squared log error; beta and tau_cpu only where at least two sources of the fit exercise
them (threads stated; whole layers on the CPU): one source's machine cannot tell them from eta_cpu. Checked with
each source left out; the stated range is the 10th-90th percentile of its shift + spread as for the full-GPU model
(estimate.heldout).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache

from collector.base import stats
from collector.catalog import resolve
from collector.estimate.arch import Arch
from collector.estimate.facts import Facts, match, of_arch
from collector.estimate.memory import MemConfig, on_gpu_tensors
from collector.estimate.placement import EXPERTS, parse_overrides
from collector.estimate.points import (
    RAM_TAG,
    Point,
    backend_of,
    bandwidth,
    build_year,
    compute,
    device_class,
    flash_state,
    source_key,
    stated_bytes,
)
from collector.estimate.speed import SpeedFit, golden, predict_time
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord

LLAMA_CPP, IK = "llama.cpp", "ik_llama.cpp"
BOUND_PCT_OFFLOAD = 25.0  # the bound for estimates with weights in system RAM (each source left out)
OP_OFFLOAD_MIN_BATCH = 32  # llama.cpp moves CPU-resident weights to the GPU for batches of at least this many tokens
ASSUMED_PCIE = "4x16"
MIN_SOURCES_PER_EFFECT = 2  # an effect is fitted only where this many sources of the fit exercise it
_DDR = re.compile(r"DDR\s?(\d)\D{0,3}(\d{4})", re.IGNORECASE)
_MHZ = re.compile(r"(\d{4})\s*(?:MHz|MT/s)", re.IGNORECASE)
_DDR_GEN = re.compile(r"DDR\s?(\d)", re.IGNORECASE)
_CHANNELS = re.compile(r"(\d+)\s*[- ]?(?:ch\b|channels?)", re.IGNORECASE)
# memory channels of a CPU's platform, where a source states the CPU but not the channels (an assumption the
# estimate states): desktop Ryzen (AM4/AM5) two, Threadripper PRO eight, Threadripper four, EPYC 9004/9005 twelve,
# EPYC 7002/7003 eight, Xeon Scalable (Skylake/Cascade Lake) six per socket
CPU_CHANNELS = ((re.compile(r"threadripper\s*pro", re.I), 8), (re.compile(r"threadripper", re.I), 4),
                (re.compile(r"ryzen", re.I), 2), (re.compile(r"epyc\s*9\d{3}", re.I), 12),
                (re.compile(r"epyc\s*7\d{3}", re.I), 8),
                (re.compile(r"xeon.*(gold|silver|platinum)\s*[5-8]1\d\d", re.I), 6))
_SOCKETS = re.compile(r"\)\s*x\s*(\d)\b|\bx\s*(\d)\s*$", re.IGNORECASE)
_RAM_SIZE = re.compile(r"(\d+)\s*GB\b(?!/s)", re.IGNORECASE)
_PCIE = re.compile(r"^\s*(?:gen\s*)?(\d)\s*x\s*(\d+)\s*$", re.IGNORECASE)
PCIE_LANE_GBS = {3: 0.985, 4: 1.969, 5: 3.938}  # GB/s per lane after encoding


def ram_gbs(text: str | None, cpu: str | None = None) -> tuple[float | None, str]:
    """(GB/s, how it was read) of a system's memory as a source or a reader states it ("DDR5-6000 2ch", "64GB
    DDR4-3200" with a Ryzen: two channels); (None, why) when the type, speed or channels are not known."""
    t = text or ""
    m = _DDR.search(t)
    gen = speed = None
    if m:
        gen, speed = int(m.group(1)), int(m.group(2))
    else:
        g, s = _DDR_GEN.search(t), _MHZ.search(t)
        if g and s:
            gen, speed = int(g.group(1)), int(s.group(1))
    if speed is None:
        return None, "the memory's speed is not stated"
    ch = _CHANNELS.search(t)
    if ch:
        channels, how = int(ch.group(1)), "channels as stated"
    else:
        found = next((n for rx, n in CPU_CHANNELS if rx.search(cpu or "")), None)
        if found is None:
            return None, "the memory channels are not stated (nor a CPU whose platform says them)"
        sockets = _SOCKETS.search(cpu or "")
        n_sockets = int(next(g for g in sockets.groups() if g)) if sockets else 1
        channels, how = found * n_sockets, f"{found * n_sockets} channels, as the platform of {cpu} has them"
    gbs = channels * speed * 8 / 1000
    return gbs, f"DDR{gen}-{speed} x {channels} channels = {gbs:.1f} GB/s ({how})"


# the system RAM the picker lets its reader choose (RAM_PRESETS: the two the site's "experts in system RAM" rows
# state tg at)
RAM_CHOICES = ("DDR4-2666 2ch", "DDR4-3200 2ch", "DDR4-3600 2ch", "DDR5-4800 2ch", "DDR5-5600 2ch", "DDR5-6000 2ch",
               "DDR5-6400 2ch", "DDR4-3200 4ch", "DDR5-4800 4ch", "DDR4-3200 8ch", "DDR5-4800 8ch", "DDR5-6400 8ch",
               "DDR5-6400 12ch")


def ram_choices(texts: tuple[str, ...] = RAM_CHOICES) -> list[tuple[str, float]]:
    """(the RAM as written, its GB/s: generation x speed x 8 bytes x channels, offload.ram_gbs)."""
    return [(text, gbs) for text in texts if (gbs := ram_gbs(text)[0]) is not None]


RAM_PRESETS = ram_choices(("DDR4-3200 2ch", "DDR5-6000 2ch"))


def ram_size_gb(text: str | None) -> float | None:
    """The system memory a source states ("64GB DDR4-3200", "16gb DDR4 ..."): the first size in GB; None: none."""
    m = _RAM_SIZE.search(text or "")
    return float(m.group(1)) if m else None


def pcie_gbs(text: str) -> float:
    """'4x16' -> 31.5 GB/s; a one-line error otherwise."""
    from collector.base.errors import CollectorError

    m = _PCIE.match(text)
    if not m or int(m.group(1)) not in PCIE_LANE_GBS:
        raise CollectorError(f"--pcie {text!r}: give the generation and lanes, e.g. 4x16 (PCIe 4.0 x16)")
    return PCIE_LANE_GBS[int(m.group(1))] * int(m.group(2))


@dataclass(frozen=True)
class Split:
    """What a token reads where, for one placement."""

    gpu: Facts  # the GPU's share (bytes, layers, KV) as facts of the full-GPU model
    cpu_read: float  # bytes a token reads from system RAM
    cpu_layers: int  # whole layers the CPU runs
    switches: int  # GPU <-> CPU hand-overs per token
    cpu_all: float  # every weight byte in system RAM (what a ubatch copies to the GPU)


@lru_cache(maxsize=1024)  # the site asks every device with a memory size for the same placements' splits
def split(arch: Arch, cfg: MemConfig, facts: Facts | None = None) -> Split:
    """The per-token split of a model's reads between the GPU and system RAM for this placement."""
    facts = facts or of_arch(arch)
    where = on_gpu_tensors(arch, cfg)
    share = arch.n_expert_used / arch.n_expert if arch.n_expert else 1.0
    scale = facts.scaled
    gpu_dense = gpu_exp = cpu_read = cpu_all = 0.0
    layer_gpu: dict[int, bool] = {}
    layer_cpu_exp: set[int] = set()
    for t in arch.tensors:
        if t.layer is not None and t.layer >= arch.n_layer:
            continue
        if t.name == "token_embd.weight" and not arch.tied:
            continue
        read = t.n_bytes * scale * (share if t.expert else 1.0)
        if where[t.name]:
            if t.expert:
                gpu_exp += read
            else:
                gpu_dense += read
        else:
            cpu_read += read
            cpu_all += t.n_bytes * scale
            if t.expert and t.layer is not None:
                layer_cpu_exp.add(t.layer)
        if t.layer is not None and not t.expert and t.name.endswith("attn_norm.weight"):
            layer_gpu[t.layer] = where[t.name]
    gpu_layers = sum(1 for v in layer_gpu.values() if v)
    cpu_layers = len(layer_gpu) - gpu_layers
    switches = 2 * sum(1 for il in layer_cpu_exp if layer_gpu.get(il)) + (2 if cpu_layers else 0)
    kv_share = gpu_layers / max(len(layer_gpu), 1)
    gpu = replace(facts, read_bytes=gpu_dense + gpu_exp, expert_read_bytes=gpu_exp, layers=gpu_layers,
                  kv_bytes=facts.kv_bytes * kv_share, kv_swa_bytes=facts.kv_swa_bytes * kv_share)
    return Split(gpu, cpu_read, cpu_layers, switches, cpu_all)


@dataclass(frozen=True)
class OffPoint:
    """One published figure with weights in system RAM."""

    record: str
    metric: str
    source: str
    runtime: str  # llama.cpp | ik_llama.cpp
    gpu: Point  # the GPU part, as a point of the full-GPU model (its facts: the GPU's share)
    full: Point  # every weight as if on the GPU (pp's compute)
    cpu_read: float
    cpu_layers: int
    switches: int
    cpu_all: float
    ram: float  # bytes/s
    pcie: float  # bytes/s
    ubatch: int
    value: float
    basis: str
    threads: int | None = None  # the CPU threads (None: not known)

    @property
    def vendor(self) -> str:
        return self.gpu.vendor


def _runtime(rec: SpeedRecord) -> str | None:
    rt = rec.source.runtime if rec.source.type == "imported" else None
    if rt is None:
        return LLAMA_CPP if rec.source.type == "imported" and rec.model.moe is not None else None
    if rt.startswith("ik_llama.cpp"):
        return IK
    return LLAMA_CPP if rt.startswith("llama.cpp") else None


def _config(rec: SpeedRecord, facts: Facts) -> tuple[MemConfig | None, str]:
    """The record's placement as a memory config (None: not stated enough to know it)."""
    c, p = rec.config, rec.placement
    args = list(c.extra_args)
    ot: list[str] = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-ot", "--override-tensor")]
    overrides = parse_overrides(tuple(ot))
    if "-cmoe" in args or "--cpu-moe" in args:
        overrides = ((EXPERTS, "CPU"), *overrides)
    ngl = c.n_gpu_layers if isinstance(c.n_gpu_layers, int) and not isinstance(c.n_gpu_layers, bool) else None
    ncmoe = c.n_cpu_moe or 0
    how = "the flags the source states"
    if ngl is None and not ncmoe and not overrides:
        # llama.cpp's fit chose it: a stated count of layers "on the CPU" of a mixture of experts whose dense
        # tensors fit is the fit's overflowing layers (their experts in system RAM, the last ones)
        n = p.cpu_moe_layers or p.cpu_layers
        if not n or not facts.moe:
            return None, "the placement llama.cpp's fit chose is not stated"
        layers = facts.n_layer_all
        overrides = tuple((rf"^blk\.{il}{EXPERTS}", "CPU") for il in range(layers - n, layers))
        how = f"llama.cpp's fit as the source states it: {n} layers' experts in system RAM"
    return MemConfig(ctx=c.ctx_size, type_k=c.cache_type_k or "f16", type_v=c.cache_type_v or "f16",
                     ubatch=c.ubatch_size or 512, batch=c.batch_size or 2048,
                     n_gpu_layers=ngl if ngl is None or ngl >= 0 else None, n_cpu_moe=ncmoe,
                     overrides=overrides), how


def record_point(rec: AnyRecord) -> tuple[list[OffPoint], str | None]:
    """A record's figures with weights in system RAM as offload points, or why not."""
    if not isinstance(rec, SpeedRecord) or rec.status != "ok" or not rec.host.gpus:
        return [], None
    runtime = _runtime(rec)
    moe_post = rec.source.runtime is None and (rec.config.n_cpu_moe or rec.placement.cpu_layers
                                               or rec.placement.cpu_moe_layers)
    if RAM_TAG not in rec.tags and not moe_post:
        return [], None
    if runtime is None:
        return [], "an offload figure of a runtime that is not llama.cpp's"
    if len({g.name for g in rec.host.gpus}) > 1 or len(rec.host.gpus) > 1:
        return [], "an offload figure of several GPUs (not modelled)"
    dev = resolve(rec.host.gpus[0].name)
    if dev is None:
        return [], "an offload figure of a device not in the catalog"
    bw = bandwidth(dev, rec.host.gpus[0].vram_stated, rec.host.gpus[0].vram_total_mib)
    if bw is None:
        return [], "an offload figure of a device without one bandwidth"
    size = float(rec.model.size_bytes) if rec.model.size_bytes else stated_bytes(rec.model.size_stated)
    facts, why = match(rec.model, rec.source.raw, size)
    if facts is None:
        return [], f"an offload figure whose model facts are not known ({why})"
    from collector.estimate import table

    layout = table.build(facts.name, facts.layout_quant)
    cfg, how = _config(rec, facts)
    if cfg is None:
        return [], f"an offload figure: {how}"
    ram, ram_how = ram_gbs(rec.host.ram_stated, rec.host.cpu.model)
    if ram is None:
        return [], f"an offload figure: {ram_how}"
    sp = split(layout, cfg, facts)
    size_gb = ram_size_gb(rec.host.ram_stated)
    if size_gb is not None and sp.cpu_all > size_gb * 1e9 * 0.9:
        return [], ("an offload figure whose weights in system RAM fill the RAM stated (the system pages them "
                    "from disk: not modelled)")
    flops, arch_key = compute(dev)
    threads = rec.config.threads or rec.host.cpu.cores
    s = rec.samples[0] if rec.samples else None
    depth = float(s.depth_tokens) if s else 0.0
    out = []
    for metric, stat in (("tg", rec.summary.tg_tps), ("pp", rec.summary.pp_tps)):
        if stat is None or stat.value <= 0:
            continue
        n_tok = ((s.gen_tokens if metric == "tg" else s.prompt_tokens) if s else 0) or 0
        base = Point(record=rec.id, metric=metric, source=source_key(rec),
                     year=build_year(rec.llama_cpp.build_number, rec.source.date), device=dev.name, gpu=dev.name,
                     n_gpus=1, cls=device_class(dev), backend=backend_of(rec.llama_cpp.backend, dev.vendor),
                     arch_key=arch_key, facts=sp.gpu, depth=depth + n_tok / 2, ubatch=min(cfg.ubatch, n_tok or 512),
                     prompt=n_tok, batch=cfg.batch, type_k=cfg.type_k, type_v=cfg.type_v, bw=bw * 1e9, flops=flops,
                     clock=dev.boost_mhz, value=stat.value, flash=flash_state(rec.config.flash_attn))
        out.append(OffPoint(rec.id, metric, base.source, runtime, base, replace(base, facts=facts), sp.cpu_read,
                            sp.cpu_layers, sp.switches, sp.cpu_all, ram * 1e9, pcie_gbs(ASSUMED_PCIE) * 1e9,
                            base.ubatch, stat.value, f"{how}; RAM {ram_how}; model facts: {facts.basis}",
                            threads))
    return out, None


def collect(records: list[AnyRecord], held: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset()
            ) -> tuple[list[OffPoint], Counter[str]]:
    """Every offload figure the model can take (one of each figure a source repeats), and why others are not."""
    out: list[OffPoint] = []
    left: Counter[str] = Counter()
    seen: set[tuple[object, ...]] = set()
    for rec in records:
        got, why = record_point(rec)
        if why:
            left[why] += 1
        for p in got:
            k = (p.source, p.gpu.device, p.gpu.facts.name, p.gpu.facts.quant, p.metric, p.value, p.cpu_read)
            if (p.record, p.metric) in held or k in seen:
                continue
            seen.add(k)
            out.append(p)
    return out, left


@dataclass
class OffloadFit:
    metric: str
    eta_cpu: float = 0.5  # the share of the RAM bandwidth the CPU's reads get
    beta: float | None = None  # bytes/s one CPU thread's kernels read at most (None: not fitted, no bound)
    ik: float = 1.0  # ik_llama.cpp's CPU efficiency over llama.cpp's
    tau_cpu: float = 0.0  # seconds per whole layer on the CPU
    sigma: float = 0.0  # seconds per GPU<->CPU hand-over
    rho: float = 0.5  # pp: the share of the PCIe bandwidth a ubatch's copy of the CPU's weights gets
    n: int = 0
    sources: tuple[str, ...] = field(default_factory=tuple)


def cpu_gbs(f: OffloadFit, p: OffPoint) -> float:
    """bytes/s the CPU reads the weights in system RAM at: its share of the RAM's bandwidth, bounded by what its
    threads' kernels reach."""
    bw = p.ram * f.eta_cpu * (f.ik if p.runtime == IK else 1.0)
    return min(bw, p.threads * f.beta) if f.beta and p.threads else bw


def tg_fixed(f: OffloadFit, gpu_fit: SpeedFit, p: OffPoint) -> float:
    """Seconds a generated token of an offload point takes besides reading its bytes in system RAM (the GPU's share,
    the CPU's whole layers, the hand-overs): tg = 1 / (this + cpu_read / cpu_gbs)."""
    return (predict_time(gpu_fit, p.gpu) if p.gpu.facts.layers else 0.0) + f.tau_cpu * p.cpu_layers + \
        f.sigma * p.switches


def predict_off(f: OffloadFit, gpu_fit: SpeedFit, p: OffPoint) -> float:
    """t/s of an offload point."""
    cpu = cpu_gbs(f, p)
    if f.metric == "tg":
        t = tg_fixed(f, gpu_fit, p) + p.cpu_read / cpu
    else:
        t = predict_time(gpu_fit, p.full)
        if p.ubatch >= OP_OFFLOAD_MIN_BATCH:
            t += p.cpu_all / (p.ubatch * p.pcie * f.rho * (f.ik if p.runtime == IK else 1.0))
        else:
            t += p.cpu_read / cpu
    return 1.0 / t if t > 0 and t == t else math.nan


def _loss(f: OffloadFit, gpu_fit: SpeedFit, pts: list[OffPoint]) -> float:
    errs = [math.log(predict_off(f, gpu_fit, p) / p.value) ** 2 for p in pts]
    return sum(errs) / len(errs) if errs else 0.0


def fit_off(points: list[OffPoint], gpu_fit: SpeedFit, metric: str, rounds: int = 4) -> OffloadFit:
    pts = [p for p in points if p.metric == metric]
    f = OffloadFit(metric, n=len(pts), sources=tuple(sorted({p.source for p in pts})))
    if not pts:
        return f

    def search(attr: str, lo: float, hi: float) -> None:
        def at(x: float) -> float:
            setattr(f, attr, x)
            return _loss(f, gpu_fit, pts)
        at(golden(at, lo, hi, 20))

    has_ik = any(p.runtime == IK for p in pts) and any(p.runtime == LLAMA_CPP for p in pts)
    with_threads = len({p.source for p in pts if p.threads}) >= MIN_SOURCES_PER_EFFECT
    with_cpu_layers = len({p.source for p in pts if p.cpu_layers}) >= MIN_SOURCES_PER_EFFECT
    for _ in range(rounds):
        if metric == "tg":
            search("eta_cpu", 0.02, 1.5)
            if with_threads:
                search("beta", 0.5e9, 30e9)
            if with_cpu_layers:
                search("tau_cpu", 0.0, 0.02)
            search("sigma", 0.0, 0.002)
        else:
            search("rho", 0.02, 2.0)
        if has_ik:
            search("ik", 0.3, 3.0)
    return f


@dataclass(frozen=True)
class OffHeld:
    point: OffPoint
    estimate: float

    @property
    def ratio(self) -> float:
        return self.point.value / self.estimate

    @property
    def error_pct(self) -> float:
        return (self.estimate / self.point.value - 1) * 100


def leave_source_out(points: list[OffPoint], gpu_fit: Callable[[str], SpeedFit], metric: str) -> list[OffHeld]:
    """Each source of offload figures left out: refit on the others, predict it (the full-GPU model as fitted on
    the full-GPU figures, which no offload source is part of)."""
    pts = [p for p in points if p.metric == metric]
    out = []
    g = gpu_fit(metric)
    for source in sorted({p.source for p in pts}):
        f = fit_off([p for p in pts if p.source != source], g, metric)
        if not f.n:
            continue
        for p in pts:
            if p.source == source:
                est = predict_off(f, g, p)
                if est == est:
                    out.append(OffHeld(p, est))
    return out


@dataclass(frozen=True)
class OffRange:
    low: float
    high: float
    n: int


def off_range(checks: list[OffHeld], without: str | None = None) -> OffRange | None:
    """The stated range of an offload estimate: 10th-90th percentile of each source's shift (once per source) plus
    every check's spread around it, from the leave-one-source-out checks (without one source's, for coverage)."""
    use = [h for h in checks if h.point.source != without]
    if len({h.point.source for h in use}) < 2:
        return None
    by: dict[str, list[float]] = {}
    for h in use:
        by.setdefault(h.point.source, []).append(math.log(h.ratio))
    shifts = {s: stats.median(v) for s, v in by.items()}
    values = sorted(a + (x - shifts[s]) for a in shifts.values() for s, v in by.items() for x in v)
    return OffRange(math.exp(stats.percentile(values, 10) or 0.0), math.exp(stats.percentile(values, 90) or 0.0),
                    len(use))


@dataclass(frozen=True)
class OffError:
    metric: str
    n: int
    n_sources: int
    median_pct: float
    p90_pct: float
    signed_pct: float
    coverage: float | None
    by_source: tuple[tuple[str, int, float, float], ...]  # source, n, median abs %, median signed %


def summarise_off(checks: list[OffHeld], metric: str) -> OffError | None:
    hs = [h for h in checks if h.point.metric == metric]
    if not hs:
        return None
    inside = []
    for h in hs:
        r = off_range(hs, without=h.point.source)
        if r is not None:
            inside.append(r.low <= h.ratio <= r.high)
    by: dict[str, list[OffHeld]] = {}
    for h in hs:
        by.setdefault(h.point.source, []).append(h)
    rows = tuple((s, len(v), stats.median([abs(h.error_pct) for h in v]), stats.median([h.error_pct for h in v]))
                 for s, v in sorted(by.items()))
    errs = [abs(h.error_pct) for h in hs]
    return OffError(metric, len(hs), len(by), stats.median(errs), stats.percentile(errs, 90) or 0.0,
                    stats.median([h.error_pct for h in hs]),
                    round(sum(inside) / len(inside), 3) if inside else None, rows)
