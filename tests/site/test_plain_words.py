"""Pages speak to people: no raw log line, record field name, transcriber's note about fields, or bare record id as
visible text, on the fixture site as built by MkDocs, and on every page of data/ (which holds the real cases: the
auto-fit lines of measured runs, KLD records, transcription notes, a tune with its trials)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.publish import render_site
from collector.publish.pages.run import run_html, trial_names_of
from collector.publish.rows.frame import run_page_id
from collector.records.index import load_records
from sitebuild import REPO, page_text

pytestmark = pytest.mark.site
FORBIDDEN = re.compile(r"common_params_fit|common_fit_params|kld_mean|host\.|stays null"
                       r"|(?<![0-9A-Za-z])[0-9A-HJKMNP-TV-Z]{26}(?![0-9A-Za-z])")  # the last: a bare ULID (record id)
_CODE = re.compile(r"<code>.*?</code>|^```.*?^```", re.S | re.M)  # inline code, and a query example's fence


def visible(html: str, src: str) -> str:
    """What a reader reads on the page; on the Data page the column names of the downloads (each in <code>, and in
    its query examples: the files' schema, which a reader types into a query) are the one place field names belong."""
    if src.startswith("data/"):
        html = _CODE.sub("", html)
    return page_text(html)


def _hits(text: str) -> list[str]:
    return [text[max(0, m.start() - 60):m.end() + 30] for m in FORBIDDEN.finditer(text)]


def test_the_built_fixture_site_has_no_raw_names(built_site: Path) -> None:
    bad = {}
    pages = list(built_site.rglob("index.html"))
    assert len(pages) > 40
    for page in pages:
        rel = page.relative_to(built_site).as_posix()
        hits = _hits(visible(page.read_text(encoding="utf-8"), rel))
        if hits:
            bad[rel] = hits[:2]
    assert not bad, bad


def test_every_page_of_data_has_no_raw_names() -> None:
    """data/'s generated pages (their tables and lists as they reach the reader) and all 2,101 run pages."""
    bad = {}
    for g in render_site(REPO / "data"):
        if g.src_uri.endswith(".md") and isinstance(g.content, str):
            hits = _hits(visible(g.content, g.src_uri))
            if hits:
                bad[g.src_uri] = hits[:2]
    records = load_records(REPO / "data")
    names = trial_names_of({run_page_id(r): r for r in records})
    assert names and all(len(v) > 3 for v in names.values())  # the tune names its trials by configuration
    fits = 0
    for rec in records:
        fits += bool(getattr(getattr(rec, "placement", None), "fit", None))
        hits = _hits(visible(run_html(rec, names.get(rec.id)), "runs/"))
        if hits:
            bad[f"runs/{rec.id}"] = hits[:2]
    assert fits >= 20  # the real cases are there: runs whose log has auto-fit lines
    assert not bad, dict(list(bad.items())[:8])
