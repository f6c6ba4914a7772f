"""Plans: a YAML file -> validated list of RunSpec (every combination of the matrix is one run).

Format (every key optional unless marked):

    name: demo-cpu                  # required
    description: ...
    models: [path-or-pypi-ref, ...] # required; local paths are relative to the plan file
    server: {threads: 2}            # fixed llama-server settings (single values, same keys as matrix)
    matrix: {ctx_size: [1024, 2048], cache_type_k: [f16, q8_0], extra_args: [[], [--no-warmup]]}
    speed: {prompt_suite, categories, depths, n_predict, repetitions, warmup, seed,
            load_timeout_s, request_timeout_s, llama_bench, concurrency, shared_prefix}
    also:                           # further runs of the same models, each group its own matrix:
      - server: {ctx_size: 4096}    #   its server keys override the top's, its speed keys the top's speed
        matrix: {...}               #   (a group without a matrix is one run)
        speed: {concurrency: [1, 2, 4]}
      - models: ladder              #   instead of the plan's models: every quant of the kld section's ladder
    kld: {...}                      # parsed by collector.quality.kld_plan.parse_kld

`speed.concurrency: [1, 2, 4]` measures each configuration once per value N: llama-server with N slots (-np N,
each slot holding ctx_size / N tokens) and N streaming clients at once; `parallel` is then not set by hand.

Runs are ordered models first, then the matrix keys in the order the file lists them (the last key
varies fastest), then the concurrency values; the `also` groups follow, in order. Everything is validated
before anything runs; errors name file:line and the key.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from collector.base.errors import CollectorError, short_repr
from collector.base.yamlcheck import Section, load_yaml_file
from collector.models.info import check_gguf_magic
from collector.models.ref import is_pypi_ref, resolve_model
from collector.prompts import load_suite
from collector.quality.kld_plan import KldPlan, parse_kld
from collector.records.flags import CONFIG_KEYS, MAX_TOKENS, LlamaConfig, check_value, quantized_v_without_fa
from collector.records.schema import PlanRef

PLAN_KEYS = ("name", "description", "models", "server", "matrix", "speed", "also", "kld")
GROUP_KEYS = ("models", "server", "matrix", "speed")
LADDER = "ladder"  # `also[i].models: ladder`: the group measures the kld ladder's quants (built before the runs)
DEPTH_SHARE = re.compile(r"\d+(\.\d+)?%")  # speed.depths entry: a share of the per-slot context
PLAN_MAX_BYTES = 256 << 10  # a plan is a few KiB; anything this big is a mistake, refused before parsing

@dataclass(frozen=True)
class SpeedSettings:
    """How each run is measured; timeouts in seconds, depths in tokens of filled context."""

    prompt_suite: str = "coding-v1"
    categories: tuple[str, ...] = ()
    depths: tuple[int | str, ...] = (0,)  # tokens, or "50%": a share of the server's per-slot context
    n_predict: int = 128
    repetitions: int = 3
    warmup: int = 1
    seed: int = 42
    load_timeout_s: float = 600.0
    request_timeout_s: float = 600.0
    llama_bench: bool = False
    concurrency: tuple[int, ...] = ()  # clients at once, each on its own slot (-np N); (): one client
    shared_prefix: bool = False  # concurrent streams get the same filler (else each its own text)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class RunSpec:
    """One run: a model and one combination of the matrix."""

    model_ref: str
    model_path: Path
    config: LlamaConfig
    speed: SpeedSettings
    plan: PlanRef
    varying: tuple[str, ...] = field(default=())  # matrix keys with more than one value, for label()
    concurrency: int = 1  # clients sending requests at once
    ladder: bool = False  # the model is a file of the kld ladder: built (llama-quantize) before the speed runs

    def label(self) -> str:
        """Model file name plus the matrix values that vary, e.g. `x.gguf ctx_size=1024 cache_type_k=q8_0`."""
        parts = [self.model_path.name]
        for key in self.varying:
            value = getattr(self.config, key)
            shown = (" ".join(value) or "[]") if key == "extra_args" else value
            parts.append(f"{key}={shown}")
        if len(self.speed.concurrency) > 1:
            parts.append(f"concurrency={self.concurrency}")
        return " ".join(parts)


@dataclass
class Plan:
    name: str
    file: Path
    runs: list[RunSpec]
    speed: SpeedSettings
    kld: KldPlan | None
    ref: PlanRef
    extra_args_where: str = ""  # file:line of extra_args (for errors found later, against the real binary)


def default_plan_path() -> Path:
    """The embedded demo plan (package data)."""
    return Path(__file__).resolve().parents[1] / "plans" / "demo-cpu.yaml"


def load_plan(path: Path, before_models: Callable[[], Any] | None = None) -> Plan:
    """Read and validate a plan file; raises CollectorError naming file:line and key on any problem.

    Every key and every local model file is checked first; `before_models()` then runs (the CLI finds llama.cpp
    there, so that neither a missing llama-server hides a plan error nor a missing build is said after a download),
    and only then are pypi: references fetched."""
    path = Path(path)
    top = Section(load_yaml_file(path, max_bytes=PLAN_MAX_BYTES), path, "")
    top.check_keys(PLAN_KEYS)
    name = top.get("name", str, check=lambda v: None if v.strip() else "must not be empty")
    top.get("description", str, default="")
    model_refs = _model_refs(top)
    local = {ref: _model(top, i, ref, path.parent) for i, ref in enumerate(model_refs) if not is_pypi_ref(ref)}

    server = top.section("server")
    server.check_keys(CONFIG_KEYS)
    fixed = {key: _value(server, key, server.data[key], server.where(key)) for key in server.data}
    speed = _speed(top.section("speed"), path.parent)
    kld = parse_kld(top.section("kld"), path.parent) if top.has("kld") else None

    ref = PlanRef(name=name, file=_display_path(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                  settings=speed.as_dict())
    counted = _count_runs(model_refs, [(top.section("matrix"), speed)], top)
    also = top.data.get("also") or []
    if not isinstance(also, list):
        raise top.fail("also", f"expected a list of groups (each with matrix:, server: or speed:), got "
                               f"{short_repr(also)}")
    sections = [Section(entry, path, f"also[{i}]", _line(also, i)) for i, entry in enumerate(also)]
    for section in sections:
        section.check_keys(GROUP_KEYS)
    gspeeds = [_speed(g.section("speed"), path.parent, base=speed) for g in sections]
    _count_runs(model_refs, [(g.section("matrix"), gs) for g, gs in zip(sections, gspeeds)], top, counted)
    on_ladder = [False]
    groups = [_group(models_of=[server], fixed=fixed, matrix=top.section("matrix"), speed=speed, ref=ref)]
    for section, gspeed in zip(sections, gspeeds):
        on_ladder.append(_ladder_group(section, kld))
        gserver = section.section("server")
        gserver.check_keys(CONFIG_KEYS)
        gfixed = {**fixed, **{key: _value(gserver, key, gserver.data[key], gserver.where(key))
                              for key in gserver.data}}  # the group's server keys override the top's
        gref = ref.model_copy(update={"settings": gspeed.as_dict()})
        groups.append(_group(models_of=[gserver, server], fixed=gfixed, matrix=section.section("matrix"),
                             speed=gspeed, ref=gref))
    where = next((sec.where("extra_args") for sec in (server, top.section("matrix")) if sec.has("extra_args")),
                 str(path))
    if before_models is not None:
        before_models()
    models = [(ref, local[ref] if ref in local else _model(top, i, ref, path.parent))
              for i, ref in enumerate(model_refs)]
    ladder = ([(kld.ladder_ref(t), file) for t, file in kld.ladder_quants()]
              if kld is not None and any(on_ladder) else [])
    runs = [RunSpec(ref_, mpath, config.model_copy(update={"parallel": n}) if g.speed.concurrency else config,
                    g.speed, g.ref, g.varying, n, ladder=lad)
            for g, lad in zip(groups, on_ladder) for ref_, mpath in (ladder if lad else models)
            for config in g.configs for n in (g.speed.concurrency or (1,))]
    return Plan(name=name, file=path, runs=runs, speed=speed, kld=kld, ref=ref, extra_args_where=where)


def _ladder_group(group: Section, kld: KldPlan | None) -> bool:
    """Whether an `also` group measures the kld ladder's quants (`models: ladder`) instead of the plan's models."""
    if not group.has("models"):
        return False
    if group.data["models"] != LADDER:
        raise group.fail("models", f"expected `{LADDER}` (every quant the kld section's ladder builds), got "
                                   f"{short_repr(group.data['models'])}; the plan's own models are the top's `models`")
    if kld is None or kld.ladder is None:
        raise group.fail("models", f"`{LADDER}` measures the quants of the kld section's ladder, but the plan has no "
                                   "kld.ladder; add one, or remove models")
    return True


@dataclass(frozen=True)
class _Group:
    """One group of a plan (the top, or an `also` entry): its configurations and how each is measured."""

    configs: list[LlamaConfig]
    speed: SpeedSettings
    ref: PlanRef
    varying: tuple[str, ...]


def _group(models_of: list[Section], fixed: dict[str, Any], matrix: Section, speed: SpeedSettings,
           ref: PlanRef) -> _Group:
    """Every matrix combination of one group, checked; `models_of`: the sections where its fixed keys were set,
    the group's own first."""
    servers = models_of
    matrix.check_keys(CONFIG_KEYS)
    axes: dict[str, list[Any]] = {}
    for key in matrix.data:
        if key in fixed and key != "extra_args":  # extra_args add up: server's first, then the matrix's
            raise matrix.fail(key, f"also set in server ({_holder(servers, key).where(key)}); set it in one "
                                   "place only")
        axes[key] = _axis(matrix, key)
    if speed.concurrency and ("parallel" in fixed or "parallel" in axes):
        sec = matrix if "parallel" in axes else _holder(servers, "parallel")
        raise sec.fail("parallel", "speed.concurrency sets the server slots (-np N for N clients); remove "
                                   "parallel, or remove speed.concurrency")
    varying = tuple(k for k, values in axes.items() if len(values) > 1)
    configs = []
    for combo in itertools.product(*axes.values()):
        values = {**fixed, **dict(zip(axes, combo))}
        extra = list(fixed.get("extra_args") or [])
        if "extra_args" in axes:
            extra += values["extra_args"]
        values["extra_args"] = extra
        config = LlamaConfig(**values)
        _check_combination(config, [matrix, *servers], speed)
        configs.append(config)
    return _Group(configs, speed, ref, varying)


MAX_RUNS = 10_000  # runs one plan expands to: at seconds to minutes each, more is a mistake or weeks of measuring


def _count_runs(models: Sequence[Any], groups: list[tuple[Section, SpeedSettings]], top: Section,
                before: int = 0) -> int:
    """The runs these groups expand to, counted from the lengths of their lists before anything is expanded: a
    1 KB plan of 5 keys x 30 values is 24 million runs, refused here with the count instead of filling memory."""
    total = before
    for matrix, speed in groups:
        n = len(models) * max(1, len(speed.concurrency))
        sizes = []
        for key in matrix.data if isinstance(matrix.data, dict) else []:
            raw = matrix.data[key]
            size = len(raw) if isinstance(raw, list) and not (key == "extra_args" and raw and
                                                               not any(isinstance(x, list) for x in raw)) else 1
            sizes.append(size)
            n *= max(1, size)
        total += n
        if total > MAX_RUNS:
            shape = " x ".join(map(str, sizes)) or "1"
            raise matrix.fail(None, f"the plan expands to {total:,} runs (models x matrix {shape} x concurrency), "
                                    f"more than {MAX_RUNS:,}; split it into smaller plans or fewer values")
    return total - before


def _line(seq: Any, index: int) -> int | None:
    try:
        return int(seq.lc.item(index)[0])
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _holder(sections: list[Section], *keys: str) -> Section:
    """The first of `sections` that sets one of `keys` (else the first): where an error about them points."""
    return next((sec for sec in sections if any(sec.has(k) for k in keys)), sections[0])


def _display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name  # an absolute path would leak the user's directory layout into records


def _model_refs(top: Section) -> list[str]:
    """The plan's model references, checked as text (nothing is looked up yet)."""
    out: list[str] = []
    for i, ref in enumerate(top.seq("models")):
        where = f"{top.item_where('models', i)}: models[{i}]"
        if not isinstance(ref, str) or not ref.strip():
            raise CollectorError(f"{where}: expected a path or pypi:PACKAGE==VERSION/member.gguf, got {ref!r}")
        if ref in out:
            raise CollectorError(f"{where}: {ref} is listed twice; remove the duplicate")
        out.append(ref)
    return out


def _model(top: Section, i: int, ref: str, plan_dir: Path) -> Path:
    """The file of models[i] (a pypi: reference is fetched into the cache), checked to be a GGUF file."""
    where = f"{top.item_where('models', i)}: models[{i}]"
    try:
        model_path = resolve_model(ref, plan_dir)
    except CollectorError as exc:
        raise CollectorError(f"{where}: {exc}") from None
    if not model_path.is_file():
        hint = "" if is_pypi_ref(ref) else " (relative paths are relative to the plan file)"
        raise CollectorError(f"{where}: model file not found: {model_path}; check the path{hint}")
    try:
        check_gguf_magic(model_path)
    except CollectorError as exc:
        raise CollectorError(f"{where}: {exc}") from None
    return model_path


def _axis(matrix: Section, key: str) -> list[Any]:
    raw = matrix.data[key]
    if key == "extra_args" and isinstance(raw, list) and (not raw or not any(isinstance(x, list) for x in raw)):
        raw = [raw]  # `extra_args: [--no-warmup]` (a single list of strings) is one value, not three
    elif raw is None and key != "n_cpu_moe":
        raise matrix.fail(key, "has no value; give a value or a list of values, or remove the key")
    if isinstance(raw, dict):
        raise matrix.fail(key, "expected a value or a list of values, got a mapping")
    if not isinstance(raw, list):
        return [_value(matrix, key, raw, matrix.where(key))]
    if not raw:
        raise matrix.fail(key, "is an empty list; give at least one value or remove the key")
    values = [_value(matrix, key, v, matrix.item_where(key, i) if matrix.data[key] is raw else matrix.where(key))
              for i, v in enumerate(raw)]
    for i, v in enumerate(values):
        if v in values[:i]:
            raise matrix.fail(key, f"value {v!r} is listed twice")
    return values


def _value(sec: Section, key: str, value: Any, where: str) -> Any:
    """One checked config value (the flag registry decides what is allowed); `where` is the file:line of it."""
    if value is None and key == "n_cpu_moe":
        return None  # `n_cpu_moe: [null, 8]`: without the flag, and with it
    if value is None:
        raise CollectorError(f"{where}: {sec.keypath(key)}: has no value; give a value or remove the key")
    checked, problem = check_value(key, value)
    if problem:
        raise CollectorError(f"{where}: {sec.keypath(key)}: {problem}")
    return checked


def _check_combination(config: LlamaConfig, sections: list[Section], speed: SpeedSettings) -> None:
    """Settings that are fine alone but not together; `sections` (matrix first) say where to point."""
    # llama.cpp clamps the default ubatch to a smaller batch, so only two explicit values can clash
    batch, ubatch = config.batch_size, config.ubatch_size
    if batch is not None and ubatch is not None and ubatch > batch:
        sec = _holder(sections, "ubatch_size", "batch_size")
        key = "ubatch_size" if sec.has("ubatch_size") else "batch_size"
        raise sec.fail(key, f"ubatch_size {ubatch} is larger than batch_size {batch} in one combination; "
                            "keep ubatch_size <= batch_size")
    if quantized_v_without_fa(config):
        sec = _holder(sections, "flash_attn", "cache_type_v")
        key = "flash_attn" if sec.has("flash_attn") else "cache_type_v"
        raise sec.fail(key, f"cache_type_v {config.cache_type_v} with flash_attn off in one combination: llama.cpp "
                            "needs flash attention for a quantized V cache; use flash_attn on or auto, or an f16 V "
                            "cache")
    if config.ctx_size is not None:
        for n in speed.concurrency or (1,):
            slot = config.ctx_size // n
            for depth in speed.depths:
                if isinstance(depth, int) and depth >= slot:
                    sec = _holder(sections, "ctx_size")
                    per = f" over {n} slots gives each {slot} tokens, which" if n > 1 else ""
                    raise sec.fail("ctx_size", f"ctx_size {config.ctx_size}{per} leaves no room for speed.depths "
                                               f"{depth}; every depth must be smaller than every ctx_size"
                                               + (" / concurrency" if speed.concurrency else ""))


MAX_CONCURRENCY = 256  # clients at once; each is a thread with its own connection


def _speed(sec: Section, plan_dir: Path, base: SpeedSettings | None = None) -> SpeedSettings:
    """The speed settings of a section; a key it does not set keeps `base`'s value (an `also` group's speed)."""
    sec.check_keys(SpeedSettings.__dataclass_fields__)
    d = base or SpeedSettings()

    def str_list(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        if not sec.has(key):
            return default
        if sec.data[key] is None or sec.data[key] == []:
            return ()
        items = sec.seq(key)
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                raise CollectorError(f"{sec.item_where(key, i)}: {sec.keypath(key)}: expected a name, got {item!r}")
        return tuple(items)

    depths = tuple(sec.seq("depths", default=d.depths))
    for i, depth in enumerate(depths):
        if isinstance(depth, str) and DEPTH_SHARE.fullmatch(depth.strip()) and 0 < float(depth.strip()[:-1]) < 100:
            continue
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth < MAX_TOKENS:
            raise CollectorError(f"{sec.item_where('depths', i)}: {sec.keypath('depths')}: expected an integer >= 0 "
                                 f"below {MAX_TOKENS:,} (tokens of filled context) or a share of the context such as "
                                 "\"50%\", got "
                                 f"{short_repr(depth)}")
    concurrency = tuple(sec.seq("concurrency", default=d.concurrency))
    for i, n in enumerate(concurrency):
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CONCURRENCY:
            raise CollectorError(f"{sec.item_where('concurrency', i)}: {sec.keypath('concurrency')}: expected a "
                                 f"number of clients from 1 to {MAX_CONCURRENCY}, got {short_repr(n)}")
        if n in concurrency[:i]:
            raise CollectorError(f"{sec.item_where('concurrency', i)}: {sec.keypath('concurrency')}: {n} is listed "
                                 "twice")
    suite = d.prompt_suite
    if sec.has("prompt_suite"):
        suite = sec.get("prompt_suite", str, d.prompt_suite, lambda v: None if v.strip() else "must not be empty")
        if Path(suite).suffix and not Path(suite).is_absolute():
            suite = str(plan_dir / suite)  # a suite file next to the plan, like the models
    categories = str_list("categories", d.categories)
    _check_suite(sec, suite, categories)
    return SpeedSettings(
        prompt_suite=suite,
        categories=categories,
        depths=depths,
        n_predict=sec.get("n_predict", int, d.n_predict, _within(1, MAX_N_PREDICT, "tokens")),
        repetitions=sec.get("repetitions", int, d.repetitions, _within(1, MAX_REPETITIONS)),
        warmup=sec.get("warmup", int, d.warmup, _within(0, MAX_REPETITIONS)),
        seed=sec.get("seed", int, d.seed, _within(0, 2**32 - 1)),
        load_timeout_s=sec.get("load_timeout_s", float, d.load_timeout_s, _seconds),
        request_timeout_s=sec.get("request_timeout_s", float, d.request_timeout_s, _seconds),
        llama_bench=sec.get("llama_bench", bool, d.llama_bench),
        concurrency=concurrency,
        shared_prefix=sec.get("shared_prefix", bool, d.shared_prefix),
    )


def _check_suite(sec: Section, suite: str, categories: tuple[str, ...]) -> None:
    """The suite must exist and hold the categories asked for: fail now, not after the first model loaded."""
    try:
        load_suite(suite, categories)
    except CollectorError as exc:
        key = "categories" if str(exc).startswith("speed.categories") else "prompt_suite"
        raise CollectorError(f"{sec.where(key)}: {exc}") from None


MAX_N_PREDICT = 1 << 20  # tokens generated per request
MAX_REPETITIONS = 1000
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 0.1, 7 * 86400.0


def _within(lo: int, hi: int, unit: str = "") -> Callable[[int], str | None]:
    """A check that an integer lies in [lo, hi] (what a plan can plausibly ask for)."""
    def check(v: int) -> str | None:
        return None if lo <= v <= hi else f"must be from {lo:,} to {hi:,}{' ' + unit if unit else ''}, got {v:,}"
    return check


def _seconds(v: float) -> str | None:
    """A timeout: finite, long enough for anything to answer, shorter than a week (.inf would wait forever)."""
    if not math.isfinite(v) or not MIN_TIMEOUT_S <= v <= MAX_TIMEOUT_S:
        return f"must be a number of seconds from {MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:,.0f} (a week), got {v:g}"
    return None

