"""One question answered in full, as a structured value: where llama.cpp puts the model (the flags given, or its own
fit), the command to start from, what each device and the host hold, and tg and pp with their stated range (every
layer on the GPU: the full-GPU model; weights in system RAM: the offload model at the reader's RAM bandwidth).

    from collector.estimate.answer import ask
    a = ask(est, "RTX 4090", "Qwen3-Coder-Next IQ2_XS", ctx=168000, kv="q8_0", ram="DDR4-3200 2ch")
    a.placement.n_gpu_layers, a.placement.n_cpu_moe, a.command.text(), a.placement.devices[0].total
    a.tg.value, a.tg.low, a.tg.high, a.tg.coverage, a.tg.why_not

Everything here is an ESTIMATE (README: Estimates): the site labels it so, and never ranks it with measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from collector import catalog
from collector.base.errors import CollectorError
from collector.estimate.arch import Arch
from collector.estimate.estimator import Estimator, SpeedAnswer, default_backend
from collector.estimate.facts import of_arch
from collector.estimate.memory import MemConfig
from collector.estimate.offload import (
    ASSUMED_PCIE,
    BOUND_PCT_OFFLOAD,
    OffError,
    OffloadFit,
    OffPoint,
    Split,
    pcie_gbs,
    predict_off,
    ram_gbs,
    split,
    tg_fixed,
)
from collector.estimate.placement import Command, Placement, Request, command, parse_overrides, place
from collector.estimate.report import find_model

MIN_OFFLOAD_CHECKS = 10


@dataclass(frozen=True)
class Answer:
    device: catalog.CatalogDevice
    n_gpus: int
    memory_gb: float | None  # per GPU (None: not known: give --vram)
    arch: Arch
    request: Request
    placement: Placement | None  # None: the device's memory is not known
    command: Command | None
    tg: SpeedAnswer
    pp: SpeedAnswer
    ram_gbs: float | None
    ram_basis: str
    backend: str

    @property
    def offloaded(self) -> bool:
        return self.placement is not None and bool(self.placement.n_cpu_moe or self.placement.cpu_layers)


def _memory_size(dev: catalog.CatalogDevice, vram_gb: float | None, variant: catalog.Variant | None) -> float | None:
    if vram_gb is not None:
        return vram_gb
    if variant is not None and variant.memory_gb is not None:
        return variant.memory_gb
    sizes = dev.memory_gb
    return sizes[0] if len(sizes) == 1 else None


def _off_point(est: Estimator, dev: catalog.CatalogDevice, arch: Arch, cfg: MemConfig, metric: str, ram: float,
               pcie: float, depth: int, prompt: int, vram_gb: float | None, backend: str | None,
               threads: int | None) -> tuple[OffPoint, Split] | None:
    """The offload point of a placement's settings (ram, pcie: GB/s); None where the catalog states no single
    bandwidth for the device."""
    facts = of_arch(arch)
    sp = split(arch, cfg, facts)
    full = est.point(dev, 1, facts, metric, depth, prompt, vram_gb, backend, cfg.type_k, cfg.type_v, cfg.ubatch,
                     cfg.batch)
    if full is None:
        return None
    gpu = replace(full, facts=sp.gpu)
    return OffPoint("", metric, "", "llama.cpp", gpu, full, sp.cpu_read, sp.cpu_layers, sp.switches, sp.cpu_all,
                    ram * 1e9, pcie * 1e9, full.ubatch, 1.0, "", threads), sp


def _off_error_why(err: OffError | None) -> str | None:
    """Why the offload estimates are not shown (their held-out error), or None where they are."""
    if err is not None and err.n >= MIN_OFFLOAD_CHECKS and err.median_pct <= BOUND_PCT_OFFLOAD:
        return None
    return (f"figures with weights in system RAM, each source left out: median error {err.median_pct:.0f} % over "
            f"{err.n} figures of {err.n_sources} sources (shown within {BOUND_PCT_OFFLOAD:.0f} % over at least "
            f"{MIN_OFFLOAD_CHECKS})" if err else "no figure with weights in system RAM was checked")


@dataclass(frozen=True)
class OffloadTerms:
    """tg of a placement with weights in system RAM at any RAM bandwidth, the CPU's threads not bounding it:
    1 / (fixed_s + cpu_bytes / (GB/s x 1e9 x eta)); low and high: the stated range's factors (each offload source
    left out, coverage as measured)."""

    fixed_s: float
    cpu_bytes: float
    eta: float
    low: float
    high: float
    error: OffError
    beta_gbs: float | None  # what one CPU thread's kernels read at most (None: not fitted)

    def tg(self, ram_gbs: float) -> float:
        return 1.0 / (self.fixed_s + self.cpu_bytes / (ram_gbs * 1e9 * self.eta))

    def threads_needed(self, ram_gbs: float) -> int | None:
        """The CPU threads whose reads reach that RAM's share (fewer bound tg lower); None: beta not fitted."""
        return math.ceil(ram_gbs * self.eta / self.beta_gbs) if self.beta_gbs else None


def offload_terms(est: Estimator, dev: catalog.CatalogDevice, arch: Arch, cfg: MemConfig,
                  vram_gb: float | None) -> OffloadTerms | None:
    """The terms of tg for a placement on one GPU of `dev` (the site's "experts in system RAM" rows, whose readers
    choose their RAM); None where the offload estimate is not shown (its held-out error) or cannot be made."""
    f, gpu_fit = est.fitted.off_fits.get("tg"), est.fitted.fits.get("tg")
    err, rng = est.fitted.off_errors.get("tg"), est.fitted.off_ranges.get("tg")
    if f is None or gpu_fit is None or not f.n or err is None or rng is None or _off_error_why(err):
        return None
    got = _off_point(est, dev, arch, cfg, "tg", 1.0, pcie_gbs(ASSUMED_PCIE), 0, 512, vram_gb, None, None)
    if got is None:
        return None
    op, _ = got
    return OffloadTerms(tg_fixed(f, gpu_fit, op), op.cpu_read, f.eta_cpu, rng.low, rng.high, err,
                        f.beta / 1e9 if f.beta else None)


def _offload_speed(est: Estimator, dev: catalog.CatalogDevice, arch: Arch, p: Placement, metric: str,
                   ram: float | None, ram_why: str, pcie: float, depth: int, prompt: int, vram_gb: float | None,
                   backend: str | None, threads: int | None) -> SpeedAnswer:
    f = est.fitted.off_fits.get(metric)
    gpu_fit = est.fitted.fits.get(metric)
    if f is None or gpu_fit is None or not f.n:
        return SpeedAnswer(metric, None, None, None, "", None, False, "no published figure with weights in system "
                           "RAM to fit on")
    if ram is None:
        return SpeedAnswer(metric, None, None, None, "", None, False, f"part of the model is in system RAM and its "
                           f"bandwidth is not known ({ram_why}): give --ram \"DDR5-6000 2ch\" or --ram-gbs GB/s")
    got = _off_point(est, dev, arch, p.config, metric, ram, pcie, depth, prompt, vram_gb, backend, threads)
    if got is None:
        return SpeedAnswer(metric, None, None, None, "", None, False, "the catalog states no single bandwidth for "
                           "this device (give --vram)")
    op, sp = got
    value = predict_off(f, gpu_fit, op)
    rng = est.fitted.off_ranges.get(metric)
    err = est.fitted.off_errors.get(metric)
    why = _off_error_why(err)
    basis = (f"the GPU's share ({sp.gpu.read_bytes / 1e9:.2f} GB a token, {sp.gpu.layers} layers) by the full-GPU "
             f"model; {sp.cpu_read / 1e9:.2f} GB a token from system RAM at {ram:.1f} GB/s{_bound(f, threads)}"
             + (f", {sp.cpu_layers} layers run whole by the CPU" if sp.cpu_layers else "")
             + (f"; pp copies the {sp.cpu_all / 1e9:.1f} GB in system RAM to the GPU once per ubatch at "
                f"{pcie:.1f} GB/s" if metric == "pp" else ""))
    from collector.estimate.heldout import GroupError

    group = GroupError(metric, "source", "offload", "weights in system RAM", err.n, err.n_sources, err.median_pct,
                       err.p90_pct, err.signed_pct, err.coverage) if err else None
    from collector.estimate.heldout import Range

    r = Range(rng.low, rng.high, "every offload source", rng.n) if rng else None
    return SpeedAnswer(metric, value, value * rng.low if rng else None, value * rng.high if rng else None, basis,
                       group, why is None and r is not None, why, (), r)


def _bound(f: OffloadFit, threads: int | None) -> str:
    """What the CPU's threads bound its reads at (the fitted beta), or that they were not given."""
    if not f.beta:
        return ""
    if threads is None:
        return f" (threads not given: not bounded by them; {f.beta / 1e9:.1f} GB/s a thread fitted)"
    return f", at most {threads * f.beta / 1e9:.0f} GB/s with {threads} threads ({f.beta / 1e9:.1f} GB/s a thread)"


def ask(est: Estimator, device: str, model: str | Arch, *, ctx: int | None = None, kv: str = "f16",
        kv_v: str | None = None, gpus: int = 1, vram_gb: float | None = None, ngl: int | None = None,
        n_cpu_moe: int | None = None, cpu_moe: bool = False, ot: tuple[str, ...] = (), ubatch: int = 512,
        batch: int = 2048, ram: str | None = None, ram_gbs_given: float | None = None, pcie: str = ASSUMED_PCIE,
        backend: str | None = None, depth: int = 0, prompt: int = 512, threads: int | None = None) -> Answer:
    """The whole answer for one question (CollectorError, one line, for a name or value it cannot take).
    ngl -1 means all layers; None and no tensor flags: llama.cpp's own fit decides."""
    found = catalog.lookup(device, vram_gb)
    dev = found.device
    arch = model if isinstance(model, Arch) else find_model(model, est)
    size = _memory_size(dev, vram_gb, found.variant)
    req = Request(n_gpu_layers=ngl, n_cpu_moe=n_cpu_moe, cpu_moe=cpu_moe, overrides=parse_overrides(ot), ctx=ctx,
                  type_k=kv, type_v=kv_v or kv, ubatch=ubatch, batch=batch)
    ram_bw: float | None
    if ram_gbs_given is not None:
        ram_bw, ram_why = ram_gbs_given, f"{ram_gbs_given:g} GB/s as given"
    elif ram is not None:
        ram_bw, ram_why = ram_gbs(ram)
        if ram_bw is None:
            raise CollectorError(f"--ram {ram!r}: {ram_why}; give it as \"DDR5-6000 2ch\" or use --ram-gbs")
    else:
        ram_bw, ram_why = None, "no --ram given"
    link = pcie_gbs(pcie)
    be = backend or default_backend(dev)
    if size is None:
        placement, cmd = None, None
        why = ("its memory is configured per machine; give --vram GB" if not dev.memory_gb else
               f"{dev.name} is sold with {' or '.join(f'{g:g}' for g in dev.memory_gb)} GB; give --vram GB")
        tg = SpeedAnswer("tg", None, None, None, "", None, False, why)
        pp = SpeedAnswer("pp", None, None, None, "", None, False, why)
        return Answer(dev, gpus, None, arch, req, None, None, tg, pp, ram_bw, ram_why, be)
    names = [f"{_backend_name(be)}{i} ({dev.name})" for i in range(gpus)]
    placement = place(arch, req, size, gpus, names)
    cmd = command(placement, req)
    if placement.n_cpu_moe or placement.cpu_layers:
        if gpus > 1:
            why = "weights in system RAM with several GPUs: not modelled"
            tg = SpeedAnswer("tg", None, None, None, "", None, False, why)
            pp = SpeedAnswer("pp", None, None, None, "", None, False, why)
        else:
            tg = _offload_speed(est, dev, arch, placement, "tg", ram_bw, ram_why, link, depth, prompt, size, backend,
                                threads)
            pp = _offload_speed(est, dev, arch, placement, "pp", ram_bw, ram_why, link, depth, prompt, size,
                                backend, threads)
    else:
        tg = est.speed(dev, gpus, arch, "tg", depth, vram_gb=size, backend=backend, type_k=req.type_k,
                       type_v=req.type_v, ubatch=ubatch)
        pp = est.speed(dev, gpus, arch, "pp", depth, prompt, vram_gb=size, backend=backend, type_k=req.type_k,
                       type_v=req.type_v, ubatch=ubatch)
    return Answer(dev, gpus, size, arch, req, placement, cmd, tg, pp, ram_bw, ram_why, be)


def _backend_name(backend: str) -> str:
    return {"CUDA": "CUDA", "ROCm": "ROCm", "Vulkan": "Vulkan", "Metal": "MTL", "SYCL": "SYCL"}.get(backend, "GPU")
