"""The core answer of a device page: speed and faithfulness of the same files, side by side.

Per model, the files that have both a quiet speed on this device and a mean KLD (measured here, on another device
or published: KLD depends on the file, not the GPU; frame.join_kld says how each was joined). They are compared like
with like: the configuration (flags and llama.cpp build) and headline depth shared by the most of these files, one
row per file; files measured otherwise are counted, not mixed in. Among them: the fastest, the balanced one (the
fastest whose mean KLD is within the budget) and the most faithful one, the Pareto front of speed against KLD, and
a chart of both. Measured and imported rows are answered apart, as everywhere.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from collector.publish import charts
from collector.publish.common import GeneratedFile, chart_files, run_src
from collector.publish.frame import Row, quant_of
from collector.publish.labels import config_summary
from collector.publish.recommend import KLD_BUDGET, Pick, by_speed, faithful_pick, kld_pool, pareto_front, usable
from collector.publish.render import figure_text, num
from collector.records.store import model_display_name


def _shape(r: Row) -> str:
    """What must be the same for two files' speeds to be compared: flags, build, clients and headline depth."""
    return json.dumps([r.rec.config.model_dump(mode="json"), r.rec.llama_cpp.build_key, r.tg_depth,
                       r.rec.source.runtime, r.imported], sort_keys=True)


def _file(r: Row) -> str:
    return r.rec.model.sha256 or json.dumps([quant_of(r.rec), r.rec.model.file_name, r.rec.model.repo])


def comparable(rows: list[Row]) -> tuple[list[Row], int, str | None]:
    """(one row per file measured the same way, fastest first; how many files with both figures are left out;
    the corpus key) for the rows of one model."""
    pool, corpus = kld_pool(usable(rows))
    if not pool:
        return [], 0, None
    by_shape: dict[str, dict[str, Row]] = defaultdict(dict)
    for r in pool:  # usable() is fastest first: the first row of a file in a shape is its fastest there
        by_shape[_shape(r)].setdefault(_file(r), r)
    best = max(by_shape.values(), key=lambda files: (len(files), max(r.value() or 0.0 for r in files.values())))
    chosen = sorted(best.values(), key=lambda r: (-(r.value() or 0.0), r.page_id))
    return chosen, len({_file(r) for r in pool}) - len(chosen), corpus


def trio(points: list[Row], budget: float = KLD_BUDGET) -> tuple[list[Pick], list[str]]:
    """Fastest, balanced (fastest within the KLD budget) and most faithful among rows that all have a KLD."""
    picks = [by_speed("Fastest", "fastest", points,
                      f"highest generation speed of these {len(points)} files")]
    within = [r for r in points if r.kld and r.kld["kld_mean"] <= budget]
    missing = []
    if within:
        b = within[0]
        picks.append(by_speed("Balanced", "balanced", within,
                              f"fastest of the {len(within)} file(s) whose mean KLD is at or under {budget:g} (this "
                              f"one: {num(b.kld['kld_mean'], 4) if b.kld else '?'})"))
    else:
        lowest = min(r.kld["kld_mean"] for r in points if r.kld)
        missing.append(f"No balanced pick: no file's mean KLD is at or under {budget:g} (the lowest is "
                       f"{num(lowest, 4)}).")
    picks.append(faithful_pick(points))
    return picks, missing


def answer(device: str, index: int, rows: list[Row], labelled: dict[str, str],
           kld_origin: Any) -> tuple[dict[str, Any] | None, list[GeneratedFile]]:
    """The answer for one model's rows (measured or imported ones) on one device: its picks, table and chart."""
    points, left_out, _ = comparable(rows)
    if len(points) < 2:
        noisy = sorted({quant_of(r.rec) for r in rows if r.noisy and r.kld})
        if not points and not noisy:
            return None, []
        have = f"only {quant_of(points[0].rec)} has" if points else "no file has"
        note = (f"Nothing to set side by side yet: {have} both a quiet speed on this device and a KLD"
                + (f"; the speed of {', '.join(noisy)} was measured on a busy host (noisy: shown apart in the tables, "
                   "never compared), so measure it again on a quiet host" if noisy else "") + ".")
        return {"name": model_display_name(rows[-1].rec.model), "imported": rows[-1].imported, "note": note}, []
    picks, missing = trio(points)
    pts = [charts.Point(float(r.kld["kld_mean"]), float(r.tg.value), quant_of(r.rec), r.imported)  # type: ignore
           for r in points]
    front = set(pareto_front([(p.x, p.y) for p in pts]))
    base = f"charts/devices/{device}-answer-{index}"
    files = chart_files(base, charts.pareto_chart(pts, sorted(front), "mean KLD (lower is more faithful)",
                                                  "generation speed (t/s)", logx=True))
    marks: dict[int, list[str]] = defaultdict(list)
    for p in picks:
        marks[id(p.row)].append(p.title.split(" (")[0].lower())
    table = []
    for i, r in enumerate(points):
        k = r.kld or {}
        table.append({"quant": quant_of(r.rec), "label": labelled.get(r.key, quant_of(r.rec)), "tg": r.tg,
                      "kld": k.get("kld_mean"), "unc": k.get("kld_mean_unc"), "top_p": k.get("same_top_p"),
                      "front": i in front, "pick": ", ".join(marks.get(id(r), [])), "run_href": run_src(r.page_id),
                      "kld_href": run_src(k["page_id"]) if k else None, "origin": kld_origin(r),
                      "size": r.rec.model.size_bytes, "size_stated": r.rec.model.size_stated})
    head = points[0]
    alt = ("Scatter of generation speed against mean KLD, one point per file: " + "; ".join(
        f"{quant_of(r.rec)}: {figure_text(r.tg, 't/s')}, KLD {num(r.kld['kld_mean'], 4)}"  # type: ignore[index]
        + (" (on the front)" if i in front else "") for i, r in enumerate(points)))
    where = "depth not stated" if head.tg_depth is None else f"at depth {head.tg_depth:,}"
    return {"name": model_display_name(head.rec.model), "imported": head.imported, "note": None, "picks": [
        {"kind": p.kind, "title": p.title, "quant": quant_of(p.row.rec), "label": labelled.get(p.row.key, ""),
         "tg": p.row.tg, "kld": p.row.kld["kld_mean"] if p.row.kld else None, "why": p.why, "notes": p.notes,
         "href": run_src(p.row.page_id), "ties": [quant_of(t.rec) for t in p.ties]} for p in picks],
        "missing": missing, "table": table, "left_out": left_out, "chart": base, "alt": alt,
        "corpus": head.kld["corpus"] if head.kld else None, "shape": f"{config_summary(head.rec)} · {where} · "
        f"llama.cpp {head.rec.llama_cpp.version or 'build not stated'}", "n": len(points)}, files
