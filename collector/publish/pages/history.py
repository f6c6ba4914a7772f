"""One page per timeline with two or more llama.cpp builds (devices/<device>/history/<name>.md): tg and pp per
build with n and spread, a chart, and any change beyond noise with the build range to bisect."""

from __future__ import annotations

import hashlib
from typing import Any

from collector.base.stats import STEP
from collector.publish import charts
from collector.publish.answers.history import Change, Timeline, timelines
from collector.publish.pages.files import GeneratedFile, chart_files
from collector.publish.rows.frame import device_label, quant_of, run_page_id
from collector.publish.rows.names import label_of, slug_of
from collector.publish.words.labels import config_summary
from collector.publish.words.links import device_src, front_matter, model_src, run_src
from collector.publish.words.render import figure_num, figure_text, render
from collector.records.schema import SpeedRecord
from collector.records.store import slugify

WHAT = {"tg": "generation (tg)", "pp": "prompt processing (pp)"}


def history_src(device: str, line: Timeline) -> str:
    digest = hashlib.sha256(line.key.text().encode("utf-8", "surrogatepass")).hexdigest()[:10]
    name = slugify(f"{slug_of(line.rec)}-{quant_of(line.rec)}", 60)
    return f"devices/{device}/history/{name}-{digest}.md"


def _title(line: Timeline) -> str:
    rec = line.rec
    what = f"llama-bench {line.test}" if line.imported else config_summary(rec)
    clients = rec.method.concurrency or 1
    return f"{label_of(rec)} {quant_of(rec)} · {what}" + (f" · {clients} clients" if clients > 1
                                                                          else "")


def _change_text(what: str, c: Change) -> str:
    return (f"{WHAT[what]}: {c.kind} of {abs(c.relative) * 100:.1f} % from b{c.before} to b{c.after} "
            f"(median {figure_num(c.median_before)} → {figure_num(c.median_after)} t/s)")


def verdicts(line: Timeline) -> list[dict[str, Any]]:
    """Per figure: the changes, or why there is none to show."""
    out = []
    for what in ("tg", "pp"):
        compared = [p for p in line.points if what in p.series and p.series[what].band() is not None]
        if not any(what in p.figures for p in line.points):
            continue
        changes = line.changes.get(what, [])
        if changes:
            out.append({"what": WHAT[what], "changes": [{"text": _change_text(what, c), "bisect": c.bisect,
                                                         "kind": c.kind} for c in changes]})
        elif len(compared) < 2:
            out.append({"what": WHAT[what], "changes": [], "text": "too few quiet builds with 3 or more samples to "
                                                                   "compare"})
        else:
            out.append({"what": WHAT[what], "changes": [], "text": f"no change beyond noise across {len(compared)} "
                                                                   "builds"})
    return out


def summary(line: Timeline) -> str:
    """One line for the device page: the changes, or no change beyond noise."""
    texts = [c["text"] for v in verdicts(line) for c in v["changes"]]
    if texts:
        return "; ".join(texts)
    return "; ".join(f"{v['what']}: {v['text']}" for v in verdicts(line)) or "no figures to compare"


def _chart(device: str, src_name: str, line: Timeline) -> tuple[dict[str, Any] | None, list[GeneratedFile]]:
    points = [p for p in line.points if p.figures]
    if len(points) < 2:
        return None, []
    panels = []
    for what in ("tg", "pp"):
        if not any(what in p.figures for p in points):
            continue
        figs = [p.figures.get(what) for p in points]
        after = {c.after for c in line.changes.get(what, [])}
        panels.append((f"{WHAT[what]}, t/s", [p.version for p in points], [f.value if f else None for f in figs],
                       [f.min if f else None for f in figs], [f.max if f else None for f in figs],
                       [i for i, p in enumerate(points) if p.build in after]))
    base = f"charts/devices/{device}-history-{src_name}"
    alt = "Median speed per llama.cpp build: " + "; ".join(
        f"{p.version}: " + ", ".join(f"{w} {figure_text(p.figures.get(w), 't/s')}" for w in ("tg", "pp")
                                     if w in p.figures) for p in points)
    return ({"base": base, "alt": alt},
            chart_files(base, charts.history_chart(panels)))


def history_pages(device: str, speed_records: list[SpeedRecord]) -> tuple[list[dict[str, Any]], list[GeneratedFile]]:
    """The device's timelines (for its page: title, link, one-line verdict) and their pages and charts."""
    entries: list[dict[str, Any]] = []
    files: list[GeneratedFile] = []
    for line in sorted(timelines(speed_records), key=lambda t: (_title(t), t.key)):
        src = history_src(device, line)
        name = src.rsplit("/", 1)[1][:-3]
        chart, chart_out = _chart(device, name, line)
        files += chart_out
        rows = []
        for p in line.points:
            # runs of one day are told apart by their time; an import's date is when it was imported
            runs = [{"href": run_src(run_page_id(r)), "date": r.created_at.strftime("%Y-%m-%d %H:%M UTC")
                     if r.measured else f"imported {r.created_at:%Y-%m-%d}",
                     "noisy": r in p.noisy} for r in p.records]
            rows.append({"p": p, "runs": runs, "commit": next((r.llama_cpp.commit for r in p.records
                                                               if r.llama_cpp.commit), None),
                         "compared": p.compared})
        rec = line.rec
        title = _title(line)
        text = render("history.md.j2", src=src, title=title, device_label=device_label(rec.host),
                      device_href=device_src(device), model_href=model_src(slug_of(rec)), line=line, rows=rows,
                      verdicts=verdicts(line), chart=chart, step=STEP * 100, config=config_summary(rec),
                      imported=line.imported, test=line.test)
        files.append(GeneratedFile(src, front_matter(f"History: {title}", wide=True) + text))
        entries.append({"title": title, "href": src, "summary": summary(line),
                        "builds": [p.version for p in line.points],
                        "changed": any(line.changes.get(w) for w in ("tg", "pp"))})
    return entries, files
