"""Where llama.cpp puts a model: for the flags a reader gives (`-ngl N`, `--n-cpu-moe K`, `--cpu-moe`, `-ot
PATTERN=CPU`, `-c`, `-ctk/-ctv`, `-ub`), or, without -ngl and tensor overrides, what llama.cpp's own fit chooses;
and what each device then holds (weights by kind, KV cache, recurrent state, compute buffer) and the host's share.

llama.cpp's fit (common/fit.cpp, b11434), as modelled here:
1. Everything on the GPUs at the requested context (without -c: the training context). If every GPU keeps its
   margin (--fit-target, 1024 MiB) free: no change.
2. Without -c: the context shrinks, by linear interpolation between the training context and --fit-ctx (4096
   tokens), to what fits; with one GPU the fit stops there.
3. With -ngl, -ot, --cpu-moe or --n-cpu-moe given, the fit gives up and the flags stand as given.
4. A dense model: the most layers, filled from the back (the output layer first), that fit. A mixture of experts:
   every expert tensor on the CPU first; if the rest fits, layers become full GPU layers front to back (the
   experts of the last layers stay on the CPU: llama.cpp's "overflowing" layers); otherwise fewer layers, filled
   from the back, experts on the CPU. (The fit then tries to move part of one more layer, an up or gate matrix;
   that fraction is not modelled.)

A device's free memory is its size less what a driver keeps (FREE_SHORT_MIB, as a published log shows it for a
24 GB RTX 4090); several GPUs of one kind split the layers evenly (llama.cpp's default split, by free memory).
Everything here is computed from the memory model (estimate.memory), not measured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from collector.base.errors import CollectorError
from collector.estimate.arch import Arch
from collector.estimate.memory import MemConfig, MemEstimate, estimate_memory, pad

FIT_MARGIN_MIB = 1024  # llama.cpp's --fit-target default
FIT_CTX = 4096  # llama.cpp's --fit-ctx default: the smallest context the fit shrinks to
# a 24 GB RTX 4090 (24,576 MiB) reported 23,608 MiB free to llama.cpp's fit in ggml-org/llama.cpp#23679
# (tests/fixtures/logs/real/cuda-2x4090-fit-decision.log): what the driver and the process's context keep
FREE_SHORT_MIB = 968.0
EXPERTS = r"\.ffn_(up|down|gate_up|gate)_(ch|)exps"
_OT = re.compile(r"^(.+)=([A-Za-z_]+\d*)$")


def parse_overrides(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`-ot` values ("exps=CPU", "blk\\.(1[0-9])\\.ffn_.*=CPU,...") as (regex, CPU|GPU) in llama.cpp's order; a
    one-line CollectorError for a malformed one."""
    out = []
    for value in values:
        for part in value.split(","):
            m = _OT.match(part.strip())
            if not m:
                raise CollectorError(f"-ot {part!r}: give PATTERN=CPU (or =CUDA0 ...), e.g. -ot \"exps=CPU\"")
            try:
                re.compile(m.group(1))
            except re.error as exc:
                raise CollectorError(f"-ot {part!r}: the pattern is not a regular expression ({exc})") from None
            out.append((m.group(1), "CPU" if m.group(2).upper() == "CPU" else "GPU"))
    return tuple(out)


@dataclass(frozen=True)
class Request:
    """The placement flags of a llama-server command (None: not given)."""

    n_gpu_layers: int | None = None  # -ngl; None: auto (the fit decides); -1: all
    n_cpu_moe: int | None = None  # --n-cpu-moe
    cpu_moe: bool = False  # --cpu-moe: every layer's experts on the CPU
    overrides: tuple[tuple[str, str], ...] = ()  # -ot, parsed
    ctx: int | None = None  # -c; None: the training context (which the fit may shrink)
    type_k: str = "f16"
    type_v: str = "f16"
    ubatch: int = 512
    batch: int = 2048
    n_seq: int = 1
    flash_attn: bool = True
    fit_target_mib: float = FIT_MARGIN_MIB

    @property
    def pinned(self) -> bool:
        """Flags that make llama.cpp's fit give up (the reader's placement stands)."""
        return (self.n_gpu_layers is not None or self.n_cpu_moe is not None or self.cpu_moe
                or bool(self.overrides))


@dataclass(frozen=True)
class DeviceMemory:
    """What one device (or the host) holds, MiB."""

    name: str
    weights: float  # every weight tensor there
    experts: float  # the expert tensors among them
    kv: float  # the KV cache
    recurrent: float  # recurrent (delta-net, SSM) state
    compute: float  # the compute buffer
    output: float = 0.0  # the host's logits buffer
    budget: float | None = None  # GPU: free memory less the fit margin

    @property
    def total(self) -> float:
        return self.weights + self.kv + self.recurrent + self.compute + self.output

    @property
    def fits(self) -> bool:
        return self.budget is None or self.total <= self.budget


@dataclass(frozen=True)
class Placement:
    n_gpu_layers: int  # as -ngl counts them: repeating layers on the GPU plus the output layer
    total_layers: int  # block count + 1
    cpu_expert_layers: tuple[int, ...]  # layers whose expert tensors stay in system RAM
    ctx: int
    by: str  # "the flags given" | "llama.cpp's fit"
    config: MemConfig
    devices: tuple[DeviceMemory, ...]
    host: DeviceMemory
    notes: tuple[str, ...] = ()
    side: str = ""  # where the CPU experts lie: "front" (--n-cpu-moe), "back" (the fit), "pattern" (-ot)

    @property
    def fits(self) -> bool:
        """Every GPU keeps llama.cpp's margin free."""
        return all(d.fits for d in self.devices)

    @property
    def n_cpu_moe(self) -> int:
        return len(self.cpu_expert_layers)

    @property
    def cpu_layers(self) -> int:
        """Repeating layers run by the CPU entirely (-ngl below the layer count)."""
        return max(0, self.total_layers - self.n_gpu_layers)


def free_mib(memory_gb: float) -> float:
    """The memory a GPU of this size reports free to llama.cpp (see FREE_SHORT_MIB)."""
    return memory_gb * 1024 - FREE_SHORT_MIB


def _config(req: Request, ctx: int | None, ngl: int | None, cpu_layers: frozenset[int] | None,
            overrides: tuple[tuple[str, str], ...]) -> MemConfig:
    ot = list(overrides)
    if cpu_layers:
        ot = [(rf"^blk\.{il}{EXPERTS}", "CPU") for il in sorted(cpu_layers)] + ot
    return MemConfig(ctx=ctx, n_seq=req.n_seq, type_k=req.type_k, type_v=req.type_v, flash_attn=req.flash_attn,
                     ubatch=req.ubatch, batch=req.batch, n_gpu_layers=ngl, n_cpu_moe=req.n_cpu_moe or 0,
                     overrides=tuple(ot))


def devices_of(est: MemEstimate, arch: Arch, cfg: MemConfig, n_gpus: int, names: list[str],
               budgets: list[float | None]) -> tuple[tuple[DeviceMemory, ...], DeviceMemory]:
    """The estimate split over n GPUs (layers in contiguous, even runs; the output layer on the last) and the
    host."""
    layers = sorted(k for k in est.layer_gpu if k is not None)
    runs: list[list[int]] = [[] for _ in range(n_gpus)]
    for i, il in enumerate(layers):
        runs[min(n_gpus - 1, i * n_gpus // max(len(layers), 1))].append(il)
    gpu_total = est.model.get("gpu", 0.0)
    kv_total = est.kv.get("gpu", 0.0) - est.recurrent.get("gpu", 0.0)
    rec_total = est.recurrent.get("gpu", 0.0)
    layer_sum = sum(est.layer_gpu.values()) or 1.0
    devices = []
    for g in range(n_gpus):
        mine = sum(est.layer_gpu[il] for il in runs[g]) + (est.layer_gpu.get(None, 0.0) if g == n_gpus - 1 else 0)
        share = mine / layer_sum
        has_layers = bool(runs[g]) or (g == n_gpus - 1 and None in est.layer_gpu)
        devices.append(DeviceMemory(
            names[g], weights=gpu_total * share, experts=est.experts_gpu * share, kv=kv_total * share,
            recurrent=rec_total * share, compute=est.compute.get("gpu", 0.0) if has_layers else 0.0,
            budget=budgets[g]))
    host = DeviceMemory("host", weights=est.model.get("host", 0.0), experts=est.experts_host,
                        kv=est.kv.get("host", 0.0) - est.recurrent.get("host", 0.0),
                        recurrent=est.recurrent.get("host", 0.0), compute=est.compute.get("host", 0.0),
                        output=est.output_mib)
    return tuple(devices), host


class _Fitter:
    def __init__(self, arch: Arch, req: Request, n_gpus: int, memory_gb: float, names: list[str],
                 free: float | None = None) -> None:
        self.arch, self.req, self.n = arch, req, n_gpus
        self.names = names
        self.budget = (free if free is not None else free_mib(memory_gb)) - req.fit_target_mib

    def place(self, ctx: int | None, ngl: int | None, cpu_layers: frozenset[int] | None = None,
              overrides: tuple[tuple[str, str], ...] = (), by: str = "llama.cpp's fit", side: str = "",
              notes: tuple[str, ...] = ()) -> Placement:
        cfg = _config(self.req, ctx, ngl, cpu_layers, overrides)
        est = estimate_memory(self.arch, cfg)
        devices, host = devices_of(est, self.arch, cfg, self.n, self.names, [self.budget] * self.n)
        n_all = self.arch.n_layer_all + 1
        n_gpu = n_all if ngl is None or ngl < 0 else min(ngl, n_all)
        cpu_exp = tuple(sorted(cpu_layers or ())) or _expert_layers_off(self.arch, cfg)
        return Placement(n_gpu, n_all, cpu_exp, est.n_ctx, by, cfg, devices, host,
                         tuple(notes) + tuple(est.notes), side)


def _expert_layers_off(arch: Arch, cfg: MemConfig) -> tuple[int, ...]:
    """Layers whose expert tensors the config keeps off the GPU (by -ngl, --n-cpu-moe or -ot)."""
    if not arch.tensors:
        return tuple(range(cfg.n_cpu_moe))
    est = estimate_memory(arch, replace(cfg, ctx=256))
    on = {il for il in est.layer_gpu if il is not None}
    patterns = [(re.compile(p), t) for p, t in cfg.overrides]
    out = set()
    for t in arch.tensors:
        if not t.expert or t.layer is None:
            continue
        forced = next((target for rx, target in patterns if rx.search(t.name)), None)
        gpu = t.layer in on and t.layer >= cfg.n_cpu_moe and (forced is None or forced != "CPU")
        if not gpu:
            out.add(t.layer)
    return tuple(sorted(out))


def place(arch: Arch, req: Request, memory_gb: float, n_gpus: int = 1, names: list[str] | None = None,
          free: float | None = None) -> Placement:
    """Where llama.cpp puts the model on n GPUs of `memory_gb` each, for these flags (see the module docstring).
    free: the MiB each GPU reports free, where known (a log's "MiB free"); else its size less FREE_SHORT_MIB."""
    return _place(arch, req, memory_gb, n_gpus, names or [f"GPU{i}" for i in range(n_gpus)], free)


def _place(arch: Arch, req: Request, memory_gb: float, n_gpus: int, names: list[str],
           free: float | None) -> Placement:
    """Where llama.cpp puts the model on n GPUs of `memory_gb` each, for these flags (see the module docstring).
    free: the MiB each GPU reports free, where known (a log's "MiB free"); else its size less FREE_SHORT_MIB."""
    f = _Fitter(arch, req, n_gpus, memory_gb, names, free)
    ctx = req.ctx
    overrides = req.overrides
    if req.cpu_moe:
        overrides = ((EXPERTS, "CPU"), *overrides)
    ngl = None if req.n_gpu_layers is None or req.n_gpu_layers < 0 else req.n_gpu_layers
    first = f.place(ctx, ngl, None, overrides, by="the flags given", side=_side(req))
    if first.fits:
        return first
    notes: list[str] = []
    if ctx is None:
        top = pad(arch.ctx_train or FIT_CTX)
        low = f.place(FIT_CTX, ngl, None, overrides, by="the flags given", side=_side(req))
        used_top = sum(d.total for d in first.devices)
        used_low = sum(d.total for d in low.devices)
        target = f.budget * n_gpus
        if top > FIT_CTX and target > used_low:
            shrunk = FIT_CTX + int((top - FIT_CTX) * (target - used_low) / (used_top - used_low))
            ctx = max(shrunk - shrunk % 256, FIT_CTX)
            notes.append(f"llama.cpp's fit shrinks the context from {top:,} to {ctx:,} tokens")
            got = f.place(ctx, ngl, None, overrides, by="llama.cpp's fit", side=_side(req), notes=tuple(notes))
            if n_gpus == 1 or got.fits:
                return got
        else:
            ctx = FIT_CTX
            notes.append(f"llama.cpp's fit shrinks the context to {FIT_CTX:,} tokens (--fit-ctx) and still moves "
                         "layers")
    if req.pinned:
        return replace(f.place(ctx, ngl, None, overrides, by="the flags given", side=_side(req),
                               notes=tuple(notes) + ("the flags given do not fit: llama.cpp's fit gives up with "
                                                     "-ngl/-ot/--n-cpu-moe set and loads them anyway",)))
    return _fit_layers(f, arch, ctx, tuple(notes))


def _side(req: Request) -> str:
    if req.overrides or req.cpu_moe:
        return "pattern"
    return "front" if req.n_cpu_moe else ""


def _fit_layers(f: _Fitter, arch: Arch, ctx: int | None, notes: tuple[str, ...]) -> Placement:
    n_all = arch.n_layer_all + 1
    moe = arch.n_expert > 0 and bool(arch.tensors)
    if moe:
        dense_only = f.place(ctx, None, frozenset(range(arch.n_layer_all)), notes=notes, side="back")
        if dense_only.fits:
            lo, hi = 0, arch.n_layer_all  # full layers from the front: lo fits
            while hi - lo > 1:
                mid = (lo + hi) // 2
                trial = f.place(ctx, None, frozenset(range(mid, arch.n_layer_all)), side="back")
                lo, hi = (mid, hi) if trial.fits else (lo, mid)
            full = hi if f.place(ctx, None, frozenset(range(hi, arch.n_layer_all)), side="back").fits else lo
            return _fraction(f, arch, ctx, full, notes)
    lo, hi = 0, n_all  # -ngl: lo fits
    cpu = frozenset(range(arch.n_layer_all)) if moe else None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if f.place(ctx, mid, cpu).fits else (lo, mid)
    ngl = hi if f.place(ctx, hi, cpu).fits else lo
    what = f"{ngl} of {n_all} layers on the GPU" + (", every expert in system RAM" if moe else "")
    return f.place(ctx, ngl, cpu, notes=notes + (f"llama.cpp's fit: {what}",), side="back" if moe else "")


# the parts of one more layer llama.cpp's fit tries to bring onto the GPU, in its order (common/fit.cpp:
# LAYER_FRACTION_UP, then _GATE if that fits, else _ATTN): the pattern of what stays in system RAM
_FRACTIONS = (("UP", r"\.ffn_(gate|gate_up|down)"), ("GATE", r"\.ffn_down"))
_ATTN = r"\.ffn_(gate|up|gate_up|down)"


def _fraction(f: _Fitter, arch: Arch, ctx: int | None, full: int, notes: tuple[str, ...]) -> Placement:
    """The fit's last step: part of the first layer whose experts lie in system RAM moves onto the GPU."""
    n = arch.n_layer_all
    rest = frozenset(range(full + 1, n))
    words = f"llama.cpp's fit: every layer on the GPU, the experts of the last {n - full} in system RAM"
    best = f.place(ctx, None, frozenset(range(full, n)), notes=notes + (words,), side="back")
    if full >= n:
        return best

    def trial(pattern: str, what: str) -> Placement:
        ot = ((rf"^blk\.{full}{pattern}", "CPU"),)
        return f.place(ctx, None, rest, ot, notes=notes + (f"llama.cpp's fit: every layer on the GPU, the experts "
                                                           f"of the last {n - full - 1} and {what} of layer {full} "
                                                           "in system RAM",), side="back")

    up = trial(_FRACTIONS[0][1], "the gate and down matrices")
    if up.fits:
        gate = trial(_FRACTIONS[1][1], "the down matrix")
        return gate if gate.fits else up
    attn = trial(_ATTN, "the feed-forward")
    return attn if attn.fits else best


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    words: str  # how it relates to the placement

    def text(self) -> str:
        return " ".join(_quote(a) for a in self.argv)


def _quote(a: str) -> str:
    return f'"{a}"' if any(c in a for c in " \\|()[]*") else a


def command(p: Placement, req: Request, model: str = "MODEL.gguf") -> Command:
    """The llama-server command to start from for this placement: the explicit flags that give it (--n-cpu-moe K
    for K layers' experts in system RAM: the first K layers' where llama.cpp's fit would take the last K, the same
    bytes for layers of one size)."""
    # the context asked for, as given (llama.cpp pads it to 256 cells itself: p.ctx is the padded one)
    argv = ["llama-server", "-m", model, "-c", str(req.ctx if req.ctx is not None else p.ctx)]
    if p.cpu_layers:
        argv += ["-ngl", str(p.n_gpu_layers)]
    else:
        argv += ["-ngl", "99"]
    if req.overrides or req.cpu_moe:
        if req.cpu_moe:
            argv.append("--cpu-moe")
        for pattern, target in req.overrides:
            argv += ["-ot", f"{pattern}={target}"]
    elif p.n_cpu_moe and p.n_cpu_moe < p.total_layers - 1:
        argv += ["--n-cpu-moe", str(p.n_cpu_moe)]
    elif p.n_cpu_moe:
        argv.append("--cpu-moe")
    words = ("computed from the memory model, not measured: "
             + ("llama.cpp's own fit would choose this placement; the flags pin it" if p.by == "llama.cpp's fit"
                else "the placement of the flags given"))
    return Command((*argv, *_settings(req)), words)


def gpu_command(ctx: int, req: Request, model: str = "MODEL.gguf", n_gpus: int = 1) -> Command:
    """The llama-server command for every layer on the GPU(s) at `ctx` tokens (a context the memory model found to
    fit with llama.cpp's fit margin free; n GPUs: llama.cpp's default split, by layer, over every visible GPU)."""
    where = "the GPU" if n_gpus == 1 else f"the {n_gpus} GPUs (llama.cpp splits them by layer)"
    return Command(("llama-server", "-m", model, "-c", str(ctx), "-ngl", "99", *_settings(req)),
                   f"computed from the memory model, not measured: every layer on {where} at the largest context "
                   "that keeps llama.cpp's fit margin free")


def _settings(req: Request) -> list[str]:
    argv = []
    if req.type_k != "f16" or req.type_v != "f16":
        argv += ["-ctk", req.type_k, "-ctv", req.type_v]
    argv += ["-fa", "on" if req.flash_attn else "off"]
    if req.ubatch != 512:
        argv += ["-ub", str(req.ubatch)]
    if req.batch != 2048:
        argv += ["-b", str(req.batch)]
    return argv


def to_json(p: Placement) -> dict[str, object]:
    def dev(d: DeviceMemory) -> dict[str, object]:
        out: dict[str, object] = {"weights": round(d.weights, 1), "experts": round(d.experts, 1),
                                  "kv": round(d.kv, 1), "recurrent": round(d.recurrent, 1),
                                  "compute": round(d.compute, 1), "total": round(d.total, 1)}
        if d.output:
            out["output"] = round(d.output, 1)
        if d.budget is not None:
            out["budget"] = round(d.budget, 1)
            out["fits"] = d.fits
        return out

    return {"n_gpu_layers": p.n_gpu_layers, "total_layers": p.total_layers, "n_cpu_moe": p.n_cpu_moe,
            "cpu_expert_layers": list(p.cpu_expert_layers), "cpu_moe_side": p.side or None,
            "cpu_layers": p.cpu_layers, "ctx": p.ctx, "by": p.by, "fits": p.fits,
            "memory_mib": {**{d.name: dev(d) for d in p.devices}, "host": dev(p.host)},
            "notes": list(p.notes), "label": "computed from the memory model, not measured"}
