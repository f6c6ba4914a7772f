"""Questions as a reader asks them (a model, a device by its spelling) and the estimate tables the CLI prints and the
device pages show: per model of the model table and quant, the context that fits with each KV type and the expected
tg and pp with the range the held-out checks give."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector.catalog import CatalogDevice, lookup
from collector.estimate.arch import Arch, read_gguf
from collector.estimate.estimator import FIT_MARGIN_MIB, KV_TYPES, Estimator, SpeedAnswer, fits, vram_mib
from collector.estimate.heldout import GroupError
from collector.estimate.memory import MemConfig, estimate_memory, resolve_ctx
from collector.records.store import AnyRecord

TG_DEPTHS = (0, 4096)
PROMPT = 512
MIN_CONTEXT = 4096  # a model that cannot hold this many tokens with every layer on the device is left off its table
# the quants a device page shows per model of the table (gpt-oss is published as MXFP4)
PAGE_QUANTS = ("Q4_K_M", "Q8_0")
PAGE_QUANTS_BY_ARCH = {"gpt-oss": ("MXFP4_MOE",)}


def find_device(spelling: str, vram_gb: float | None = None) -> CatalogDevice:
    """The catalog device a spelling names (collector.catalog.lookup: never by likeness)."""
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
    measured: int  # figures of this model's tensors and quant on this device in the fit
    fits_at_all: bool | None  # None: the device's memory is not known


def page_models() -> list[Arch]:
    """The models a device page estimates: every listed model of the table in the quants people run it in."""
    from collector.estimate import table

    out = []
    for s in table.table().values():
        if not s.listed:
            continue
        for q in PAGE_QUANTS_BY_ARCH.get(str(s.layout.get("arch")), PAGE_QUANTS):
            out.append(table.build(s.name, q))
    return out


def device_rows(est: Estimator, dev: CatalogDevice, n_gpus: int = 1, vram: float | None = None,
                models: list[Arch] | None = None) -> tuple[list[Row], list[Arch]]:
    """The table models that run on n GPUs of this device (memory size `vram` MiB, or the first the catalog lists)
    with every layer on the GPU at MIN_CONTEXT tokens, and those that do not (left off the table)."""
    sizes = vram_mib(dev)
    vram = vram if vram is not None else (sizes[0] if sizes else None)
    key = dev.name if n_gpus == 1 else f"{dev.name} x {n_gpus}"
    rows, too_big = [], []
    for arch in models if models is not None else page_models():
        contexts = {kv: fits(arch, vram, n_gpus, kv) for kv in KV_TYPES} if vram else {}
        needs = estimate_memory(arch, MemConfig(ctx=MIN_CONTEXT)).total("gpu")
        fit_any = any((c or 0) >= min(MIN_CONTEXT, arch.ctx_train or MIN_CONTEXT) for c in contexts.values()) \
            if vram else None
        if fit_any is False:
            too_big.append(arch)
            continue
        gb = vram / 1024 if vram else None
        speeds = [(f"tg @ {d:,}", est.speed(dev, n_gpus, arch, "tg", d, vram_gb=gb)) for d in TG_DEPTHS]
        speeds.append((f"pp {PROMPT}", est.speed(dev, n_gpus, arch, "pp", 0, PROMPT, vram_gb=gb)))
        rows.append(Row(arch, contexts, needs, speeds, est.measured(key, arch.name, arch.quant), fit_any))
    return rows, too_big


def rate(x: float) -> str:
    """A speed with three significant digits, without an exponent: 4,560; 129; 12.3; 0.812."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def speed_text(a: SpeedAnswer) -> str:
    if a.value is None:
        return f"not estimated ({a.why_not})"
    band = f" (stated 80 % range: {rate(a.low)}-{rate(a.high)})" if a.low and a.high else ""
    shown = "" if a.shown else f" [not shown on the site: {a.why_not}]"
    return f"~{rate(a.value)} t/s{band}{shown}"


def error_text(e: GroupError) -> str:
    cov = f"; the range held {e.coverage * 100:.0f} % of them" if e.coverage is not None else ""
    return (f"held-out error of the {e.group} class (each source left out): median {e.median_pct:.1f} %, 90th "
            f"percentile {e.p90_pct:.1f} % over {e.n} figures of {e.n_sources} sources{cov}")


def answer_lines(est: Estimator, dev: CatalogDevice, arch: Arch, ctx: int | None, kv: str,
                 n_gpus: int = 1, vram_gb: float | None = None, backend: str | None = None) -> list[str]:
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
    cells = resolve_ctx(arch, cfg)
    at = f"{ctx:,} (a cache of {cells:,} cells: llama.cpp pads it to 256)" if ctx and ctx != cells else f"{cells:,}"
    lines.append(f"memory at ctx {at}, KV {kv}, flash attention, ubatch 512, every layer on the GPU (llama.cpp's "
                 "buffers, MiB):")
    for where in ("gpu", "host"):
        lines.append(f"  {where}: model {m.model.get(where, 0):,.0f} + KV {m.kv.get(where, 0):,.0f} + compute "
                     f"{m.compute.get(where, 0):,.0f} = {m.total(where):,.0f}")
    lines += [f"  note: {n}" for n in m.notes]
    from collector.estimate.placement import FREE_SHORT_MIB

    for size in sizes:
        budget = n_gpus * (size - FREE_SHORT_MIB - FIT_MARGIN_MIB)
        verdict = "fits" if m.total("gpu") <= budget else "does NOT fit"
        most = "; ".join(f"{t} {c:,}" if (c := fits(arch, size, n_gpus, t)) else f"{t} none"
                         for t in KV_TYPES)
        lines.append(f"  {size / 1024:g} GiB: {verdict} within {budget:,.0f} MiB (llama.cpp keeps {FIT_MARGIN_MIB} MiB "
                     f"free per GPU of the {size - FREE_SHORT_MIB:,.0f} MiB it reports free); largest context per KV "
                     f"type: {most}")
    fit_any = any(m.total("gpu") <= n_gpus * (s - FREE_SHORT_MIB - FIT_MARGIN_MIB) for s in sizes) if sizes else True
    lines.append(f"speed (llama.cpp as llama-bench measures it, every layer on the GPU, {kv} KV):")
    key = dev.name if n_gpus == 1 else f"{dev.name} x {n_gpus}"
    seen = est.measured(key, arch.name, arch.quant)
    if seen:
        lines.append(f"  measured: {seen} figures of this model's tensors and quant on this device are in the data "
                     "(see its device page); the estimates below are for comparison only")
    if not fit_any:
        lines.append("  not estimated here: the model does not fit this device's memory with every layer on it; "
                     "see the placement (collector estimate ... --json, estimate.offload)")
        return lines
    for label, answer in [(f"tg @ depth {d:,}", est.speed(dev, n_gpus, arch, "tg", d, vram_gb=vram_gb,
                                                           backend=backend, type_k=kv, type_v=kv))
                          for d in TG_DEPTHS] + [(f"pp {PROMPT}", est.speed(dev, n_gpus, arch, "pp", 0, PROMPT,
                                                                            vram_gb=vram_gb, backend=backend,
                                                                            type_k=kv, type_v=kv))]:
        lines.append(f"  {label}: {speed_text(answer)}")
        lines.append(f"      basis: {answer.basis}")
        if answer.error:
            lines.append(f"      {error_text(answer.error)}")
        lines += [f"      note: {n}" for n in answer.notes]
    return lines


def report_lines(records: list[AnyRecord], est: Estimator) -> list[str]:
    """The memory check per buffer kind and the speed model's held-out error per metric, mode and group."""
    from collector.estimate.memcheck import TOLERANCE_MIB, TOLERANCE_PCT, data_checks, summarise

    checks, skipped = data_checks(records)
    lines = [f"memory estimate against llama.cpp's logged buffers ({len(checks)} checks; target: within "
             f"{TOLERANCE_PCT:g} % or {TOLERANCE_MIB:g} MiB):"]
    for s in summarise(checks):
        lines.append(f"  {s.kind:8} n={s.n:3}  median |error| {s.median_abs_mib:.2f} MiB  max {s.max_abs_mib:.2f} "
                     f"MiB ({s.max_abs_pct:.1f} %)  outside the target: {s.outside}")
    lines += [f"  not checked: {s}" for s in skipped]
    lines.append("speed model (llama.cpp, every layer on the GPU), held-out error |estimate / measured - 1|:")
    for e in est.fitted.errors:
        cov = f"  range held {e.coverage * 100:.0f} %" if e.coverage is not None else ""
        tag = f"  {e.verdict}" if e.by == "gate" and e.mode == "source" else ""
        mode = {"source": "each source left out", "time": "fitted on builds before 2025, tested on later",
                "device": "each device left out"}[e.mode]
        by = "gate (what decides the pages)" if e.by == "gate" else e.by
        lines.append(f"  {e.metric} {mode}, by {by} {e.group}: n={e.n} ({e.n_sources} sources) "
                     f"median {e.median_pct:.1f} %  p90 {e.p90_pct:.1f} %  signed {e.signed_pct:+.1f} %{cov}{tag}")
    lines.append("with weights in system RAM (llama.cpp and ik_llama.cpp figures; each source left out):")
    for metric, off in est.fitted.off_errors.items():
        cov = f"  range held {off.coverage * 100:.0f} %" if off.coverage is not None else ""
        lines.append(f"  {metric}: n={off.n} ({off.n_sources} sources) median {off.median_pct:.1f} %  p90 "
                     f"{off.p90_pct:.1f} %  signed {off.signed_pct:+.1f} %{cov}")
        for src, n, med, signed in off.by_source:
            lines.append(f"    {src}: n={n} median {med:.1f} %  signed {signed:+.1f} %")
    for why, n in est.off_left.most_common():
        lines.append(f"  offload figures left out: {n} records ({why})")
    for c in est.fitted.crowd:
        lines.append(f"  LocalScore (llamafile, reported only) {c.metric} leave-one-device-out {c.cls}: n={c.n} "
                     f"({c.n_devices} devices) median {c.median_pct:.1f} %  p90 {c.p90_pct:.1f} %")
    for why, n in est.left.most_common():
        lines.append(f"  left out of the fit: {n} records ({why})")
    return lines
