"""Faithfulness on the pages of data/ (issue 34): every page that shows the demo's KLD says the F16 it was measured
against was re-made from the Q4_1 file (faithfulness to that file, not to the original model); the R9700 page shows
each file's max KL as its record states it; every imported family's model page shows its KLD rows with what they
were measured against. Built by the site's own code from the committed records."""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path

from collector.publish.site.build import build_from
from collector.records import index
from collector.records.schema import KldRecord

REPO = Path(__file__).resolve().parents[2]
REMADE = "re-made from the Q4_1 file: faithfulness to that file, not to the original model"


@functools.lru_cache(maxsize=1)
def _pages() -> dict[str, str]:
    return {g.src_uri: g.content for g in build_from(REPO / "data").whole() if isinstance(g.content, str)}


@functools.lru_cache(maxsize=1)
def _klds() -> tuple[KldRecord, ...]:
    recs = index.load_index(REPO / "data", cache=False).records.values()
    return tuple(r for r in recs if isinstance(r, KldRecord))


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _table_after(page: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """The first table after a column header named `heading`: its header cells and rows as text."""
    start = page.index(f">{heading}<")
    table = page[page.rindex("<table", 0, start):page.index("</table>", start)]
    head = [_text(c) for c in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)]
    rows = [[_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
            for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
    return head, [r for r in rows if r]


def test_every_page_with_the_demo_kld_says_its_reference_was_remade_from_the_q4_1_file() -> None:
    demo = [r for r in _klds() if "smollm2" in (r.model.name or "").lower()]
    assert demo, "the demo's KLD records are in data/"
    pages = _pages()
    showing = [src for src, page in pages.items() if src.endswith(".md")
               and any(r.id in page for r in demo)]
    assert "models/smollm2-135m-instruct.md" in showing
    devices = [s for s in showing if s.startswith("devices/") and "/history/" not in s]
    assert devices, "the demo's KLD is on its device pages"
    for src in ["models/smollm2-135m-instruct.md", *devices]:
        assert REMADE in _text(pages[src]), src


def test_the_r9700_page_shows_each_files_max_kl_as_stated() -> None:
    page = _pages()["devices/3x-ai-pro-r9700.md"]
    head, rows = _table_after(page, "max KL")
    col, quant = head.index("max KL"), head.index("quant")
    stated = {r.id: r.results.kld_max for r in _klds() if r.id in page}
    assert len(stated) >= 4 and all(v is not None for v in stated.values())
    shown = {row[quant]: row[col] for row in rows}
    assert len(shown) == len(stated)
    assert sorted(float(v) for v in shown.values()) == sorted(float(v) for v in stated.values() if v is not None)


def test_each_imported_family_page_shows_its_klds_and_what_they_were_measured_against() -> None:
    pages = _pages()
    for model, against in [("llama-3-8b", "F16"), ("qwen3-30b-a3b", "BF16"), ("qwen3-235b-a22b", "Q8_0")]:
        src = f"models/{model}.md"
        assert src in pages, sorted(p for p in pages if p.startswith("models/"))[:40]
        text = _text(pages[src])
        assert "mean KLD" in text and f"against {against}" in text, (src, text[:400])
