"""Flagged figures: every figure the judge holds back, with its source row, the reason and the numbers behind it.
Such a figure stays in its record exactly as stated; it is never picked, ranked, charted as a bar or fitted."""

from __future__ import annotations

from typing import Any

from collector.publish.pages.files import GeneratedFile
from collector.publish.rows.frame import Frames, device_label, quant_of, run_page_id
from collector.publish.rows.names import label_of
from collector.publish.words.links import front_matter, run_src
from collector.publish.words.render import render

SRC = "flagged.md"
FIGURE_NAMES = {"tg": "generation (tg)", "pp": "prompt processing (pp)", "ttft": "time to first token"}


def flagged_rows(f: Frames) -> list[dict[str, Any]]:
    by_id = {r.id: r for r in f.records.values()}
    out = []
    for fv in f.judgement.flagged():
        rec = by_id.get(fv.record_id)
        if rec is None:
            continue
        numbers = "; ".join(f"{k} {x}" for v in fv.verdicts for k, x in v.numbers.items() if x != "")
        out.append({"href": run_src(run_page_id(rec)), "device": device_label(rec.host), "model": label_of(rec),
                    "quant": quant_of(rec), "figure": FIGURE_NAMES.get(fv.figure, fv.figure), "text": fv.text,
                    "status": fv.status, "reason": fv.reason, "numbers": numbers,
                    "citation": rec.source.citation, "rules": sorted({v.rule for v in fv.verdicts})})
    return sorted(out, key=lambda r: (str(r["device"]), str(r["model"]), str(r["figure"])))


def flagged_page(rows: list[dict[str, Any]]) -> list[GeneratedFile]:
    """The page of these flagged_rows (a function of them alone: the site keeps it while they are the same)."""
    return [GeneratedFile(SRC, front_matter("Flagged figures", wide=True) + render("flagged.md.j2", src=SRC,
                                                                                   rows=rows))]
