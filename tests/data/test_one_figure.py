"""One figure, one definition (issue 29), on the site of data/: every measured record's tg is the same number at the
same stated depth on its device page, on /runs/, in records.csv and in records.parquet; and every tie sentence on
the site is true of the figures it names, by the one rule (collector.base.stats.separate)."""

from __future__ import annotations

import csv
import functools
import html
import io
import math
import re
from pathlib import Path

import pyarrow.parquet as pq

from collector.publish.rows.frame import build_frames
from collector.publish.site.build import SiteBuild, build_from
from collector.publish.words.render import figure_value
from collector.records.figures import record_headline
from collector.records.index import load_index
from collector.records.schema import SpeedRecord

REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def _build() -> SiteBuild:
    return build_from(REPO / "data")


def _file(src: str) -> str | bytes:
    return next(g.content for g in _build().whole() if g.src_uri == src)


def test_each_measured_tg_is_one_number_at_one_depth_everywhere() -> None:
    records = [r for r in load_index(REPO / "data").valid if isinstance(r, SpeedRecord) and r.measured
               and r.status == "ok"]
    assert len(records) > 30
    text = _file("data/records.csv")
    assert isinstance(text, str)
    csv_rows = {r["id"]: r for r in csv.DictReader(io.StringIO(text))}
    parquet = _file("data/records.parquet")
    assert isinstance(parquet, bytes)
    table = pq.read_table(io.BytesIO(parquet)).to_pydict()
    pq_rows = {rid: i for i, rid in enumerate(table["id"])}
    runs = _file("runs/index.md")
    assert isinstance(runs, str)
    rows = {r.rec.id: r for r in build_frames(records).rows if len(r.records) == 1}
    checked = 0
    for rec in records:
        head = record_headline(rec)
        if head is None or head.tg_tps is None:
            continue
        tg, depth = head.tg_tps.median, head.depth_tokens
        c = csv_rows[rec.id]
        assert float(c["tg_tps_median"]) == tg and int(c["depth_tokens"]) == depth, rec.id
        i = pq_rows[rec.id]
        assert table["tg_tps_median"][i] == tg and table["depth_tokens"][i] == depth, rec.id
        row = rows.get(rec.id)
        if row is not None:  # one run: the device page's row is the run itself (several runs pool, said so)
            assert row.tg is not None and row.tg.median == tg and row.tg_depth == depth, rec.id
        shown = f"{figure_value(head.tg_tps)} t/s generation"
        if f"runs/{rec.id}/" in runs:  # the run list shows the newest runs: the same figure at the same depth
            line = runs[runs.index(f"runs/{rec.id}/"):]
            line = html.unescape(re.sub(r"<[^>]+>", "", line[:line.index("</tr>")]))
            assert shown in line and f"at depth {depth:,}" in line, (rec.id, line)
        checked += 1
    assert checked > 30


_TIE = re.compile(r'<span class="qa-tie" data-rule="(?P<rule>[^"]+)" data-a="(?P<a>[^"]+)" data-a-lo="(?P<alo>[^"]+)"'
                  r' data-a-hi="(?P<ahi>[^"]+)" data-b="(?P<b>[^"]+)" data-b-lo="(?P<blo>[^"]+)" '
                  r'data-b-hi="(?P<bhi>[^"]+)" data-step="(?P<step>[^"]+)">(?P<text>[^<]*)</span>')


def test_every_tie_sentence_is_true_of_the_figures_it_names() -> None:
    ties = [m for g in _build().whole() if isinstance(g.content, str) for m in _TIE.finditer(g.content)]
    assert ties, "data/ has ties to check"
    for m in ties:
        a, b, step = float(m["a"]), float(m["b"]), float(m["step"])
        gap = abs(b / a - 1) * 100
        overlap = not (float(m["ahi"]) < float(m["blo"]) or float(m["bhi"]) < float(m["alo"]))
        text = html.unescape(m["text"])
        assert re.match(r"[\d.]+ % apart", text), text
        said_gap = float(text.split(" %")[0])
        half_unit = 10 ** (math.floor(math.log10(gap)) - 1) / 2 if gap > 0 else 0.0  # 2 significant digits
        assert abs(said_gap - gap) <= half_unit + 1e-9, (text, gap)
        if m["rule"] == "within-step":
            assert gap <= step and f"within the {step:g} % step" in text, text
        else:
            assert m["rule"] == "overlap" and gap > step and overlap and "intervals overlap" in text, text
