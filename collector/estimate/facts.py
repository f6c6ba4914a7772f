"""What the speed model needs to know about a model file: the bytes a generated token reads, the weights a prompt
token multiplies with, the KV bytes and attention work per token of depth. From a model of the model table (every
tensor computed), or for a published figure, from the table model its source's description names.

A published llama-bench row names its model by llama.cpp's type ("llama 7B Q4_0", "qwen3moe 30B.A3B Q8_0"), which
is not a model's name: "llama 13B" is printed for Mistral Small 24B (40 layers) as well as for Llama 2 13B. So a
figure is matched to a table model of the same llama.cpp architecture only where the parameter count its source
prints agrees within 1 % (or, where none is printed, its file size with a standard file type of one table model
within 3 %), never by the name alone. A file of a custom mix (unsloth UD-*, ik_llama.cpp's own types) takes the
tensor layout of the standard type closest in size, scaled to its stated size, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from collector.estimate.arch import Arch
from collector.estimate.quantmix import FILE_TYPES, block

PARAMS_TOLERANCE = 0.01
SIZE_TOLERANCE = 0.03
MIX_TOLERANCE = 0.15  # a custom mix (unsloth UD-*) llama.cpp reports as its base type is at most this far from it
# The records' names for models whose tensors are those of a table model (LLaMA 3 adds no rope_freqs tensor, 64
# floats, to Llama 3.1's): the XiongjieDai notebooks' models
SAME_SHAPES = {"LLaMA 3 8B": "Llama 3.1 8B", "LLaMA 3 70B": "Llama 3.1 70B"}




@dataclass(frozen=True)
class Facts:
    """A model file as the speed model sees it (bytes and FLOPs per token)."""

    name: str  # the table model (leave-one-model-out leaves out every quant of it)
    quant: str  # the file type as its source names it
    layout_quant: str  # the standard type whose tensor layout is used
    weight_bytes: float  # every tensor (what a prompt's ubatch reads once)
    read_bytes: float  # what a generated token reads: every tensor but the token embeddings (unless tied), experts
    #                    by their used share
    expert_bytes: float  # the expert tensors (all experts)
    expert_read_bytes: float  # the experts' share of read_bytes
    dense_params: float  # weights a prompt token multiplies with outside the experts (the output matrix included)
    expert_params: float  # the used experts' weights a prompt token multiplies with
    kv_bytes: float  # f16 K and V bytes per token of depth, every full-attention layer
    attn_flops: float  # attention FLOPs per prompt token per token of depth (4 x layers x heads x head size)
    layers: int  # repeating layers run per token
    n_layer_all: int  # what -ngl counts (plus one for the output layer)
    n_expert: int
    n_expert_used: int
    scaled: float  # the stated size over the layout's (1: the file is the layout)
    basis: str  # where the facts come from, in words
    kv_swa_bytes: float = 0.0  # the same for the sliding-window layers, which read at most n_swa tokens
    attn_swa_flops: float = 0.0
    n_swa: int = 0

    @property
    def moe(self) -> bool:
        return self.n_expert > 0

    def kv_read(self, depth: float, type_k: str = "f16", type_v: str = "f16") -> float:
        """K and V bytes a token reads at this filled depth with these cache types (a sliding window caps its
        layers' share)."""
        from collector.estimate.arch import type_bytes

        f16 = self.kv_bytes * depth + self.kv_swa_bytes * min(depth, self.n_swa or depth)
        return f16 * (type_bytes(type_k) + type_bytes(type_v)) / 4.0

    def attention(self, depth: float) -> float:
        """Attention FLOPs of one prompt token at this filled depth."""
        return self.attn_flops * depth + self.attn_swa_flops * min(depth, self.n_swa or depth)


def _elements(type_name: str, n_bytes: int) -> float:
    per, size = block(type_name)
    return n_bytes / size * per


@lru_cache(maxsize=1024)  # every device's estimates ask for the same table models' facts
def of_arch(arch: Arch, quant: str | None = None, scale: float = 1.0, basis: str | None = None) -> Facts:
    """The facts of a model with its tensors (a table model, a GGUF); `scale`: a stated size over the layout's.
    A model known by its stated hyperparameters and size only (no tensors): its size read per token, its dense
    layout's parameters multiplied per prompt token."""
    if not arch.tensors:
        return _stated(arch, quant, basis)
    n_used, n_exp = arch.n_expert_used, arch.n_expert
    share = n_used / n_exp if n_exp else 1.0
    weight = read = experts = expert_read = dense = expert_p = 0.0
    for t in arch.tensors:
        weight += t.n_bytes
        if t.layer is not None and t.layer >= arch.n_layer:
            continue  # a NextN/MTP layer: not run when generating
        if t.name == "token_embd.weight" and not arch.tied:
            continue  # a row lookup per token
        if t.expert:
            experts += t.n_bytes
            expert_read += t.n_bytes * share
            if t.rows > 1:
                expert_p += _elements(t.type, t.n_bytes) * share
            read += t.n_bytes * share
        else:
            read += t.n_bytes
            if t.rows > 1:
                dense += _elements(t.type, t.n_bytes)
    full = [il for il in arch.kv_layers() if il not in arch.swa_layers]
    swa = [il for il in arch.kv_layers() if il in arch.swa_layers]

    def kv(layers: list[int]) -> float:
        return sum(arch.n_head_kv[il] * (arch.head_k + arch.head_v) * 2.0 for il in layers)

    return Facts(name=arch.name, quant=quant or arch.quant or "unknown", layout_quant=arch.quant or "unknown",
                 weight_bytes=weight * scale, read_bytes=read * scale, expert_bytes=experts * scale,
                 expert_read_bytes=expert_read * scale, dense_params=dense, expert_params=expert_p,
                 kv_bytes=kv(full), attn_flops=4.0 * len(full) * arch.n_head * arch.head_k,
                 layers=arch.n_layer, n_layer_all=arch.n_layer_all, n_expert=n_exp, n_expert_used=n_used,
                 scaled=scale, basis=basis or arch.source, kv_swa_bytes=kv(swa),
                 attn_swa_flops=4.0 * len(swa) * arch.n_head * arch.head_k, n_swa=arch.n_swa or 0)


def _stated(arch: Arch, quant: str | None, basis: str | None) -> Facts:
    full = [il for il in arch.kv_layers() if il not in arch.swa_layers]
    kv = sum(arch.n_head_kv[il] * (arch.head_k + arch.head_v) * 2.0 for il in full)
    read = float(arch.read_bytes) - (float(arch.embd_bytes or 0) if not arch.tied else 0.0)
    return Facts(name=arch.name, quant=quant or arch.quant or "unknown", layout_quant=arch.quant or "unknown",
                 weight_bytes=float(arch.weight_bytes), read_bytes=read, expert_bytes=0.0, expert_read_bytes=0.0,
                 dense_params=arch.params_active, expert_params=0.0, kv_bytes=kv,
                 attn_flops=4.0 * len(full) * arch.n_head * arch.head_k, layers=arch.n_layer,
                 n_layer_all=arch.n_layer_all, n_expert=0, n_expert_used=0, scaled=1.0, basis=basis or arch.source)


def _params(text: str | None) -> float | None:
    """'8.03 B' -> 8.03e9 (llama-bench's params column); None for '?B' or anything else."""
    parts = (text or "").split()
    if len(parts) == 2 and parts[1] in ("B", "M"):
        try:
            return float(parts[0]) * (1e9 if parts[1] == "B" else 1e6)
        except ValueError:
            return None
    return None


def stated_params(model: Any, raw: Any) -> float | None:
    """The parameter count a record's source prints: its params column, or llama-bench's JSON model_n_params."""
    got = _params(model.params_stated)
    if got is not None:
        return got
    bench = (raw or {}).get("object", {}).get("bench_raw") if isinstance(raw, dict) else None
    n = bench.get("model_n_params") if isinstance(bench, dict) else None
    return float(n) if isinstance(n, (int, float)) and n > 0 else None


@lru_cache(maxsize=64)
def _table_params(name: str) -> float:
    from collector.estimate import table

    return float(table.params(name))


@lru_cache(maxsize=1024)
def _sizes(name: str) -> dict[str, int]:
    """Standard file type -> the tensors' bytes of a table model (the types llama-quantize can write for it)."""
    from collector.base.errors import CollectorError
    from collector.estimate import table

    out = {}
    for q in FILE_TYPES:
        if q == "F32":
            continue
        try:
            out[q] = table.build(name, q).weight_bytes
        except CollectorError:
            continue
    return out


def _candidates(arch_name: str | None, model_name: str | None) -> list[str]:
    from collector.estimate import table

    models = table.table()
    if model_name:
        named = SAME_SHAPES.get(model_name) or next((s.name for s in models.values() if model_name.casefold() in
                                                     {a.casefold() for a in (s.name, *s.aliases)}), None)
        if named:
            return [named]
    if not arch_name:
        return []
    out: list[str] = []
    for s in models.values():  # models of one shape (Qwen3-30B-A3B and its Coder) are one candidate, the first
        if s.layout.get("arch") == arch_name and not any(table.hyper(models[o]) == table.hyper(s) for o in out):
            out.append(s.name)
    return out


def match(model: Any, raw: Any = None, size_bytes: float | None = None) -> tuple[Facts | None, str | None]:
    """The facts of a record's model (schema ModelInfo), or why they are not known. size_bytes: the file's tensors
    as the record states them (llama-bench's "model size"; size_stated parsed)."""
    from collector.estimate import table
    from collector.estimate.table import quant_label

    names = _candidates(model.arch, model.name)
    if not names:
        return None, f"no model of the model table has llama.cpp's architecture {model.arch!r}" if model.arch \
            else "the model is not in the model table"
    params = stated_params(model, raw)
    if params is not None:
        names = [n for n in names if abs(_table_params(n) / params - 1) <= PARAMS_TOLERANCE]
        if not names:
            return None, f"no table model of {model.arch or model.name} has {params / 1e9:.2f} B parameters"
    quant = quant_label(model.quant or "")
    if size_bytes:
        fits = [(n, q, s) for n in names for q, s in _sizes(n).items() if abs(s / size_bytes - 1) <= SIZE_TOLERANCE]
        if quant is not None:
            exact = [f for f in fits if f[1] == quant]
            fits = exact or fits
        if len({f[0] for f in fits}) == 1 and quant is not None and fits[0][1] == quant:
            name, q, s = fits[0]
            return of_arch(table.build(name, q), model.quant, size_bytes / s,
                           f"{name} {q} (model table; the stated size agrees within 3 %)"), None
        if quant is not None and len(names) == 1 and quant in _sizes(names[0]) and \
                abs(_sizes(names[0])[quant] / size_bytes - 1) <= MIX_TOLERANCE:
            return of_arch(table.build(names[0], quant), model.quant, size_bytes / _sizes(names[0])[quant],
                           f"{names[0]} in the tensor layout of {quant} scaled to the stated size "
                           f"({size_bytes / 1e9:.2f} GB; a custom mix llama.cpp reports as {quant})"), None
        if quant is not None and table.table()[names[0]].layout.get("n_expert"):
            return None, (f"a {quant} file of a mixture of experts whose size is not the table's {quant}: its "
                          "experts' share of the bytes is not known")
        if len(names) == 1 or len({f[0] for f in fits}) == 1:
            name = names[0] if len(names) == 1 else fits[0][0]
            sizes = _sizes(name)
            q = min(sizes, key=lambda k: abs(sizes[k] / size_bytes - 1))
            return of_arch(table.build(name, q), model.quant, size_bytes / sizes[q],
                           f"{name} in the tensor layout of {q} scaled to the stated size "
                           f"({size_bytes / 1e9:.2f} GB; a mix the table does not compute)"), None
        return None, "the stated size matches no single table model"
    if len(names) == 1 and quant is not None:
        return of_arch(table.build(names[0], quant), model.quant, 1.0, f"{names[0]} {quant} (model table)"), None
    return None, "no file size stated to check the model against the table"
