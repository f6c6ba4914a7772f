"""Section pages: home, devices, models, runs, compare (the same model and quant across devices), data, glossary."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pandas as pd

from collector.publish.answers.picks import usable
from collector.publish.answers.ranking import groups, sections
from collector.publish.pages.compare import compare_pages, group_srcs, test_text
from collector.publish.pages.files import GeneratedFile
from collector.publish.pages.tune import tune_of
from collector.publish.rows.devices import NOT_STATED, device_key
from collector.publish.rows.frame import Frames, Row, device_label, quant_of, run_page_id
from collector.publish.rows.names import group_label, label_of, slug_of
from collector.publish.words.escape import csv_cell
from collector.publish.words.labels import config_summary, glossary
from collector.publish.words.links import device_src, front_matter, model_src, run_src
from collector.publish.words.render import figure_text, num, render
from collector.records.derived import PerRecord
from collector.records.figures import record_headline
from collector.records.flags import FLAGS
from collector.records.schema import KldRecord, SpeedRecord
from collector.records.store import AnyRecord

MAX_RUNS_LISTED = 60  # the runs index lists the newest this many (a page a reader can scroll); Data has every record


def _fastest_per(rows: list[Row], key: Any) -> dict[Any, Row]:
    """The fastest quiet configuration per key (a measured and an imported figure are kept apart)."""
    out: dict[Any, Row] = {}
    for r in usable(rows):
        out.setdefault((key(r), r.imported), r)
    return out


def overlap(rows: list[Row]) -> dict[tuple[str, str], dict[str, Row]]:
    """(model, quant) -> device -> the fastest quiet measured configuration, where 2+ devices measured it."""
    best = _fastest_per([r for r in rows if not r.imported], lambda r: (r.model, quant_of(r.rec), r.device))
    by: dict[tuple[str, str], dict[str, Row]] = defaultdict(dict)
    for (key, _), row in best.items():
        by[(key[0], key[1])][key[2]] = row
    return {k: v for k, v in sorted(by.items()) if len(v) > 1}


def home_markdown(f: Frames) -> tuple[str, list[GeneratedFile]]:
    """The home page's live part (filled into site/index.md's placeholder): the question-first picker, the latest
    measured runs and one like-for-like ranking (the largest: one source table, one test, one model file type)."""
    src = "index.md"
    rows = f.rows
    devices = sorted(({r.device for r in rows} | {k.device for k in f.klds}) - {NOT_STATED})  # no device
    latest = sorted((r for r in f.records.values() if r.source.type == "measured"
                     and not (isinstance(r, SpeedRecord) and tune_of(r))),  # a tune is one line, not its trials
                    key=lambda r: (r.created_at, r.id), reverse=True)[:8]
    text = render("home.md.j2", src=src, n_devices=len(devices), n_models=len({r.model for r in rows} |
                                                                             {k.model for k in f.klds}),
                  n_configs=len(rows), n_imported=sum(1 for r in rows if r.imported), n_kld=len(f.klds),
                  latest=[_run_line(r) for r in latest], overview=_overview(rows))
    return text, []


OVERVIEW_ROWS = 10


def _overview(rows: list[Row]) -> dict[str, Any] | None:
    """The largest like-for-like ranking of the data: its top devices (tg where it is measured, else pp)."""
    best: tuple[tuple[bool, int, bool], tuple[str, str], str, dict[str, Any]] | None = None
    found = groups(rows)
    for key, group in found.items():
        for shape, lines in sections(group).items():
            ranked = [ln for ln in lines.values() if ln.rank is not None]
            what = next(iter(lines.values())).what
            # a table with a stated test (llama-bench, the collector's) before a crowd benchmark of unstated shape
            score = (shape.test.kind != "localscore", len(ranked), what == "tg")
            if len(ranked) > 2 and (best is None or score > best[0]):
                best = (score, key, what, {"shape": shape, "lines": ranked, "group": group})
    if best is None:
        return None
    _, (model, quant), what, part = best
    top = sorted(part["lines"], key=lambda ln: -(ln.rank or 0.0))[:OVERVIEW_ROWS]
    name = group_label(r.rec for r in part["group"])
    shape = part["shape"]
    return {"title": f"{name} {quant} · {test_text(shape.test)} · {shape.source}", "what": what,
            "href": group_srcs(found)[(model, quant)], "rows": [{"device": ln.label, "href": device_src(ln.device),
                                                       "fig": ln.stat(), "rank": ln.rank, "wide": ln.wide}
                                                      for ln in top],
            "note": f"The top {len(top)} of {len(part['lines'])} devices ranked there."}


def _run_line(rec: AnyRecord) -> dict[str, Any]:
    """One run as a list shows it: when, what, the configuration and the key figure, so that rows differ."""
    if isinstance(rec, SpeedRecord):
        head = record_headline(rec)
        tg = head.tg_tps if head else None
        config = config_summary(rec) + (f" · {rec.method.concurrency} clients" if (rec.method.concurrency or 1) > 1
                                        else "")
        figure = (figure_text(tg, "t/s generation") if tg else "no speed") + (
            "" if not tg else " at depth not stated" if head is None or head.depth_tokens is None
            else f" at depth {head.depth_tokens:,}")
        kind = "tune trial" if tune_of(rec) else "speed"
    elif isinstance(rec, KldRecord):
        config = ("KV cache " + f"{rec.config.cache_type_k or 'f16'}/{rec.config.cache_type_v or 'f16'}"
                  if "kv-cache" in rec.tags else "the file, f16 KV cache") + (
            f" · ctx {rec.corpus.ctx_size}" if rec.corpus and rec.corpus.ctx_size else "")
        figure = f"mean KLD {num(rec.results.kld_mean, 4)}" if rec.results.kld_mean is not None else "no KLD"
        kind = "KLD"
    else:
        config = " ".join(rec.command[1:]).replace("-m {model} ", "") if rec.command else "no answer"
        figure = f"{len(rec.trials)} trials, {len(rec.probes)} probes"
        kind = "tune"
    return {"href": run_src(run_page_id(rec)), "date": rec.created_at.strftime("%Y-%m-%d"),
            "time": rec.created_at.strftime("%Y-%m-%d %H:%M UTC"), "kind": kind, "config": config, "figure": figure,
            "status": rec.status, "device": device_label(rec.host), "model": label_of(rec),
            "quant": quant_of(rec), "imported": rec.source.type == "imported", "runtime": rec.source.runtime,
            "stated_date": rec.source.date}


def models_index(f: Frames) -> GeneratedFile:
    src = "models/index.md"
    by: dict[str, list[AnyRecord]] = defaultdict(list)
    for rec in f.records.values():
        by[slug_of(rec)].append(rec)
    items = [{"href": model_src(m), "name": group_label(recs),
              "quants": sorted({quant_of(r) for r in recs}), "devices": sorted({device_label(r.host) for r in recs}),
              "klds": sum(1 for r in recs if r.kind == "kld"),
              "crowd": all(r.source.runtime == "llamafile (LocalScore)" for r in recs)}
             for m, recs in sorted(by.items(), key=lambda kv: group_label(kv[1]).casefold())]
    return GeneratedFile(src, render("models.md.j2", src=src, items=[i for i in items if not i["crowd"]],
                                     crowd=[i for i in items if i["crowd"]]))


def runs_index(f: Frames) -> GeneratedFile:
    src = "runs/index.md"
    latest = sorted(f.records.values(), key=lambda r: (r.created_at, r.id), reverse=True)[:MAX_RUNS_LISTED]
    return GeneratedFile(src, render("runs.md.j2", src=src, runs=[_run_line(r) for r in latest],
                                     total=len(f.records), limit=MAX_RUNS_LISTED))


def compare_page(f: Frames) -> list[GeneratedFile]:
    """The compare index and one page per model + quant measured on several devices (pages.compare)."""
    src = "compare/index.md"
    groups, files = compare_pages(f.rows)
    return [GeneratedFile(src, render("compare.md.j2", src=src, groups=groups)), *files]


CSV_COLS = ["id", "kind", "status", "created_at", "source_type", "citation", "source_date", "device",
            "device_label", "model", "model_name", "quant", "file_name", "size_bytes", "bits_per_weight", "sha256",
            "build", "noisy", "depth_tokens", "tg_tps_median", "tg_tps_min", "tg_tps_max", "tg_tps_n",
            "tg_tps_stated", "tg_approx", "pp_tps_median", "ttft_ms_median", "corpus", "kld_mean", "kld_p99_9",
            "same_top_p", "error",
            *[f"config_{k}" for k in ("ctx_size", "n_gpu_layers", "n_cpu_moe", "cache_type_k", "cache_type_v",
                                       "flash_attn", "batch_size", "ubatch_size", "threads", "parallel",
                                       "tensor_split", "extra_args")], "tune"]


def _csv_row_of(rec: SpeedRecord | KldRecord) -> dict[str, Any]:
    m = rec.model
    row: dict[str, Any] = {
        "id": rec.id, "kind": rec.kind, "status": rec.status, "created_at": rec.created_at.isoformat(),
        "source_type": rec.source.type, "citation": rec.source.citation, "source_date": rec.source.date,
        "device": device_key(rec.host), "device_label": device_label(rec.host), "model": slug_of(rec),
        "model_name": label_of(rec), "quant": quant_of(rec), "file_name": m.file_name,
        "size_bytes": m.size_bytes, "bits_per_weight": m.bits_per_weight, "sha256": m.sha256,
        "build": rec.llama_cpp.version, "error": f"{rec.error.stage}: {rec.error.message}" if rec.error else None,
    }
    for key, value in rec.config.model_dump(mode="json").items():
        row[f"config_{key}"] = " ".join(value) if isinstance(value, list) else value
    if isinstance(rec, SpeedRecord):
        head = record_headline(rec)
        tg, pp, ttft = (head.tg_tps, head.pp_tps, head.ttft_ms) if head else (None, None, None)
        row.update(tune=tune_of(rec), noisy=bool(rec.conditions and rec.conditions.noisy),
                   depth_tokens=head.depth_tokens if head else None,
                   tg_tps_median=tg.median if tg else None, tg_tps_min=tg.min if tg else None,
                   tg_tps_max=tg.max if tg else None, tg_tps_n=tg.n if tg else None,
                   tg_tps_stated=(tg.text or tg.stated or tg.mean) if tg and tg.median is None else None,
                   tg_approx=tg.approx if tg else None,
                   pp_tps_median=pp.median if pp else None, ttft_ms_median=ttft.median if ttft else None)
    else:
        r = rec.results
        row.update(corpus=rec.corpus.name if rec.corpus else None, kld_mean=r.kld_mean, kld_p99_9=r.kld_p99_9,
                   same_top_p=r.same_top_p)
    return row


# The columnar download's schema: the CSV's columns, typed. Stable: a column is only ever added (at the end);
# renaming, removing or retyping one needs a new DOWNLOADS_VERSION (stored in the Parquet file's metadata).
# 2: the speed columns are the run's headline (collector.records.figures) at depth_tokens, not over every depth
DOWNLOADS_VERSION = "2"
_INT_COLS = {"size_bytes", "depth_tokens", "tg_tps_n", "config_ctx_size", "config_n_cpu_moe", "config_batch_size",
             "config_ubatch_size", "config_threads", "config_parallel"}
_FLOAT_COLS = {"bits_per_weight", "tg_tps_median", "tg_tps_min", "tg_tps_max", "pp_tps_median", "ttft_ms_median",
               "kld_mean", "kld_p99_9", "same_top_p"}
_BOOL_COLS = {"noisy", "tg_approx"}
COLUMN_DOCS: dict[str, str] = {
    "id": "the record's id (ULID); its run page is runs/ID/",
    "kind": "speed or kld", "status": "ok or failed (failed runs keep their error)",
    "created_at": "when the run was measured or imported (UTC)",
    "source_type": "measured (by the collector) or imported (from a cited source)",
    "citation": "imported: where the figure comes from", "source_date": "imported: the date the source states",
    "device": "device slug (the device page's address)", "device_label": "the device as the site names it",
    "model": "model slug (the model page's address)", "model_name": "the model as the site names it",
    "quant": "quantization label, e.g. Q4_K_M", "file_name": "the GGUF file", "size_bytes": "GGUF size, all shards",
    "bits_per_weight": "8 x file bytes / parameters", "sha256": "of the GGUF file(s)",
    "build": "llama.cpp version the run used", "noisy": "speed: the host was busy (never recommended)",
    "depth_tokens": "speed: the filled depth (tokens in the context) the tg, pp and TTFT columns are at: the "
                    "shallowest the run measured; imported: the depth its source states (empty: not stated)",
    "tg_tps_median": "speed: generation tokens/s, median of every sample at depth_tokens",
    "tg_tps_min": "speed: lowest sample at depth_tokens", "tg_tps_max": "speed: highest sample at depth_tokens",
    "tg_tps_n": "speed: number of samples at depth_tokens",
    "tg_tps_stated": "imported speed: the figure as the source writes it (text)",
    "tg_approx": "imported speed: the source marks it approximate",
    "pp_tps_median": "speed: prompt tokens/s at depth_tokens",
    "ttft_ms_median": "speed: time to first token, ms, at depth_tokens", "corpus": "kld: the text evaluated",
    "kld_mean": "kld: mean KL divergence against the base model", "kld_p99_9": "kld: 99.9th percentile KLD",
    "same_top_p": "kld: % of tokens whose top choice matches the base model", "error": "failed: stage: message",
    "tune": "speed: the id of the tune this run is a trial of (the tune's page is runs/ID/, the tune record is in "
            "records.json); empty: not a tune trial. A trial with error stage budget was over the tune's memory "
            "budget and not measured, by design",
}


def column_type(col: str) -> str:
    """The Parquet (Arrow) type of a download column; config columns that can hold words are strings."""
    if col == "created_at":
        return "timestamp[us, UTC]"
    return ("int64" if col in _INT_COLS else "double" if col in _FLOAT_COLS else "bool" if col in _BOOL_COLS
            else "string")


def column_doc(col: str) -> str:
    if col.startswith("config_"):
        key = col.removeprefix("config_")
        flag = FLAGS.get(key)
        return f"llama.cpp {flag.server[0]} ({flag.label}); empty: not passed" if flag else \
            "further llama-server arguments, space-separated"
    return COLUMN_DOCS.get(col, "")


def _typed(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The download columns with their types (column_type): nullable integers stay integers (2048, not 2048.0)."""
    cols: dict[str, Any] = {}
    for c in CSV_COLS:
        values: Any = [r.get(c) for r in rows]  # None: unknown (a null in Parquet, an empty CSV cell)
        kind = column_type(c)
        if kind == "string":
            cols[c] = pd.array([None if v is None else str(v) for v in values], dtype=object)
        elif kind == "timestamp[us, UTC]":
            cols[c] = pd.to_datetime(values, utc=True, format="ISO8601").as_unit("us")
        else:
            cols[c] = pd.array(values, dtype={"int64": "Int64", "double": "Float64", "bool": "boolean"}[kind])
    return pd.DataFrame(cols, columns=CSV_COLS)


def _parquet(frame: pd.DataFrame) -> bytes:
    """One row per record, the CSV's columns with their types; values raw (no spreadsheet quoting)."""
    import pyarrow as pa  # the `site` extra

    arrow = {"int64": pa.int64(), "double": pa.float64(), "bool": pa.bool_(), "string": pa.string(),
             "timestamp[us, UTC]": pa.timestamp("us", tz="UTC")}
    schema = pa.schema([pa.field(c, arrow[column_type(c)], metadata={"description": column_doc(c)})
                        for c in CSV_COLS], metadata={"quant_atlas_downloads_version": DOWNLOADS_VERSION})
    buf = io.BytesIO()
    frame.to_parquet(buf, engine="pyarrow", index=False, schema=schema, compression="zstd")
    return buf.getvalue()


def _csv(records: Sequence[SpeedRecord | KldRecord]) -> str:
    """The download rows as CSV, with the columns' types (column_type): every text cell quoted and neutralised
    (csv_cell: no formula lead, no carriage return or line feed, which a reader takes for the end of the row even
    unquoted), numbers bare, an unknown value an empty cell; created_at in ISO 8601."""
    return "\n".join([",".join(_quoted(c) for c in CSV_COLS), *map(_csv_line, records)]) + "\n"


def _csv_line_of(r: SpeedRecord | KldRecord) -> str:
    row = _csv_row(r)
    return ",".join(_cell(row.get(c), kind) for c, kind in _CSV_KINDS)


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _cell(value: Any, kind: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if kind == "int64":
        return str(int(value))
    if kind == "double":
        return repr(float(value))
    if kind == "bool":
        return str(bool(value))
    return _quoted(str(csv_cell(str(value))))


def _json_of(r: AnyRecord) -> str:
    body = r.model_dump_json(by_alias=True, exclude={"schema_version", "kind"})
    head = f'{{"schema_version":{r.schema_version},"kind":"{r.kind}"'
    return head + ("," + body[1:] if body != "{}" else "}")


# one record's download row, CSV line and JSON text; a record kept between `mkdocs serve` rebuilds is not derived
# again
_csv_row = PerRecord(_csv_row_of, between_builds=True)
_csv_line = PerRecord(_csv_line_of, between_builds=True)
_CSV_KINDS = [(c, column_type(c)) for c in CSV_COLS]  # each column's type, asked once (not per cell)
_json_text = PerRecord(_json_of, between_builds=True)


def derive_downloads(records: list[AnyRecord]) -> None:
    """Each record's download line and JSON text, made ahead (kept per record object)."""
    for r in records:
        if isinstance(r, (SpeedRecord, KldRecord)):
            _csv_line(r)
        _json_text(r)


def _json(records: list[AnyRecord]) -> str:
    """Every record in full, as record_to_dict writes it (schema_version and kind first), compact; serialized by
    pydantic's Rust encoder (three times faster than model_dump + json.dumps, and no list of dicts in memory)."""
    return "[" + ",".join(_json_text(r) for r in records) + "]"


def data_files(f: Frames) -> list[GeneratedFile]:
    records = sorted(f.records.values(), key=lambda r: (r.created_at, r.id))
    # the table downloads hold speed and KLD records; a tune (a search, not a measurement) is in the JSON only,
    # its trials are speed rows of their own
    tables = [r for r in records if isinstance(r, (SpeedRecord, KldRecord))]
    rows = [_csv_row(r) for r in tables]
    frame = _typed(rows)
    page = render("data.md.j2", n_rows=len(frame), n_records=len(records), version=DOWNLOADS_VERSION,
                  n_tunes=len(records) - len(rows),
                  columns=[{"name": c, "type": column_type(c), "doc": column_doc(c)} for c in CSV_COLS])
    return [GeneratedFile("data/records.csv", _csv(tables)), GeneratedFile("data/records.json", _json(records)),
            GeneratedFile("data/records.parquet", _parquet(frame)), GeneratedFile("data/index.md", page)]


def glossary_page() -> GeneratedFile:
    return GeneratedFile("glossary.md", front_matter("Glossary") + render("glossary.md.j2", entries=glossary()))
