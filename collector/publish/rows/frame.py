"""Records -> rows: one row per *configuration* of a device, one per KLD result.

A configuration is what a reader would launch: the same model file, flags and llama.cpp build on the same device.
Re-measurements of one configuration are one row holding all their samples (never several rows, and never the
best of them); a configuration measured on a busy host is marked noisy and its samples are kept apart. Figures
imported from a source stay one row per figure. Speeds are tokens/s, times ms, memory MiB, sizes bytes;
unknown is None, never a default.

Headline speed: collector.records.figures, the one definition (every sample at the shallowest filled depth measured,
re-measurements pooled; imported: the figure as its source states it). Per-depth figures are kept in `depths`, their
samples in `samples` (a figure's interval for the one "can the data tell these apart" rule, collector.base.stats).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from collector.host.gpus import software_host
from collector.judge import Judgement, judge_records
from collector.publish.rows.devices import device_key, site_device
from collector.publish.rows.keys import ConfigKey, KldKey, config_key, kld_key
from collector.publish.rows.names import label_of, slug_of
from collector.publish.rows.row import KldRow, Row
from collector.publish.rows.stated import merge_stated
from collector.records.derived import PerGroup, PerRecord
from collector.records.figures import headline, pooled, record_headline, stat_of
from collector.records.flags import FLAGS
from collector.records.schema import GpuInfo, Headline, Host, KldRecord, SpeedRecord, Stat
from collector.records.store import AnyRecord, model_display_name, page_id_of

__all__ = ["Frames", "KldRow", "Row", "bandwidth_gbps", "build_frames", "device_label", "join_kld", "kld_rows",
           "kv_types", "quant_of", "run_page_id", "speed_rows", "varying_keys"]


def run_page_id(record: AnyRecord) -> str:
    """The run's permalink name: its id when that is a plain token, else a bounded slug of it."""
    return page_id_of(record.id)


def device_label(host: Host) -> str:
    """`NVIDIA GeForce RTX 4090`, `2x NVIDIA GeForce RTX 3060` (the catalog's names), a spelling the catalog does not
    know as the record writes it, or `CPU: <model>`."""
    return site_device(host).label


def bandwidth_gbps(gpus: list[GpuInfo]) -> float | None:
    """Bandwidth bound for a layer split: GPUs read their layers one after another, so with identical GPUs
    the bound is one GPU's bandwidth; mixed or unknown GPUs give None."""
    values = {g.mem_bandwidth_gbps for g in gpus}
    if not gpus or None in values or len(values) != 1:
        return None
    return float(values.pop())  # type: ignore[arg-type]


def quant_of(record: AnyRecord) -> str:
    return record.model.quant or record.model.file_type or "unknown"


def kv_types(rec: SpeedRecord | KldRecord) -> tuple[str | None, str | None, bool]:
    """(K type, V type, defaulted): what llama.cpp used (measured: from its log), or what a source states.

    An imported record whose source names no KV type gives (None, None): unknown, never llama.cpp's default."""
    c = rec.config
    if rec.source.type == "imported":
        return c.cache_type_k, c.cache_type_v, False
    placed = getattr(rec, "placement", None)
    k = c.cache_type_k or (placed.kv_type_k if placed else None) or "f16"
    v = c.cache_type_v or (placed.kv_type_v if placed else None) or "f16"
    return k, v, c.cache_type_k is None and c.cache_type_v is None


def _figures_of(ok: tuple[SpeedRecord, ...]) -> tuple[dict[int, dict[str, list[float]]], dict[int, dict[str, Stat]],
                                                      Headline | None]:
    """The pooled samples, the figures by depth and the headline of a configuration's successful runs."""
    samples = pooled(s for r in ok for s in r.samples)
    depths = {d: figs for d, vals in samples.items()
              if (figs := {k: f for k, v in vals.items() if (f := stat_of(v, digits=3))})}
    # one run: its recorded headline (the run list and downloads read the same); several: the same definition over
    # all their samples
    head = record_headline(ok[0]) if len(ok) == 1 else headline([s for r in ok for s in r.samples], digits=3)
    return samples, depths, head


def _key_of(rec: SpeedRecord) -> ConfigKey:
    return config_key(rec, bool(rec.conditions and rec.conditions.noisy))  # noisy samples are never pooled with quiet


# mkdocs serve: a configuration none of whose runs changed is not pooled again, nor a record's key made again
_figures = PerGroup(_figures_of)
_config_key = PerRecord(_key_of)


def speed_rows(records: list[SpeedRecord]) -> list[Row]:
    """The configurations of these speed records (any devices), oldest first within each."""
    groups: dict[ConfigKey, Row] = {}
    for rec in sorted(records, key=lambda r: (r.created_at, r.id)):
        key = _config_key(rec)
        groups.setdefault(key, Row(key=key, noisy=key.noisy)).records.append(rec)
    rows = []
    for row in groups.values():
        ok = [r for r in row.records if r.status == "ok"]
        if row.imported:
            head = record_headline(row.rec)
            if head is not None:
                row.tg, row.pp, row.ttft, row.tg_depth = head.tg_tps, head.pp_tps, head.ttft_ms, head.depth_tokens
        elif ok:
            row.samples, row.depths, head = _figures(tuple(ok))
            if head is not None:
                row.tg, row.pp, row.ttft, row.tg_depth = head.tg_tps, head.pp_tps, head.ttft_ms, head.depth_tokens
        rows.append(row)
    return rows


def kld_rows(records: list[KldRecord]) -> list[KldRow]:
    """One row per KLD measurement (a re-run of the same files, corpus, settings and build: the newest, counted)."""
    groups: dict[KldKey, list[KldRecord]] = defaultdict(list)
    for rec in sorted(records, key=lambda r: (r.created_at, r.id)):
        groups[kld_key(rec)].append(rec)
    out = []
    for recs in groups.values():
        rec = recs[-1]
        k, v, defaulted = kv_types(rec)
        corpus = rec.corpus
        r = rec.results
        out.append(KldRow(
            rec=rec, n_records=len(recs), page_id=run_page_id(rec), status=rec.status, device=device_key(rec.host),
            device_label=device_label(rec.host), model=slug_of(rec), model_name=label_of(rec),
            quant=quant_of(rec), sha256=rec.model.sha256, imported=rec.source.type == "imported",
            repo=rec.model.repo, citation=rec.source.citation, ctk=k, ctv=v, kv_default=defaulted,
            kv_variant="kv-cache" in rec.tags, corpus=corpus.name if corpus else None,
            corpus_key=(corpus.sha256 or corpus.name) if corpus else "unknown corpus",
            reference=(ref := reference_of(rec)),
            scope=(ref, (corpus.sha256 or corpus.name or "unknown corpus") if corpus else "unknown corpus",
                   corpus.ctx_size if corpus else None),
            corpus_ctx=corpus.ctx_size if corpus else None, corpus_chunks=corpus.chunks if corpus else None,
            base=model_display_name(rec.base_model) + " " + quant_of_model(rec.base_model) if rec.base_model
            else None, kld_mean=r.kld_mean, kld_mean_unc=r.kld_mean_unc, kld_p99_9=r.kld_p99_9, kld_max=r.kld_max,
            same_top_p=r.same_top_p, same_top_p_unc=r.same_top_p_unc, ppl_ratio=r.ppl_ratio,
            created_at=rec.created_at))
    return out


_REQUANT = re.compile(r"^(?P<src>.+?)\s*->\s*(?P<to>[A-Za-z0-9_]+)\s*$")
_FILE_QUANT = re.compile(r"[._-](?P<q>(?:UD-)?(?:I?Q\d\w*|F16|BF16|F32|MXFP4\w*))\.gguf$", re.IGNORECASE)


def reference_of(rec: KldRecord) -> str | None:
    """The base a KLD is measured against, in words: its type ("F16", "BF16", "Q8_0"), and, where the base was
    itself re-made from a quantized file (the demo's F16 from the Q4_1 wheel), that it measures faithfulness to
    that file, not to the original model. None: the record does not say."""
    b = rec.base_model
    if b is None:
        return None
    kind = b.quant or b.file_type or "type not stated"
    m = _REQUANT.match(b.origin or "")
    src = _FILE_QUANT.search(m.group("src")) if m else None
    if src and src.group("q").upper() not in ("F16", "BF16", "F32"):
        return (f"{kind} re-made from the {src.group('q')} file: faithfulness to that file, not to the original "
                "model")
    return kind


def quant_of_model(model: Any) -> str:
    return model.quant or model.file_type or ""


def join_kld(rows: list[Row], klds: list[KldRow]) -> None:
    """Attach to each configuration the KLD of the same weights, measured anywhere: by sha256 when both sides have
    one; else by model + quant + the repository the file is published in, where the records name it (a file of
    another uploader is another file: never joined), and by model + quant alone where either side does not name it
    (said so). The KLD measured with the same KV cache types is preferred; otherwise the weights' KLD is attached with
    a note naming the cache types it was measured with. A file scored against several references (or corpora, or
    contexts) gets the KLD of the scope the most files of its model were scored in, so that the files it is set
    beside were measured the same way; then measured over imported, the newest."""
    by_sha: dict[str, list[KldRow]] = defaultdict(list)
    by_name: dict[tuple[str, str], list[KldRow]] = defaultdict(list)
    files_in: dict[tuple[str, object], set[str]] = defaultdict(set)  # (model, scope) -> the files scored in it
    for k in klds:
        if k.status != "ok" or k.kld_mean is None:
            continue
        if k.sha256:
            by_sha[k.sha256].append(k)
        by_name[(k.model, k.quant)].append(k)
        files_in[(k.model, k.scope)].add(k.sha256 or k.quant)
    for row in rows:
        rec = row.rec
        how, cands = "sha256", by_sha.get(rec.model.sha256 or "")
        if not cands:
            repo = rec.model.repo
            named = [c for c in by_name.get((row.model, quant_of(rec)), [])
                     if not (c.sha256 and rec.model.sha256)]  # two files with hashes are the same only by hash
            same_repo = [c for c in named if repo and c.repo == repo]
            if same_repo:
                how, cands = f"model + quant + uploader ({repo})", same_repo
            else:
                how = "model + quant (the uploader is not stated on both sides)"
                cands = [c for c in named if not (repo and c.repo)]  # a file of another uploader is another file
        if not cands:
            continue
        ctk, ctv, _ = kv_types(rec)
        same = [c for c in cands if (c.ctk, c.ctv) == (ctk, ctv)] or cands
        sizes = {c.corpus_ctx for c in same if c.corpus_ctx}
        if len(sizes) > 1:  # KV types scored at several context sizes: the first (smallest), where quants are too
            same = [c for c in same if c.corpus_ctx == min(sizes)]
        best = sorted(sorted(same, key=lambda c: c.created_at, reverse=True),
                      key=lambda c: (-len(files_in[(c.model, c.scope)]), c.imported))[0]
        row.kld, row.kld_join = best, how
        if (best.ctk, best.ctv) != (ctk, ctv):
            row.kld_note = f"KLD measured with KV cache {best.ctk or 'not stated'}/{best.ctv or 'not stated'}"


@dataclass
class Frames:
    rows: list[Row]  # speed configurations, every device
    klds: list[KldRow]
    records: dict[str, AnyRecord]  # by page id
    judgement: Judgement  # every figure's verdict (collector.judge)


def judge_rows(rows: list[Row], j: Judgement) -> None:
    """Each row's verdicts: the figures the judge holds back (kept, shown struck through with the reason) and
    whether the row may be picked, ranked or charted at all."""
    repeats = {rid for c in j.claims for rid in c.records[1:]}
    for row in rows:
        row.repeat = any(r.id in repeats for r in row.records)
        for metric in ("tg", "pp"):
            verdicts = [v for r in row.records if (v := j.figure(r.id, metric)) is not None and v.held]
            if verdicts:
                row.held[metric] = verdicts[-1]
        row.pickable = "tg" not in row.held and all(j.pickable(r.id, "tg") for r in row.records
                                                     if r.status == "ok")
        g = j.group(row.rec.id, "tg") or j.group(row.rec.id, "pp")
        if g is not None and g.wide:
            row.disagree = (f"this device's {g.n} results for it disagree: {g.min:g}–{g.max:g} t/s "
                            f"({g.spread:.1f}×); {g.ranked_on}")


def build_frames(records: list[AnyRecord], judgement: Judgement | None = None) -> Frames:
    # a software device's speed (llvmpipe) is the CPU's: such records are test data, never a GPU's figures
    records = [r for r in records if not software_host(r.host)]
    speed = [r for r in records if isinstance(r, SpeedRecord)]
    kld = [r for r in records if isinstance(r, KldRecord)]
    rows = merge_stated(speed_rows(speed))
    j = judgement if judgement is not None else judge_records(records)
    judge_rows(rows, j)
    klds = kld_rows(kld)
    join_kld(rows, klds)
    return Frames(rows=rows, klds=klds, records={run_page_id(r): r for r in records}, judgement=j)


def varying_keys(rows: list[Row]) -> list[str]:
    """The flag registry's keys whose value differs between these configurations (what a label must show)."""
    out = []
    for key in FLAGS:
        if len({json.dumps(getattr(r.rec.config, key)) for r in rows}) > 1:
            out.append(key)
    if len({json.dumps(r.rec.config.extra_args) for r in rows}) > 1:
        out.append("extra_args")
    return out
