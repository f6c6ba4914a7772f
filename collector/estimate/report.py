"""Questions as a reader asks them (a model, a device by its spelling) and the estimate tables the CLI prints and the
device pages show: per model and quant, the context that fits with each KV type and the expected tg and pp."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector.catalog import CatalogDevice, lookup
from collector.estimate.arch import Arch, read_gguf
from collector.estimate.estimator import FIT_MARGIN_MIB, KV_TYPES, Estimator, SpeedAnswer, fits, vram_mib
from collector.estimate.heldout import ClassError
from collector.estimate.memory import MemConfig, estimate_memory, resolve_ctx
from collector.estimate.speed import BENCH
from collector.records.store import AnyRecord

TG_DEPTHS = (0, 4096)
PROMPT = 512


def find_device(spelling: str, vram_gb: float | None = None) -> CatalogDevice:
    """The catalog device a spelling names: a listed spelling, the catalog slug its page has ("RTX 4090" ->
    rtx-4090), a spelling with its memory ("RTX 3060 12GB") or a family narrowed by vram_gb. Never by likeness:
    anything else is a one-line error that says what to give (collector.catalog.lookup)."""
    return lookup(spelling, vram_gb).device


def find_model(spec: str, est: Estimator) -> Arch:
    """A GGUF path or pypi: reference (its facts read from the file), "NAME QUANT" of a model in the data, or of
    the model table (models.yaml: today's models, every tensor computed for a standard llama-quantize type)."""
    if spec.startswith("pypi:") or spec.endswith(".gguf") or Path(spec).is_file():
        from collector.models.ref import resolve_model

        return read_gguf(resolve_model(spec))
    want = " ".join(spec.split()).casefold()
    for arch in est.models:
        if f"{arch.name} {arch.quant}".casefold() == want:
            return arch
    from collector.estimate import table

    return table.find(spec, est.mixes)


@dataclass(frozen=True)
class Row:
    """One model and quant on one device: what fits, how fast (estimated), or why not."""

    arch: Arch
    contexts: dict[str, int | None]  # KV type -> largest context (None: does not fit); empty: memory not known
    needs_mib: float  # GPU buffers at 4096 tokens (f16 KV): what a device of unknown memory must hold
    speeds: list[tuple[str, SpeedAnswer]]  # label ("tg @ 0") -> answer
    measured: bool  # this device has llama-bench figures of this very model and quant: no speed estimate
    fits_at_all: bool | None  # None: the device's memory is not known


def device_rows(est: Estimator, dev: CatalogDevice, n_gpus: int = 1, vram: float | None = None) -> list[Row]:
    """Every model of the data with known facts, on n GPUs of this device (memory size `vram` MiB or the first
    the catalog lists)."""
    sizes = vram_mib(dev)
    vram = vram if vram is not None else (sizes[0] if sizes else None)
    key = dev.name if n_gpus == 1 else f"{dev.name} x {n_gpus}"
    measured = {(p.model, p.quant) for p in est.points if p.runtime == BENCH and p.device == key}
    rows = []
    for arch in est.models:
        contexts = {kv: fits(arch, vram, n_gpus, kv) for kv in KV_TYPES} if vram else {}
        needs = estimate_memory(arch, MemConfig(ctx=4096)).total("gpu")
        fit_any = any(c is not None for c in contexts.values()) if vram else None
        speeds = [(f"tg @ {d:,}", est.speed(dev, n_gpus, arch, "tg", d)) for d in TG_DEPTHS]
        speeds.append((f"pp {PROMPT}", est.speed(dev, n_gpus, arch, "pp", 0, PROMPT)))
        rows.append(Row(arch, contexts, needs, speeds, (arch.name, arch.quant) in measured, fit_any))
    return rows


def rate(x: float) -> str:
    """A speed with three significant digits, without an exponent: 4,560; 129; 12.3; 0.812."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def speed_text(a: SpeedAnswer) -> str:
    if a.value is None:
        return f"not estimated ({a.why_not})"
    band = f" (80 % of held-out checks: {rate(a.low)}-{rate(a.high)})" if a.low and a.high else ""
    shown = "" if a.shown else f" [not shown on the site: {a.why_not}]"
    return f"~{rate(a.value)} t/s{band}{shown}"


def answer_lines(est: Estimator, dev: CatalogDevice, arch: Arch, ctx: int | None, kv: str,
                 n_gpus: int = 1, vram_gb: float | None = None) -> list[str]:
    """What `collector estimate` prints: ESTIMATES, each with its basis and the held-out error that applies.
    vram_gb: the memory size the reader gave (--vram), which picks the variant where several exist."""
    sizes = [vram_gb * 1024] if vram_gb else vram_mib(dev)
    variant = dev.variant_for(vram_gb) if vram_gb else None
    gbs = variant.bandwidth_gbs if variant and variant.bandwidth_gbs else dev.bandwidth_gbs
    bw = f"{gbs:g} GB/s" if gbs else "bandwidth: see the variants (give --vram)"
    mem = " or ".join(f"{m / 1024:g} GiB" for m in sizes) or "memory configured per machine"
    lines = [f"ESTIMATES (not measurements) for {arch.name} {arch.quant or ''} on "
             f"{n_gpus} x {dev.name} ({mem}, {bw}; {dev.citation})".replace(" 1 x ", " "),
             f"model facts: {arch.source}"]
    cfg = MemConfig(ctx=ctx, type_k=kv, type_v=kv)
    m = estimate_memory(arch, cfg)
    lines.append(f"memory at ctx {resolve_ctx(arch, cfg):,}, KV {kv}, flash attention, ubatch 512, every layer on the "
                 "GPU (llama.cpp's buffers, MiB):")
    for where in ("gpu", "host"):
        lines.append(f"  {where}: model {m.model.get(where, 0):,.0f} + KV {m.kv.get(where, 0):,.0f} + compute "
                     f"{m.compute.get(where, 0):,.0f} = {m.total(where):,.0f}")
    lines += [f"  note: {n}" for n in m.notes]
    for size in sizes:
        budget = n_gpus * (size - FIT_MARGIN_MIB)
        verdict = "fits" if m.total("gpu") <= budget else "does NOT fit"
        most = "; ".join(f"{t} {c:,}" if (c := fits(arch, size, n_gpus, t)) else f"{t} none"
                         for t in KV_TYPES)
        lines.append(f"  {size / 1024:g} GiB: {verdict} within {budget:,.0f} MiB (llama.cpp keeps {FIT_MARGIN_MIB} MiB "
                     f"free per GPU); largest context per KV type: {most}")
    fit_any = any(m.total("gpu") <= n_gpus * (s - FIT_MARGIN_MIB) for s in sizes) if sizes else True
    lines.append("speed (llama.cpp as llama-bench measures it, f16 KV):")
    key = dev.name if n_gpus == 1 else f"{dev.name} x {n_gpus}"
    seen = sum(1 for p in est.points if p.runtime == BENCH and p.device == key and (p.model, p.quant) ==
               (arch.name, arch.quant))
    if seen:
        lines.append(f"  measured: {seen} llama-bench figures of this model and quant on this device are in the data "
                     "(see its device page); the estimates below are for comparison only")
    if not fit_any:
        lines.append("  not estimated: the model does not fit this device's memory (partial offload is not modelled)")
        return lines
    for label, answer in [(f"tg @ depth {d:,}", est.speed(dev, n_gpus, arch, "tg", d, vram_gb=vram_gb))
                          for d in TG_DEPTHS] + [(f"pp {PROMPT}", est.speed(dev, n_gpus, arch, "pp", 0, PROMPT,
                                                                            vram_gb=vram_gb))]:
        lines.append(f"  {label}: {speed_text(answer)}")
        if answer.error:
            e = answer.error
            lines.append(f"      basis: {answer.basis}; held-out error (leave one {e.mode} out, {e.cls}): median "
                         f"{e.median_pct:.1f} %, 90th percentile {e.p90_pct:.1f} % over {e.n} figures of {e.n_left} "
                         f"{e.mode}s")
        lines += [f"      note: {n}" for n in answer.notes]
    return lines


def verdict(e: ClassError) -> str:
    """Whether the class's estimates are shown (only llama-bench's fit is ever applied to llama.cpp)."""
    if e.cls == "all classes":
        return "(every class together)"
    if e.runtime != BENCH:
        return "meets the bound, reported only (llamafile: never applied to llama.cpp)" if e.shown else \
            f"over the bound: {e.why_not}"
    return "shown" if e.shown else f"not shown: {e.why_not}"


def report_lines(records: list[AnyRecord], est: Estimator) -> list[str]:
    """The memory check per buffer kind and the speed model's held-out error per runtime, metric and class."""
    from collector.estimate.memcheck import TOLERANCE_MIB, TOLERANCE_PCT, data_checks, summarise

    checks, skipped = data_checks(records)
    lines = [f"memory estimate against llama.cpp's logged buffers ({len(checks)} checks; target: within "
             f"{TOLERANCE_PCT:g} % or {TOLERANCE_MIB:g} MiB):"]
    for s in summarise(checks):
        lines.append(f"  {s.kind:8} n={s.n:3}  median |error| {s.median_abs_mib:.2f} MiB  max {s.max_abs_mib:.2f} "
                     f"MiB ({s.max_abs_pct:.1f} %)  outside the target: {s.outside}")
    lines += [f"  not checked: {s}" for s in skipped]
    lines.append("speed model, held-out error (|estimate / measured - 1|):")
    for e in est.fitted.errors:
        lines.append(f"  {e.runtime} {e.metric} leave-one-{e.mode}-out {e.cls}: n={e.n} ({e.n_left} {e.mode}s) "
                     f"median {e.median_pct:.1f} %  p90 {e.p90_pct:.1f} %  " + verdict(e))
    for why, n in est.left.most_common():
        lines.append(f"  left out of the fit: {n} records ({why})")
    return lines
