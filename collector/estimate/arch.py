"""The facts about a model that a memory or speed estimate needs, read from its GGUF or taken as a source states them.

From a GGUF, every tensor (type, bytes, layer, rows) and the hyperparameters llama.cpp sizes its caches by:
layers, attention heads per layer, key/value head sizes, the sliding window and which layers use it, the recurrent
layers and their state sizes. For an imported model whose file is not here, `models.yaml` states the
hyperparameters with the page they come from, and the file size is the one the record's source states: such a
model has no tensor list, so its weights are spread evenly over its layers (said in `Arch.source`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, GGUFReader
from gguf.constants import GGML_QUANT_SIZES

from collector.base.errors import CollectorError
from collector.base.yamlcheck import Section, load_yaml_file
from collector.estimate.ggufmeta import MAX_LAYERS, Meta
from collector.records.flags import CACHE_TYPES

_BLK = re.compile(r"^blk\.(\d+)\.")
_EXPS = re.compile(r"^blk\.\d+\.ffn_[a-z_]+_(ch)?exps\.(weight|bias)$")
# llama.cpp's built-in sliding-window pattern where the GGUF states none (src/models/<arch>.cpp: load_swa_pattern):
# every n-th layer is full attention, the others use the window. Only architectures checked in that source.
SWA_PATTERN = {"gemma3": 6, "gemma2": 2}
# The recurrent layers' default spacing (src/models/qwen3next.cpp: full_attention_interval, default 4)
RECURRENT_INTERVAL = {"qwen3next": 4, "qwen35": 4, "qwen35moe": 4}


@dataclass(frozen=True)
class Tensor:
    name: str
    type: str  # ggml type name: Q4_K, F16, ...
    n_bytes: int
    layer: int | None  # blk.N; None for token_embd, output, output_norm
    rows: int  # ne[1]: the CPU repacks a tensor only when its rows are a multiple of 8
    expert: bool  # an expert tensor (ffn_*_exps), moved to the CPU by --n-cpu-moe
    shard: int = 0  # which file of a split GGUF holds it
    offset: int = -1  # where its data starts in that file (-1: not known)


@dataclass(frozen=True)
class Arch:
    """One model file's facts. Byte counts are exact for a GGUF; for a stated model they are the source's size."""

    name: str
    quant: str | None
    source: str  # where the facts come from: "GGUF <file>", or a models.yaml citation plus the size's source
    arch: str | None
    n_layer: int  # repeating layers llama.cpp runs (NextN/MTP layers excluded)
    n_layer_all: int  # block_count: what -ngl counts (plus one for the output layer)
    n_embd: int
    n_ff: int  # feed-forward width a token passes through (experts: used experts x their width, plus shared)
    n_head: int
    n_head_kv: tuple[int, ...]  # per layer (0: a layer without a KV cache)
    head_k: int
    head_v: int
    n_vocab: int
    ctx_train: int | None
    weight_bytes: int  # every tensor
    read_bytes: int  # bytes a generated token reads: every tensor, expert tensors weighted by used/all experts
    embd_bytes: int | None  # token_embd: llama.cpp keeps it on the CPU (None: not known for a stated model)
    output_bytes: int = 0  # output.weight and output_norm (0 for a stated model without file bytes)
    tied: bool = False  # no output.weight: llama.cpp uses the embeddings as the output matrix (a copy on a GPU)
    # stated model: the bytes of the matrices the CPU backend may repack, by type (None: not known)
    repack_bytes: tuple[tuple[str, int], ...] | None = None
    # stated model: llama.cpp's CPU_Mapped span of a CPU-only load, by repack rule (memory.MemConfig.repack_rule)
    mapped_bytes: tuple[tuple[str, int], ...] | None = None
    n_swa: int | None = None
    swa_layers: frozenset[int] = frozenset()
    swa_pattern_known: bool = True  # False: a window, but llama.cpp's layer pattern for this arch is not known here
    recurrent_layers: frozenset[int] = frozenset()
    n_embd_r: int = 0  # recurrent conv state per layer and sequence (f32 values)
    n_embd_s: int = 0  # recurrent SSM state per layer and sequence (f32 values)
    n_expert: int = 0
    n_expert_used: int = 0
    tensors: tuple[Tensor, ...] = field(default=(), repr=False)

    def __hash__(self) -> int:
        """Kept once computed: the estimates' caches key on an Arch thousands of times per build, and hashing its
        tensors each time cost more than the estimates themselves. Not pickled (a str's hash differs per process)."""
        got = self.__dict__.get("_hash")
        if got is None:
            got = hash((self.name, self.quant, self.source, self.weight_bytes, self.n_layer_all, self.tensors))
            object.__setattr__(self, "_hash", got)
        return int(got)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    @property
    def params_active(self) -> float:
        """Weights a token multiplies with, estimated as 2 bytes per F16 weight's worth (for the pp compute term):
        from the tensors' element counts when known, else from the dense layout (attention + FFN per layer)."""
        per_layer = self.n_embd * (self.n_head * self.head_k * 2 + sum(self.n_head_kv) / max(self.n_layer, 1)
                                   * (self.head_k + self.head_v)) + 3 * self.n_embd * self.n_ff
        return per_layer * self.n_layer + self.n_embd * self.n_vocab

    def layer_bytes(self) -> list[int]:
        """Weight bytes per repeating layer (index = layer): exact from the tensors, else the size spread evenly."""
        if self.tensors:
            out = [0] * self.n_layer_all
            for t in self.tensors:
                if t.layer is not None and t.layer < self.n_layer_all:
                    out[t.layer] += t.n_bytes
            return out
        rest = self.weight_bytes - (self.embd_bytes or 0) - self.output_bytes
        return [rest // max(self.n_layer_all, 1)] * self.n_layer_all

    def kv_layers(self) -> list[int]:
        return [il for il in range(self.n_layer) if self.n_head_kv[il] > 0 and il not in self.recurrent_layers]


def type_bytes(name: str) -> float:
    """Bytes per element of a KV cache type ("f16" 2, "q8_0" 34/32); CollectorError for one llama.cpp does not take."""
    if name not in CACHE_TYPES:
        raise CollectorError(f"unknown cache type {name!r}; use one of {', '.join(CACHE_TYPES)}")
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[name.upper()]]
    return size / block


def type_block(name: str) -> int:
    """Elements per block of a ggml type (q8_0: 32; f16: 1)."""
    type_bytes(name)  # names an unknown type
    return int(GGML_QUANT_SIZES[GGMLQuantizationType[name.upper()]][0])


def read_gguf(path: Path) -> Arch:
    """The facts of one GGUF file (its first shard holds the hyperparameters; every shard's tensors are counted).
    Kept per (path, size, mtime) in this process: the gguf package parses a large vocabulary for seconds."""
    from collector.models.info import gguf_shards  # the split-file rule lives there

    shards = gguf_shards(Path(path))
    return _read(tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in shards))


@lru_cache(maxsize=16)
def _read(key: tuple[tuple[str, int, int], ...]) -> Arch:
    shards = [Path(k[0]) for k in key]
    try:
        readers = [GGUFReader(p) for p in shards]
    except Exception as exc:  # gguf raises ValueError/IndexError/... on truncated or corrupt files
        raise CollectorError(f"{shards[0]}: unreadable GGUF ({type(exc).__name__}: {exc}); re-download the "
                             "file") from None
    meta = Meta(readers[0], shards[0])
    arch = meta.architecture()

    def hp(key: str) -> str:
        return f"{arch}.{key}"

    block_count = meta.count(hp("block_count"), 1, MAX_LAYERS)
    if block_count is None:
        raise meta.fail(hp("block_count"), "is missing (the number of layers)")
    n_layer = block_count - (meta.count(hp("nextn_predict_layers"), 0, block_count - 1) or 0)
    n_head = meta.counts(hp("attention.head_count"), block_count) or [0] * block_count
    if not any(n_head) and meta.count(hp("attention.key_length")) is None and not meta.count(hp("ssm.state_size")):
        raise meta.fail(hp("attention.head_count"), "is missing or 0 (attention heads; nor is it a recurrent model)")
    n_head_kv = tuple(meta.counts(hp("attention.head_count_kv"), block_count) or n_head)
    n_embd = meta.count(hp("embedding_length")) or 0
    head_k = meta.count(hp("attention.key_length")) or (n_embd // max(n_head[0], 1) if n_head[0] else 0)
    head_v = meta.count(hp("attention.value_length")) or head_k
    n_expert = meta.count(hp("expert_count")) or 0
    n_used = max(meta.counts(hp("expert_used_count"), block_count, 0, max(n_expert, 1)) or [0]) if n_expert else 0
    n_ff = max(meta.counts(hp("feed_forward_length"), block_count) or [0])
    if n_expert:
        n_ff = (meta.count(hp("expert_feed_forward_length")) or n_ff) * n_used + (
            meta.count(hp("expert_shared_feed_forward_length")) or 0)
    tensors, read = [], 0.0
    for shard, t in ((i, t) for i, r in enumerate(readers) for t in r.tensors):
        m = _BLK.match(t.name)
        layer = int(m.group(1)) if m else None
        expert = bool(_EXPS.match(t.name))
        rows = int(t.shape[1]) if len(t.shape) > 1 else 1
        tensors.append(Tensor(t.name, t.tensor_type.name, int(t.n_bytes), layer, rows, expert, shard,
                              int(t.data_offset)))
        if layer is not None and layer >= n_layer:
            continue  # a NextN/MTP layer: not run when generating
        read += int(t.n_bytes) * (n_used / max(int(t.shape[-1]), 1) if expert else 1.0)
    embd = next((t for t in tensors if t.name == "token_embd.weight"), None)
    n_vocab = meta.count(hp("vocab_size")) or (embd.rows if embd else 0)
    n_swa = meta.count(hp("attention.sliding_window")) or None
    swa_layers: frozenset[int] = frozenset()
    known = True
    if n_swa:
        listed = meta.flags(hp("attention.sliding_window_pattern"), block_count)
        every = None if listed is not None else meta.count(hp("attention.sliding_window_pattern"), 0, MAX_LAYERS)
        if listed is not None:
            swa_layers = frozenset(i for i, v in enumerate(listed[:n_layer]) if v)
        elif every is not None or arch in SWA_PATTERN:
            n_pat = every if every is not None else SWA_PATTERN[arch]
            swa_layers = frozenset(i for i in range(n_layer) if n_pat == 0 or i % n_pat < n_pat - 1)
        else:
            known = False  # a window llama.cpp applies by a rule of its own: counted as full attention (more memory)
    recurrent: frozenset[int] = frozenset()
    n_embd_r = n_embd_s = 0
    if meta.count(hp("ssm.state_size")):
        d_conv, d_inner = meta.count(hp("ssm.conv_kernel")) or 0, meta.count(hp("ssm.inner_size")) or 0
        d_state, n_group = meta.count(hp("ssm.state_size")) or 0, meta.count(hp("ssm.group_count")) or 0
        n_embd_r, n_embd_s = max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state), d_state * d_inner
        flagged = meta.flags(hp("attention.recurrent_layers"), block_count)
        if flagged is not None:
            recurrent = frozenset(i for i, v in enumerate(flagged[:n_layer]) if v)
        else:
            every = meta.count(hp("full_attention_interval"), 0, MAX_LAYERS) or RECURRENT_INTERVAL.get(arch, 0)
            recurrent = frozenset(i for i in range(n_layer) if not every or (i + 1) % every != 0)
    size_label = meta.text("general.name") or shards[0].stem
    from collector.models.info import FILE_TYPES  # the ftype -> label table lives there

    ftype = meta.count("general.file_type", 0, 1 << 16)
    quant = FILE_TYPES.get(ftype & ~1024, (None, None))[0] if ftype is not None else None
    return Arch(name=str(size_label), quant=quant, source=f"GGUF {shards[0].name}", arch=arch, n_layer=n_layer,
                n_layer_all=block_count, n_embd=n_embd, n_ff=n_ff, n_head=n_head[0], n_head_kv=n_head_kv,
                head_k=head_k, head_v=head_v, n_vocab=n_vocab, ctx_train=meta.count(hp("context_length")),
                weight_bytes=sum(t.n_bytes for t in tensors), read_bytes=round(read),
                embd_bytes=embd.n_bytes if embd else None,
                output_bytes=sum(t.n_bytes for t in tensors if t.layer is None and t.name.startswith("output")),
                tied=not any(t.name == "output.weight" for t in tensors), n_swa=n_swa, swa_layers=swa_layers,
                swa_pattern_known=known, recurrent_layers=recurrent, n_embd_r=n_embd_r, n_embd_s=n_embd_s,
                n_expert=n_expert, n_expert_used=n_used, tensors=tuple(tensors))


@dataclass(frozen=True)
class FileBytes:
    """Byte counts of one GGUF file, read from it (models.yaml `files`)."""

    tensor_bytes: int
    embd_bytes: int
    output_bytes: int
    repack_bytes: dict[str, int]  # by type: the layers' matrices of a type some CPU repacks, rows a multiple of 8
    mapped_bytes: dict[str, int]  # by repack rule (AVX2, AVX512, none): the CPU_Mapped span of a CPU-only load


@dataclass(frozen=True)
class Stated:
    """A model's hyperparameters as a cited source states them (models.yaml)."""

    name: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    ctx_train: int
    tied: bool
    url: str
    quote: str
    files: dict[str, FileBytes] = field(default_factory=dict)  # by sha256
    # the model table (models.yaml's second part): the architecture and what its tensor layout needs
    layout: dict[str, int | str | bool] = field(default_factory=dict)  # layout.Hyper's fields beyond the above
    aliases: tuple[str, ...] = ()
    checked: str | None = None  # the public copy the quoted values were compared with
    listed: bool = True  # False: a model of older published figures, in the table for the fit, not on the pages


@lru_cache(maxsize=1)
def stated_models() -> dict[str, Stated]:
    """models.yaml, by the model name the records use; a malformed entry fails naming file:line."""
    with resources.as_file(resources.files("collector.estimate") / "models.yaml") as path:
        top = Section(load_yaml_file(path), path, "")
        out: dict[str, Stated] = {}
        for i, raw in enumerate(top.seq("models")):
            s = Section(raw, path, f"models[{i}]")
            s.check_keys(("name", "n_layer", "n_embd", "n_ff", "n_head", "n_head_kv", "head_dim", "n_vocab",
                          "ctx_train", "tied", "url", "quote", "files", "aliases", "checked", "listed", *_LAYOUT_KEYS))
            layout: dict[str, int | str | bool] = {}
            for key, kind in _LAYOUT_KEYS.items():
                value = s.get(key, kind, None)
                if value is not None:
                    layout[key] = value
            files = {}
            for j, fraw in enumerate(s.seq("files", [])):
                f = Section(fraw, path, f"models[{i}].files[{j}]")
                f.check_keys(("sha256", "tensor_bytes", "embd_bytes", "output_bytes", "repack_bytes", "mapped_bytes"))
                files[f.get("sha256", str)] = FileBytes(f.get("tensor_bytes", int), f.get("embd_bytes", int),
                                                        f.get("output_bytes", int), _counts(f, "repack_bytes"),
                                                        _counts(f, "mapped_bytes"))
            out[s.get("name", str)] = Stated(
                name=s.get("name", str), n_layer=s.get("n_layer", int), n_embd=s.get("n_embd", int),
                n_ff=s.get("n_ff", int), n_head=s.get("n_head", int), n_head_kv=s.get("n_head_kv", int),
                head_dim=s.get("head_dim", int), n_vocab=s.get("n_vocab", int), ctx_train=s.get("ctx_train", int),
                tied=s.get("tied", bool), url=s.get("url", str), quote=s.get("quote", str), files=files,
                layout=layout, aliases=tuple(str(a) for a in s.seq("aliases", [])), checked=s.get("checked", str, None),
                listed=s.get("listed", bool, True))
    return out


# models.yaml keys of the model table (layout.Hyper), with their types; `arch` marks a table entry
_LAYOUT_KEYS: dict[str, type] = {
    "arch": str, "rope_freqs": bool, "n_expert": int, "n_expert_used": int, "n_ff_exp": int, "n_ff_shexp": int,
    "n_layer_dense_lead": int, "n_nextn": int, "n_swa": int, "swa_every": int, "full_attention_interval": int,
    "linear_k_heads": int, "linear_v_heads": int, "linear_k_dim": int, "linear_v_dim": int, "linear_conv": int,
}


def _counts(f: Section, key: str) -> dict[str, int]:
    """A mapping of names to byte counts (models.yaml's repack_bytes and mapped_bytes)."""
    sec = f.section(key)
    return {str(k): sec.get(str(k), int) for k in sec.data}


def from_stated(s: Stated, quant: str | None, size_bytes: int, size_source: str, sha256: str | None = None) -> Arch:
    """A stated model with one file: its byte counts from models.yaml when that file is listed (by sha256), else
    the size its source states standing for every tensor (read per token, and on the GPU when offloaded)."""
    fb = s.files.get(sha256 or "")
    if fb:
        size_bytes, size_source = fb.tensor_bytes, "the file's tensors (models.yaml)"
    return Arch(name=s.name, quant=quant, source=f"hyperparameters: {s.url} · size: {size_source}",
                arch=None, n_layer=s.n_layer, n_layer_all=s.n_layer, n_embd=s.n_embd, n_ff=s.n_ff, n_head=s.n_head,
                n_head_kv=(s.n_head_kv,) * s.n_layer, head_k=s.head_dim, head_v=s.head_dim, n_vocab=s.n_vocab,
                ctx_train=s.ctx_train, weight_bytes=size_bytes, read_bytes=size_bytes,
                embd_bytes=fb.embd_bytes if fb else None, output_bytes=fb.output_bytes if fb else 0, tied=s.tied,
                repack_bytes=tuple(sorted(fb.repack_bytes.items())) if fb else None,
                mapped_bytes=tuple(sorted(fb.mapped_bytes.items())) if fb else None)
