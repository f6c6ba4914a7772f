"""The tensors of a GGUF file, from a model's stated hyperparameters, without the file.

Per llama.cpp architecture, the tensors llama.cpp's converter writes and its loader reads (b11434:
`conversion/*.py`, `src/models/<arch>.cpp`): names, shapes in ggml order (ne[0] is the row length) and the source
type (F32 for norms, biases, 1-D tensors and the MoE router; the weights' type otherwise). Written from a reading of
those sources for the architectures of the model table (collector/estimate/models.yaml): llama, qwen2, qwen3,
qwen3moe, qwen3next, qwen35, gemma3, gpt-oss and glm4moe. quantmix turns these into per-tensor types for a file type.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from collector.base.errors import CollectorError
from collector.estimate.quantmix import Source

ARCHS = ("llama", "qwen2", "qwen3", "qwen3moe", "qwen3next", "qwen35", "gemma3", "gpt-oss", "glm4moe")


@dataclass(frozen=True)
class Hyper:
    """A model's hyperparameters as models.yaml states them (0: not used by the architecture)."""

    arch: str
    n_layer: int
    n_embd: int
    n_ff: int  # dense feed-forward width (glm4moe: of the leading dense layers)
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    tied: bool
    rope_freqs: bool = False  # LLaMA 3.1+ rope scaling: the converter writes rope_freqs.weight
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    n_ff_shexp: int = 0
    n_layer_dense_lead: int = 0
    n_nextn: int = 0  # NextN/MTP layers in the file (not run when generating)
    n_swa: int = 0  # sliding window (tokens)
    swa_every: int = 0  # every n-th layer is full attention, the others use the window
    full_attention_interval: int = 0  # qwen3next: every n-th layer is attention, the others delta-net
    linear_k_heads: int = 0
    linear_v_heads: int = 0
    linear_k_dim: int = 0
    linear_v_dim: int = 0
    linear_conv: int = 0

    @property
    def n_layer_all(self) -> int:
        return self.n_layer + self.n_nextn

    def recurrent(self, il: int) -> bool:
        every = self.full_attention_interval
        return bool(every) and il < self.n_layer and (il + 1) % every != 0


W, F32 = "BF16", "F32"  # source types: weights as published (bf16), and what the converter keeps in f32


def _t(name: str, *ne: int, src: str = W) -> Source:
    return Source(name, tuple(ne), F32 if len(ne) == 1 else src)


def _attention(h: Hyper, il: int, *, bias: bool = False, qk_norm: bool = False, out_bias: bool = False,
               q_gate: bool = False) -> list[Source]:
    b, e, hd = f"blk.{il}.", h.n_embd, h.head_dim
    q, kv = h.n_head * hd, h.n_head_kv * hd
    out = [_t(b + "attn_q.weight", e, q * (2 if q_gate else 1)), _t(b + "attn_k.weight", e, kv),
           _t(b + "attn_v.weight", e, kv), _t(b + "attn_output.weight", q, e)]
    if bias:
        out += [_t(b + "attn_q.bias", q), _t(b + "attn_k.bias", kv), _t(b + "attn_v.bias", kv)]
    if out_bias:
        out.append(_t(b + "attn_output.bias", e))
    if qk_norm:
        out += [_t(b + "attn_q_norm.weight", hd), _t(b + "attn_k_norm.weight", hd)]
    return out


def _dense_ffn(h: Hyper, il: int, n_ff: int) -> list[Source]:
    b, e = f"blk.{il}.", h.n_embd
    return [_t(b + "ffn_gate.weight", e, n_ff), _t(b + "ffn_up.weight", e, n_ff), _t(b + "ffn_down.weight", n_ff, e)]


def _experts(h: Hyper, il: int, *, bias: bool = False) -> list[Source]:
    b, e, f, x = f"blk.{il}.", h.n_embd, h.n_ff_exp, h.n_expert
    out = [Source(b + "ffn_gate_inp.weight", (e, x), F32), _t(b + "ffn_gate_exps.weight", e, f, x),
           _t(b + "ffn_up_exps.weight", e, f, x), _t(b + "ffn_down_exps.weight", f, e, x)]
    if bias:
        out += [_t(b + "ffn_gate_inp.bias", x), Source(b + "ffn_gate_exps.bias", (f, x), F32),
                Source(b + "ffn_up_exps.bias", (f, x), F32), Source(b + "ffn_down_exps.bias", (e, x), F32)]
    if h.n_ff_shexp:
        s = h.n_ff_shexp
        out += [_t(b + "ffn_gate_shexp.weight", e, s), _t(b + "ffn_up_shexp.weight", e, s),
                _t(b + "ffn_down_shexp.weight", s, e)]
    return out


def _norm(il: int, name: str, n: int) -> Source:
    return _t(f"blk.{il}.{name}.weight", n)


def _layer(h: Hyper, il: int) -> list[Source]:
    a, e = h.arch, h.n_embd
    out = [_norm(il, "attn_norm", e)]
    if a in ("llama", "qwen2", "qwen3", "qwen3moe"):
        out += _attention(h, il, bias=a == "qwen2", qk_norm=a in ("qwen3", "qwen3moe"))
        out.append(_norm(il, "ffn_norm", e))
        out += _experts(h, il) if a == "qwen3moe" else _dense_ffn(h, il, h.n_ff)
    elif a == "gemma3":
        out += _attention(h, il, qk_norm=True) + [_norm(il, "post_attention_norm", e), _norm(il, "ffn_norm", e),
                                                 _norm(il, "post_ffw_norm", e)]
        out += _dense_ffn(h, il, h.n_ff)
    elif a == "gpt-oss":
        out += _attention(h, il, bias=True, out_bias=True) + [_norm(il, "post_attention_norm", e),
                                                             _t(f"blk.{il}.attn_sinks.weight", h.n_head)]
        out += _experts(h, il, bias=True)
    elif a == "glm4moe":
        out += _attention(h, il, bias=True) + [_norm(il, "post_attention_norm", e)]
        if il < h.n_layer_dense_lead:
            out += _dense_ffn(h, il, h.n_ff)
        else:
            out += _experts(h, il) + [_t(f"blk.{il}.exp_probs_b.bias", h.n_expert)]
        if il >= h.n_layer:
            b = f"blk.{il}.nextn."
            # GLM-4.5's checkpoints give the MTP layer its own embeddings and head (published GGUFs: 803 tensors)
            out += [_t(b + "eh_proj.weight", 2 * e, e), _t(b + "enorm.weight", e), _t(b + "hnorm.weight", e),
                    _t(b + "embed_tokens.weight", e, h.n_vocab), _t(b + "shared_head_head.weight", e, h.n_vocab),
                    _t(b + "shared_head_norm.weight", e)]
    elif a in ("qwen3next", "qwen35"):
        # qwen35 (Qwen3.5 and later, dense): qwen3next's hybrid layers with a dense feed-forward, the delta-net's
        # beta and alpha as two tensors, and an MTP block after the last layer (src/models/qwen35.cpp)
        out.append(_norm(il, "post_attention_norm", e))
        if h.recurrent(il):
            b = f"blk.{il}."
            key, value = h.linear_k_heads * h.linear_k_dim, h.linear_v_heads * h.linear_v_dim
            conv = 2 * key + value
            out += [_t(b + "attn_qkv.weight", e, conv), _t(b + "attn_gate.weight", e, value),
                    Source(b + "ssm_conv1d.weight", (h.linear_conv, conv), F32),
                    _t(b + "ssm_dt.bias", h.linear_v_heads), _t(b + "ssm_a", h.linear_v_heads),
                    _t(b + "ssm_norm.weight", h.linear_v_dim), _t(b + "ssm_out.weight", value, e)]
            out += ([_t(b + "ssm_ba.weight", e, 2 * h.linear_v_heads)] if a == "qwen3next" else
                    [_t(b + "ssm_beta.weight", e, h.linear_v_heads), _t(b + "ssm_alpha.weight", e, h.linear_v_heads)])
        else:
            out += _attention(h, il, qk_norm=True, q_gate=True)
        if a == "qwen3next":
            out += _experts(h, il) + [_t(f"blk.{il}.ffn_gate_inp_shexp.weight", e)]
        else:
            out += _dense_ffn(h, il, h.n_ff)
        if il >= h.n_layer:
            b = f"blk.{il}.nextn."
            out += [_t(b + "eh_proj.weight", 2 * e, e), _t(b + "enorm.weight", e), _t(b + "hnorm.weight", e),
                    _t(b + "shared_head_norm.weight", e)]
    else:
        raise CollectorError(f"architecture {a!r} has no tensor layout here; known: {', '.join(ARCHS)}")
    return out


@lru_cache(maxsize=64)
def tensors(h: Hyper) -> tuple[Source, ...]:
    """Every tensor of the model's GGUF (before quantization)."""
    if h.arch not in ARCHS:
        raise CollectorError(f"architecture {h.arch!r} has no tensor layout here; known: {', '.join(ARCHS)}")
    out = [_t("token_embd.weight", h.n_embd, h.n_vocab), _t("output_norm.weight", h.n_embd)]
    if not h.tied:
        out.append(_t("output.weight", h.n_embd, h.n_vocab))
    if h.rope_freqs:
        out.append(_t("rope_freqs.weight", h.head_dim // 2))
    for il in range(h.n_layer_all):
        out += _layer(h, il)
    return tuple(out)
