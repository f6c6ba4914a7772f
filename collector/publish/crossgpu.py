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
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from collector.publish import charts
from collector.publish.common import (
    GeneratedFile,
    chart_files,
    device_src,
    front_matter,
    model_src,
    page_url,
    run_src,
)
from collector.publish.frame import Row, device_label, quant_of
from collector.publish.recommend import usable
from collector.publish.render import figure_text, render
from collector.records.schema import Stat
from collector.records.store import model_display_name, slugify

WIDE = 1.5  # results of one device whose highest exceeds this multiple of their lowest "disagree widely"
MEASURED = "llama-server, measured by the collector"


def _test(r: Row) -> str:
    """The test shape of a row, as words."""
    rec = r.rec
    raw = rec.source.raw or {}
    cells = raw.get("cells") if isinstance(raw.get("cells"), dict) else None
    if cells and cells.get("test"):
        return f"llama-bench test {cells['test']}"
    if rec.method.endpoint == "LocalScore":
        return "LocalScore's own benchmark (its test shape is not published with the results)"
    if not r.imported:
        m = rec.method
        suite = m.prompt_suite.name if m.prompt_suite else "prompts not named"
        return f"{suite}, {m.n_predict} tokens generated, at depth {r.tg_depth}"
    return "as each source states it"


def shape_of(r: Row) -> tuple[str, str, str]:
    """(runtime, build, test): what must be equal for two figures to be ranked together."""
    runtime = r.rec.source.runtime or (MEASURED if not r.imported else "llama.cpp, as the source states")
    return runtime, r.rec.llama_cpp.version or "build not stated", _test(r)


@dataclass
class DeviceLine:
    device: str
    label: str
    figures: list[Row] = field(default_factory=list)

    def stat(self, what: str) -> Stat | None:
        """The device's figure: one row's own (its n and range), or the median of several results."""
        figs = [f for r in self.figures if (f := getattr(r, what)) is not None]
        if len(figs) == 1:
            return figs[0]
        return Stat.of([f.value for f in figs])

    @property
    def spread(self) -> float | None:
        vals = [r.tg.value for r in self.figures if r.tg is not None] or \
            [r.pp.value for r in self.figures if r.pp is not None]
        return max(vals) / min(vals) if len(vals) > 1 and min(vals) > 0 else None


def _sections(rows: list[Row]) -> dict[tuple[str, str, str], dict[str, DeviceLine]]:
    out: dict[tuple[str, str, str], dict[str, DeviceLine]] = defaultdict(dict)
    measured_best: dict[tuple[tuple[str, str, str], str], Row] = {}
    for r in usable(rows) + [r for r in rows if r.status == "ok" and r.tg is None and r.pp is not None]:
        key = shape_of(r)
        if not r.imported:  # a device's fastest quiet configuration stands for it (usable() is fastest first)
            if (key, r.device) in measured_best:
                continue
            measured_best[(key, r.device)] = r
        line = out[key].setdefault(r.device, DeviceLine(r.device, device_label(r.rec.host)))
        line.figures.append(r)
    return out


def groups(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    """(model, quant) -> rows, for those measured on at least two devices the same way."""
    by: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        by[(r.model, quant_of(r.rec))].append(r)
    return {k: v for k, v in sorted(by.items()) if any(len(d) > 1 for d in _sections(v).values())}


def group_srcs(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The page of each (model slug, quant): the model's slug and the quant's joined by "--", which neither holds (a
    model "X Q4" with quant "K_M" does not take the page of "X" Q4_K_M); quants that slug alike ("Q4_K_M",
    "q4-k-m") each get a digest of their own. One page per path, whatever the records say."""
    want = {k: f"compare/{k[0]}--{slugify(k[1], 29)}" for k in keys}
    taken = Counter(want.values())
    return {k: f"{path}--{hashlib.sha256(repr(k).encode('utf-8', 'surrogatepass')).hexdigest()[:8]}.md"
            if taken[path] > 1 else f"{path}.md" for k, path in want.items()}


def _line_context(src: str, line: DeviceLine) -> dict[str, Any]:
    tg, pp = line.stat("tg"), line.stat("pp")
    first = line.figures[0].rec
    up = "../" * page_url(src).count("/")  # up to the site's root: hrefs computed once, not per cell
    return {"device": line.label, "href": f"{up}{device_src(line.device).removesuffix('.md')}/", "tg": tg, "pp": pp,
            "n": len(line.figures), "spread": line.spread, "wide": (line.spread or 0) > WIDE,
            "results": [{"href": f"{up}{run_src(r.page_id).removesuffix('.md')}/", "tg": r.tg, "pp": r.pp}
                        for r in line.figures],
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
        name = model_display_name(group[-1].rec.model)
        sections: list[dict[str, Any]] = []
        for i, (key, lines) in enumerate(sorted(_sections(group).items(), key=lambda kv: -len(kv[1]))):
            what = "tg" if any(ln.stat("tg") for ln in lines.values()) else "pp"
            ranked = sorted(lines.values(), key=lambda ln: -(s.value if (s := ln.stat(what)) else -1.0))
            ctx = [_line_context(src, ln) for ln in ranked]
            chart = None
            if len(ranked) > 2:  # a chart of two bars says no more than its table
                base = f"charts/{src.removesuffix('.md')}-{i}"
                bars = [charts.Bar(ln.label, s.value, s.min if s.has_spread else None, s.max if s.has_spread else
                                   None, ctx[j]["imported"]) for j, ln in enumerate(ranked) if (s := ln.stat(what))]
                files += chart_files(base, charts.bar_chart([(f"{'generation' if what == 'tg' else 'prompt'} "
                                                              "speed, t/s", bars)]))
                chart = {"base": base, "alt": f"Bar chart of {what} per device: " + "; ".join(
                    f"{ln.label}: {figure_text(ln.stat(what), 't/s')}" for ln in ranked[:charts.MAX_BARS])}
            sections.append({"runtime": key[0], "build": key[1], "test": key[2], "rows": ctx, "what": what,
                             "chart": chart, "n_devices": len(ranked), "n_gpus": sum(
                                 1 for ln in ranked if ln.figures[0].rec.host.gpus),
                             "n_wide": sum(1 for c in ctx if c["wide"])})
        ranked_sections = [s for s in sections if s["n_devices"] > 1]
        text = render("compare_group.md.j2", src=src, name=name, quant=quant, model_href=model_src(model),
                      sections=ranked_sections, single=[s for s in sections if s["n_devices"] == 1], wide=WIDE)
        files.append(GeneratedFile(src, front_matter(f"{name} {quant} on each device", wide=True) + text))
        index.append({"name": name, "quant": quant, "href": src, "n_devices": len({r.device for r in group}),
                      "sections": [{"runtime": s["runtime"], "build": s["build"], "test": s["test"],
                                    "n": s["n_devices"], "gpus": s["n_gpus"]} for s in ranked_sections]})
    index.sort(key=lambda g: (-max(s["n"] for s in g["sections"]), g["name"], g["quant"]))
    return index, files
