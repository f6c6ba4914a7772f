"""A tiny random-weight Mixture-of-Experts GGUF (arch qwen3moe) that the real llama-server loads.

Tensor names and shapes follow llama.cpp's src/models/qwen3moe.cpp (load_arch_tensors); the tokenizer
(every `tokenizer.*` key) is copied from the real SmolLM2 GGUF so the model tokenizes real text.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

ARCH = "qwen3moe"
N_EMBD, N_HEAD, N_HEAD_KV, HEAD_DIM, N_FF_EXP, CTX_TRAIN = 64, 4, 2, 16, 32, 4096


def tiny_moe_shapes(n_vocab: int, *, n_layers: int = 2, n_experts: int = 4) -> dict[str, tuple[int, ...]]:
    """Tensor name -> GGML shape (ne0 first), as qwen3moe's loader expects them."""
    shapes: dict[str, tuple[int, ...]] = {
        "token_embd.weight": (N_EMBD, n_vocab),
        "output_norm.weight": (N_EMBD,),
        "output.weight": (N_EMBD, n_vocab),
    }
    for i in range(n_layers):
        b = f"blk.{i}."
        shapes |= {
            b + "attn_norm.weight": (N_EMBD,),
            b + "attn_q.weight": (N_EMBD, HEAD_DIM * N_HEAD),
            b + "attn_k.weight": (N_EMBD, HEAD_DIM * N_HEAD_KV),
            b + "attn_v.weight": (N_EMBD, HEAD_DIM * N_HEAD_KV),
            b + "attn_output.weight": (HEAD_DIM * N_HEAD, N_EMBD),
            b + "attn_q_norm.weight": (HEAD_DIM,),
            b + "attn_k_norm.weight": (HEAD_DIM,),
            b + "ffn_norm.weight": (N_EMBD,),
            b + "ffn_gate_inp.weight": (N_EMBD, n_experts),
            b + "ffn_gate_exps.weight": (N_EMBD, N_FF_EXP, n_experts),
            b + "ffn_down_exps.weight": (N_FF_EXP, N_EMBD, n_experts),
            b + "ffn_up_exps.weight": (N_EMBD, N_FF_EXP, n_experts),
        }
    return shapes


def write_tiny_moe_gguf(path: Path, *, n_layers: int = 2, n_experts: int = 4, n_experts_used: int | list[int] = 2,
                        tokenizer_from: Path | None = None, split_max_tensors: int = 0, toy_vocab: int = 0) -> Path:
    """Write the model; returns `path` (or the first shard's path when split_max_tensors splits it).

    1-D tensors are F32 (norms), the rest F16; weights are small random numbers (seed 0). `toy_vocab` > 0
    writes a made-up vocabulary of that size instead of SmolLM2's: quick to read, but llama.cpp cannot load it.
    """
    if toy_vocab:
        tokenizer: tuple[tuple[str, Any, GGUFValueType, GGUFValueType | None], ...] = (
            ("tokenizer.ggml.model", "gpt2", GGUFValueType.STRING, None),
            ("tokenizer.ggml.tokens", [f"t{i}" for i in range(toy_vocab)], GGUFValueType.ARRAY, GGUFValueType.STRING),
        )
    else:
        if tokenizer_from is None:
            from collector.models.ref import DEMO_MODEL, resolve_model
            tokenizer_from = resolve_model(DEMO_MODEL)
        tokenizer = _tokenizer_fields(Path(tokenizer_from))
    n_vocab = len(next(v for k, v, _, _ in tokenizer if k == "tokenizer.ggml.tokens"))

    path = Path(path)
    writer = GGUFWriter(path, ARCH, split_max_tensors=split_max_tensors)
    writer.add_name("Tiny-MoE-Test")
    writer.add_size_label(f"{n_experts}x-tiny")
    writer.add_file_type(1)  # MOSTLY_F16
    writer.add_context_length(CTX_TRAIN)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(n_layers)
    k_max = max(n_experts_used) if isinstance(n_experts_used, list) else n_experts_used
    writer.add_feed_forward_length(N_FF_EXP * k_max)
    writer.add_expert_feed_forward_length(N_FF_EXP)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_key_length(HEAD_DIM)
    writer.add_value_length(HEAD_DIM)
    writer.add_expert_count(n_experts)
    if isinstance(n_experts_used, list):  # per-layer counts, as some MoE GGUFs carry them
        writer.add_array(f"{ARCH}.expert_used_count", n_experts_used)
    else:
        writer.add_expert_used_count(n_experts_used)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(1_000_000.0)
    for key, value, vtype, sub in tokenizer:
        writer.add_key_value(key, value, vtype, sub_type=sub)

    rng = np.random.default_rng(0)
    for name, shape in tiny_moe_shapes(n_vocab, n_layers=n_layers, n_experts=n_experts).items():
        np_shape = tuple(reversed(shape))  # numpy is row-major: GGML's ne0 is the last numpy axis
        if len(shape) == 1:
            data = np.ones(np_shape, dtype=np.float32)  # norm weights of 1 keep activations sane
        else:
            data = (rng.standard_normal(np_shape) * 0.05).astype(np.float16)
        writer.add_tensor(name, data)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if split_max_tensors:
        shards = sorted(path.parent.glob(f"{path.stem}-*-of-*.gguf"))
        return shards[0]
    return path


@functools.cache
def _tokenizer_fields(path: Path) -> tuple[tuple[str, Any, GGUFValueType, GGUFValueType | None], ...]:
    """Every `tokenizer.*` key of a GGUF with its value and types (read once: parsing 49k tokens takes seconds)."""
    out = []
    for key, field in GGUFReader(path).fields.items():
        if key.startswith("tokenizer."):
            vtype = field.types[0]
            out.append((key, field.contents(), vtype, field.types[1] if vtype == GGUFValueType.ARRAY else None))
    return tuple(out)
