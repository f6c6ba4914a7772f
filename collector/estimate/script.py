"""`collector estimate ... --json`: one question answered as one JSON object, for scripts.

    {"estimate": true, "device": ..., "fits": bool, "memory_mib": {<device>: MiB, "host": MiB},
     "placement": {"n_gpu_layers": N, "n_cpu_moe": K, "by": ..., "memory_mib": {<device>: {weights, experts, kv,
                   recurrent, compute, total, budget}, "host": {...}}, ...},
     "command": "llama-server ...",
     "tg": {"value", "low", "high", "coverage", "depth", ...}, "pp": {..., "prompt"}}

Every figure is an ESTIMATE (memory and placement from llama.cpp's allocation and fit rules, speed from the fitted
models); a figure it cannot give is {"not_estimated": "reason"}. "coverage" is the share of the figures left out by
source that a range stated the same way held, measured per left-out source (estimate.heldout, estimate.offload).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.base.errors import CollectorError
from collector.estimate.answer import Answer, ask
from collector.estimate.estimator import Estimator, SpeedAnswer
from collector.estimate.facts import of_arch
from collector.estimate.placement import FIT_MARGIN_MIB, free_mib, to_json
from collector.estimate.points import bandwidth

BACKENDS = ("CUDA", "Vulkan", "ROCm", "Metal", "SYCL", "CPU")
LABEL = ("ESTIMATE, not a measurement: memory and placement from llama.cpp's allocation and fit rules, speed from "
         "models fitted on published llama.cpp figures (docs/estimates.md)")


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
    ngl: int | None = None
    n_cpu_moe: int | None = None
    cpu_moe: bool = False
    ot: tuple[str, ...] = ()
    ubatch: int = 512
    batch: int = 2048
    ram: str | None = None
    ram_gbs: float | None = None
    pcie: str = "4x16"
    threads: int | None = None


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


def to_dict(a: Answer, q: Question) -> dict[str, Any]:
    """The JSON object of one answer."""
    dev, arch = a.device, a.arch
    facts = of_arch(arch)
    bw = bandwidth(dev, None, vram_gb=a.memory_gb) if a.memory_gb is not None else dev.bandwidth_gbs
    out: dict[str, Any] = {
        "estimate": True, "label": LABEL,
        "device": dev.name, "gpus": a.n_gpus, "memory_gb": a.memory_gb, "bandwidth_gbs": bw,
        "device_source": dev.citation, "backend": a.backend,
        "model": arch.name, "quant": arch.quant, "model_facts": arch.source,
        "weights_bytes": arch.weight_bytes, "read_bytes_per_token": round(facts.read_bytes) or None,
        "kv": q.kv,
    }
    p = a.placement
    if p is None:
        why = ("its memory is configured per machine; give --vram GB" if not dev.memory_gb else
               f"{dev.name} is sold with {' or '.join(f'{g:g}' for g in dev.memory_gb)} GB; give --vram GB")
        out["fits"] = {"not_estimated": why}
        out["placement"] = {"not_estimated": why}
        out["command"] = {"not_estimated": why}
    else:
        out["ctx"] = p.ctx
        if q.ctx is None:
            out["ctx_note"] = ("no --ctx: the training context, which llama.cpp's fit shrinks (not below 4096) "
                               "before it moves weights to system RAM")
        out["fits"] = p.fits
        out["fit_budget_mib"] = _r(a.n_gpus * (free_mib(a.memory_gb or 0) - FIT_MARGIN_MIB))
        labels = [dev.name] if a.n_gpus == 1 else [f"{dev.name} #{i + 1}" for i in range(a.n_gpus)]
        out["memory_mib"] = {**{k: _r(d.total) for k, d in zip(labels, p.devices)}, "host": _r(p.host.total)}
        out["placement"] = to_json(p)
        out["command"] = a.command.text() if a.command else None
        out["command_note"] = a.command.words if a.command else None
    if a.ram_gbs is not None:
        out["ram_gbs"] = a.ram_gbs
        out["ram_note"] = a.ram_basis
    if q.threads is not None:
        out["threads"] = q.threads
    out["tg"] = _speed(a.tg, {"depth": q.depth})
    out["pp"] = _speed(a.pp, {"prompt": q.prompt, "depth": q.depth})
    return out


def answer(est: Estimator, q: Question) -> dict[str, Any]:
    """The JSON object for one question (CollectorError, one line, for a name or value it cannot take)."""
    if q.backend is not None and q.backend not in BACKENDS:
        raise CollectorError(f"--backend {q.backend!r}: use one of {', '.join(BACKENDS)}")
    a = ask(est, q.device, q.model, ctx=q.ctx, kv=q.kv, gpus=q.gpus, vram_gb=q.vram_gb, ngl=q.ngl,
            n_cpu_moe=q.n_cpu_moe, cpu_moe=q.cpu_moe, ot=q.ot, ubatch=q.ubatch, batch=q.batch, ram=q.ram,
            ram_gbs_given=q.ram_gbs, pcie=q.pcie, backend=q.backend, depth=q.depth, prompt=q.prompt,
            threads=q.threads)
    return to_dict(a, q)
