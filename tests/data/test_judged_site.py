"""The judged site of data/ (issue 30's "Done when"): every figure over the bandwidth bound is held back with its
reason, listed on the Flagged figures page and in no pick, ranking or bar; no device is ranked on results that
disagree by more than 1.5x; no model page or pick is named by what names no model; Compare ranks each source table's
devices together. Built by the site's own code from the committed records (no MkDocs: the pages' Markdown/HTML)."""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path

from collector.judge import IMPLAUSIBLE, WIDE
from collector.publish.site.build import SiteBuild, build_from

REPO = Path(__file__).resolve().parents[2]
JUNK = ("Model Hf", "hub", "Dir", "active", "Models", "C:\\LLM_MODELS\\mistralai")


@functools.lru_cache(maxsize=1)
def _build() -> SiteBuild:
    return build_from(REPO / "data")


@functools.lru_cache(maxsize=1)
def _pages() -> dict[str, str]:
    return {g.src_uri: g.content for g in _build().whole() if isinstance(g.content, str)}


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_the_m1_1133_and_every_figure_over_the_bound_is_flagged_listed_and_never_picked_ranked_or_charted() -> None:
    build, pages = _build(), _pages()
    held = {rid: figs for rid, figs in build.held.items()}
    over = {rid for rid, figs in held.items() for fig, _, why in figs if fig == "tg" and "implies" in why}
    m1 = [rid for rid, figs in held.items() if any(text == "1133.05 ± 23.04" for _, text, _ in figs)]
    assert len(m1) == 1 and m1[0] in over
    flagged = pages["flagged.md"]
    assert "1133.05 ± 23.04" in flagged and "68.2 GB/s" in flagged and "OOM" in flagged
    assert flagged.count("<s>") >= len(over)
    # never in a pick: the device pages' pick blocks and answer cards link the picked run; a held run is never one
    for rid in over:
        for src, page in pages.items():
            if not src.startswith(("devices/", "compare/")) or src.endswith(".svg"):
                continue
            for block in re.findall(r'<h4[^>]*>.*?</h4>|#### .*?\n|<li><strong>(?:Fastest|Balanced|Most faithful)'
                                    r'.*?</li>', page, re.S):
                assert rid not in block, (src, rid)
    # never a ranked value or a bar: Compare's ranked rows list a held result only struck through
    compare = pages["compare/llama-3-8b--q4-k-m.md"]
    assert "1133.05" in compare and re.search(r"<s title=\"[^\"]*\">1133\.05", compare)
    charts = [g.content for g in build.files if g.src_uri.startswith("charts/compare/llama-3-8b--q4-k-m")]
    assert charts and not any(b"1133" in c for c in charts if isinstance(c, bytes))
    assert IMPLAUSIBLE in flagged


def _ranked_rows(page: str) -> list[tuple[str, float | None, list[float], bool]]:
    """(device, the figure it is ranked by, its counted results, whether the row says it was ranked on a
    consistent majority) for every ranked row of a Compare page."""
    out = []
    for table in re.findall(r'<table class="qa-sortable qa-key-2">(.*?)</table>', page, re.S):
        for row in re.findall(r"<tr><td>(.*?)</tr>", table, re.S):
            cells = re.split(r"</td><td[^>]*>", row)
            device = _text(cells[0])
            results = re.sub(r"<s [^>]*>.*?</s>", "", cells[3])  # struck through: held back, never counted
            values = [float(v.replace(",", "")) for v in re.findall(r">~?([\d,]+(?:\.\d+)?)<", results)]
            majority = re.search(r"ranked on ([\d.,]+) t/s", cells[0])
            out.append((device, float(majority.group(1).replace(",", "")) if majority else None, values,
                        majority is not None))
    return out


def test_no_device_is_ranked_on_results_that_disagree_by_more_than_wide() -> None:
    from collector.judge.crowd import rank_of

    seen_majority = 0
    for src, page in _pages().items():
        if not src.startswith("compare/") or src == "compare/index.md":
            continue
        for device, ranked_on, values, majority in _ranked_rows(page):
            if len(values) > 1 and max(values) > WIDE * min(values):
                # its results disagree: ranked only on a consistent majority, said so, with that majority's median
                assert majority and ranked_on is not None, (src, device, values)
                assert abs(ranked_on - (rank_of(values) or 0.0)) <= 0.06 * ranked_on, (src, device, values)
                seen_majority += 1
            else:
                assert not majority, (src, device, values)
    assert seen_majority > 0
    page = _text(_pages()["compare/meta-llama-3-1-8b-instruct--q4-k-m.md"])
    # LocalScore's RTX 5090 (43.2, 45.8, 106): ranked on its consistent two, never on a median with the outlier
    assert re.search(r"GeForce RTX 5090 results disagree \([\d.]+×\): ranked on 4\d\.\d t/s", page), page[:3000]


def test_no_model_page_or_pick_is_named_by_what_names_no_model() -> None:
    pages = _pages()
    titles = {src: re.search(r'^title: "(.*)"$', p, re.M) for src, p in pages.items() if src.startswith("models/")}
    for src, m in titles.items():
        if m and src != "models/unnamed.md":
            assert m.group(1) not in JUNK and "\\" not in m.group(1), src
    for src, page in pages.items():
        if src.startswith("devices/"):
            for pick in re.findall(r"#### (?:Fastest|Balanced|Most faithful|Largest context)[^\n]*", page):
                assert not any(f": {j} " in pick or pick.endswith(f": {j}") for j in JUNK), (src, pick)
    assert "unnamed model (as submitted: Model Hf)" in pages["models/unnamed.md"]


def test_compare_ranks_each_source_table_together_once_per_test() -> None:
    page = _pages()["compare/llama-3-8b--q4-k-m.md"]
    heads = re.findall(r"^## (.+)$", page, re.M)
    notes = re.findall(r'<p class="qa-cmd-note">(.*?) · \d+ devices', page)
    keys = [(h, n) for h, n in zip(heads, notes)]
    assert len(keys) == len(set(keys)), keys  # one section per source table and test
    xiong = [n for h, n in keys if h.startswith("XiongjieDai")]
    assert any("tg 512" in n for n in xiong) and not any("tg512" in n for n in xiong)
    section = page[page.index("tg 512"):]
    section = section[:section.index("</table>")]
    for device in ("RTX 4090", "H100", "A100", "M3 Max"):  # one sweep's devices meet in one ranking
        assert device in section, device
