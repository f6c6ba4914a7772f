"""Compare: one model file type (model + quant) on many devices, ranked like with like.

Figures are ranked together only when they were measured the same way: the same runtime (llama-server measured by
the collector, llama-bench, LocalScore's llamafile benchmark, ...), the same llama.cpp build where one is stated, and
the same test shape (llama-bench's test, the collector's prompt suite, generation length and depth). Each such
measurement is a section of the page; devices are ranked inside a section, never across.

Per device a section holds every figure of it: a measured configuration is one figure (its samples pooled, the
fastest quiet configuration of the device), each crowd result (LocalScore) or table row (llama-bench) one more.
Several results of one device are summarised by their median with the number of results and their range, and every
result stays listed; results whose highest is more than WIDE times their lowest are flagged as disagreeing, so a
reader sees the spread instead of an average.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from collector.publish import charts
from collector.publish.answers.ranking import WIDE, DeviceLine, RankShape, TestShape, groups, sections
from collector.publish.pages.files import GeneratedFile, chart_files
from collector.publish.rows.frame import Row
from collector.publish.rows.names import group_label
from collector.publish.words.links import device_src, front_matter, model_src, page_url, run_src
from collector.publish.words.render import figure_text, render
from collector.records.flags import FLAGS
from collector.records.store import slugify

MEASURED = "llama-server, measured by the collector"


def runtime_text(shape: RankShape) -> str:
    if shape.runtime:
        return shape.runtime
    return MEASURED if shape.test.kind == "measured" else "llama.cpp, as the source states"


def test_text(t: TestShape) -> str:
    """The test shape of a section, as words."""
    if t.kind == "llama-bench":
        return f"llama-bench test {t.test}"
    if t.kind == "localscore":
        return "LocalScore's own benchmark (its test shape is not published with the results)"
    if t.kind == "measured":
        return f"{t.suite or 'prompts not named'}, {t.n_predict} tokens generated, at depth {t.depth}"
    return "as each source states it"


def settings_text(settings: str) -> str:
    """A ranking's stated settings, as flags in words ("" for none stated or the collector's own)."""
    values = json.loads(settings) if settings else {}
    return " · ".join(f"{FLAGS[k].label if k in FLAGS else k} {' '.join(v) if isinstance(v, list) else v}"
                      for k, v in values.items())


def group_srcs(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The page of each (model slug, quant): the model's slug and the quant's joined by "--", which neither holds (a
    model "X Q4" with quant "K_M" does not take the page of "X" Q4_K_M); quants that slug alike ("Q4_K_M",
    "q4-k-m") each get a digest of their own. One page per path, whatever the records say."""
    want = {k: f"compare/{k[0]}--{slugify(k[1], 29)}" for k in keys}
    taken = Counter(want.values())
    return {k: f"{path}--{hashlib.sha256(repr(k).encode('utf-8', 'surrogatepass')).hexdigest()[:8]}.md"
            if taken[path] > 1 else f"{path}.md" for k, path in want.items()}


def _line_context(src: str, line: DeviceLine) -> dict[str, Any]:
    main = line.stat()
    first = line.figures[0].rec
    up = "../" * page_url(src).count("/")  # up to the site's root: hrefs computed once, not per cell
    return {"device": line.label, "href": f"{up}{device_src(line.device).removesuffix('.md')}/", "main": main,
            "rank": line.rank, "n": len(line.counted), "spread": line.spread, "wide": line.wide,
            "builds": line.builds,
            "results": [{"href": f"{up}{run_src(r.page_id).removesuffix('.md')}/", "fig": getattr(r, line.what),
                         "held": r.held[line.what].reason if line.what in r.held else None} for r in line.figures],
            "imported": first.source.type == "imported", "runtime": first.source.runtime,
            "source": first.source.title or first.source.citation, "url": first.source.url,
            "citation": None if first.source.title else first.source.citation}  # each result's page cites its row


def compare_pages(rows: list[Row]) -> tuple[list[dict[str, Any]], list[GeneratedFile]]:
    """The index entries and the page (with its charts) of every model + quant measured on several devices."""
    index: list[dict[str, Any]] = []
    files: list[GeneratedFile] = []
    found = groups(rows)
    srcs = group_srcs(found)
    for (model, quant), group in found.items():
        src = srcs[(model, quant)]
        name = group_label(r.rec for r in group)
        parts: list[dict[str, Any]] = []
        for i, (key, lines) in enumerate(sorted(sections(group).items(), key=lambda kv: -len(kv[1]))):
            what = next(iter(lines.values())).what
            ranked = sorted((ln for ln in lines.values() if ln.rank is not None), key=lambda ln: -(ln.rank or 0.0))
            unranked = [ln for ln in lines.values() if ln.rank is None]
            ctx = [_line_context(src, ln) for ln in ranked]
            chart = None
            if len(ranked) > 2:  # a chart of two bars says no more than its table
                base = f"charts/{src.removesuffix('.md')}-{i}"
                bars = [charts.Bar(ln.label, s.value, s.min if s.has_spread else None, s.max if s.has_spread else
                                   None, ctx[j]["imported"]) for j, ln in enumerate(ranked) if (s := ln.stat())]
                files += chart_files(base, charts.bar_chart([(f"{'generation' if what == 'tg' else 'prompt'} "
                                                              "speed, t/s", bars)]))
                chart = {"base": base, "alt": f"Bar chart of {what} per device: " + "; ".join(
                    f"{ln.label}: {figure_text(ln.stat(), 't/s')}" for ln in ranked[:charts.MAX_BARS])}
            builds = sorted({b for ln in lines.values() for b in ln.builds})
            parts.append({"source": key.source, "runtime": runtime_text(key), "builds": builds,
                          "test": test_text(key.test), "settings": settings_text(key.settings), "rows": ctx,
                          "unranked": [_line_context(src, ln) for ln in unranked], "what": what, "chart": chart,
                          "n_devices": len(lines), "n_gpus": sum(1 for ln in lines.values()
                                                                 if ln.figures[0].rec.host.gpus),
                          "n_wide": sum(1 for ln in lines.values() if ln.wide)})
        ranked_sections = [s for s in parts if s["n_devices"] > 1]
        text = render("compare_group.md.j2", src=src, name=name, quant=quant, model_href=model_src(model),
                      sections=ranked_sections, single=[s for s in parts if s["n_devices"] == 1], wide=WIDE)
        files.append(GeneratedFile(src, front_matter(f"{name} {quant} on each device", wide=True) + text))
        index.append({"name": name, "quant": quant, "href": src, "n_devices": len({r.device for r in group}),
                      "sections": [{"runtime": s["runtime"], "source": s["source"], "test": s["test"],
                                    "n": s["n_devices"], "gpus": s["n_gpus"]} for s in ranked_sections]})
    index.sort(key=lambda g: (-max(s["n"] for s in g["sections"]), g["name"], g["quant"]))
    return index, files
