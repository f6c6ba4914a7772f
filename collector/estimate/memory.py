"""llama.cpp's memory for one configuration, predicted from the model's facts (MiB, as llama.cpp logs them).

What is modelled, and how (llama.cpp b11434 sources, `src/llama-model.cpp`, `llama-context.cpp`, `llama-kv-cache*.cpp`,
`ggml-cpu/repack.cpp`):

- **Model buffers.** `-ngl N` puts repeating layer il on the GPU when il >= n_layer_all + 1 - N, and the output layer
  when N >= 1; the token embeddings always stay on the CPU. `--n-cpu-moe K` keeps the expert tensors of layers
  0..K-1 on the CPU. On the CPU the file's tensors are memory-mapped (CPU_Mapped), and the CPU backend keeps a second,
  repacked copy (CPU_REPACK) of the Q4_0, Q4_K, IQ4_NL and MXFP4 matrices whose rows are a multiple of 8 (x86 with
  AVX2), and of the Q2_K ones too where llama.cpp reports AVX512; a build that reports no REPACK keeps none. Where the
  CPU's features are not known, the AVX2 rule. ARM's repacking and the AMX buffer (Intel CPUs with AMX, in builds
  that keep its kernels) are not modelled.
- **KV cache.** The context is padded to 256 cells; with several slots and no unified cache each slot gets
  pad256(ctx / slots) cells. Per layer with a KV cache: cells x heads_kv x (head_k x bytes(K type) + head_v x
  bytes(V type)). Sliding-window layers get pad256(min(cells, window x (slots if unified) + ubatch)) cells.
  Recurrent layers hold (conv + SSM state) f32 values per slot instead, (1 + n_rs_seq) rows of them where a
  speculative draft keeps states to roll back to (Qwen3.8-27B, a real Vulkan log: 1,795.50 MiB, exact).
- **Compute buffer** (the graph allocator's peak; approximate): per ubatch token 20 bytes x n_embd + 12 bytes x
  the feed-forward width (fitted to the CPU logs of SmolLM2, gemma-3-270m and the MoE test model; the other figures
  are the tensors' own sizes), plus the attention mask (cells x ubatch, f16 with flash attention, f32 without) for
  each cache kind; without flash attention the attention stage (the KQ matrix, cells x ubatch x heads in f32, of the
  largest cache, beside the mask and the embedding-width tensors, not the feed-forward ones: 560 MiB logged, 568
  estimated, for Llama 3 8B at 8,192 cells on CUDA; the sum of both stages, before, was 652). The peak is the
  largest of those and the output stage (a row of logits per slot beside the last hidden states):
  llama-server reserves one output per slot (llama.cpp #23861, 2026-05); other tools and older builds a ubatch of
  them (`MemConfig.ubatch_outputs`); a speculative draft adds its tokens' rows. With the layers on a GPU, a weight left
  in system RAM is copied to the GPU for its op (ubatches of 32+ tokens), in the layers' stage: the largest such copy
  joins the feed-forward stage (real CUDA logs with -ot, 10 GPU logs within 5 % or 64 MiB: tests/unit/
  test_memory_gpu_logs.py). With the layers on a GPU, the host's compute buffer holds the graph's inputs:
  the token rows and each cache kind's attention mask in f32 (cells x ubatch x 4 bytes; real CUDA, Vulkan and Metal
  logs, tests/fixtures/logs/real/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from collector.base.errors import CollectorError
from collector.estimate.arch import Arch, FileBytes, Tensor, type_block, type_bytes

MIB = 1 << 20
REPACKED = frozenset({"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"})  # x86 with AVX2 (ggml-cpu/repack.cpp)
REPACKED_AVX512 = REPACKED | {"Q2_K"}
REPACK_RULES = {"AVX2": REPACKED, "AVX512": REPACKED_AVX512, "none": frozenset[str]()}
PAD = 256
COMPUTE_EMBD_BYTES, COMPUTE_FF_BYTES = 20, 12  # per ubatch token, see the module docstring
OP_OFFLOAD_MIN_BATCH = 32  # llama.cpp runs a CPU-resident weight's op on the GPU for batches of this many tokens


def pad(n: int, to: int = PAD) -> int:
    return -(-n // to) * to


@dataclass(frozen=True)
class MemConfig:
    """The llama-server settings memory depends on (llama-server's defaults where None)."""

    ctx: int | None = None  # None or 0: the model's training context
    n_seq: int = 1  # slots (-np)
    unified: bool = False  # -kvu (llama-server's automatic -np gives 4 slots with a unified cache)
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool = True  # "auto" is on wherever the backend supports it (CPU, CUDA, Metal, Vulkan)
    ubatch: int = 512
    batch: int = 2048
    n_gpu_layers: int | None = None  # None: every layer (and the output layer); 0: none
    n_cpu_moe: int = 0
    # -ot/--override-tensor: (regex, "CPU" or "GPU") in the order given; a tensor takes the first whose pattern
    # occurs in its name (llama.cpp: std::regex_search), before -ngl's layer rule
    overrides: tuple[tuple[str, str], ...] = ()
    on_gpu: bool = True  # False: a CPU-only run (every buffer on the host)
    cpu_features: frozenset[str] = frozenset()  # as llama.cpp's system_info states them; empty: not known
    # the logit rows the compute buffer is reserved for: one per slot (llama-server since llama.cpp #23861, 2026-05);
    # True: a ubatch of them (every other tool, and llama-server before that change)
    ubatch_outputs: bool = False
    # the tokens a speculative draft proposes (--spec-draft-n-max): llama-server reserves 1 + n logit rows per slot,
    # and a hybrid model keeps n more recurrent states per slot to roll back to (llama.cpp's n_rs_seq)
    draft_n_max: int = 0

    @property
    def repack_rule(self) -> str:
        """AVX512, AVX2 (also where the CPU's features are not known) or none (a build without REPACK)."""
        if self.cpu_features and "REPACK" not in self.cpu_features:
            return "none"
        return "AVX512" if "AVX512" in self.cpu_features else "AVX2"

    @property
    def repacked(self) -> frozenset[str]:
        """The types whose matrices the CPU backend repacks (rows a multiple of 8) on this CPU."""
        return REPACK_RULES[self.repack_rule]


@dataclass(frozen=True)
class Cache:
    swa: bool
    recurrent: bool
    cells: int  # per slot
    layers: int
    mib: float


@dataclass
class MemEstimate:
    """Per kind, MiB on the GPU(s) ("gpu") and on the host ("host")."""

    model: dict[str, float] = field(default_factory=dict)
    kv: dict[str, float] = field(default_factory=dict)
    compute: dict[str, float] = field(default_factory=dict)
    output_mib: float = 0.0  # llama.cpp's output buffer (host): one row of logits per slot
    # per repeating layer (None: the output layer and other non-repeating tensors) on the GPU(s): weights and
    # KV/recurrent state, MiB; and the experts' share of the weights there (a placement's detail)
    layer_gpu: dict[int | None, float] = field(default_factory=dict)
    experts_gpu: float = 0.0
    experts_host: float = 0.0
    recurrent: dict[str, float] = field(default_factory=dict)  # the recurrent state's share of `kv`
    caches: list[Cache] = field(default_factory=list)
    n_ctx: int = 0
    notes: list[str] = field(default_factory=list)

    def total(self, where: str) -> float:
        return sum(d.get(where, 0.0) for d in (self.model, self.kv, self.compute)) + (
            self.output_mib if where == "host" else 0.0)


def resolve_ctx(arch: Arch, cfg: MemConfig) -> int:
    ctx = cfg.ctx or arch.ctx_train or 4096
    return pad(ctx)


@dataclass(frozen=True)
class _Weights:
    """What the weights hold where, for one placement: the same at every context size (largest_context's bisection
    asks for it a dozen times per model and memory size, so it is kept per (model, settings but the context))."""

    model: tuple[tuple[str, float], ...]
    layer_gpu: tuple[tuple[int | None, float], ...]
    experts_gpu: float
    experts_host: float
    notes: tuple[str, ...]
    largest_moved: int  # the largest weight left in system RAM that a layer's ops copy to the GPU (bytes)


def _model(arch: Arch, cfg: MemConfig, est: MemEstimate) -> None:
    w = _weights(arch, replace(cfg, ctx=None))
    est.model = dict(w.model)
    est.layer_gpu.update(w.layer_gpu)
    est.experts_gpu += w.experts_gpu
    est.experts_host += w.experts_host
    est.notes.extend(w.notes)


@lru_cache(maxsize=512)
def _weights(arch: Arch, cfg: MemConfig) -> _Weights:
    est = MemEstimate()
    _place_weights(arch, cfg, est)
    moved = 0
    if cfg.on_gpu and arch.tensors:
        where = on_gpu_tensors(arch, cfg)
        moved = max((t.n_bytes for t in arch.tensors if not where[t.name] and t.layer is not None and t.rows > 1),
                    default=0)
    return _Weights(tuple(est.model.items()), tuple(est.layer_gpu.items()), est.experts_gpu, est.experts_host,
                    tuple(est.notes), moved)


def _place_weights(arch: Arch, cfg: MemConfig, est: MemEstimate) -> None:
    n = arch.n_layer_all + 1 if cfg.n_gpu_layers is None else cfg.n_gpu_layers
    n = n if cfg.on_gpu else 0
    first_gpu = max(arch.n_layer_all + 1 - n, 0)
    output_gpu = n >= 1
    gpu = host = repack = 0.0
    if arch.tied and output_gpu and cfg.on_gpu and arch.embd_bytes:
        gpu += arch.embd_bytes  # the output layer on a GPU gets its own copy of the tied embedding matrix
    # a stated file (models.yaml): the bytes of the matrices this CPU repacks, and its CPU-only mapped span
    stated_repack = sum(b for kind, b in (arch.repack_bytes or ()) if kind in cfg.repacked)
    stated_mapped = dict(arch.mapped_bytes or ()).get(cfg.repack_rule)
    if arch.tensors:
        mapped = []
        where = on_gpu_tensors(arch, cfg)
        for t in arch.tensors:
            on_gpu = where[t.name]
            if on_gpu:
                gpu += t.n_bytes
                est.layer_gpu[t.layer] = est.layer_gpu.get(t.layer, 0.0) + t.n_bytes / MIB
                if t.expert:
                    est.experts_gpu += t.n_bytes / MIB
            elif _repacks(t, cfg.repacked):
                repack += t.n_bytes
            else:
                mapped.append(t)
            if not on_gpu and t.expert:
                est.experts_host += t.n_bytes / MIB
        host = mapped_span(mapped)
    elif not cfg.on_gpu and stated_mapped is not None:
        host, repack = stated_mapped, stated_repack  # a stated file's CPU-only load, as its GGUF gives it
    else:  # a stated model: its layers' bytes spread evenly (embeddings and output apart when they are known)
        per = arch.layer_bytes()
        on = float(sum(b for il, b in enumerate(per) if il >= first_gpu)) + (arch.output_bytes if output_gpu else 0)
        if arch.embd_bytes is None and n > arch.n_layer_all:
            on = arch.weight_bytes  # every byte counted on the GPU: the embeddings' share is not known
        gpu += on
        host = arch.weight_bytes - on
        repack = stated_repack * (host / arch.weight_bytes if arch.weight_bytes else 0)
        if cfg.n_cpu_moe:
            est.notes.append("--n-cpu-moe is not modelled for a model known only by its stated size")
    est.model = {"gpu": gpu / MIB, "host": (host + repack) / MIB} if cfg.on_gpu else {"host": (host + repack) / MIB}


def on_gpu_tensors(arch: Arch, cfg: MemConfig) -> dict[str, bool]:
    """Tensor name -> whether llama.cpp puts it on a GPU for this config: -ngl's layer rule (the last N layers and
    the output layer; the token embeddings never), --n-cpu-moe's first K layers' experts, then the first -ot
    pattern that occurs in the name."""
    n = arch.n_layer_all + 1 if cfg.n_gpu_layers is None else cfg.n_gpu_layers
    n = n if cfg.on_gpu else 0
    first_gpu = max(arch.n_layer_all + 1 - n, 0)
    forced_to: dict[str, str] = {}
    for pattern, target in cfg.overrides:  # the first pattern a name matches wins
        for name in _matching(arch, pattern):
            forced_to.setdefault(name, target)
    out = {}
    for t in arch.tensors:
        on_gpu = (n >= 1 if t.layer is None else t.layer >= first_gpu) and t.name != "token_embd.weight"
        if on_gpu and t.expert and t.layer is not None and t.layer < cfg.n_cpu_moe:
            on_gpu = False
        forced = forced_to.get(t.name)
        if forced is not None and t.name != "token_embd.weight" and cfg.on_gpu:
            on_gpu = forced != "CPU"
        out[t.name] = on_gpu
    return out


@lru_cache(maxsize=8192)  # llama.cpp's fit tries the same patterns on the same model many times
def _matching(arch: Arch, pattern: str) -> frozenset[str]:
    """The names of the model's tensors in which the -ot pattern occurs (std::regex_search)."""
    rx = re.compile(pattern)
    return frozenset(t.name for t in arch.tensors if rx.search(t.name))


def _repacks(t: Tensor, types: frozenset[str]) -> bool:
    return t.type in types and t.rows % 8 == 0 and t.layer is not None


def mapped_span(tensors: list[Tensor]) -> float:
    """The CPU_Mapped buffer of these host tensors: llama.cpp maps each file from the first of them to the end of the
    last (whatever lies between: padding, and tensors on a GPU or repacked), so a repacked or offloaded tensor at
    either end shortens it and one in the middle does not. Without offsets: their bytes."""
    if any(t.offset < 0 for t in tensors):
        return float(sum(t.n_bytes for t in tensors))
    spans: dict[int, tuple[int, int]] = {}
    for t in tensors:
        lo, hi = spans.get(t.shard, (t.offset, t.offset + t.n_bytes))
        spans[t.shard] = (min(lo, t.offset), max(hi, t.offset + t.n_bytes))
    return float(sum(hi - lo for lo, hi in spans.values()))


def file_bytes(arch: Arch) -> FileBytes:
    """A GGUF's byte counts as models.yaml keeps them for a file no build has at hand (its `files` entries)."""
    repack: dict[str, int] = {}
    for t in arch.tensors:
        if _repacks(t, REPACKED_AVX512):
            repack[t.type] = repack.get(t.type, 0) + t.n_bytes
    mapped = {rule: int(mapped_span([t for t in arch.tensors if not _repacks(t, types)]))
              for rule, types in REPACK_RULES.items()}
    return FileBytes(arch.weight_bytes, arch.embd_bytes or 0, arch.output_bytes, dict(sorted(repack.items())),
                     mapped)


def check_kv_types(arch: Arch, type_k: str, type_v: str) -> None:
    """llama.cpp refuses a quantized cache whose block does not divide the head size (no context is created)."""
    for what, name, head in (("K", type_k, arch.head_k), ("V", type_v, arch.head_v)):
        block = type_block(name)
        if head and head % block:
            raise CollectorError(f"{what} cache type {name} with block size {block} does not divide the head size "
                                 f"{head} of {arch.name}; llama.cpp refuses it, choose another -ct{what.lower()}")


def _kv(arch: Arch, cfg: MemConfig, est: MemEstimate) -> None:
    check_kv_types(arch, cfg.type_k, cfg.type_v)
    n_ctx = resolve_ctx(arch, cfg)
    streams = 1 if cfg.unified or cfg.n_seq == 1 else cfg.n_seq
    cells = n_ctx if streams == 1 else pad(n_ctx // streams)
    est.n_ctx = cells * streams
    swa_cells = pad(min(cells, (arch.n_swa or 0) * (cfg.n_seq if cfg.unified else 1) + cfg.ubatch))
    full, swa = _kv_layers(arch, cfg.type_k, cfg.type_v)
    if arch.n_swa and not arch.swa_pattern_known:
        est.notes.append(f"the sliding-window pattern of {arch.arch} is not known here: every layer is counted as "
                         "full attention (more KV memory than llama.cpp allocates)")
    n_gpu = arch.n_layer_all + 1 if cfg.n_gpu_layers is None else cfg.n_gpu_layers
    first_gpu = max(arch.n_layer_all + 1 - (n_gpu if cfg.on_gpu else 0), 0)
    gpu = host = 0.0
    for layers, n_cells, is_swa in ((full, cells, False), (swa, swa_cells, True)):
        if not layers:
            continue
        scale = streams * n_cells / MIB
        mib = sum(b for _, b in layers) * scale
        est.caches.append(Cache(is_swa, False, n_cells, len(layers), mib))
        on_gpu = sum(b for il, b in layers if il >= first_gpu) * scale
        gpu, host = gpu + on_gpu, host + mib - on_gpu
        if cfg.on_gpu:
            for il, b in layers:
                if il >= first_gpu:
                    est.layer_gpu[il] = est.layer_gpu.get(il, 0.0) + b * scale
    if arch.recurrent_layers:
        rs_seqs = max(1, cfg.n_seq)
        rec = sorted(arch.recurrent_layers)
        # llama-memory-recurrent.cpp: (1 + n_rs_seq) rows of conv and SSM state per slot and recurrent layer
        mib = rs_seqs * (1 + cfg.draft_n_max) * len(rec) * (arch.n_embd_r + arch.n_embd_s) * 4 / MIB
        est.caches.append(Cache(False, True, rs_seqs, len(rec), mib))
        share = sum(1 for il in rec if il >= first_gpu) / len(rec)
        gpu, host = gpu + mib * share, host + mib * (1 - share)
        est.recurrent = {"gpu": mib * share, "host": mib * (1 - share)} if cfg.on_gpu else {"host": mib}
        for il in rec:
            if il >= first_gpu and cfg.on_gpu:
                est.layer_gpu[il] = est.layer_gpu.get(il, 0.0) + mib / len(rec)
    est.kv = {"gpu": gpu, "host": host} if cfg.on_gpu else {"host": host}


@lru_cache(maxsize=512)
def _kv_layers(arch: Arch, type_k: str, type_v: str) -> tuple[tuple[tuple[int, float], ...], ...]:
    """(layer, bytes per cache cell) of the full-attention layers and of the sliding-window ones."""
    bk, bv = type_bytes(type_k), type_bytes(type_v)
    per = [(il, arch.n_head_kv[il] * (arch.head_k * bk + arch.head_v * bv)) for il in arch.kv_layers()]
    return (tuple((il, b) for il, b in per if il not in arch.swa_layers),
            tuple((il, b) for il, b in per if il in arch.swa_layers))


def _compute(arch: Arch, cfg: MemConfig, est: MemEstimate) -> None:
    ub = min(cfg.ubatch, cfg.batch, est.n_ctx or cfg.ubatch)
    base = ub * (COMPUTE_EMBD_BYTES * arch.n_embd + COMPUTE_FF_BYTES * arch.n_ff)
    attn = [c for c in est.caches if not c.recurrent]
    mask = sum(c.cells * ub * (2 if cfg.flash_attn else 4) for c in attn)
    kq = 0 if cfg.flash_attn or not attn else max(c.cells for c in attn) * ub * arch.n_head * 4
    # the output stage: a row of logits per slot next to the last hidden states (peaks for a large vocabulary)
    rows = ub if cfg.ubatch_outputs else min(ub, max(1, cfg.n_seq) * (1 + cfg.draft_n_max))
    out = rows * arch.n_vocab * 4 + ub * arch.n_embd * 12
    # without flash attention the KQ matrix peaks in the attention stage, beside the embedding-width tensors, not
    # beside the feed-forward ones (a later stage)
    attention = mask + kq + ub * COMPUTE_EMBD_BYTES * arch.n_embd
    n_gpu = arch.n_layer_all + 1 if cfg.n_gpu_layers is None else cfg.n_gpu_layers
    gpu = cfg.on_gpu and n_gpu > 0
    # with the layers on a GPU, a ubatch of at least OP_OFFLOAD_MIN_BATCH tokens runs the ops of weights left in system
    # RAM there too, copying the weight over first: the copy lives in the layers' stage, beside the feed-forward
    # tensors, not in the attention or output stages (Vulkan, real loads of the MoE test model: +1 expert tensor with
    # any --n-cpu-moe, -ot exps=CPU or -ngl below the layer count; CUDA logs with -ot: 774 MiB logged, 758
    # estimated, for Qwen3-235B-A22B Q6_K at 16,384 cells, and 1,080 beside 1,076 where the KQ matrix peaks)
    moved = _weights(arch, replace(cfg, ctx=None)).largest_moved if (
        gpu and ub >= OP_OFFLOAD_MIN_BATCH and arch.tensors) else 0
    mib = max(base + mask + moved, attention, out) / MIB
    if gpu:
        # the layers' graph runs where the layers are; the host keeps the graph's inputs: the token rows and each
        # cache kind's attention mask, in f32
        host = ub * arch.n_embd * 4 + sum(c.cells * ub * 4 for c in attn)
        est.compute = {"gpu": mib, "host": host / MIB}
    else:
        est.compute = {"host": mib}
    est.output_mib = max(1, cfg.n_seq) * arch.n_vocab * 4 / MIB


def estimate_memory(arch: Arch, cfg: MemConfig) -> MemEstimate:
    """Model, KV (+ recurrent state) and compute buffers in MiB, on the GPU(s) and the host."""
    est = MemEstimate()
    _model(arch, cfg, est)
    _kv(arch, cfg, est)
    _compute(arch, cfg, est)
    return est


def largest_context(arch: Arch, cfg: MemConfig, budget_mib: float, where: str = "gpu") -> int | None:
    """The largest context (a multiple of 256, at most the training context) whose buffers on `where` fit
    `budget_mib`; None when not even 256 cells fit. Memory grows with the context, so bisection finds it."""
    top = pad(arch.ctx_train or 131072)

    def fits(ctx: int) -> bool:
        return estimate_memory(arch, _with_ctx(cfg, ctx)).total(where) <= budget_mib

    if not fits(PAD):
        return None
    if fits(top):
        return top
    lo, hi = PAD, top  # fits(lo), not fits(hi)
    while hi - lo > PAD:
        mid = pad((lo + hi) // 2)
        mid = mid if mid < hi else hi - PAD
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _with_ctx(cfg: MemConfig, ctx: int) -> MemConfig:
    return replace(cfg, ctx=ctx)
