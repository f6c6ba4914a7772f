"""Section pages: home summary, devices, models, runs, compare (same model and quant across devices), data."""

from __future__ import annotations

import json

import pandas as pd

from collector.publish import charts
from collector.publish.common import (Output, DASH, Col, GeneratedFile, chart_files, chart_md, device_src, href, mdlink,
                                      model_src, num, run_src, source_badge, table)
from collector.publish.frame import rows_of
from collector.publish.escape import h, md
from collector.publish.frame import Frames
from collector.records.store import record_to_dict

MAX_RUNS_LISTED = 1000  # the runs index lists the newest this many; the data page has every record
CSV_COLS = ["id", "kind", "status", "created_at", "source_type", "citation", "device", "device_label", "model",
            "model_name", "quant", "file_name", "size_bytes", "sha256", "build", "config", "ctx", "ngl", "n_cpu_moe",
            "ctk", "ctv", "fa", "tg", "tg_stat", "pp", "ttft_ms", "vram_mib", "vram_stated", "efficiency_pct",
            "corpus", "kld_mean", "kld_p99_9", "same_top_p", "ppl_ratio", "error"]


def _all_rows(f: Frames) -> pd.DataFrame:
    return pd.concat([x for x in (f.speed, f.kld) if not x.empty], ignore_index=True) if (
        not f.speed.empty or not f.kld.empty) else pd.DataFrame(columns=CSV_COLS)


def home_markdown(f: Frames) -> tuple[str, list[Output]]:
    """Live numbers for the home page (filled into site/index.md's placeholder) and the headline chart."""
    src = "index.md"
    rows = _all_rows(f)
    n_dev = rows["device"].nunique() if not rows.empty else 0
    n_mod = rows["model"].nunique() if not rows.empty else 0
    n_imp = int(rows["imported"].astype(bool).sum()) if not rows.empty else 0
    lines = [f"**{n_dev}** device(s) · **{n_mod}** model(s) · **{len(rows)}** run(s) "
             f"({n_imp} imported from published sources) · [browse devices]({mdlink(src, 'devices/index.md')}) · "
             f"[models]({mdlink(src, 'models/index.md')}) · [compare]({mdlink(src, 'compare/index.md')})", ""]
    files: list[Output] = []
    ok = f.speed[(f.speed["status"] == "ok") & f.speed["tg"].notna()] if not f.speed.empty else f.speed
    if not ok.empty:
        best = ok.sort_values("tg", ascending=False).drop_duplicates(["device", "imported"])
        svgs = charts.bar_chart("home-tg", [f"{d}: {m} {q}" for d, m, q in
                                            zip(best["device_label"], best["model_name"], best["quant"])],
                                [("generation speed (t/s)", [float(x) for x in best["tg"]])],
                                [bool(x) for x in best["imported"]])
        files += chart_files("charts/home-tg", svgs)
        lines += ["### Fastest generation per device", "", chart_md(src, "charts/home-tg",
                                                                  "fastest generation speed per device"), ""]
    if not rows.empty:
        latest = rows_of(rows.sort_values("created_at", ascending=False).head(10))
        lines += ["### Latest runs", ""]
        for r in latest:
            badge = " (imported)" if r["imported"] else ""
            lines.append(f"- [{md(r['created_at'][:10])} {md(r['kind'])}: {md(r['model_name'])} {md(r['quant'])} on "
                         f"{md(r['device_label'])}]({mdlink(src, run_src(r['page_id']))}) · {md(r['status'])}{badge}")
        lines.append("")
    else:
        lines += ["No records yet: run `collector run` and rebuild.", ""]
    return "\n".join(lines), files


def devices_index(f: Frames) -> GeneratedFile:
    src = "devices/index.md"
    rows = _all_rows(f)
    lines = ["# Devices", "", "One page per GPU set (or CPU, for CPU-only runs).", ""]
    if rows.empty:
        return GeneratedFile(src, "\n".join(lines + ["No records yet."]))
    g = rows.groupby("device").agg(label=("device_label", "first"), runs=("id", "size"),
                                   imported=("imported", "sum"), models=("model", "nunique")).reset_index()
    best = f.speed[f.speed["status"] == "ok"].groupby("device")["tg"].max() if not f.speed.empty else {}
    recs = [{**r, "best": best.get(r["device"]) if len(best) else None} for r in rows_of(g)]
    cols = [Col("device", lambda r: f'<a href="{href(src, device_src(r["device"]))}">{h(r["label"])}</a>'),
            Col("runs", lambda r: h(r["runs"]), lambda r: r["runs"]),
            Col("imported runs", lambda r: h(int(r["imported"])), lambda r: r["imported"]),
            Col("models", lambda r: h(r["models"]), lambda r: r["models"]),
            Col("best tg t/s", lambda r: h(num(r["best"])), lambda r: r["best"])]
    return GeneratedFile(src, "\n".join(lines + [table(cols, recs), ""]))


def models_index(f: Frames) -> GeneratedFile:
    src = "models/index.md"
    rows = _all_rows(f)
    lines = ["# Models", "", "One page per model: its quant ladder and the speed of each quant per device.", ""]
    if rows.empty:
        return GeneratedFile(src, "\n".join(lines + ["No records yet."]))
    g = rows.groupby("model").agg(name=("model_name", "first"), quants=("quant", "nunique"),
                                  devices=("device", "nunique"), runs=("id", "size"), moe=("moe", "max")).reset_index()
    cols = [Col("model", lambda r: f'<a href="{href(src, model_src(r["model"]))}">{h(r["name"])}</a>'),
            Col("kind", lambda r: "MoE" if r["moe"] else "dense"),
            Col("quants", lambda r: h(r["quants"]), lambda r: r["quants"]),
            Col("devices", lambda r: h(r["devices"]), lambda r: r["devices"]),
            Col("runs", lambda r: h(r["runs"]), lambda r: r["runs"])]
    return GeneratedFile(src, "\n".join(lines + [table(cols, rows_of(g)), ""]))


def runs_index(f: Frames) -> GeneratedFile:
    src = "runs/index.md"
    rows = _all_rows(f)
    lines = ["# Runs", "", f"The newest {MAX_RUNS_LISTED} runs at most; [Data]({mdlink(src, 'data/index.md')}) "
             "has every record.", ""]
    if rows.empty:
        return GeneratedFile(src, "\n".join(lines + ["No records yet."]))
    latest = rows_of(rows.sort_values("created_at", ascending=False).head(MAX_RUNS_LISTED))
    cols = [Col("run", lambda r: f'<a href="{href(src, run_src(r["page_id"]))}">{h(r["page_id"])}</a>'),
            Col("date", lambda r: h(r["created_at"][:10])), Col("kind", lambda r: h(r["kind"])),
            Col("status", lambda r: h(r["status"])), Col("device", lambda r: h(r["device_label"])),
            Col("model", lambda r: h(r["model_name"])), Col("quant", lambda r: h(r["quant"])),
            Col("source", source_badge)]
    return GeneratedFile(src, "\n".join(lines + [table(cols, latest), ""]))


def compare_page(f: Frames) -> GeneratedFile:
    src = "compare/index.md"
    lines = ["# Compare devices", "",
             "The same model and quant across devices: the fastest successful configuration of each on each device. "
             "Sort by any column; imported figures are marked and never merged with measured ones.", ""]
    ok = f.speed[(f.speed["status"] == "ok") & f.speed["tg"].notna()] if not f.speed.empty else f.speed
    if ok.empty:
        return GeneratedFile(src, "\n".join(lines + ["No speed runs yet."]))
    best = ok.sort_values("tg", ascending=False).drop_duplicates(["model", "quant", "device", "imported"])
    best = best.sort_values(["model", "quant", "tg"], ascending=[True, True, False])
    cols = [Col("model", lambda r: f'<a href="{href(src, model_src(r["model"]))}">{h(r["model_name"])}</a>'),
            Col("quant", lambda r: h(r["quant"])),
            Col("device", lambda r: f'<a href="{href(src, device_src(r["device"]))}">{h(r["device_label"])}</a>'),
            Col("tg t/s", lambda r: f'<a href="{href(src, run_src(r["page_id"]))}">{h(num(r["tg"]))}</a>',
                lambda r: r["tg"]),
            Col("pp t/s", lambda r: h(num(r["pp"])), lambda r: r["pp"]),
            Col("TTFT ms", lambda r: h(num(r["ttft_ms"])), lambda r: r["ttft_ms"]),
            Col("configuration", lambda r: h(r["config"])), Col("source", source_badge)]
    return GeneratedFile(src, "\n".join(lines + [table(cols, rows_of(best)), ""]))


def data_files(f: Frames) -> list[GeneratedFile]:
    rows = _all_rows(f)
    csv = rows.reindex(columns=CSV_COLS).to_csv(index=False) if not rows.empty else ",".join(CSV_COLS) + "\n"
    records = [record_to_dict(r) for r in f.records.values()]
    js = json.dumps(records, ensure_ascii=False)  # compact: the C encoder only runs without indent
    page = ["# Data", "", "Every record, as published: schema version 1, one object per run (measured and imported).",
            "", f"- [records.csv](records.csv): one row per run, the main columns ({len(rows)} rows)",
            f"- [records.json](records.json): every record in full ({len(records)} records)", "",
            "Units are in the column names (`_tps` tokens per second, `_ms` milliseconds, `_mib` MiB). "
            f"An empty cell or `null` means unknown; {DASH} on the pages means the same.", ""]
    return [GeneratedFile("data/records.csv", csv), GeneratedFile("data/records.json", js),
            GeneratedFile("data/index.md", "\n".join(page))]
