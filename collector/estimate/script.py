"""`collector estimate ... --json`: one question answered as one JSON object, for scripts.

    {"estimate": true, "device": ..., "fits": bool, "memory_mib": {<device>: MiB, "host": MiB},
     "tg": {"value", "low", "high", "coverage", "depth", ...}, "pp": {..., "prompt"}}

Every figure is an ESTIMATE (memory from llama.cpp's allocation rules, speed from the fitted model); a figure it
cannot give is {"not_estimated": "reason"}. "coverage" is the share of the figures left out by source that a range
stated the same way held, measured per left-out source (estimate.heldout: the range from the other sources' checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector import catalog
from collector.base.errors import CollectorError
from collector.estimate.arch import Arch
from collector.estimate.estimator import FIT_MARGIN_MIB, Estimator, SpeedAnswer, default_backend
from collector.estimate.memory import MemConfig, estimate_memory, largest_context
from collector.estimate.points import bandwidth
from collector.estimate.report import find_model

FIT_CTX = 4096  # llama.cpp's --fit-ctx: the smallest context its fit shrinks to
BACKENDS = ("CUDA", "Vulkan", "ROCm", "Metal", "SYCL", "CPU")
LABEL = ("ESTIMATE, not a measurement: memory from llama.cpp's allocation rules, speed from a bandwidth model fitted "
         "on llama-bench figures (README, Estimates)")


@dataclass(frozen=True)
class Question:
    model: str
    device: str
    gpus: int = 1
    vram_gb: float | None = None
    backend: str | None = None
    ctx: int | None = None
    kv: str = "f16"
    depth: int = 0
    prompt: int = 512


def _r(x: float, digits: int = 1) -> float:
    return round(float(x), digits)


def _speed(a: SpeedAnswer, extra: dict[str, Any]) -> dict[str, Any]:
    if a.value is None or a.low is None or a.high is None or a.error is None:
        return {"not_estimated": a.why_not or "no held-out check for this device class"}
    e = a.error
    out: dict[str, Any] = {"value": _r(a.value, 2), "low": _r(a.low, 2), "high": _r(a.high, 2),
                           "coverage": a.coverage, **extra, "unit": "t/s", "basis": a.basis,
                           "held_out": {"left_out": "source", "class": e.group, "checks": e.n, "sources": e.n_sources,
                                        "median_abs_error_pct": _r(e.median_pct), "p90_abs_error_pct": _r(e.p90_pct),
                                        "range_from": a.range.basis if a.range else None}}
    if not a.shown:
        out["caveat"] = f"not shown on the site: {a.why_not}"
    if a.notes:
        out["notes"] = list(a.notes)
    return out


def _memory_size(dev: catalog.CatalogDevice, q: Question, variant: catalog.Variant | None) -> float | None:
    if q.vram_gb is not None:
        return q.vram_gb
    if variant is not None and variant.memory_gb is not None:
        return variant.memory_gb
    sizes = dev.memory_gb
    return sizes[0] if len(sizes) == 1 else None


def answer(est: Estimator, q: Question) -> dict[str, Any]:
    """The JSON object for one question (CollectorError, one line, for a name or value it cannot take)."""
    if q.backend is not None and q.backend not in BACKENDS:
        raise CollectorError(f"--backend {q.backend!r}: use one of {', '.join(BACKENDS)}")
    found = catalog.lookup(q.device, q.vram_gb)
    dev = found.device
    arch: Arch = find_model(q.model, est)
    size = _memory_size(dev, q, found.variant)
    bw = bandwidth(dev, None, vram_gb=size) if size is not None else dev.bandwidth_gbs
    ctx, ctx_note = q.ctx, None
    if ctx is None and size is not None:
        # llama-server without -c: the training context, which llama.cpp's fit shrinks to what fits (not below
        # --fit-ctx, 4096 tokens) before it moves any layer off the GPU
        best = largest_context(arch, MemConfig(type_k=q.kv, type_v=q.kv), q.gpus * (size * 1024 - FIT_MARGIN_MIB))
        top = arch.ctx_train or FIT_CTX
        ctx = min(top, max(best or 0, FIT_CTX))
        ctx_note = "no --ctx: the training context, shrunk as llama.cpp's fit does to what fits (not below 4096)"
    cfg = MemConfig(ctx=ctx, type_k=q.kv, type_v=q.kv)
    mem = estimate_memory(arch, cfg)
    label = dev.name if q.gpus == 1 else f"{q.gpus} x {dev.name}"
    out: dict[str, Any] = {
        "estimate": True, "label": LABEL,
        "device": dev.name, "gpus": q.gpus, "memory_gb": size, "bandwidth_gbs": bw,
        "device_source": dev.citation if found.variant is None else (found.variant.url or dev.citation),
        "model": arch.name, "quant": arch.quant, "model_facts": arch.source,
        "weights_bytes": arch.weight_bytes, "read_bytes_per_token": arch.read_bytes or None,
        "ctx": mem.n_ctx, "kv": q.kv,
    }
    if ctx_note:
        out["ctx_note"] = ctx_note
    out["backend"] = q.backend or default_backend(dev)
    gpu_mib, host_mib = mem.total("gpu"), mem.total("host")
    out["memory_mib"] = {label: _r(gpu_mib), "host": _r(host_mib)}
    out["memory_detail_mib"] = {where: {"model": _r(mem.model.get(where, 0.0)), "kv": _r(mem.kv.get(where, 0.0)),
                                        "compute": _r(mem.compute.get(where, 0.0))} for where in ("gpu", "host")}
    if size is None:
        why = ("its memory is configured per machine; give --vram GB" if not dev.memory_gb else
               f"{dev.name} is sold with {' or '.join(f'{g:g}' for g in dev.memory_gb)} GB; give --vram GB")
        out["fits"] = {"not_estimated": why}
        fits = True  # speed is still estimated, as if every layer fits
    else:
        budget = q.gpus * (size * 1024 - FIT_MARGIN_MIB)
        fits = gpu_mib <= budget
        out["fits"] = fits
        out["fit_budget_mib"] = _r(budget)
    if not fits:
        reason = "the model does not fit the device's memory with every layer on the GPU (partial offload is not " \
                 "modelled)"
        out["tg"] = {"not_estimated": reason}
        out["pp"] = {"not_estimated": reason}
        return out
    tg = est.speed(dev, q.gpus, arch, "tg", q.depth, vram_gb=size, backend=q.backend, type_k=q.kv, type_v=q.kv)
    pp = est.speed(dev, q.gpus, arch, "pp", q.depth, q.prompt, vram_gb=size, backend=q.backend, type_k=q.kv,
                   type_v=q.kv)
    out["tg"] = _speed(tg, {"depth": q.depth})
    out["pp"] = _speed(pp, {"prompt": q.prompt, "depth": q.depth})
    return out
