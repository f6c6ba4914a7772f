"""The model table: a model of models.yaml plus a standard file type ("Qwen3-30B-A3B Q4_K_M") as the facts an
estimate needs, every tensor with its type and bytes, as llama.cpp's converter and quantizer would write the file.

`find("Llama 3.1 8B Q4_K_M")` resolves a reader's spelling (the table's name or an alias, case, spaces, hyphens and
underscores aside; never by likeness) and builds its `Arch` (layout.tensors -> quantmix.assign -> byte counts and
offsets in llama-quantize's order, 32-byte aligned as GGUF lays out data). The bytes are the tensors' (llama.cpp's
"model size"); the file adds its metadata (a few MB of tokenizer).
"""

from __future__ import annotations

import re
from dataclasses import fields, replace
from functools import lru_cache

from collector.base.errors import CollectorError
from collector.estimate.arch import Arch, Stated, Tensor, stated_models
from collector.estimate.layout import Hyper, tensors
from collector.estimate.quantmix import FILE_TYPES, ModelFacts, assign, tensor_bytes

ALIGN = 32  # GGUF_DEFAULT_ALIGNMENT: each tensor's data starts at a multiple of it
_EXPS = re.compile(r"^blk\.\d+\.ffn_[a-z_]+_exps\.(weight|bias)$")
_QUANT_ALIASES = {"MXFP4": "MXFP4_MOE"}  # llama-quantize's name is MXFP4_MOE; files and readers say MXFP4


def _key(text: str) -> str:
    return " ".join(re.sub(r"[-_\s]+", " ", text).casefold().split())


def table() -> dict[str, Stated]:
    """The models of models.yaml with a tensor layout (an `arch`), by name."""
    return {name: s for name, s in stated_models().items() if s.layout}


def hyper(s: Stated) -> Hyper:
    known = {f.name for f in fields(Hyper)}
    extra = {k: v for k, v in s.layout.items() if k in known}
    return Hyper(n_layer=s.n_layer, n_embd=s.n_embd, n_ff=s.n_ff, n_head=s.n_head, n_head_kv=s.n_head_kv,
                 head_dim=s.head_dim, n_vocab=s.n_vocab, tied=s.tied, **extra)  # type: ignore[arg-type]


def quant_label(text: str) -> str | None:
    """A standard file type as llama-quantize names it ("q4_k_m" -> "Q4_K_M"), or None."""
    label = text.upper()
    label = _QUANT_ALIASES.get(label, label)
    return label if label in FILE_TYPES else None


def split(spec: str, custom: frozenset[tuple[str, str]] = frozenset()) -> tuple[Stated, str]:
    """'NAME QUANT' -> (the table's model, the file type); CollectorError with what the table has otherwise."""
    words = spec.split()
    if len(words) < 2:
        raise CollectorError(f"model {spec!r}: give a model and a quant, e.g. \"Qwen3-30B-A3B Q4_K_M\"")
    quant = quant_label(words[-1])
    name = _key(" ".join(words[:-1]))
    models = {_key(n): s for s in table().values() for n in (s.name, *s.aliases)}
    model = models.get(name)
    if model is None:
        names = ", ".join(table())
        raise CollectorError(f"model {' '.join(words[:-1])!r} is not in the model table (models.yaml: {names}); "
                             "give one of these names, or a GGUF file")
    if quant is None and (model.name, words[-1]) in custom:
        return model, words[-1]
    if quant is None:
        raise CollectorError(f"quant {words[-1]!r} of {model.name} is not a standard llama-quantize type; use one "
                             f"of {', '.join(FILE_TYPES)} (published custom mixes: give the GGUF file)")
    return model, quant


def find(spec: str, mixes: dict[tuple[str, str], tuple[float, str]] | None = None) -> Arch:
    """The Arch of a table model and file type (see split), or of a published custom mix of it by the size its
    source states (mixes: (model, quant) -> (bytes, source), from the records)."""
    mixes = mixes or {}
    model, quant = split(spec, frozenset(mixes))
    if (model.name, quant) in mixes:
        size, source = mixes[(model.name, quant)]
        return stated_mix(model.name, quant, int(size), source)
    return build(model.name, quant)


def stated_mix(name: str, quant: str, size_bytes: int, source: str) -> Arch:
    """A custom mix known by its stated size: the tensor layout of the standard file type closest in size, every
    tensor scaled to the stated size (an approximation, said in `source`: which tensors the mix keeps larger is not
    known, so the bytes a token reads are the layout's share of the stated size)."""
    sizes = {}
    for q in FILE_TYPES:
        if q in ("F32",):
            continue
        try:
            sizes[q] = build(name, q).weight_bytes
        except CollectorError:
            continue
    near = min(sizes, key=lambda q: abs(sizes[q] / size_bytes - 1))
    base = build(name, near)
    scale = size_bytes / base.weight_bytes
    out, offset = [], 0
    for t in base.tensors:
        n = round(t.n_bytes * scale)
        out.append(replace(t, n_bytes=n, offset=offset))
        offset += -(-n // ALIGN) * ALIGN
    return replace(base, quant=quant, source=f"{base.source.split(' (')[0]} · size: {source} (a custom mix: the "
                   f"tensor layout of {near}, {base.weight_bytes / 1e9:.2f} GB, scaled to it)",
                   weight_bytes=sum(t.n_bytes for t in out), read_bytes=round(base.read_bytes * scale),
                   embd_bytes=round((base.embd_bytes or 0) * scale),
                   output_bytes=round(base.output_bytes * scale), tensors=tuple(out))


@lru_cache(maxsize=256)
def build(name: str, quant: str, imatrix: bool | None = None) -> Arch:
    """Every tensor of `name` quantized to `quant` (imatrix: see quantmix.assign), as an Arch."""
    s = table()[name]
    h = hyper(s)
    sources = tensors(h)
    facts = ModelFacts(h.arch, h.n_layer_all, h.n_head, h.n_head_kv, h.n_expert,
                       is_70b=h.arch in ("llama", "qwen2") and h.n_layer == 80 and h.n_head != h.n_head_kv)
    types = assign(sources, facts, quant, imatrix)
    ordered = sorted(sources, key=lambda t: (t.layer, t.name))  # llama-quantize writes them in this order
    out, offset, read = [], 0, 0.0
    for t in ordered:
        n_bytes = tensor_bytes(types[t.name], t.ne)
        layer = t.layer if t.layer >= 0 else None
        expert = bool(_EXPS.match(t.name))
        rows = t.ne[1] if len(t.ne) > 1 else 1
        out.append(Tensor(t.name, types[t.name], n_bytes, layer, rows, expert, 0, offset))
        offset += -(-n_bytes // ALIGN) * ALIGN
        if layer is not None and layer >= h.n_layer:
            continue  # a NextN/MTP layer: not run when generating
        read += n_bytes * (h.n_expert_used / t.ne[-1] if expert else 1.0)
    embd = next(t for t in out if t.name == "token_embd.weight")
    n_ff = h.n_ff_exp * h.n_expert_used + h.n_ff_shexp if h.n_expert else h.n_ff
    swa = frozenset(i for i in range(h.n_layer) if h.swa_every and i % h.swa_every < h.swa_every - 1)
    recurrent = frozenset(i for i in range(h.n_layer) if h.recurrent(i))
    d_inner = h.linear_v_heads * h.linear_v_dim
    n_embd_r = max(h.linear_conv - 1, 0) * (d_inner + 2 * h.linear_k_heads * h.linear_k_dim) if recurrent else 0
    n_embd_s = h.linear_k_dim * d_inner if recurrent else 0
    return Arch(name=s.name, quant=quant, source=f"model table: {s.url} (tensors and types computed, llama.cpp "
                                                  "b11434's converter and quantizer rules)",
                arch=h.arch, n_layer=h.n_layer, n_layer_all=h.n_layer_all, n_embd=h.n_embd, n_ff=n_ff,
                n_head=h.n_head, n_head_kv=(h.n_head_kv,) * h.n_layer_all, head_k=h.head_dim, head_v=h.head_dim,
                n_vocab=h.n_vocab, ctx_train=s.ctx_train, weight_bytes=sum(t.n_bytes for t in out),
                read_bytes=round(read), embd_bytes=embd.n_bytes,
                output_bytes=sum(t.n_bytes for t in out if t.layer is None and t.name.startswith("output")),
                tied=h.tied, n_swa=h.n_swa or None, swa_layers=swa, swa_pattern_known=True,
                recurrent_layers=recurrent, n_embd_r=n_embd_r, n_embd_s=n_embd_s, n_expert=h.n_expert,
                n_expert_used=h.n_expert_used, tensors=tuple(out))


def params(name: str) -> int:
    """llama.cpp's `model params` of a table model: every element of every tensor (from the table's layout)."""
    s = table()[name]
    total = 0
    for t in tensors(hyper(s)):
        n = 1
        for d in t.ne:
            n *= d
        total += n
    return total
