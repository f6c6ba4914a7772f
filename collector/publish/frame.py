"""Records -> pandas DataFrames: one row per speed run, one per KLD run, one per (speed run, filled depth).

Speeds are tokens per second, times milliseconds, memory MiB, sizes bytes. A missing value is NaN/None,
never a guess. A speed row takes the median when the record has one, else the mean (sources state
averages), else the single figure a source states; `tg_stat` says which.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any

import pandas as pd

from collector.records.schema import GpuInfo, Host, KldRecord, SpeedRecord, Stat
from collector.records.store import AnyRecord, device_slug, model_slug, slugify

_SAFE_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_DEFAULT_KV = "f16"  # llama.cpp's KV cache type when -ctk/-ctv are not passed


@dataclass(frozen=True)
class Frames:
    speed: pd.DataFrame
    kld: pd.DataFrame
    depth: pd.DataFrame
    records: dict[str, AnyRecord]  # by page id (see run_page_id)


def clean(row: dict[str, Any]) -> dict[str, Any]:
    """A row with pandas' NaN/NA turned back into None (a NaN is truthy and equal to nothing)."""
    return {k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v) for k, v in row.items()}


def rows_of(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [clean(r) for r in df.to_dict("records")]


def run_page_id(record: AnyRecord) -> str:
    """The run's permalink name: its id when that is a plain token, else a slug of it."""
    return record.id if _SAFE_ID.match(record.id) else "r-" + slugify(record.id)[:60]


def device_label(host: Host) -> str:
    """`RTX 4090`, `2x RTX 3060`, or `CPU: <model>`, from the record's own names."""
    if host.gpus:
        counts: dict[str, int] = {}
        for gpu in host.gpus:
            counts[gpu.name] = counts.get(gpu.name, 0) + 1
        return " + ".join(f"{n}x {name}" if n > 1 else name for name, n in counts.items())
    return "CPU: " + (host.cpu.model or "unknown")


def _bandwidth_gbps(gpus: list[GpuInfo]) -> float | None:
    """Bandwidth bound for a layer split: GPUs read their layers one after another, so with identical GPUs
    the bound is one GPU's bandwidth; mixed or unknown GPUs give None."""
    values = {g.mem_bandwidth_gbps for g in gpus}
    if not gpus or None in values or len(values) != 1:
        return None
    return float(values.pop())  # type: ignore[arg-type]


def _stat(stat: Stat | None) -> tuple[float | None, str | None]:
    if stat is None:
        return None, None
    if stat.median is not None:
        return stat.median, "median"
    if stat.mean is not None:
        return stat.mean, "mean"
    if stat.stated is not None:
        return stat.stated, "stated"
    return None, None


def _quant(record: AnyRecord) -> str:
    return record.model.quant or record.model.file_type or "unknown"


def _kv(value: str | None) -> str:
    return value or _DEFAULT_KV


def _source_cols(record: AnyRecord) -> dict[str, Any]:
    s = record.source
    return {"source_type": s.type, "citation": s.citation, "source_url": s.url, "source_note": s.note,
            "imported": s.type == "imported"}


def _common(record: AnyRecord) -> dict[str, Any]:
    m = record.model
    return {
        "page_id": run_page_id(record), "id": record.id, "kind": record.kind, "status": record.status,
        "error": f"{record.error.stage}: {record.error.message}" if record.error else None,
        "created_at": record.created_at.isoformat(), "device": device_slug(record.host),
        "device_label": device_label(record.host), "model": model_slug(record),
        "model_name": m.name or m.file_name or "unknown model", "quant": _quant(record), "file_name": m.file_name,
        "size_bytes": m.size_bytes, "size_stated": getattr(m, "size_stated", None), "bpw": m.bits_per_weight, "sha256": m.sha256,
        "bytes_per_token": m.bytes_per_token, "params_total": m.params_total, "params_active": m.params_active,
        "moe": bool(m.n_experts) or (m.params_active is not None and m.params_total is not None
                                    and m.params_active < m.params_total),
        "build": record.llama_cpp.version, "backend": record.llama_cpp.backend, "command": list(record.command),
        **_source_cols(record),
    }


def _config_label(rec: SpeedRecord) -> str:
    c = rec.config
    parts = [_quant(rec)]
    ctx = c.ctx_size or rec.placement.n_ctx
    if ctx:
        parts.append(f"ctx {ctx}")
    if c.cache_type_k or c.cache_type_v:
        parts.append(f"KV {_kv(c.cache_type_k)}/{_kv(c.cache_type_v)}")
    if c.flash_attn:
        parts.append(f"fa {c.flash_attn}")
    if c.n_gpu_layers is not None:
        parts.append(f"ngl {c.n_gpu_layers}")
    if c.n_cpu_moe:
        parts.append(f"cpu-moe {c.n_cpu_moe}")
    if c.ubatch_size:
        parts.append(f"ub {c.ubatch_size}")
    if c.parallel and c.parallel > 1:
        parts.append(f"np {c.parallel}")
    return " · ".join(parts)


def _speed_row(rec: SpeedRecord) -> dict[str, Any]:
    tg, tg_stat = _stat(rec.summary.tg_tps)
    pp, _ = _stat(rec.summary.pp_tps)
    ttft, _ = _stat(rec.summary.ttft_ms)
    mem = rec.memory_mib
    vram = sum(mem.vram_peak) if mem.vram_peak else None
    stated = None
    if mem.vram_used_stated:
        stated = " + ".join(f"{v:g}" for v in mem.vram_used_stated) + f" {mem.vram_unit or ''}".rstrip()
    bw = _bandwidth_gbps(rec.host.gpus)
    bpt = rec.model.bytes_per_token
    eff = tg * bpt / (bw * 1e9) * 100 if (tg and bpt and bw) else None
    c = rec.config
    return {
        **_common(rec), "config": _config_label(rec), "ctx": c.ctx_size or rec.placement.n_ctx,
        "ngl": None if c.n_gpu_layers is None else str(c.n_gpu_layers), "n_cpu_moe": c.n_cpu_moe,
        "ctk": _kv(c.cache_type_k), "ctv": _kv(c.cache_type_v), "fa": c.flash_attn, "ubatch": c.ubatch_size,
        "threads": c.threads, "parallel": c.parallel,
        "tg": tg, "tg_stat": tg_stat, "pp": pp, "ttft_ms": ttft, "vram_mib": vram, "vram_stated": stated,
        "bandwidth_gbps": bw, "efficiency_pct": eff, "load_s": rec.load_seconds,
    }


def _kld_row(rec: KldRecord) -> dict[str, Any]:
    r = rec.results
    corpus = rec.corpus
    return {
        **_common(rec), "ctk": _kv(rec.config.cache_type_k), "ctv": _kv(rec.config.cache_type_v),
        "base_name": rec.base_model.name or rec.base_model.file_name if rec.base_model else None,
        "base_quant": _quant_of(rec.base_model) if rec.base_model else None,
        "corpus": corpus.name if corpus else None, "corpus_sha256": corpus.sha256 if corpus else None,
        "corpus_key": (corpus.sha256 or corpus.name) if corpus else "unknown corpus",
        "kld_mean": r.kld_mean, "kld_p99_9": r.kld_p99_9, "kld_max": r.kld_max, "same_top_p": r.same_top_p,
        "ppl_ratio": r.ppl_ratio, "ppl_q": r.ppl_q,
    }


def _quant_of(model: Any) -> str:
    return model.quant or model.file_type or "unknown"


def _depth_rows(rec: SpeedRecord) -> list[dict[str, Any]]:
    """Generation speed per filled depth: the median over categories of each category's median."""
    by_depth: dict[int, list[float]] = {}
    for s in rec.samples:
        if s.tg_tps:
            by_depth.setdefault(s.depth_tokens, []).append(statistics.median(s.tg_tps))
    return [{"page_id": run_page_id(rec), "depth": d, "tg": statistics.median(v)} for d, v in sorted(by_depth.items())]


def build_frames(records: list[AnyRecord]) -> Frames:
    """One DataFrame per kind; the speed frame carries the joined KLD of its model file (see join_kld)."""
    speed_rows: list[dict[str, Any]] = []
    kld_rows: list[dict[str, Any]] = []
    depth_rows: list[dict[str, Any]] = []
    by_id: dict[str, AnyRecord] = {}
    for rec in sorted(records, key=lambda r: (r.created_at, r.id)):
        by_id[run_page_id(rec)] = rec
        if isinstance(rec, SpeedRecord):
            speed_rows.append(_speed_row(rec))
            depth_rows.extend(_depth_rows(rec))
        else:
            kld_rows.append(_kld_row(rec))
    speed = pd.DataFrame(speed_rows)
    kld = pd.DataFrame(kld_rows)
    depth = pd.DataFrame(depth_rows, columns=["page_id", "depth", "tg"])
    if not speed.empty:
        speed = join_kld(speed, kld)
    return Frames(speed=speed, kld=kld, depth=depth, records=by_id)


_KLD_COLS = ["kld_mean", "kld_p99_9", "same_top_p", "ppl_ratio", "corpus", "corpus_key"]


def _pick(cands: list[dict[str, Any]], ctk: str, ctv: str) -> dict[str, Any]:
    """Same KV cache types first, then measured over imported, then the newest."""
    same = [c for c in cands if (c["ctk"], c["ctv"]) == (ctk, ctv)] or cands
    newest_first = sorted(same, key=lambda c: c["created_at"], reverse=True)
    return sorted(newest_first, key=lambda c: bool(c["imported"]))[0]


def join_kld(speed: pd.DataFrame, kld: pd.DataFrame) -> pd.DataFrame:
    """Attach to each speed row the KLD of the same weights: by sha256 when both sides have one, else by
    model name + quant (`kld_join` says which). Same KV cache types are preferred; otherwise the weights'
    KLD is attached with `kld_note` naming the cache types it was measured with."""
    by_sha: dict[str, list[dict[str, Any]]] = {}
    by_name: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if not kld.empty:
        for k in rows_of(kld[kld["status"] == "ok"]):
            if k["sha256"]:
                by_sha.setdefault(k["sha256"], []).append(k)
            by_name.setdefault((k["model"], k["quant"]), []).append(k)
    cols: list[str] = [*_KLD_COLS, "kld_id", "kld_join", "kld_note", "kld_imported", "kld_citation"]
    out: dict[str, list[Any]] = {c: [] for c in cols}
    for sha, model, quant, ctk, ctv in zip(speed["sha256"], speed["model"], speed["quant"], speed["ctk"],
                                           speed["ctv"]):
        how = "sha256"
        cands = by_sha.get(sha) if isinstance(sha, str) and sha else None
        if not cands:
            how, cands = "model name + quant", by_name.get((model, quant))
        m = _pick(cands, ctk, ctv) if cands else None
        for c in _KLD_COLS:
            out[c].append(m[c] if m else None)
        out["kld_id"].append(m["page_id"] if m else None)
        out["kld_join"].append(how if m else None)
        out["kld_imported"].append(bool(m["imported"]) if m else None)
        out["kld_citation"].append(m["citation"] if m else None)
        differs = m is not None and (m["ctk"], m["ctv"]) != (ctk, ctv)
        out["kld_note"].append(f"KLD measured with KV cache {m['ctk']}/{m['ctv']}" if differs and m else None)
    speed = speed.copy()
    for c, values in out.items():
        speed[c] = pd.Series(values, index=speed.index, dtype=object)
    for c in ("kld_mean", "kld_p99_9", "same_top_p", "ppl_ratio"):
        speed[c] = pd.to_numeric(speed[c], errors="coerce")
    return speed
