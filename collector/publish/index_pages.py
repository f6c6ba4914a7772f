"""Section pages: home, devices, models, runs, compare (the same model and quant across devices), data, glossary."""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import pandas as pd

from collector.llama.flags import FLAGS
from collector.publish import charts
from collector.publish.common import GeneratedFile, chart_files, device_src, front_matter, model_src, run_src
from collector.publish.crossgpu import compare_pages
from collector.publish.escape import csv_cell
from collector.publish.frame import Frames, Row, device_label, quant_of, run_page_id
from collector.publish.labels import config_summary, glossary
from collector.publish.recommend import usable
from collector.publish.render import figure_text, num, render
from collector.publish.sitedevice import NOT_STATED, device_key
from collector.publish.tune_view import tune_of
from collector.records.schema import Host, KldRecord, SpeedRecord
from collector.records.store import AnyRecord, model_display_name, model_slug

MAX_RUNS_LISTED = 1000  # the runs index lists the newest this many; the data page has every record


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
    """Live numbers for the home page (filled into site/index.md's placeholder) and the like-with-like chart."""
    src = "index.md"
    files: list[GeneratedFile] = []
    rows = f.rows
    devices = sorted(({r.device for r in rows} | {k["device"] for k in f.klds}) - {NOT_STATED})  # no device
    per_device = []
    hosts: dict[str, Host] = {}
    for rec in f.records.values():
        hosts.setdefault(device_key(rec.host), rec.host)
    rows_of: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        rows_of[r.device].append(r)
    for device in devices:
        drows = rows_of[device]
        fast = _fastest_per(drows, lambda r: r.model)
        per_device.append({"href": device_src(device), "label": device_label(hosts[device]),
            "n": len(drows), "kld": sum(1 for k in f.klds if k["device"] == device),
            "best": [{"model": model_display_name(r.rec.model), "quant": quant_of(r.rec), "tg": r.tg,
                      "imported": imp, "href": run_src(r.page_id), "runtime": r.rec.source.runtime}
                     for (_, imp), r in sorted(
                fast.items(), key=lambda kv: (kv[0][1], kv[0][0]))]})
    shared = overlap(rows)
    chart = None
    if shared:
        (model, quant), by_device = max(shared.items(), key=lambda kv: len(kv[1]))
        bars = [charts.Bar(device_label(r.rec.host), fig.value, fig.min, fig.max) for r in by_device.values()
                if (fig := r.tg) is not None]
        files += chart_files("charts/home-shared", charts.bar_chart([("generation speed (t/s)",
                                                                                      bars)]))
        name = model_display_name(next(iter(by_device.values())).rec.model)
        chart = {"title": f"{name} {quant} on each device", "base": "charts/home-shared",
                 "alt": f"Bar chart of {name} {quant}: " + "; ".join(
                     f"{device_label(r.rec.host)}: {figure_text(r.tg, 't/s')}" for r in by_device.values())}
    latest = sorted((r for r in f.records.values() if r.source.type == "measured"),
                    key=lambda r: (r.created_at, r.id), reverse=True)[:10]
    text = render("home.md.j2", src=src, n_devices=len(devices), n_models=len({r.model for r in rows} |
                                                                             {k["model"] for k in f.klds}),
                  n_configs=len(rows), n_imported=sum(1 for r in rows if r.imported), n_kld=len(f.klds),
                  per_device=per_device, chart=chart, latest=[_run_line(r) for r in latest])
    return text, files


def _run_line(rec: AnyRecord) -> dict[str, Any]:
    """One run as a list shows it: when, what, the configuration and the key figure, so that rows differ."""
    if isinstance(rec, SpeedRecord):
        tg = rec.summary.tg_tps
        config = config_summary(rec) + (f" · {rec.method.concurrency} clients" if (rec.method.concurrency or 1) > 1
                                        else "")
        figure = (figure_text(tg, "t/s generation") if tg else "no speed") + (
            f" · depths {', '.join(map(str, rec.method.depths))}" if rec.method.depths else "")
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
            "status": rec.status, "device": device_label(rec.host), "model": model_display_name(rec.model),
            "quant": quant_of(rec), "imported": rec.source.type == "imported", "runtime": rec.source.runtime,
            "stated_date": rec.source.date}


def models_index(f: Frames) -> GeneratedFile:
    src = "models/index.md"
    by: dict[str, list[AnyRecord]] = defaultdict(list)
    for rec in f.records.values():
        by[model_slug(rec)].append(rec)
    items = [{"href": model_src(m), "name": model_display_name(recs[-1].model),
              "quants": sorted({quant_of(r) for r in recs}), "devices": sorted({device_label(r.host) for r in recs}),
              "klds": sum(1 for r in recs if r.kind == "kld")} for m, recs in sorted(by.items())]
    return GeneratedFile(src, render("models.md.j2", src=src, items=items))


def runs_index(f: Frames) -> GeneratedFile:
    src = "runs/index.md"
    latest = sorted(f.records.values(), key=lambda r: (r.created_at, r.id), reverse=True)[:MAX_RUNS_LISTED]
    return GeneratedFile(src, render("runs.md.j2", src=src, runs=[_run_line(r) for r in latest],
                                     total=len(f.records), limit=MAX_RUNS_LISTED))


def compare_page(f: Frames) -> list[GeneratedFile]:
    """The compare index and one page per model + quant measured on several devices (collector.publish.crossgpu)."""
    src = "compare/index.md"
    groups, files = compare_pages(f.rows)
    return [GeneratedFile(src, render("compare.md.j2", src=src, groups=groups)), *files]


CSV_COLS = ["id", "kind", "status", "created_at", "source_type", "citation", "source_date", "device",
            "device_label", "model", "model_name", "quant", "file_name", "size_bytes", "bits_per_weight", "sha256",
            "build", "noisy", "tg_tps_median", "tg_tps_min", "tg_tps_max", "tg_tps_n", "tg_tps_stated", "tg_approx",
            "pp_tps_median", "ttft_ms_median", "corpus", "kld_mean", "kld_p99_9", "same_top_p", "error",
            *[f"config_{k}" for k in ("ctx_size", "n_gpu_layers", "n_cpu_moe", "cache_type_k", "cache_type_v",
                                       "flash_attn", "batch_size", "ubatch_size", "threads", "parallel",
                                       "tensor_split", "extra_args")], "tune"]


def _csv_row(rec: SpeedRecord | KldRecord) -> dict[str, Any]:
    m = rec.model
    row: dict[str, Any] = {
        "id": rec.id, "kind": rec.kind, "status": rec.status, "created_at": rec.created_at.isoformat(),
        "source_type": rec.source.type, "citation": rec.source.citation, "source_date": rec.source.date,
        "device": device_key(rec.host), "device_label": device_label(rec.host), "model": model_slug(rec),
        "model_name": model_display_name(m), "quant": quant_of(rec), "file_name": m.file_name,
        "size_bytes": m.size_bytes, "bits_per_weight": m.bits_per_weight, "sha256": m.sha256,
        "build": rec.llama_cpp.version, "error": f"{rec.error.stage}: {rec.error.message}" if rec.error else None,
    }
    for key, value in rec.config.model_dump(mode="json").items():
        row[f"config_{key}"] = " ".join(value) if isinstance(value, list) else value
    if isinstance(rec, SpeedRecord):
        tg = rec.summary.tg_tps
        row.update(tune=tune_of(rec), noisy=bool(rec.conditions and rec.conditions.noisy),
                   tg_tps_median=tg.median if tg else None, tg_tps_min=tg.min if tg else None,
                   tg_tps_max=tg.max if tg else None, tg_tps_n=tg.n if tg else None,
                   tg_tps_stated=(tg.text or tg.stated or tg.mean) if tg and tg.median is None else None,
                   tg_approx=tg.approx if tg else None,
                   pp_tps_median=rec.summary.pp_tps.median if rec.summary.pp_tps else None,
                   ttft_ms_median=rec.summary.ttft_ms.median if rec.summary.ttft_ms else None)
    else:
        r = rec.results
        row.update(corpus=rec.corpus.name if rec.corpus else None, kld_mean=r.kld_mean, kld_p99_9=r.kld_p99_9,
                   same_top_p=r.same_top_p)
    return row


# The columnar download's schema: the CSV's columns, typed. Stable: a column is only ever added (at the end);
# renaming, removing or retyping one needs a new DOWNLOADS_VERSION (stored in the Parquet file's metadata).
DOWNLOADS_VERSION = "1"
_INT_COLS = {"size_bytes", "tg_tps_n", "config_ctx_size", "config_n_cpu_moe", "config_batch_size",
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
    "tg_tps_median": "speed: generation tokens/s, median of every sample", "tg_tps_min": "speed: lowest sample",
    "tg_tps_max": "speed: highest sample", "tg_tps_n": "speed: number of samples",
    "tg_tps_stated": "imported speed: the figure as the source writes it (text)",
    "tg_approx": "imported speed: the source marks it approximate", "pp_tps_median": "speed: prompt tokens/s",
    "ttft_ms_median": "speed: time to first token, ms", "corpus": "kld: the text evaluated",
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


def _csv(frame: pd.DataFrame, rows: list[dict[str, Any]]) -> str:
    """The typed columns as CSV: every text cell quoted and neutralised (csv_cell: no formula lead, no carriage
    return or line feed, which a reader takes for the end of the row even unquoted), numbers bare, an unknown value
    an empty cell; created_at in ISO 8601."""
    kinds = [column_type(c) for c in CSV_COLS]
    columns = [frame[c].tolist() for c in CSV_COLS]
    columns[CSV_COLS.index("created_at")] = [r["created_at"] for r in rows]
    lines = [",".join(_quoted(c) for c in CSV_COLS)]
    for i in range(len(rows)):
        lines.append(",".join(_cell(col[i], kind) for col, kind in zip(columns, kinds, strict=True)))
    return "\n".join(lines) + "\n"


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


def _json(records: list[AnyRecord]) -> str:
    """Every record in full, as record_to_dict writes it (schema_version and kind first), compact; serialized by
    pydantic's Rust encoder (three times faster than model_dump + json.dumps, and no list of dicts in memory)."""
    parts = []
    for r in records:
        body = r.model_dump_json(by_alias=True, exclude={"schema_version", "kind"})
        head = f'{{"schema_version":{r.schema_version},"kind":"{r.kind}"'
        parts.append(head + ("," + body[1:] if body != "{}" else "}"))
    return "[" + ",".join(parts) + "]"


def data_files(f: Frames) -> list[GeneratedFile]:
    records = sorted(f.records.values(), key=lambda r: (r.created_at, r.id))
    # the table downloads hold speed and KLD records; a tune (a search, not a measurement) is in the JSON only,
    # its trials are speed rows of their own
    rows = [_csv_row(r) for r in records if isinstance(r, (SpeedRecord, KldRecord))]
    frame = _typed(rows)
    page = render("data.md.j2", n_rows=len(frame), n_records=len(records), version=DOWNLOADS_VERSION,
                  n_tunes=len(records) - len(rows),
                  columns=[{"name": c, "type": column_type(c), "doc": column_doc(c)} for c in CSV_COLS])
    return [GeneratedFile("data/records.csv", _csv(frame, rows)), GeneratedFile("data/records.json", _json(records)),
            GeneratedFile("data/records.parquet", _parquet(frame)), GeneratedFile("data/index.md", page)]


def glossary_page() -> GeneratedFile:
    return GeneratedFile("glossary.md", front_matter("Glossary") + render("glossary.md.j2", entries=glossary()))
