"""The memory estimate against what llama.cpp logged: every measured speed record and tune probe, and real logs.

One check per record (per buffer kind: model, KV, compute, as `load_tensors`, `llama_kv_cache` and `sched_reserve`
logged them; their sum where only a total is kept, as in a tune's probes) and, where the log kept its auto-fit lines,
llama.cpp's own projection (`common_params_fit_impl: projected to use N MiB`) beside ours. The target: within 5 % or
64 MiB of the logged figure, whichever is larger.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from collector.base import stats
from collector.estimate.arch import Arch, from_stated, stated_models
from collector.estimate.memory import MemConfig, estimate_memory
from collector.llama.logparse import parse_server_log
from collector.records.flags import LlamaConfig
from collector.records.schema import SpeedRecord, TuneRecord
from collector.records.store import AnyRecord

TOLERANCE_PCT, TOLERANCE_MIB = 5.0, 64.0
KINDS = ("model", "kv", "compute", "total")
_PROJECTED = re.compile(r"projected to use (\d+) MiB of (host|device) memory")
_CTX_LINE = re.compile(r"llama_context: (n_ctx|n_seq_max|n_batch|n_ubatch|flash_attn|kv_unified)\s+=\s*(\S+)")


@dataclass(frozen=True)
class Check:
    """One logged figure and its estimate (MiB)."""

    what: str  # "record <id>", "probe <n> of tune <id>", "log <name>"
    model: str
    config: str  # the settings that matter, as a reader would write them
    kind: str  # model | kv | compute | total
    logged: float
    estimated: float
    fit: float | None = None  # llama.cpp's own projection of the total, when its log kept it

    @property
    def error(self) -> float:
        return self.estimated - self.logged

    @property
    def error_pct(self) -> float:
        return self.error / self.logged * 100 if self.logged else 0.0

    @property
    def within(self) -> bool:
        return abs(self.error) <= max(TOLERANCE_MIB, abs(self.logged) * TOLERANCE_PCT / 100)


@dataclass(frozen=True)
class KindSummary:
    kind: str
    n: int
    median_abs_mib: float
    max_abs_mib: float
    max_abs_pct: float
    outside: int  # checks outside the tolerance


def mem_config(cfg: LlamaConfig, on_gpu: bool, cpu_features: Iterable[str] = ()) -> MemConfig:
    """A record's llama-server settings with llama-server's defaults filled in (-np unset: 4 slots, unified)."""
    extra = set(cfg.extra_args)
    unified = cfg.parallel is None or bool(extra & {"-kvu", "--kv-unified"})
    ngl = cfg.n_gpu_layers
    return MemConfig(ctx=cfg.ctx_size, n_seq=cfg.parallel or 4, unified=unified, type_k=cfg.cache_type_k or "f16",
                     type_v=cfg.cache_type_v or "f16", flash_attn=cfg.flash_attn != "off",
                     ubatch=cfg.ubatch_size or 512, batch=cfg.batch_size or 2048,
                     n_gpu_layers=ngl if isinstance(ngl, int) else None, n_cpu_moe=cfg.n_cpu_moe or 0, on_gpu=on_gpu,
                     cpu_features=frozenset(cpu_features))


def describe(cfg: MemConfig) -> str:
    parts = [f"ctx {cfg.ctx or 'train'}", f"KV {cfg.type_k}/{cfg.type_v}", f"FA {'on' if cfg.flash_attn else 'off'}",
             f"ub {cfg.ubatch}"]
    if cfg.n_seq != 1:
        parts.append(f"np {cfg.n_seq}{' unified' if cfg.unified else ''}")
    return ", ".join(parts)


def record_arch(rec: AnyRecord, local: Callable[[str], Arch | None] | None = None) -> Arch | None:
    """The record's model facts: its GGUF when `local(sha256)` finds it, else models.yaml; None when neither has it."""
    m = rec.model
    if local and m.sha256:
        found = local(m.sha256)
        if found:
            return found
    st = stated_models().get(m.name or "")
    if st is None or not (m.size_bytes or m.sha256 in st.files):
        return None
    return from_stated(st, m.quant, m.size_bytes or 0, "the record's file size", m.sha256)


def _projected(lines: Iterable[str]) -> float | None:
    for line in lines:
        if m := _PROJECTED.search(line):
            return float(m.group(1))
    return None


def log_config(text: str) -> MemConfig:
    """The settings of a -lv 4 llama-server log as llama.cpp states them (its last context), for a CPU-only run."""
    seen: dict[str, str] = {}
    for line in text.splitlines():
        if m := _CTX_LINE.search(line):
            seen[m.group(1)] = m.group(2)
    facts = parse_server_log(text)
    caches = facts.memory.kv_caches
    n_seq = int(seen.get("n_seq_max", "1"))
    return MemConfig(ctx=int(seen["n_ctx"]), n_seq=n_seq, unified=seen.get("kv_unified") == "true",
                     type_k=caches[0].type_k or "f16" if caches else "f16",
                     type_v=caches[0].type_v or "f16" if caches else "f16",
                     flash_attn=facts.placement.flash_attn is not False, ubatch=int(seen.get("n_ubatch", "512")),
                     batch=int(seen.get("n_batch", "2048")), on_gpu=False,
                     cpu_features=frozenset(facts.placement.cpu_features))


def log_checks(text: str, arch: Arch, what: str) -> list[Check]:
    """A CPU-only llama-server log's buffers against the estimate for the settings the log states."""
    cfg = log_config(text)
    facts = parse_server_log(text)
    est = estimate_memory(arch, cfg)
    mem = facts.memory
    out = [Check(what, arch.name, describe(cfg), kind, round(sum(bufs.values()), 2), round(sum(mine.values()), 2))
           for kind, bufs, mine in (("model", mem.model_buffers, est.model), ("kv", mem.kv_buffers, est.kv),
                                    ("compute", mem.compute_buffers, est.compute))]
    logged = sum(c.logged for c in out)
    out.append(Check(what, arch.name, describe(cfg), "total", round(logged, 2),
                     round(est.total("host") - est.output_mib, 2), _projected(facts.placement.fit)))
    return out


def record_checks(rec: AnyRecord, arch: Arch) -> list[Check]:
    """A measured speed record's logged buffers, or a tune's probes, against the estimate (CPU-only runs: host)."""
    out: list[Check] = []
    on_gpu = bool(rec.host.gpus)
    where = "gpu" if on_gpu else "host"
    if isinstance(rec, SpeedRecord) and rec.status == "ok":
        cfg = mem_config(rec.config, on_gpu, rec.placement.cpu_features)
        est = estimate_memory(arch, cfg)
        mem = rec.memory_mib
        logged = {"model": mem.model_buffers, "kv": mem.kv_buffers, "compute": mem.compute_buffers}
        if not all(logged.values()):
            return out
        fit = _projected(rec.placement.fit)
        for kind, bufs in logged.items():
            mine = {"model": est.model, "kv": est.kv, "compute": est.compute}[kind]
            out.append(Check(f"record {rec.id}", arch.name, describe(cfg), kind, round(sum(bufs.values()), 2),
                             round(sum(mine.values()), 2)))
        total = sum(sum(b.values()) for b in logged.values())
        out.append(Check(f"record {rec.id}", arch.name, describe(cfg), "total", round(total, 2),
                         round(est.total("host") + (est.total("gpu") if on_gpu else 0) - est.output_mib, 2), fit))
    elif isinstance(rec, TuneRecord):
        for i, probe in enumerate(rec.probes, 1):
            if probe.memory_mib is None:
                continue
            cfg = mem_config(probe.config, rec.question.memory_scope == "gpu")
            est = estimate_memory(arch, cfg)
            scoped = est.total(where) - (est.output_mib if where == "host" else 0)
            out.append(Check(f"probe {i} of tune {rec.id}", arch.name, describe(cfg), "total", probe.memory_mib,
                             round(scoped, 2)))
    return out


def data_checks(records: Iterable[AnyRecord],
                local: Callable[[str], Arch | None] | None = None) -> tuple[list[Check], list[str]]:
    """Every measured speed record and tune probe with logged memory; and what could not be checked, and why."""
    checks: list[Check] = []
    skipped: list[str] = []
    for rec in records:
        if not rec.measured or not isinstance(rec, (SpeedRecord, TuneRecord)):
            continue
        if isinstance(rec, SpeedRecord) and not rec.memory_mib.model_buffers:
            continue
        arch = record_arch(rec, local)
        if arch is None:
            skipped.append(f"{rec.kind} record {rec.id} ({rec.model.name}): no facts for this model (neither its "
                           "GGUF nor a models.yaml entry)")
            continue
        checks += record_checks(rec, arch)
    return checks, skipped


def summarise(checks: list[Check]) -> list[KindSummary]:
    out = []
    for kind in KINDS:
        group = [c for c in checks if c.kind == kind]
        if group:
            errs = [abs(c.error) for c in group]
            out.append(KindSummary(kind, len(group), stats.median(errs), max(errs),
                                   max(abs(c.error_pct) for c in group), sum(1 for c in group if not c.within)))
    return out
