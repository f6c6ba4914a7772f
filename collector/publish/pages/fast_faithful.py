"""The core answer of a device page: speed and faithfulness of the same files, side by side (which files and
which picks: answers.same_files). Shown: the fastest, the balanced one (the fastest whose mean KLD is within the
budget) and the most faithful one, the Pareto front of speed against KLD, and a chart of both. Measured and imported
rows are answered apart, as everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from collector.publish import charts
from collector.publish.answers.picks import pareto_front
from collector.publish.answers.same_files import comparable, trio
from collector.publish.pages.files import GeneratedFile, chart_files
from collector.publish.rows.frame import Row, quant_of
from collector.publish.rows.keys import ConfigKey
from collector.publish.rows.names import group_label
from collector.publish.words.labels import config_summary
from collector.publish.words.links import run_src
from collector.publish.words.reasons import TITLES, note, tie_context, title, why
from collector.publish.words.reasons import missing as missing_text
from collector.publish.words.render import figure_text, num


def answer(device: str, index: int, rows: list[Row], labelled: dict[ConfigKey, str],
           kld_origin: Any) -> tuple[dict[str, Any] | None, list[GeneratedFile]]:
    """The answer for one model's rows (measured or imported ones) on one device: its picks, table and chart."""
    points, left_out, _ = comparable(rows)
    if len(points) < 2:
        noisy = sorted({quant_of(r.rec) for r in rows if r.noisy and r.kld})
        if not points and not noisy:
            return None, []
        have = f"only {quant_of(points[0].rec)} has" if points else "no file has"
        text = (f"Nothing to set side by side yet: {have} both a quiet speed on this device and a KLD"
                + (f"; the speed of {', '.join(noisy)} was measured on a busy host (noisy: shown apart in the tables, "
                   "never compared), so measure it again on a quiet host" if noisy else "") + ".")
        return {"name": group_label(r.rec for r in rows), "imported": rows[-1].imported, "note": text}, []
    picks, missing = trio(points)
    pts = [charts.Point(float(r.kld.kld_mean), float(r.tg.value), quant_of(r.rec), r.imported)  # type: ignore
           for r in points]
    front = set(pareto_front([(p.x, p.y) for p in pts]))
    base = f"charts/devices/{device}-answer-{index}"
    files = chart_files(base, charts.pareto_chart(pts, sorted(front), "mean KLD (lower is more faithful)",
                                                  "generation speed (t/s)", logx=True))
    marks: dict[int, list[str]] = defaultdict(list)
    for p in picks:
        marks[id(p.row)].append(TITLES[p.kind].lower())
    table = []
    for i, r in enumerate(points):
        k = r.kld
        table.append({"quant": quant_of(r.rec), "label": labelled.get(r.key, quant_of(r.rec)), "tg": r.tg,
                      "kld": k.kld_mean if k else None, "unc": k.kld_mean_unc if k else None,
                      "top_p": k.same_top_p if k else None, "p99_9": k.kld_p99_9 if k else None,
                      "max": k.kld_max if k else None,
                      "front": i in front, "pick": ", ".join(marks.get(id(r), [])), "run_href": run_src(r.page_id),
                      "kld_href": run_src(k.page_id) if k else None, "origin": kld_origin(r),
                      "size": r.rec.model.size_bytes, "size_stated": r.rec.model.size_stated})
    head = points[0]
    alt = ("Scatter of generation speed against mean KLD, one point per file: " + "; ".join(
        f"{quant_of(r.rec)}: {figure_text(r.tg, 't/s')}, KLD {num(r.kld.kld_mean, 4)}"  # type: ignore[union-attr]
        + (" (on the front)" if i in front else "") for i, r in enumerate(points)))
    where = "depth not stated" if head.tg_depth is None else f"at depth {head.tg_depth:,}"
    return {"name": group_label(r.rec for r in points), "imported": head.imported, "note": None, "picks": [
        {"kind": p.kind, "title": title(p), "quant": quant_of(p.row.rec), "label": labelled.get(p.row.key, ""),
         "tg": p.row.tg, "kld": p.row.kld.kld_mean if p.row.kld else None, "why": why(p.reason),
         "notes": [note(n) for n in p.notes], "href": run_src(p.row.page_id),
         "ties": [quant_of(t.row.rec) for t in p.ties], "tie_texts": [tie_context(p, t) for t in p.ties]}
        for p in picks],
        "missing": [missing_text(m) for m in missing], "table": table, "left_out": left_out, "chart": base, "alt": alt,
        "corpus": head.kld.corpus if head.kld else None, "reference": head.kld.reference if head.kld else None,
        "shape": f"{config_summary(head.rec)} · {where} · llama.cpp {head.rec.llama_cpp.version or 'build not stated'}",
        "n": len(points)}, files
