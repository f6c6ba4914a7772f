"""One page per device (a GPU set, or a CPU for CPU-only runs): recommendations, every configuration, charts."""

from __future__ import annotations

from typing import Any

import pandas as pd

from collector.publish import charts
from collector.publish.common import (Output, front_matter, DASH, Col, GeneratedFile, chart_files, chart_md, href, mdlink, mib, missing,
                                      model_src, num, run_src, source_badge, source_md, table)
from collector.publish.frame import run_page_id
from collector.publish.frame import rows_of
from collector.publish.escape import code_fence, h, md, shell_command
from collector.publish.recommend import KEEP_SPEED, KLD_BUDGET, Recommendation, pareto_front, recommend
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord

MAX_DEPTH_LINES = charts.MAX_LINES


def _vram(r: dict[str, Any]) -> str:
    if not missing(r.get("vram_mib")):
        return mib(r["vram_mib"])
    if r.get("vram_stated"):
        return f"{r['vram_stated']} (as stated)"
    return DASH


def _kld_text(r: dict[str, Any]) -> str:
    if missing(r.get("kld_mean")):
        return DASH
    text = f"{num(r['kld_mean'], 4)} (corpus: {r.get('corpus') or 'unknown'})"
    if r.get("kld_join") == "model name + quant":
        text += ", joined by model name + quant (no sha256)"
    if r.get("kld_note"):
        text += f", {r['kld_note']}"
    if r.get("kld_imported"):
        text += f", imported from {r.get('kld_citation')}"
    return text


def _stat_suffix(r: dict[str, Any]) -> str:
    if r.get("imported"):
        stat = r.get("tg_stat")
        return " (as the source states it)" if stat in (None, "stated") else f" ({stat}, as the source states)"
    return " (mean)" if r.get("tg_stat") == "mean" else " (median)"


def recommendation_md(src: str, rec: Recommendation, records: dict[str, AnyRecord]) -> str:
    r = rec.row
    record = records[r["page_id"]]
    lines = [f"#### {rec.title}: {md(r['config'])}", "", f"**Why:** {md(rec.why)}.", ""]
    if record.command:
        lines += [code_fence(shell_command(record.command, r.get("file_name")), "bash"), ""]
    else:
        lines += ["*The record has no command line.*", ""]
    lines += [
        f"- Generation: **{num(r['tg'])} t/s**{_stat_suffix(r)} · prompt: {num(r.get('pp'))} t/s · "
        f"time to first token: {num(r.get('ttft_ms'))} ms",
        f"- VRAM: {md(_vram(r))} · mean KLD: {md(_kld_text(r))}",
        f"- Source: {source_md(r)} · run [{md(r['page_id'])}]({mdlink(src, run_src(r['page_id']))})",
        "",
    ]
    return "\n".join(lines)


def config_table(src: str, rows: list[dict[str, Any]]) -> str:
    cols = [
        Col("model", lambda r: f'<a href="{href(src, model_src(r["model"]))}">{h(r["model_name"])}</a>'),
        Col("configuration", lambda r: f'<a href="{href(src, run_src(r["page_id"]))}">{h(r["config"])}</a>'),
        Col("status", lambda r: h(r["status"]) if r["status"] == "ok" else f'<strong>{h(r["status"])}</strong>'),
        Col("tg t/s", lambda r: h(num(r["tg"])), lambda r: r["tg"]),
        Col("pp t/s", lambda r: h(num(r["pp"])), lambda r: r["pp"]),
        Col("TTFT ms", lambda r: h(num(r["ttft_ms"])), lambda r: r["ttft_ms"]),
        Col("VRAM", lambda r: h(_vram(r)), lambda r: r["vram_mib"]),
        Col("ctx", lambda r: h(num(r["ctx"], 9)), lambda r: r["ctx"]),
        Col("KLD mean", lambda r: h(num(r["kld_mean"], 4)), lambda r: r["kld_mean"]),
        Col("bw eff. %", lambda r: h(num(r["efficiency_pct"])), lambda r: r["efficiency_pct"]),
        Col("build", lambda r: h(r["build"] or DASH)),
        Col("source", source_badge),
    ]
    return table(cols, rows)


def _charts(device: str, src: str, ok: pd.DataFrame, depth: pd.DataFrame) -> tuple[list[str], list[Output]]:
    md_out: list[str] = []
    files: list[Output] = []
    base = f"charts/devices/{device}"
    labels = [f"{m} {c}" for m, c in zip(ok["model_name"], ok["config"])]
    tg = ok[ok["tg"].notna()]
    if not tg.empty:
        # speed and VRAM share one figure: same configurations, one set of labels, half the drawing time
        panels: list[tuple[str, list[float | None]]] = [("generation speed (t/s)", [float(x) for x in tg["tg"]])]
        has_vram = bool(tg["vram_mib"].notna().any())
        if has_vram:
            panels.append(("peak VRAM (GiB)", [None if missing(v) else float(v) / 1024 for v in tg["vram_mib"]]))
        svgs = charts.bar_chart(f"{device}-tg", [f"{m} {c}" for m, c in zip(tg["model_name"], tg["config"])],
                                panels, [bool(x) for x in tg["imported"]])
        files += chart_files(f"{base}-tg", svgs)
        title = "Generation speed and VRAM per configuration" if has_vram else "Generation speed per configuration"
        md_out += [f"### {title}", "",
                   f"The {charts.MAX_BARS} fastest configurations at most; the table above has every run."
                   + (" VRAM is the measured peak, summed over GPUs; runs without it have no bar." if has_vram else ""),
                   "", chart_md(src, f"{base}-tg", title.lower()), ""]
    d = depth[depth["page_id"].isin(ok["page_id"])]
    multi = d.groupby("page_id").size()
    ids = [i for i in ok.sort_values("tg", ascending=False)["page_id"] if multi.get(i, 0) > 1][:MAX_DEPTH_LINES]
    if ids:
        names = dict(zip(ok["page_id"], labels))
        series = [(names[i], list(d[d["page_id"] == i]["depth"]), list(d[d["page_id"] == i]["tg"])) for i in ids]
        files += chart_files(f"{base}-depth", charts.line_chart(f"{device}-depth", series, "filled context depth (tokens)",
                                                                "generation speed (t/s)"))
        md_out += ["### Speed against filled context depth", "",
                   "Depth is context actually filled with tokens before generating, not the allocated `-c`.", "",
                   chart_md(src, f"{base}-depth", "generation speed against filled depth"), ""]
    kd = ok[ok["kld_mean"].notna() & ok["tg"].notna()]
    if not kd.empty:
        corpus = kd["corpus_key"].value_counts().index[0]
        same = kd[kd["corpus_key"] == corpus]
        pts = [charts.Point(float(k), float(t), f"{m[:12]} {q}", bool(i))
               for k, t, m, q, i in zip(same["kld_mean"], same["tg"], same["model_name"], same["quant"],
                                        same["imported"])]
        front = pareto_front([(p.x, p.y) for p in pts])
        files += chart_files(f"{base}-pareto", charts.pareto_chart(f"{device}-pareto", pts, front,
                                                                   "mean KLD (lower is better)",
                                                                   "generation speed (t/s)", logx=True))
        left = len(kd) - len(same)
        note = f" {left} configuration(s) with KLD on another corpus are left out." if left else ""
        md_out += ["### Speed against KLD", "",
                   f"KLD on corpus {md(same['corpus'].iloc[0] or corpus)}; points on the red line are not beaten "
                   f"on both speed and KLD by any other point.{note}", "",
                   chart_md(src, f"{base}-pareto", "generation speed against mean KLD with the Pareto frontier"), ""]
    return md_out, files


def _hardware(records: list[AnyRecord]) -> list[str]:
    rec = records[-1]
    lines = []
    for g in rec.host.gpus:
        bits = [f"VRAM {mib(g.vram_total_mib)}" if g.vram_total_mib else None,
                f"bandwidth {num(g.mem_bandwidth_gbps)} GB/s" if g.mem_bandwidth_gbps else None,
                f"driver {g.driver}" if g.driver else None, g.backend]
        lines.append(f"- GPU: {md(g.name)}" + "".join(f" · {md(b)}" for b in bits if b))
    cpu = rec.host.cpu
    lines.append(f"- CPU: {md(cpu.model or 'unknown')}" + (f" · {cpu.cores} cores" if cpu.cores else ""))
    return lines


def _rec_block(src: str, rows: pd.DataFrame, records: dict[str, AnyRecord]) -> list[str]:
    out: list[str] = []
    for model, grp in rows.groupby("model", sort=True):
        out += [f"### {md(grp['model_name'].iloc[0])}", ""]
        recs = recommend(grp)
        if not recs:
            out += ["No successful run with a generation speed.", ""]
        for rec in recs:
            out.append(recommendation_md(src, rec, records))
        kinds = {r.kind for r in recs}
        if recs and "balanced" not in kinds:
            out += [f"*No balanced pick: no configuration of this model has a mean KLD at or under {KLD_BUDGET:g} "
                    "on a shared corpus.*", ""]
    return out


def device_page(device: str, speed: pd.DataFrame, depth: pd.DataFrame, records: dict[str, AnyRecord],
                device_records: list[AnyRecord]) -> list[Output]:
    """The device's Markdown page and its chart files."""
    src = f"devices/{device}.md"
    label = speed["device_label"].iloc[0] if not speed.empty else device_records[-1].host.cpu.model or device
    measured = speed[~speed["imported"].astype(bool)] if not speed.empty else speed
    imported = speed[speed["imported"].astype(bool)] if not speed.empty else speed
    lines = [front_matter(label, wide=True) + f"# {md(label)}", ""]
    if not speed.empty and measured.empty:
        lines += ['!!! note "Published figures only"', "",
                  "    Every figure on this page is imported from a published source, not measured by the "
                  "collector; each names its source.", ""]
    lines += _hardware(device_records) + [""]
    lines += ["## Recommended launch configurations", "",
              f"Per model: the **fastest** run; the **balanced** run (the fastest whose mean KLD is at or under "
              f"{KLD_BUDGET:g}); the **most faithful** run (lowest mean KLD); the **largest context** that keeps at "
              f"least {KEEP_SPEED:.0%} of the fastest speed. Each is a real run: its exact command, its numbers. "
              "Measured runs and figures from published sources are ranked separately.", ""]
    if not measured.empty:
        lines += _rec_block(src, measured, records)
    elif imported.empty:
        lines += ["No speed run on this device yet.", ""]
    if not imported.empty:
        lines += ["## From published sources", "",
                  "These recommendations rank only imported figures, and each names the source that backs it. "
                  "Sources state averages and their own methods; see [Methodology]"
                  f"({mdlink(src, 'methodology.md')}).", ""]
        lines += [s.replace("### ", "### Published: ", 1) if s.startswith("### ") else s
                  for s in _rec_block(src, imported, records)]
    rows = rows_of(speed.sort_values(["model", "tg"], ascending=[True, False])) if not speed.empty else []
    lines += ["## Every configuration", "",
              "Click a column header to sort. *bw eff.* is generation speed times weight bytes read per token, "
              "as a share of the GPU's peak memory bandwidth (when both are known).", "",
              config_table(src, rows) if rows else "No speed runs.", ""]
    files: list[Output] = []
    ok = speed[speed["status"] == "ok"] if not speed.empty else speed
    if not ok.empty:
        chart_lines, files = _charts(device, src, ok, depth)
        lines += ["## Charts", ""] + chart_lines
    kld_only = [r for r in device_records if not isinstance(r, SpeedRecord)]
    if kld_only:
        lines += ["## KLD runs on this device", "",
                  "KLD does not depend on the device; it is shown with every speed run of the same model file.", ""]
        lines += [f"- [{md(r.model.name or r.model.file_name or r.id)} {md(r.model.quant or '')}]"
                  f"({mdlink(src, run_src(run_page_id(r)))}) · {md(r.status)}" for r in kld_only]
        lines.append("")
    return [GeneratedFile(src, "\n".join(lines)), *files]
