"""Facts about a GGUF model file: identity, quantization, parameter counts, weight bytes per token.

Read with the `gguf` package (memory-mapped, so a 30 GB file costs no RAM). Split models
(`name-00001-of-00003.gguf`) are counted over all their shards.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType

from collector.base.cache import sha256_files
from collector.base.errors import CollectorError
from collector.records.schema import ModelInfo

# general.file_type -> (short quant label, llama.cpp's ftype name); from src/llama-model-loader.cpp llama_ftype_name
FILE_TYPES: dict[int, tuple[str, str]] = {
    0: ("F32", "all F32"), 1: ("F16", "F16"), 2: ("Q4_0", "Q4_0"), 3: ("Q4_1", "Q4_1"), 7: ("Q8_0", "Q8_0"),
    8: ("Q5_0", "Q5_0"), 9: ("Q5_1", "Q5_1"), 10: ("Q2_K", "Q2_K - Medium"), 11: ("Q3_K_S", "Q3_K - Small"),
    12: ("Q3_K_M", "Q3_K - Medium"), 13: ("Q3_K_L", "Q3_K - Large"), 14: ("Q4_K_S", "Q4_K - Small"),
    15: ("Q4_K_M", "Q4_K - Medium"), 16: ("Q5_K_S", "Q5_K - Small"), 17: ("Q5_K_M", "Q5_K - Medium"),
    18: ("Q6_K", "Q6_K"), 19: ("IQ2_XXS", "IQ2_XXS - 2.0625 bpw"), 20: ("IQ2_XS", "IQ2_XS - 2.3125 bpw"),
    21: ("Q2_K_S", "Q2_K - Small"), 22: ("IQ3_XS", "IQ3_XS - 3.3 bpw"), 23: ("IQ3_XXS", "IQ3_XXS - 3.0625 bpw"),
    24: ("IQ1_S", "IQ1_S - 1.5625 bpw"), 25: ("IQ4_NL", "IQ4_NL - 4.5 bpw"), 26: ("IQ3_S", "IQ3_S - 3.4375 bpw"),
    27: ("IQ3_M", "IQ3_S mix - 3.66 bpw"), 28: ("IQ2_S", "IQ2_S - 2.5 bpw"), 29: ("IQ2_M", "IQ2_M - 2.7 bpw"),
    30: ("IQ4_XS", "IQ4_XS - 4.25 bpw"), 31: ("IQ1_M", "IQ1_M - 1.75 bpw"), 32: ("BF16", "BF16"),
    36: ("TQ1_0", "TQ1_0 - 1.69 bpw ternary"), 37: ("TQ2_0", "TQ2_0 - 2.06 bpw ternary"),
    38: ("MXFP4_MOE", "MXFP4 MoE"), 39: ("NVFP4", "NVFP4"), 40: ("Q1_0", "Q1_0"), 41: ("Q2_0", "Q2_0"),
}
FTYPE_GUESSED = 1024
_GGML_TYPES = {t.name for t in GGMLQuantizationType}
_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
_EXPS_RE = re.compile(r"^blk\.(?P<layer>\d+)\.ffn_[a-z_]+_exps\.(weight|bias)$")
_BLK_RE = re.compile(r"^blk\.(?P<layer>\d+)\.")
_FACTS: dict[tuple[tuple[str, int, int], ...], ModelInfo] = {}
_PRINTED: dict[tuple[tuple[str, int, int], ...], tuple[str, ...]] = {}


def model_facts(path: Path) -> ModelInfo:
    """Read the facts of a GGUF model (all shards of a split model).

    Units and conventions:
    - size_bytes: bytes on disk of all shards together; sha256 over the shards' bytes in order.
    - params_total: Σ n_elements of every tensor (= llama.cpp's `model params`).
    - params_active: parameters used per token: total − Σ_expert-tensors n_el·(1 − k/E), with k the used
      experts of that layer and E the tensor's last dimension; NextN/MTP layers (unused in normal decoding)
      are left out too. Equals params_total for a dense model.
    - bytes_per_token: weight bytes read per generated token: Σ n_bytes of all tensors, expert tensors weighted
      by k/E, without NextN layers and without token_embd (a row lookup, not a matmul) — unless the model has no
      output.weight, in which case the tied embedding is the output matrix and is read in full.
    - bits_per_weight: 8 · size_bytes / params_total (what the file really spends per weight, whatever its name).
    - tensor_types: weights (elements of tensors with 2+ dimensions) per ggml type, e.g. {"Q5_0": 9e7, "Q4_K": ...}.
    - quant_note: set when under half of the weights outside the embeddings and the output layer are of the type
      the file's name promises; llama.cpp falls back (e.g. from Q4_K to Q5_0) when a tensor's rows do not fit
      the type's block size (SmolLM2's 576-wide tensors and 256-wide K-quant blocks), so such a "Q4_K_M" is
      mostly Q5_0 and can be closer to the base than a "Q5_K_M".
    Raises CollectorError naming the file if it is missing, unreadable or not GGUF. Results are kept in memory
    per (path, size, mtime) because reading a GGUF's tokenizer arrays takes seconds.
    """
    shards = gguf_shards(Path(path))
    key = _key(shards)
    if key not in _FACTS:
        readers = [_reader(p) for p in shards]
        _FACTS[key] = _read_facts(shards, readers)
        _PRINTED[key] = _line_breaking_strings(readers[0])
    return _FACTS[key].model_copy(deep=True)


def printed_strings(path: Path) -> tuple[str, ...]:
    """The GGUF's text values that hold a newline (a general.name, a token's text, the chat template) and the file's
    path: llama.cpp prints such values verbatim in its log, where collector.llama.logtext keeps them inside the line
    they were printed on. Read with the model's facts (once per file)."""
    shards = gguf_shards(Path(path))
    key = _key(shards)
    if key not in _PRINTED:
        model_facts(path)
    return (*_PRINTED[key], str(path), str(Path(path).resolve()))


def _key(shards: list[Path]) -> tuple[tuple[str, int, int], ...]:
    return tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in shards)


def _line_breaking_strings(reader: GGUFReader) -> tuple[str, ...]:
    """Every string value and string-array item of the GGUF's metadata that holds a newline (bytes checked first:
    a vocabulary has 10^5 tokens, few or none with a newline)."""
    out = []
    for field in reader.fields.values():
        if not field.types or field.types[-1] != GGUFValueType.STRING:
            continue
        for i in field.data:
            raw = bytes(field.parts[i])
            if b"\n" in raw:
                out.append(raw.decode("utf-8", errors="replace"))
    return tuple(out)


def _read_facts(shards: list[Path], readers: list[GGUFReader]) -> ModelInfo:
    head = readers[0]
    arch = _field(head, "general.architecture")

    def hp(key: str) -> Any:
        return _field(head, f"{arch}.{key}") if arch else None

    block_count = hp("block_count")
    nextn = hp("nextn_predict_layers") or 0
    n_layers = block_count - nextn if isinstance(block_count, int) else None
    n_experts = hp("expert_count") or None
    used = hp("expert_used_count")
    ftype = _field(head, "general.file_type")
    quant, file_type = _quant(ftype)
    tokens = head.get_field("tokenizer.ggml.tokens")

    tensors = [t for r in readers for t in r.tensors]
    types: dict[str, int] = {}
    for t in tensors:
        if len(t.shape) >= 2:
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + int(t.n_elements)
    if used is None and any(_EXPS_RE.match(t.name) for t in tensors):
        raise CollectorError(f"{shards[0]}: has expert tensors but no {arch}.expert_used_count; the GGUF is incomplete")
    names = {t.name for t in tensors}
    total = active = bytes_tok = 0
    for t in tensors:
        n_el, n_bytes = int(t.n_elements), int(t.n_bytes)
        total += n_el
        layer = _BLK_RE.match(t.name)
        if layer and n_layers is not None and int(layer["layer"]) >= n_layers:
            continue  # a NextN/MTP layer
        share = 1.0
        if _EXPS_RE.match(t.name):
            share = _used_experts(used, int(layer["layer"]) if layer else 0) / int(t.shape[-1])
        active += round(n_el * share)
        if t.name == "token_embd.weight" and "output.weight" in names:
            continue
        bytes_tok += round(n_bytes * share)

    size = sum(p.stat().st_size for p in shards)
    is_swa = bool(hp("attention.sliding_window"))
    return ModelInfo(
        name=_field(head, "general.name"), basename=_field(head, "general.basename"),
        finetune=_field(head, "general.finetune"), arch=arch, size_label=_field(head, "general.size_label"),
        quant=quant, file_type=file_type, file_name=shards[0].name, size_bytes=size, n_files=len(shards),
        moe=bool(n_experts), n_swa=hp("attention.sliding_window") if is_swa else None,
        tensor_types=dict(sorted(types.items(), key=lambda kv: -kv[1])),
        quant_note=fallback_note(quant, tensors),
        sha256=sha256_files(shards), params_total=total, params_active=active, bytes_per_token=bytes_tok,
        n_layers=n_layers, n_experts=n_experts, n_experts_used=_max_used(used) if n_experts else None,
        n_vocab=len(tokens.data) if tokens is not None else None, ctx_train=hp("context_length"),
        bits_per_weight=round(8 * size / total, 4) if total else None,
    )


def nominal_type(quant: str | None) -> str | None:
    """The ggml tensor type a file type's name promises for most weights: Q4_K_M -> Q4_K, IQ3_M -> IQ3_S."""
    if not quant:
        return None
    q = quant.upper()
    if "_K" in q:
        return re.sub(r"_K_(S|M|L|XL)$", "_K", q)
    return {"IQ3_M": "IQ3_S", "MXFP4_MOE": "MXFP4"}.get(q, q)


def fallback_note(quant: str | None, tensors: list[Any]) -> str | None:
    """A note when most weights (embeddings and output aside) are not of the type the file's name promises."""
    want = nominal_type(quant)
    weights: dict[str, int] = {}
    for t in tensors:
        if len(t.shape) >= 2 and t.name not in ("token_embd.weight", "output.weight"):
            weights[t.tensor_type.name] = weights.get(t.tensor_type.name, 0) + int(t.n_elements)
    total = sum(weights.values())
    if not want or not total or want not in _GGML_TYPES:
        return None
    share = weights.get(want, 0) / total
    if share >= 0.5:
        return None
    top, n = max(weights.items(), key=lambda kv: kv[1])
    return (f"only {share:.0%} of the weights are {want}; {n / total:.0%} are {top} (llama.cpp fell back: the "
            f"tensors' rows do not fit {want}'s block size)")


def gguf_shards(path: Path) -> list[Path]:
    """All shards of a split model in order (just [path] for a single file); CollectorError if one is missing."""
    if not path.is_file():
        raise CollectorError(f"{path}: model file not found; check the path")
    m = _SPLIT_RE.match(path.name)
    if not m:
        return [path]
    count = int(m["count"])
    shards = [path.with_name(f"{m['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    for shard in shards:
        if not shard.is_file():
            raise CollectorError(f"{shard}: shard of split model {path.name} is missing; download all {count} files")
    return shards


def check_gguf_magic(path: Path) -> None:
    """CollectorError unless the file starts with the GGUF magic (cheap: reads 4 bytes)."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise CollectorError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if magic != b"GGUF":
        raise CollectorError(f"{path} is not a GGUF file (magic {magic!r}); give a .gguf model")


def _reader(path: Path) -> GGUFReader:
    check_gguf_magic(path)
    try:
        return GGUFReader(path)
    except Exception as exc:  # gguf raises ValueError/IndexError/... on truncated or corrupt files
        raise CollectorError(f"{path}: unreadable GGUF ({type(exc).__name__}: {exc}); re-download the file") from None


def _field(reader: GGUFReader, key: str) -> Any:
    field = reader.get_field(key)
    if field is None:
        return None
    value = field.contents()
    return int(value) if hasattr(value, "__index__") and not isinstance(value, (bool, int)) else value


def _quant(ftype: Any) -> tuple[str | None, str | None]:
    if not isinstance(ftype, int):
        return None, None
    short, name = FILE_TYPES.get(ftype & ~FTYPE_GUESSED, (f"FTYPE_{ftype & ~FTYPE_GUESSED}", "unknown, may not work"))
    return short, ("(guessed) " + name if ftype & FTYPE_GUESSED else name)


def _used_experts(used: Any, layer: int) -> int:
    if isinstance(used, list):  # per-layer expert_used_count
        return int(used[layer]) if layer < len(used) else int(used[-1])
    return int(used)


def _max_used(used: Any) -> int | None:
    if isinstance(used, list):
        return max(int(u) for u in used) if used else None
    return int(used) if used is not None else None
