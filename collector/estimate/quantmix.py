"""The ggml type llama-quantize gives each tensor for a file type ("Q4_K_M"), so a file's size and what a token
reads follow from the model's tensor shapes without the file.

Written from a reading of llama.cpp b11434, `src/llama-quant.cpp` (llama_tensor_get_type_impl, tensor_type_fallback,
tensor_allows_quantization, llama_ftype_get_default_type, init_quantize_state_counters) with no custom
`--tensor-type`, `--output-tensor-type` or `--token-embedding-type` and not `--pure`. The rules, briefly:

- Only 2-D and 3-D tensors whose name ends in "weight" are quantized, never norms, the MoE router
  (ffn_gate_inp) or a Mamba/delta-net conv1d; the others keep the source's type (F32 for 1-D tensors and biases).
- Each file type has a default type (Q4_K_M: Q4_K; IQ2_S: IQ2_XS; IQ3_M: IQ3_S ...); the output matrix, and the
  token embeddings of a model whose output is tied to them, get Q6_K (Q5_K for the 1-2 bit I-quants, Q8_0 for
  MXFP4_MOE or when the rows do not fit the block); other token embeddings get Q2_K / IQ3_S / the default.
- attention V (and fused QKV, kv_b), attention K/Q, attention output, ffn_down/gate/up get more bits by
  category, by file type, by position (`use_more_bits`: the first and last eighth of the layers and every third
  between), by the model's grouped-query ratio (n_head / n_head_kv >= 4), its expert count, whether an
  importance matrix was used, and for the 70B LLaMA type.
- A tensor whose row length (ne[0]) is not a multiple of the type's block falls back (Q4_K -> Q5_0, Q6_K -> Q8_0,
  IQ* -> IQ4_NL, Q2_K/Q3_K -> Q4_0, Q5_K -> Q5_1) and to F16 when that does not fit either.

Counters run over the tensors in the order llama-quantize visits them (by layer, then by name): the attention-V
counter counts V-like tensors, the ffn_down counter ffn_down tensors (for MoE models the layer is the one in the
tensor's name). Block sizes and bytes per block are ggml's (the gguf package's GGML_QUANT_SIZES).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, cached_property

from gguf import GGMLQuantizationType
from gguf.constants import GGML_QUANT_SIZES

from collector.base.errors import CollectorError

# file type label -> the tensor type it defaults to (llama_ftype_get_default_type)
DEFAULT_TYPE = {
    "F32": "F32", "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0",
    "Q5_1": "Q5_1", "MXFP4_MOE": "MXFP4", "Q2_K": "Q2_K", "Q2_K_S": "Q2_K", "IQ3_XS": "IQ3_S", "Q3_K_S": "Q3_K",
    "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K", "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K",
    "Q6_K": "Q6_K", "IQ2_XXS": "IQ2_XXS", "IQ2_XS": "IQ2_XS", "IQ2_S": "IQ2_XS", "IQ2_M": "IQ2_S",
    "IQ3_XXS": "IQ3_XXS", "IQ1_S": "IQ1_S", "IQ1_M": "IQ1_M", "IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS",
    "IQ3_S": "IQ3_S", "IQ3_M": "IQ3_S",
}
FILE_TYPES = tuple(DEFAULT_TYPE)
_LOW_IQ = frozenset({"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M"})  # the 1-2 bit I-quant branch
_NEEDS_IMATRIX = frozenset({"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M", "IQ3_XXS"})
# where a row length does not fit the block (tensor_type_fallback)
_FALLBACK = {"IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL",
             "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL", "Q2_K": "Q4_0", "Q3_K": "Q4_0",
             "TQ1_0": "Q4_0", "TQ2_0": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
_FLOAT = frozenset({"F32", "F16", "BF16"})


@cache
def block(type_name: str) -> tuple[int, int]:
    """(elements per block, bytes per block) of a ggml type."""
    return GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]


def tensor_bytes(type_name: str, ne: tuple[int, ...]) -> int:
    """ggml_nbytes: rows x the row size of the type (ne[0] a multiple of the block)."""
    per, size = block(type_name)
    rows = 1
    for n in ne[1:]:
        rows *= n
    return rows * (ne[0] // per) * size


@dataclass(frozen=True)
class Source:
    """One tensor as the converter writes it: its name, shape (ggml order: ne[0] is the row length) and type."""

    name: str
    ne: tuple[int, ...]
    type: str  # F32 for 1-D tensors, biases, norms and the router; the weights' type (BF16) otherwise

    @cached_property
    def layer(self) -> int:
        """blk.N, or -1 (llama-quantize visits these first)."""
        if self.name.startswith("blk."):
            return int(self.name.split(".")[1])
        return -1


@dataclass(frozen=True)
class ModelFacts:
    """What the type rules look at besides the tensor itself."""

    arch: str
    n_layer_all: int  # block_count, NextN layers included (the ffn counters' total)
    n_head: int
    n_head_kv: int  # of layer 0 (llama.cpp's n_gqa() reads layer 0)
    n_expert: int = 0
    is_70b: bool = False  # llama.cpp's LLM_TYPE_70B (LLaMA/Qwen2 with 80 layers and grouped-query attention)

    @property
    def n_gqa(self) -> int:
        return self.n_head // self.n_head_kv if self.n_head_kv else 0


@cache
def _category(name: str) -> str:
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for part, cat in (("attn_qkv.weight", "attn_qkv"), ("attn_kv_b.weight", "attn_kv_b"),
                      ("attn_v.weight", "attn_v"), ("attn_k.weight", "attn_k"), ("attn_q.weight", "attn_q"),
                      ("attn_output.weight", "attn_output"), ("ffn_up", "ffn_up"), ("ffn_gate", "ffn_gate"),
                      ("ffn_down", "ffn_down")):
        if part in name:
            return cat
    return "other"


_V_LIKE = frozenset({"attn_v", "attn_qkv", "attn_kv_b"})
_NOT_QUANTIZED = ("_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
                  "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
                  "indexer.q_proj.weight", "time_mix_", "attn_rel_b.weight", ".position_embd", ".patch_embd")


def quantizable(t: Source) -> bool:
    """tensor_allows_quantization for the tensors of the architectures here."""
    return len(t.ne) >= 2 and _quantizable_name(t.name)


@cache
def _quantizable_name(name: str) -> bool:
    return name.endswith("weight") and not any(part in name for part in _NOT_QUANTIZED)


def _more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


class _Counters:
    def __init__(self, tensors: list[Source], facts: ModelFacts) -> None:
        self.n_attention_wv = sum(1 for t in tensors if _category(t.name) in _V_LIKE)
        self.tied = not any(t.name == "output.weight" for t in tensors)
        self.n_ffn = facts.n_layer_all
        self.i_attention_wv = self.i_ffn_down = self.i_ffn_gate = self.i_ffn_up = 0


def _layer(c: _Counters, counter: int, t: Source, facts: ModelFacts) -> tuple[int, int]:
    """(layer, layers) for the position rules: MoE models name the layer, dense ones count the tensors."""
    if max(1, facts.n_expert) > 1:
        return t.layer, c.n_ffn
    return counter, c.n_ffn


def _choose(c: _Counters, t: Source, facts: ModelFacts, ftype: str, new: str, imatrix: bool) -> str:
    """llama_tensor_get_type_impl: the type of one quantizable tensor (before the block-size fallback)."""
    cat, gqa, n_exp = _category(t.name), facts.n_gqa, facts.n_expert
    if cat == "output" or (c.tied and cat == "token_embd"):
        if ftype == "MXFP4_MOE" or t.ne[0] % block(new)[0]:
            return "Q8_0"
        if ftype in _LOW_IQ or ftype == "IQ3_XXS":
            return "Q5_K"
        return new if new == "Q8_0" else "Q6_K"
    if ftype == "MXFP4_MOE":
        return "MXFP4" if len(t.ne) > 2 and t.ne[2] > 1 else "Q8_0"
    if cat == "token_embd":
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            return "Q2_K"
        if ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            return "IQ3_S"
        return new
    if ftype in _LOW_IQ:
        iq3 = ftype in ("IQ2_S", "IQ2_M")
        if cat in _V_LIKE:
            c.i_attention_wv += 1
            return "Q4_K" if gqa >= 4 or n_exp >= 4 else ("IQ3_S" if iq3 else "Q2_K")
        if n_exp == 8 and cat == "attn_k":
            return "Q4_K"
        if cat == "ffn_down":
            if c.i_ffn_down < c.n_ffn // 8:
                new = "IQ3_S" if iq3 else "Q2_K"
            c.i_ffn_down += 1
            return new
        if cat == "attn_output":
            if n_exp == 8:
                return "Q5_K"
            if ftype in ("IQ1_S", "IQ1_M"):
                return "IQ2_XXS"
            return "IQ3_S" if iq3 else new
        return new
    if cat in _V_LIKE:
        i, n = c.i_attention_wv, c.n_attention_wv
        if ftype == "Q2_K":
            new = "Q4_K" if gqa >= 4 else "Q3_K"
        elif ftype == "Q2_K_S" and gqa >= 4:
            new = "Q4_K"
        elif ftype == "IQ3_XXS":
            new = "Q4_K" if gqa >= 4 else ("IQ3_XXS" if imatrix else "IQ3_S")
        elif (ftype in ("IQ3_XS", "IQ3_S") and gqa >= 4) or ftype == "IQ3_M":
            new = "Q4_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < 2 else "Q4_K"
        elif ftype == "Q3_K_L" or (ftype in ("IQ4_NL", "IQ4_XS") and gqa >= 4):
            new = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and _more_bits(i, n):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i < 4:
            new = "Q5_K"
        if facts.is_70b and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"
        if n_exp == 8:
            new = "Q8_0"
        c.i_attention_wv += 1
        return new
    if cat == "attn_k":
        if n_exp == 8:
            return "Q8_0"
        return {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(ftype, new)
    if cat == "attn_q":
        return {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(ftype, new)
    if cat == "ffn_down":
        i, n = _layer(c, c.i_ffn_down, t, facts)
        c.i_ffn_down += 1
        if ftype == "Q2_K":
            return "Q3_K"
        if ftype == "Q2_K_S":
            return "Q4_K" if i < n // 8 else new
        if ftype == "IQ3_XXS" and not imatrix:
            return "Q4_K" if i < n // 8 else "Q3_K"
        if ftype == "Q3_K_M":
            return "Q5_K" if i < n // 16 else "Q4_K"  # every architecture here is not Falcon
        if ftype == "IQ3_M" and (i < n // 8 or (n_exp == 8 and _more_bits(i, n))):
            return "Q4_K"
        if ftype == "Q3_K_L":
            return "Q5_K"
        if ftype == "Q4_K_M":
            return "Q6_K" if _more_bits(i, n) else new
        if i < n // 8 and ftype in ("IQ4_NL", "IQ4_XS") and not imatrix:
            return "Q5_K"
        if ftype == "Q5_K_M" and _more_bits(i, n):
            return "Q6_K"
        if ftype == "Q4_K_S" and i < n // 8:
            return "Q5_K"
        if ftype in ("Q4_0", "Q5_0") and imatrix and i < n // 8:
            return "Q4_1" if ftype == "Q4_0" else "Q5_1"
        return new
    if cat == "attn_output":
        if n_exp == 8:
            eight = ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ3_S",
                     "IQ3_M", "IQ4_XS")
            return "Q5_K" if ftype in eight else new
        return {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_M": "Q4_K"}.get(
            ftype, new)
    if cat == "attn_qkv":  # not reached: attn_qkv is V-like above, as in llama-quant.cpp
        return new
    if cat in ("ffn_gate", "ffn_up"):
        counter = c.i_ffn_gate if cat == "ffn_gate" else c.i_ffn_up
        i, n = _layer(c, counter, t, facts)
        if cat == "ffn_gate":
            c.i_ffn_gate += 1
        else:
            c.i_ffn_up += 1
        if ftype == "IQ3_XS" and n // 8 <= i < 7 * n // 8:
            return "IQ3_XXS"
    return new


def _fallback(t: Source, chosen: str) -> str:
    per = block(chosen)[0]
    if t.ne[0] % per == 0:
        return chosen
    if chosen in _FALLBACK:
        out = _FALLBACK[chosen]
    elif per <= 32:
        out = chosen
    else:
        raise CollectorError(f"{t.name}: llama.cpp defines no fallback for {chosen}")
    return out if t.ne[0] % block(out)[0] == 0 else "F16"


def assign(tensors: Iterable[Source], facts: ModelFacts, ftype: str, imatrix: bool | None = None) -> dict[str, str]:
    """Tensor name -> the ggml type llama-quantize writes for this file type. imatrix: whether an importance matrix
    was given (None: yes for the types that require one, IQ2_*, IQ1_* and IQ3_XXS, else no)."""
    if ftype not in DEFAULT_TYPE:
        raise CollectorError(f"quant {ftype!r} is not a standard llama-quantize type; use one of "
                             f"{', '.join(FILE_TYPES)}")
    ordered = sorted(tensors, key=lambda t: (t.layer, t.name))
    use_imatrix = ftype in _NEEDS_IMATRIX if imatrix is None else imatrix
    default = DEFAULT_TYPE[ftype]
    counters = _Counters(ordered, facts)
    out: dict[str, str] = {}
    for t in ordered:
        if not quantizable(t):
            out[t.name] = t.type
        elif default in _FLOAT:
            out[t.name] = default
        else:
            out[t.name] = _fallback(t, _choose(counters, t, facts, ftype, default, use_imatrix))
    return out
