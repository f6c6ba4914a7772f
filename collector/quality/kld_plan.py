"""The `kld:` section of a plan: which models are scored against which base, on what corpus.

    kld:
      base: path-or-pypi-ref        # F16/BF16/Q8_0 model; or omit it and give ladder (its base_type is the base)
      quants: [path-or-pypi-ref]    # quantized files of the same model (optional with a ladder)
      ladder:                       # optional: build quants with llama-quantize
        source: path-or-pypi-ref
        base_type: F16              # made from source with --allow-requantize when source is quantized
        types: [Q8_0, Q4_K_M, IQ2_XS]
        imatrix_chunks: 16          # chunks of ctx_size tokens for llama-imatrix (IQ1/IQ2/IQ3_XXS/XS, Q2_K_S)
      corpus: builtin               # or a text-file path (relative to the plan file)
      chunks: 16                    # or one count per ctx_size: [16, 4]
      kv_cache: [[q8_0, q8_0], q4_0]  # KV-cache types scored on the base; a single name means K and V
      keep_logits: true             # keep the base logits in the cache after the run
      timeout_s: 3600               # per llama-perplexity pass
      # llama.cpp settings, checked by the flag registry (collector/records/flags.py) like a speed plan's:
      ctx_size: 512                 # the chunk size; default 512. A list ([512, 4096]) scores the KV-cache types at
                                    # each size (base logits once per size); quants are scored at the first size
      batch_size: 2048              # default 2048; < ctx_size or a multiple of it
      threads: 2
      n_gpu_layers: 99
      flash_attn: on                # default on; a quantized V cache needs it
      ubatch_size, n_cpu_moe, tensor_split, extra_args   # as in a speed plan
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from collector.base.errors import CollectorError, short_repr
from collector.base.progress import Observer
from collector.base.yamlcheck import Section
from collector.corpus import BUILTIN_CORPUS
from collector.llama.binaries import LlamaTools
from collector.models.ref import is_pypi_ref, resolve_model
from collector.quality.quantize import BASE_TYPES, Ladder, build_ladder, check_type, ladder_files
from collector.records.flags import CACHE_TYPES, FLAGS, UNQUANTIZED_KV, LlamaConfig, check_value

# llama.cpp settings a KLD pass takes (the registry checks them); parallel means nothing to llama-perplexity
CONFIG_KEYS = tuple(k for k, f in FLAGS.items() if f.perplexity and k not in ("cache_type_k", "cache_type_v"))
KLD_KEYS = ("base", "quants", "ladder", "corpus", "chunks", "kv_cache", "keep_logits", "timeout_s", *CONFIG_KEYS,
            "extra_args")
LADDER_KEYS = ("source", "base_type", "types", "imatrix_chunks")
DEFAULTS: dict[str, Any] = {"ctx_size": 512, "batch_size": 2048, "flash_attn": "on"}


@dataclass(frozen=True)
class LadderSpec:
    source: str  # plan reference (path or pypi:)
    base_type: str
    types: tuple[str, ...]
    imatrix_chunks: int


@dataclass(frozen=True)
class KldPlan:
    """A validated kld section; model references are resolved at run time (pypi refs download)."""

    base: str | None
    quants: tuple[str, ...]
    ladder: LadderSpec | None
    corpus_name: str
    corpus_path: Path
    config: LlamaConfig = field(default_factory=lambda: LlamaConfig(**DEFAULTS))  # ctx_size: the chunk size
    chunks: int = 16
    kv_cache: tuple[tuple[str, str], ...] = ()
    keep_logits: bool = True
    timeout_s: float | None = None
    plan_dir: Path = Path(".")
    where: str = ""  # file:line of the section, for run-time errors
    ctx_sizes: tuple[int, ...] = ()  # every context size asked for (the first is config.ctx_size); () = just it
    chunk_counts: tuple[int, ...] = ()  # chunks per context size, when they differ

    @property
    def ctx_size(self) -> int:
        return int(self.config.ctx_size or DEFAULTS["ctx_size"])

    @property
    def sizes(self) -> tuple[int, ...]:
        """The context sizes to score at, the first (quants and KV types) then the others (KV types only)."""
        return self.ctx_sizes or (self.ctx_size,)

    def at(self, ctx_size: int) -> KldPlan:
        """This section at one of its context sizes, with that size's chunk count."""
        i = self.sizes.index(ctx_size)
        chunks = self.chunk_counts[i] if self.chunk_counts else self.chunks
        return replace(self, config=self.config.model_copy(update={"ctx_size": ctx_size}), chunks=chunks,
                       ctx_sizes=(), chunk_counts=())

    @property
    def batch_size(self) -> int:
        return int(self.config.batch_size or DEFAULTS["batch_size"])

    def resolve(self, ref: str) -> Path:
        return resolve_model(ref, self.plan_dir)

    def _ladder_args(self) -> dict[str, Any]:
        assert self.ladder is not None
        return {"base_type": self.ladder.base_type, "corpus": self.corpus_path, "imatrix_ctx": self.ctx_size,
                "imatrix_chunks": self.ladder.imatrix_chunks}

    def ladder_quants(self) -> list[tuple[str, Path]]:
        """(type, file) of every quant the ladder builds, where it builds them; nothing is built (the source is
        fetched when it is a pypi: reference)."""
        if self.ladder is None:
            return []
        return ladder_files(self.resolve(self.ladder.source), list(self.ladder.types), **self._ladder_args())[2]

    def build_ladder(self, tools: LlamaTools, observer: Observer | None = None) -> Ladder:
        """The ladder's files, built (or reused from the cache) with llama-quantize."""
        assert self.ladder is not None
        return build_ladder(tools, self.resolve(self.ladder.source), list(self.ladder.types),
                            threads=self.config.threads, observer=observer, **self._ladder_args())

    def ladder_ref(self, qtype: str) -> str:
        """How a record names a ladder file's origin: the source's reference and the type made from it."""
        assert self.ladder is not None
        return f"{self.ladder.source} -> {qtype}"


def _positive(v: int) -> str | None:
    return None if v > 0 else "must be a positive integer"


def _model_ref(sec: Section, key: str, value: object, where: str, plan_dir: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise sec.fail(key, f"expected a model path or pypi: reference, got {value!r}")
    if not is_pypi_ref(value) and not resolve_model(value, plan_dir).is_file():
        raise CollectorError(f"{where}: {sec.keypath(key)}: model file {value} not found "
                             f"(relative paths start at {plan_dir}); check the path")
    return value


def _ladder(sec: Section, plan_dir: Path) -> LadderSpec:
    sec.check_keys(LADDER_KEYS)
    source = _model_ref(sec, "source", sec.get("source", str), sec.where("source"), plan_dir)
    base_type = sec.get("base_type", str, "F16",
                        check=lambda v: None if v.upper() in BASE_TYPES else f"must be one of {', '.join(BASE_TYPES)}")
    types = []
    for i, t in enumerate(sec.seq("types")):
        if not isinstance(t, str) or check_type(t):
                raise CollectorError(f"{sec.item_where('types', i)}: {sec.keypath('types')}: "
                                 f"{check_type(str(t)) or 'expected a type name'}")
        types.append(t.upper())
    return LadderSpec(source, base_type.upper(), tuple(types), sec.get("imatrix_chunks", int, 16, check=_positive))


def _kv_pairs(sec: Section) -> tuple[tuple[str, str], ...]:
    pairs = []
    for i, item in enumerate(sec.seq("kv_cache", [])):
        pair = [item, item] if isinstance(item, str) else list(item) if isinstance(item, list) else None
        if pair is None or len(pair) != 2 or any(p not in CACHE_TYPES for p in pair):
            raise CollectorError(f"{sec.item_where('kv_cache', i)}: {sec.keypath('kv_cache')}: {short_repr(item)} is "
                                 f"not a KV-cache type or a [K, V] pair of them; types: {', '.join(CACHE_TYPES)}")
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


def parse_kld(section: Section, plan_dir: Path) -> KldPlan:
    """Validate a plan's `kld:` section; every error names file:line and the key."""
    section.check_keys(KLD_KEYS)
    ladder = _ladder(section.section("ladder"), plan_dir) if section.has("ladder") else None
    base = section.get("base", str, None)
    if base is not None:
        base = _model_ref(section, "base", base, section.where("base"), plan_dir)
    if base is None and ladder is None:
        raise section.fail(None, "needs `base:` (the reference model) or `ladder:` (whose base_type is the base)")
    if base is not None and ladder is not None:
        raise section.fail("base", "give either base or ladder, not both: the ladder's base_type is the base")
    quants = tuple(_model_ref(section, "quants", q, section.item_where("quants", i), plan_dir)
                   for i, q in enumerate(section.seq("quants", [])))
    kv_cache = _kv_pairs(section)
    if not quants and not kv_cache and not (ladder and ladder.types):
        raise section.fail(None, "has nothing to score: give quants, ladder.types or kv_cache")

    corpus = section.get("corpus", str, "builtin")
    if corpus == "builtin":
        corpus_path = BUILTIN_CORPUS
    else:
        corpus_path = Path(corpus).expanduser()
        corpus_path = corpus_path if corpus_path.is_absolute() else plan_dir / corpus_path
        if not corpus_path.is_file():
            raise section.fail("corpus", f"corpus file {corpus} not found (relative paths start at {plan_dir}); "
                                         "give a UTF-8 text file or `builtin`")
    values: dict[str, Any] = dict(DEFAULTS)
    sizes = _int_list(section, "ctx_size", lambda v: check_value("ctx_size", v))
    for key in (*CONFIG_KEYS, "extra_args"):
        if section.has(key) and key != "ctx_size":
            values[key] = section.checked(key, lambda v: check_value(key, v))  # noqa: B023 (called at once)
    if sizes:
        values["ctx_size"] = sizes[0]
    config = LlamaConfig(**values)
    batch_size = int(config.batch_size or 2048)
    for i, ctx_size in enumerate(sizes or (int(config.ctx_size or 512),)):
        where = section.item_where("ctx_size", i) if len(sizes) > 1 else section.where("ctx_size")
        if ctx_size < 8:
            raise CollectorError(f"{where}: {section.keypath('ctx_size')}: must be at least 8, got {ctx_size}")
        if not (batch_size < ctx_size or batch_size % ctx_size == 0):
            # llama-perplexity asserts this (perplexity.cpp:505) and aborts
            raise section.fail("batch_size", f"must be smaller than ctx_size ({ctx_size}) or a multiple of it")
    if list(sizes) != sorted(sizes):
        order = ", ".join(map(str, sorted(sizes)))
        raise section.fail("ctx_size", f"list the sizes from smallest to largest ({order}): the quants are scored at "
                                       "the first")
    if len(sizes) > 1 and not kv_cache:
        raise section.fail("ctx_size", "several context sizes score the KV-cache types at each (quants are scored at "
                                       "the first); add kv_cache, or give one ctx_size")
    chunk_counts = _int_list(section, "chunks", lambda v: (v, None) if isinstance(v, int) and not isinstance(v, bool)
                             and v > 0 else (None, "must be a positive integer"))
    if len(chunk_counts) > 1 and len(chunk_counts) != max(len(sizes), 1):
        raise section.fail("chunks", f"gives {len(chunk_counts)} counts for {max(len(sizes), 1)} ctx_size(s); give one "
                                     "count, or one per ctx_size")
    if config.flash_attn == "off" and any(v not in UNQUANTIZED_KV for _, v in kv_cache):
        raise section.fail("kv_cache", "a quantized V cache needs flash attention; set flash_attn: on (or auto)")
    return KldPlan(
        base=base, quants=quants, ladder=ladder,
        corpus_name=corpus_path.name.removesuffix(".txt"), corpus_path=corpus_path.resolve(),
        config=config, chunks=chunk_counts[0] if chunk_counts else 16,
        kv_cache=kv_cache, keep_logits=section.get("keep_logits", bool, True),
        timeout_s=section.get("timeout_s", (int, float), None, check=lambda v: None if v > 0 else "must be > 0"),
        plan_dir=plan_dir, where=section.where(), ctx_sizes=sizes if len(sizes) > 1 else (),
        chunk_counts=chunk_counts if len(chunk_counts) > 1 else (),
    )


def _int_list(section: Section, key: str, check: Any) -> tuple[int, ...]:
    """A number or a list of distinct numbers, each through `check` (value -> (value, problem)); () if absent."""
    if not section.has(key):
        return ()
    out: list[int] = []
    for i, raw in enumerate(section.seq(key)):
        value, problem = check(raw)
        where = section.item_where(key, i) if isinstance(section.data[key], list) else section.where(key)
        if problem:
            raise CollectorError(f"{where}: {section.keypath(key)}: {problem}")
        if key == "ctx_size" and value in out:
            raise CollectorError(f"{where}: {section.keypath(key)}: {value} is listed twice")
        out.append(value)
    return tuple(out)
