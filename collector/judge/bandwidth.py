"""The bandwidth bound on generation speed: a token cannot read its weights faster than the memory holds them.

Generating one token (tg) reads every weight the token passes through once: W bytes (a mixture of experts: the
used experts' share). So tg x W is the weight traffic a figure implies, and it cannot exceed the memory bandwidth
the weights are read from. A figure implying more than MARGIN times that bandwidth is implausible.

Which bandwidth bounds a run:
- One GPU: its memory bandwidth (the record's own `mem_bandwidth_gbps` when the collector measured it, else the
  device catalog's figure for that GPU, or for the variant of the memory size the record states).
- Several GPUs, layer split (llama.cpp's default, `-sm layer`): each GPU holds whole layers and a token passes
  through them in turn, so the GPUs read one after another, never at once. Time per token is the sum of
  W_i / B_i over the GPUs, which is at least W / max(B_i): the bound is the fastest single GPU's bandwidth, not
  the sum. (The data agree: 4x RTX 4000 Ada reach 92 % of one card's bandwidth on LLaMA 3 8B F16, as one card
  does; 8x RTX 4090 reach 90 % on 70B F16.) Row split (`-sm row`) reads every layer's rows on all GPUs at once:
  there the bound is the sum. Where the split is not stated the bound is the sum (the lenient one), except for
  llama-bench output (which prints `sm` only when it is not the default) and commands that are printed or that
  the collector ran (no `-sm`: the default, layer).
- Layers kept in system RAM (partial offload) on a discrete GPU: the GPU's layers alone take at least
  W x (GPU layers / all layers) / B, so only that share is bounded by the GPU. An Apple SoC (unified memory)
  reads every layer from one memory: its bandwidth bounds all of W wherever the layers run. Where the record
  states no placement, the bound treats every layer as read from GPU memory (a layer in system RAM is read at
  the system's bandwidth; this is the bound the reason names).
- Not judged: CPU-only runs (the catalog has no system memory bandwidth), software GPUs (llvmpipe: the CPU's
  speed), devices without a bandwidth figure, speculative decoding (several tokens per weight read), experts in
  system RAM (--n-cpu-moe: their share of the bytes is not stated), and models whose bytes per token are unknown
  (a mixture of experts without its expert counts).

W comes from, in order: the record's `model.bytes_per_token` (the collector reads it from the GGUF: every tensor
but the token embeddings, experts by used/all); the file size (`size_bytes`, or `size_stated` as the source writes
it, with models.yaml's byte count where it lists the file), which overstates W by the token-embedding table
(a row lookup per token, ~6 % of LLaMA 3 8B Q4_K_M); or, for a crowd row that states only parameters
("8000 M", LocalScore), parameters x the bits per weight of the smallest type the quant's name uses (Q4_K_M:
Q4_K, 4.5 bits), a floor. A mixture of experts with stated counts counts size x used/all experts (a floor: every
weight taken for an expert weight).

MARGIN = 1.25: the largest figure in data/ within physics implies 0.93 of its GPU's bandwidth (llama-bench, LLaMA 3
8B F16 on an RTX 4000 Ada, W from the file size); the largest overstatement of W from stated facts is ~21 %
(LocalScore's "1500 M" parameters for Llama 3.2 1B, whose GGUF holds 1.24 B weights). A figure at 100 % of the
bandwidth with W overstated that much still passes; 1133.05 t/s on an M1 (82x) does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gguf import GGMLQuantizationType
from gguf.constants import GGML_QUANT_SIZES

from collector.catalog import Catalog
from collector.estimate.arch import from_stated, stated_models
from collector.estimate.points import NUMBER, bandwidth, stated_bytes
from collector.judge.verdict import IMPLAUSIBLE, Verdict, rate, size
from collector.records.schema import GpuInfo, SpeedRecord

MARGIN = 1.25
_PARAMS = re.compile(rf"^\s*{NUMBER}\s*([KMBT])\s*$")  # as LocalScore states them: "8000 M"
_PARAM_UNITS = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
# the smallest ggml type a llama.cpp quant of this name stores its matrices in (the mix only goes up from there)
BASE_TYPE = {"Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K", "Q3_K_L": "Q3_K",
             "Q3_K_M": "Q3_K", "Q3_K_S": "Q3_K", "Q2_K": "Q2_K", "Q2_K_S": "Q2_K", "Q6_K": "Q6_K", "Q8_0": "Q8_0",
             "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1", "IQ1_S": "IQ1_S", "IQ1_M": "IQ1_M",
             "IQ2_XXS": "IQ2_XXS", "IQ2_XS": "IQ2_XS", "IQ2_S": "IQ2_S", "IQ2_M": "IQ2_S", "IQ3_XXS": "IQ3_XXS",
             "IQ3_XS": "IQ3_XXS", "IQ3_S": "IQ3_S", "IQ3_M": "IQ3_S", "IQ4_XS": "IQ4_XS", "IQ4_NL": "IQ4_NL",
             "F16": "F16", "BF16": "BF16", "F32": "F32"}
# names that say a mixture of experts (a crowd row states no expert counts): "30B A3B", "1b A400M", "8x7B", "MoE";
# and llama.cpp's MoE architectures as llama-bench's model column prints them ("dots1 142B", "llama4 17Bx16E")
_MOE_NAME = re.compile(r"(?<![a-z0-9])(?:a\d+(?:\.\d+)?[bm]|\d+x\d+(?:\.\d+)?b|\d+bx\d+e|moe|olmoe|mixtral|gpt-oss"
                       r"|dots1|deepseek2|qwen[23]moe|glm4moe|llama4|grok|dbrx|arctic|phimoe|granitemoe|bailingmoe2?"
                       r"|hunyuan-moe|ernie4_5-moe|jamba|minimax|smallthinker|lfm2moe)(?![a-z0-9])"
                       r"|qwen3.?next", re.IGNORECASE)
_SPECULATIVE = ("-md", "--model-draft", "--draft", "--draft-max", "--draft-min", "-hfd", "--hf-repo-draft",
                "--spec-replace", "--mtp")


def bits_per_weight(quant: str | None) -> float | None:
    """The bits per weight of the smallest type a quant of this name uses (None: not a name known here)."""
    base = BASE_TYPE.get((quant or "").upper())
    if base is None:
        return None
    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[base]]
    return 8.0 * type_size / block


def _params(text: str | None) -> float | None:
    """'8000 M' -> parameters (None: not one number with one of the units)."""
    m = _PARAMS.match(text or "")
    return float(m.group(1)) * _PARAM_UNITS[m.group(2)] if m else None


@dataclass(frozen=True)
class Bytes:
    """The weight bytes a generated token reads (a floor where the basis says so), and where the figure comes from."""

    n: float
    basis: str


def _moe(rec: SpeedRecord) -> tuple[bool | None, str | None]:
    """(mixture of experts?, why it is thought so); None: not known."""
    m = rec.model
    if m.moe is not None:
        return m.moe, "the record says so"
    if m.n_experts:
        return True, "the record states experts"
    for text in (m.name, m.basename, m.file_name, m.repo):
        if text and _MOE_NAME.search(text):
            return True, f"its name ({text!r}) names a mixture of experts"
    for text in (m.arch, m.size_label):  # llama.cpp's architecture ("glm4moe") and size class ("106B.A12B")
        if text and _MOE_NAME.search(text):
            return True, f"its architecture or size ({text!r}) names a mixture of experts"
    return None, None


def read_bytes(rec: SpeedRecord) -> tuple[Bytes | None, str | None]:
    """(W, None) or (None, why W is not known)."""
    m = rec.model
    if m.bytes_per_token:
        return Bytes(float(m.bytes_per_token), "the GGUF's tensors (model.bytes_per_token)"), None
    moe, why_moe = _moe(rec)
    share, share_words = 1.0, ""
    if moe:
        if not (m.n_experts and m.n_experts_used):
            return None, f"a mixture of experts ({why_moe}) without its expert counts: bytes per token not known"
        share = m.n_experts_used / m.n_experts
        share_words = f" x {m.n_experts_used}/{m.n_experts} experts (a floor)"
    file_bytes, basis = None, ""
    if m.size_bytes:
        file_bytes, basis = float(m.size_bytes), "the file's size"
    elif m.size_stated:
        file_bytes, basis = stated_bytes(m.size_stated), f"the stated size {m.size_stated!r}"
    if file_bytes:
        st = stated_models().get(m.name or "")
        if st is not None:  # models.yaml: the file's exact tensor bytes where it lists the file
            arch = from_stated(st, m.quant, int(file_bytes), basis, m.sha256)
            file_bytes, basis = float(arch.read_bytes), f"{basis} (models.yaml: {st.name})"
        return Bytes(file_bytes * share, basis + share_words), None
    params = _params(m.params_stated)
    bits = bits_per_weight(m.quant)
    if params and bits:
        base = BASE_TYPE[(m.quant or "").upper()]
        return Bytes(params * bits / 8 * share, f"{m.params_stated} parameters x {bits:g} bits ({base}, the "
                                                f"smallest type of {m.quant}; a floor){share_words}"), None
    return None, "no bytes per token, file size or parameter count with a known quant stated"


def gpu_bandwidth(gpu: GpuInfo, catalog: Catalog) -> tuple[float | None, str]:
    """(GB/s, whose figure) of one GPU: the record's measured figure, else the catalog's (None: not known)."""
    if gpu.mem_bandwidth_gbps:
        return gpu.mem_bandwidth_gbps, f"{gpu.name} (bus width x memory clock, as recorded)"
    dev = catalog.resolve(gpu.name)
    if dev is None:
        return None, f"{gpu.name!r} is not in the device catalog"
    bw = bandwidth(dev, gpu.vram_stated)
    return bw, dev.name if bw else f"{dev.name}: the catalog states no single bandwidth"


def _layer_split_known(rec: SpeedRecord) -> bool:
    """Whether the run used llama.cpp's default split (layer) though no split mode is stated: llama-bench prints
    `sm` only when it is not the default; a printed or collector-run command without -sm ran the default."""
    if rec.source.type == "measured":
        return True
    cells = (rec.source.raw or {}).get("cells")
    if rec.source.tool == "llama-bench" and isinstance(cells, dict):
        return "sm" not in cells
    return rec.source.command == "printed" and not any(a in ("-sm", "--split-mode") for a in rec.command)


@dataclass(frozen=True)
class Bound:
    bandwidth: float  # bytes/s
    share: float  # the share of W read from that memory
    device: str  # words: "Apple M1 (7-core GPU)", "2x NVIDIA GeForce RTX 4090, layer split (one GPU's)"
    notes: tuple[str, ...] = ()


def _share(rec: SpeedRecord, unified: bool) -> tuple[float | None, str | None]:
    """(the share of W read from GPU memory, a note) or (None, why not judged)."""
    if unified:
        return 1.0, None
    p, c = rec.placement, rec.config
    if p.cpu_moe_layers or c.n_cpu_moe:
        return None, "experts in system RAM (--n-cpu-moe): their share of the bytes is not stated"
    total = p.total_layers or rec.model.n_layers
    if p.gpu_layers is not None and total:
        return min(1.0, p.gpu_layers / total), None if p.gpu_layers >= total else \
            f"{p.gpu_layers} of {total} layers on the GPU: only their share is bounded by it"
    if p.cpu_layers is not None:
        if not total:
            return None, f"{p.cpu_layers} layers in system RAM of a total not stated"
        return max(0.0, 1 - p.cpu_layers / total), f"{p.cpu_layers} of {total} layers in system RAM"
    ngl = c.n_gpu_layers
    if isinstance(ngl, int) and not isinstance(ngl, bool):
        if ngl == 0:
            return None, "-ngl 0: no layer on the GPU"
        if total and ngl < total:
            return ngl / total, f"-ngl {ngl} of {total} layers"
        if not total and ngl < 99:
            return None, f"-ngl {ngl} of a layer count not stated"
        return 1.0, None
    if ngl == "all":
        return 1.0, None
    return 1.0, "placement not stated: every layer taken as read from GPU memory"


def device_bound(rec: SpeedRecord, catalog: Catalog) -> tuple[Bound | None, str | None]:
    """(the bandwidth bound of the run, None) or (None, why it has none)."""
    gpus = rec.host.gpus
    if not gpus:
        return None, "CPU only: the catalog has no system memory bandwidth"
    if any(g.software for g in gpus):
        return None, "a software GPU (its speed is the CPU's)"
    figures = [gpu_bandwidth(g, catalog) for g in gpus]
    missing = [who for bw, who in figures if bw is None]
    if missing:
        return None, f"no bandwidth for {missing[0]}"
    bws = [float(bw) * 1e9 for bw, _ in figures if bw is not None]
    names = list(dict.fromkeys(who for _, who in figures))
    unified = all((d := catalog.resolve(g.name)) is not None and d.type == "Apple SoC" for g in gpus)
    share, note = _share(rec, unified)
    if share is None:
        return None, note
    notes = (note,) if note else ()
    if len(gpus) == 1:
        return Bound(bws[0], share, names[0], notes), None
    label = f"{len(gpus)}x {names[0]}" if len(names) == 1 else " + ".join(names)
    mode = rec.config.split_mode
    if mode == "row" or (mode is None and not _layer_split_known(rec)):
        why = "row split: all GPUs read at once" if mode == "row" else "split mode not stated: all GPUs at once"
        return Bound(sum(bws), share, f"{label}, {why} (their sum)", notes), None
    return Bound(max(bws), share, f"{label}, layer split: the GPUs read in turn (one GPU's)", notes), None


def speculative(rec: SpeedRecord) -> bool:
    """Speculative decoding (a draft model, an MTP head): several tokens per weight read."""
    args = [*rec.command, *rec.config.extra_args]
    return bool(rec.memory_mib.draft_buffers) or any(a.split("=")[0] in _SPECULATIVE for a in args)


@dataclass(frozen=True)
class Check:
    """The bandwidth check of a record's tg figure: what it implies against what bounds it, or why not judged."""

    judged: bool
    why_not: str | None = None
    tg: float | None = None
    bytes: Bytes | None = None
    bound: Bound | None = None

    @property
    def implied(self) -> float:
        """Bytes/s read from the bounding memory that the figure implies."""
        assert self.tg is not None and self.bytes is not None and self.bound is not None
        return self.tg * self.bytes.n * self.bound.share

    @property
    def ratio(self) -> float:
        assert self.bound is not None
        return self.implied / self.bound.bandwidth

    def verdict(self, margin: float = MARGIN) -> Verdict | None:
        """IMPLAUSIBLE when the implied reads exceed the bound by more than `margin`; else None."""
        if not self.judged or self.ratio <= margin:
            return None
        assert self.bytes is not None and self.bound is not None and self.tg is not None
        share = f" x {self.bound.share:.0%} on it" if self.bound.share < 1 else ""
        reason = (f"implies {rate(self.implied)} of weight reads ({size(self.bytes.n)} a token{share} x "
                  f"{self.tg:g} t/s); {self.bound.device}: {rate(self.bound.bandwidth)} ({self.ratio:.3g}x, more "
                  f"than {margin:g}x)")
        return Verdict(IMPLAUSIBLE, "bandwidth", reason, {
            "implied_gb_s": round(self.implied / 1e9, 1), "bandwidth_gb_s": round(self.bound.bandwidth / 1e9, 1),
            "ratio": round(self.ratio, 2), "margin": margin, "bytes_per_token": round(self.bytes.n),
            "bytes_basis": self.bytes.basis, "device": self.bound.device, "share_on_device": self.bound.share,
            "assumed": "; ".join(self.bound.notes)})


def check(rec: SpeedRecord, catalog: Catalog) -> Check:
    """The bandwidth check of the record's generation figure (summary.tg_tps)."""
    stat = rec.summary.tg_tps
    if rec.status != "ok" or stat is None or stat.value <= 0:
        return Check(False, "no generation figure")
    if speculative(rec):
        return Check(False, "speculative decoding: several tokens per weight read")
    w, why = read_bytes(rec)
    if w is None:
        return Check(False, why)
    bound, why = device_bound(rec, catalog)
    if bound is None:
        return Check(False, why)
    return Check(True, None, stat.value, w, bound)
