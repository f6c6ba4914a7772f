"""Shared page pieces: relative links, number formatting, sortable HTML tables, badges, chart embeds."""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from collector.publish.charts import Deferred
from collector.publish.escape import h, md

DASH = "—"


@dataclass(frozen=True)
class GeneratedFile:
    """A virtual file for MkDocs: a path under docs_dir (never written there) and its content."""

    src_uri: str
    content: str | bytes


def front_matter(title: str, wide: bool = False) -> str:
    """YAML front matter setting the page title: MkDocs puts page.title into <title> and the nav unescaped.
    `wide` hides the table of contents so wide tables get the room."""
    hide = "hide: [toc]\n" if wide else ""
    return "---\ntitle: " + json.dumps(h(" ".join(title.split()))) + "\n" + hide + "---\n\n"


def missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def num(x: Any, digits: int = 3) -> str:
    """A number for display with `digits` significant digits (integers above that stay whole); — if unknown."""
    if missing(x):
        return DASH
    x = float(x)
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def mib(x: Any) -> str:
    return DASH if missing(x) else f"{float(x) / 1024:.2f} GiB"


def gb(x: Any) -> str:
    return DASH if missing(x) else f"{float(x) / 1e9:.2f} GB"


def page_url(src_uri: str) -> str:
    """The URL path (directory URLs) MkDocs gives a Markdown source."""
    stem = src_uri[:-3]
    if stem == "index" or stem.endswith("/index"):
        return stem[:-5]
    return stem + "/"


def href(from_src: str, to_src: str) -> str:
    """A relative href from one page to another, for raw HTML (MkDocs rewrites only Markdown links)."""
    base = page_url(from_src)
    target = page_url(to_src) if to_src.endswith(".md") else to_src
    rel = posixpath.relpath("/" + target, "/" + (base or "."))
    if target.endswith("/") and not rel.endswith("/"):
        rel += "/"
    return "./" if rel in (".", "./") else rel


def mdlink(from_src: str, to_src: str) -> str:
    """A relative Markdown link target between two sources (MkDocs validates these in --strict)."""
    return posixpath.relpath(to_src, posixpath.dirname(from_src) or ".")


def run_src(page_id: str) -> str:
    return f"runs/{page_id}.md"


def device_src(device: str) -> str:
    return f"devices/{device}.md"


def model_src(model: str) -> str:
    return f"models/{model}.md"


@dataclass(frozen=True)
class Col:
    title: str
    cell: Callable[[dict[str, Any]], str]  # returns escaped HTML
    sort: Callable[[dict[str, Any]], Any] | None = None  # numeric sort key; None sorts as text


def table(cols: Sequence[Col], rows: Sequence[dict[str, Any]], caption: str | None = None) -> str:
    """A raw-HTML table the site's sort script makes sortable; numeric columns carry data-sort values."""
    head = "".join(f'<th data-type="{"num" if c.sort else "text"}">{h(c.title)}</th>' for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            attr = ""
            if c.sort:
                v = c.sort(r)
                attr = ' data-sort=""' if missing(v) else f' data-sort="{float(v)!r}"'
            cells.append(f"<td{attr}>{c.cell(r)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{h(caption)}</caption>" if caption else ""
    # no blank line inside: Markdown would end the raw HTML block there
    return ('<div class="qa-table-wrap"><table class="qa-sortable">' + cap + f"<thead><tr>{head}</tr></thead>"
            "<tbody>\n" + "\n".join(body) + "\n</tbody></table></div>")


def source_badge(row: dict[str, Any]) -> str:
    """HTML: a visible 'imported' badge with the citation as its title, or 'measured'."""
    if row.get("imported"):
        return f'<span class="qa-badge qa-imported" title="{h(row.get("citation"))}">imported</span>'
    return '<span class="qa-badge qa-measured">measured</span>'


def source_md(row: dict[str, Any]) -> str:
    """Markdown: where a figure comes from, with the citation for imported ones."""
    if row.get("imported"):
        url = row.get("source_url")
        cite = md(row.get("citation"))
        link = f" ([link](<{h(url)}>))" if url and str(url).startswith(("http://", "https://")) else ""
        return f'<span class="qa-badge qa-imported">imported</span> from {cite}{link}'
    return '<span class="qa-badge qa-measured">measured</span> by the collector'


def chart_md(from_src: str, chart_src_base: str, alt: str) -> str:
    """Markdown for the light and dark variants of a chart (material shows one per palette)."""
    light = mdlink(from_src, f"{chart_src_base}-light.svg")
    dark = mdlink(from_src, f"{chart_src_base}-dark.svg")
    return f"![{md(alt)}]({light}#only-light)\n![{md(alt)}]({dark}#only-dark)"


@dataclass(frozen=True)
class PendingChart:
    """A chart's files, drawn after every page is written (all charts together, on every core)."""

    src_base: str
    chart: Deferred


Output = GeneratedFile | PendingChart


def chart_files(chart_src_base: str, chart: Deferred) -> list[PendingChart]:
    return [PendingChart(chart_src_base, chart)]
