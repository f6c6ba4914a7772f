"""The jinja2 environment for page fragments: autoescape on, filters for figures, Markdown text and code fences.

Templates (collector/publish/templates/*.j2) produce Markdown pages for MkDocs whose bodies are mostly raw HTML
blocks, and the run pages' HTML. Every `{{ value }}` goes through one rule (escape.h): its text is inert wherever
it lands, raw HTML, an attribute or a Markdown heading, so no template has to know which one it is in. A command
goes through `code`, an HTML code block that gets Material's copy button.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import BytecodeCache, Environment, PackageLoader, StrictUndefined
from jinja2.bccache import Bucket
from markupsafe import Markup

from collector.base.cache import cache_dir, digest, enabled, lib_versions
from collector.base.files import atomic_open
from collector.estimate.offload import ram_choices
from collector.publish.words.escape import code_block, h, inline_command, md, safe_url
from collector.publish.words.labels import glossary_anchor
from collector.publish.words.links import href, mdlink, page_url
from collector.records.schema import Stat

DASH = "—"


def missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def num(x: Any, digits: int = 3) -> str:
    """A number for display with `digits` significant digits (integers above that stay whole); — if unknown."""
    if missing(x):
        return DASH
    x = float(x)
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}"
    text = f"{x:.{digits}g}"
    if "e" in text:  # a small figure (a KLD uncertainty of 2e-05) in plain decimals: 0.00002
        places = digits - 1 - math.floor(math.log10(abs(x)))
        text = f"{x:.{places}f}".rstrip("0").rstrip(".")
    return text


def nums(xs: Any) -> str:
    """Numbers as `num` writes them, joined by " · "; — for none (a sample's values: one filter call per cell
    instead of a map and a join, which at 10,000 run pages cost seconds)."""
    return " · ".join(map(num, xs)) or DASH


def decimals(x: float) -> int:
    """Decimals a measured figure is shown with, chosen by its size (54.9, 253.1, 1,199, 7.53, 0.412): the figure
    and its range are written with the same number of them, so "54.9 (52.6–56.0)" never reads "55 (52.6–56)"."""
    x = abs(x)
    return 0 if x >= 1000 else 1 if x >= 10 else 2 if x >= 1 else 3


def fixed(x: float, places: int) -> str:
    """x with `places` decimals; first rounded to 6 places, so that a median computed from samples (54.949999...)
    and the same median stored rounded (54.95) print alike."""
    return f"{round(x, 6):,.{places}f}"


def figure_num(x: float, like: float | None = None) -> str:
    """A measured figure, or a bound of its range with the decimals of the figure `like`."""
    return fixed(x, decimals(x if like is None else like))


def figure_value(f: Stat | None) -> str:
    """The figure's value as text: exactly as a source writes it, else with the decimals its size calls for."""
    if f is None:
        return DASH
    if f.text:
        return f.text
    return figure_num(f.value)


def figure_detail(f: Stat | None) -> str:
    """n and spread, or what the source says instead: `n=36 · 98.1–110`, `mean of 5, as stated`."""
    if f is None:
        return ""
    if f.kind == "stated":
        return "approximate, as stated; no spread" if f.approx else "as stated; n and spread not stated"
    if f.kind == "mean" and not f.has_spread:
        count = f"mean of {f.n}" if f.n else "mean"
        if f.stddev is not None:  # llama-bench's "130.58 ± 0.66": the spread is its standard deviation
            return f"{count} ± sd, as stated" + ("" if f.n else "; n not stated")
        return f"{count}, as stated; no spread" if f.n else "mean, as stated; n and spread not stated"
    spread = (f" · {figure_num(f.min, f.value)}–{figure_num(f.max, f.value)}"  # type: ignore[arg-type]
              if f.has_spread else " · no spread (one sample)")
    return f"{f.kind} of n={f.n}{spread}"


# a flag, or a range a–b; a run of digits that starts no range is passed over whole (trying every position in it
# again made "1.1.1.1..." quadratic: minutes for a 200 KB config.extra_args)
_WHOLE = re.compile(r"(?<![\w-])(?:(--?[A-Za-z][\w.-]*|[\d.,]++–[\d.,]+)|[\d.,]++)")


def whole(text: object) -> Markup:
    """Escaped text in which flags (--metrics) and ranges (84.2–103.0) never break across lines: a phone would
    otherwise wrap them after their hyphen or dash."""
    return Markup(_WHOLE.sub(lambda m: f'<span class="qa-nw">{m[1]}</span>' if m[1] else m[0], h(text)))


def figure_html(f: Stat | None, unit: str = "") -> Markup:
    """A figure for a table cell or a list: the value, then n and spread in small print."""
    if f is None:
        return Markup(DASH)
    unit_html = f" {h(unit)}" if unit else ""
    return Markup(f'<span class="qa-v">{h(figure_value(f))}{unit_html}</span> '
                  f'<span class="qa-n">{whole(figure_detail(f))}</span>')


def held_figure(f: Stat | None, verdict: Any = None, unit: str = "") -> Markup:
    """A figure the judge holds back: as stated, struck through, with the reason (else the figure as usual)."""
    if verdict is None:
        return figure_html(f, unit)
    return Markup(f'<s title="{h(verdict.reason)}">{figure_html(f, unit)}</s> '
                  f'<span class="qa-n qa-held">held back: {h(verdict.reason)}</span>')


def figure_text(f: Stat | None, unit: str = "") -> str:
    if f is None:
        return "unknown"
    return f"{figure_value(f)}{' ' + unit if unit else ''} ({figure_detail(f)})"


def mib(x: Any) -> str:
    return DASH if missing(x) else f"{float(x) / 1024:.2f} GiB"


def gb(x: Any) -> str:
    return DASH if missing(x) else f"{float(x) / 1e9:.2f} GB"


def sort_attr(x: Any) -> Markup:
    """The data-sort attribute of a numeric cell (empty when unknown: it sorts last)."""
    return Markup(' data-sort=""' if missing(x) else f' data-sort="{float(x)!r}"')


def gloss(term: str, src: str, text: str | None = None) -> Markup:
    """A table header or term linked to its glossary entry."""
    return Markup(f'<a class="qa-gloss" href="{h(href(src, "glossary.md"))}#{glossary_anchor(term)}">'
                  f'{h(text or term)}</a>')


def _text(value: Any) -> Any:
    """Every `{{ value }}` that is not already markup goes through `h`, the one escaping rule: text that is inert
    in raw HTML, attributes and Markdown alike (invisible characters made visible)."""
    if isinstance(value, Markup) or value is None or isinstance(value, (int, float)):
        return value
    return Markup(h(value))


def join(items: Any, sep: str = "") -> str | Markup:
    """jinja's `join` (whose autoescape only HTML-escapes the items): plain text stays plain text, so the result
    goes through `_text` (or `code`) like any other value; items that are markup keep it, the others go through `h`."""
    items = list(items)
    if not any(isinstance(v, Markup) for v in items):
        return sep.join(map(str, items))
    return Markup(h(sep)).join(v if isinstance(v, Markup) else Markup(h(v)) for v in items)


def gloss_head(term: str, src: str, text: str | None = None) -> Markup:
    """A table header: its text (clicking it sorts) and a small separate link to the glossary entry."""
    return Markup(f'{h(text or term)}<a class="qa-gloss qa-gloss-q" href="{h(href(src, "glossary.md"))}'
                  f'#{glossary_anchor(term)}" title="What is {h(term)}?" aria-label="What is {h(term)}?">?</a>')


PICKER_COUNTS = (1, 2, 3, 4, 6, 8)  # the picker's "How many" GPUs


def _name(value: Any) -> str:
    """A setting's text for a stamp: a function by its qualified name (its repr holds an address)."""
    return f"{value.__module__}.{value.__qualname__}" if callable(value) and hasattr(value, "__qualname__") \
        else repr(value)


class TemplateCache(BytecodeCache):
    """Jinja's compiled templates kept in the cache directory, so a build compiles a template only when it changed
    (mkdocs-material's page templates and this package's: ~0.5 s of every build in a fresh process; `mkdocs serve`
    makes a new theme environment for each rebuild).

    Jinja checks each entry against its template's source (a checksum) and Python's bytecode version; what else its
    compiled code depends on, the environment's syntax and output settings and Jinja's version, names the folder
    (`stamp`). The folder is looked up at each use (the cache directory a test sets is honoured); an entry that
    cannot be read or written is a compile, never an error. QUANT_ATLAS_CACHE=0: nothing kept."""

    def __init__(self, environment: Environment) -> None:
        e = environment
        self.stamp = digest(lib_versions(("jinja2",)), *map(_name, (
            e.block_start_string, e.block_end_string, e.variable_start_string, e.variable_end_string,
            e.comment_start_string, e.comment_end_string, e.line_statement_prefix, e.line_comment_prefix,
            e.trim_blocks, e.lstrip_blocks, e.newline_sequence, e.keep_trailing_newline, sorted(e.extensions),
            e.optimized, e.finalize, e.autoescape, e.is_async)))[:16]

    def _path(self, bucket: Bucket) -> Path | None:
        return cache_dir(f"templates/{self.stamp}") / f"{bucket.key}.jinja" if enabled() else None

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            path = self._path(bucket)
            if path is not None and path.is_file():
                with open(path, "rb") as fh:
                    bucket.load_bytecode(fh)
        except Exception:  # unreadable or foreign bytes: compiled again
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            path = self._path(bucket)
            if path is not None:
                with atomic_open(path) as fh:
                    bucket.write_bytecode(fh)
        except OSError:
            pass  # only costs a compile next time


@lru_cache(maxsize=1)
def env() -> Environment:
    e = Environment(loader=PackageLoader("collector.publish", "templates"), autoescape=True,
                    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                    finalize=_text)
    e.bytecode_cache = TemplateCache(e)
    e.filters.update(join=join, md=md, code=code_block, cmd=inline_command, num=num, nums=nums, fig=figure_html,
                     held=held_figure,
                     whole=whole,
                     fig_text=figure_text, mib=mib, gb=gb, sort=sort_attr, url=safe_url,
                     tojson=lambda v: Markup(json.dumps(v)))
    e.globals.update(href=href, mdlink=mdlink, gloss=gloss, ghead=gloss_head, DASH=DASH, figure_value=figure_value,
                     root=lambda src: "../" * page_url(src).count("/") or "./",
                     figure_detail=figure_detail, PICKER_COUNTS=PICKER_COUNTS, PICKER_RAM=ram_choices())
    return e


def render(template: str, **context: Any) -> str:
    return env().get_template(template).render(**context)
