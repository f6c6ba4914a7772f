"""Imported figures as a reader should count them: one row per configuration of a source, one row per figure.

- One source, one configuration (the same device, model file and flags): its figures are one row, headed by the
  source's own summary (the figure it states as an average, e.g. "AVERAGE 37.5 t/s" over six tests) rather than the
  highest of them; the others stay on the row as "also stated", each with the source's words that hold it.
- Several sources, one figure: a post that repeats another's table (the same device, model file, flags and the same
  figure as written) makes no second row; the row cites every post that states it.

Rows are rows.row.Row values: `records` holds the row's own record; `also` the other figures of the same source and
configuration, `repeated` the records of other sources stating the same figure.
"""

from __future__ import annotations

from collections import defaultdict

from collector.publish.rows.keys import StatedKey, stated_key
from collector.publish.rows.row import Row
from collector.records.schema import SpeedRecord, Stat


def _figure_text(s: Stat | None) -> str | None:
    return None if s is None else (s.text or repr(s.value))


def _headline(rows: list[Row]) -> Row:
    """The source's own summary when it states one (a mean), else its first figure (the transcription's order)."""
    means = [r for r in rows if r.tg is not None and r.tg.kind == "mean"]
    return means[0] if len(means) == 1 else rows[0]


def _source_of(rec: SpeedRecord) -> str:
    return (rec.source.figure or rec.id).split("#")[0]


def merge_stated(rows: list[Row]) -> list[Row]:
    """The rows with the imported figures of one source and configuration merged, and figures repeated by other
    sources cited on the first source's row instead of making rows of their own. Measured rows pass unchanged;
    rows from tool output (llama-bench, LocalScore) are one test each and pass unchanged too."""
    out: list[Row] = []
    stated: dict[tuple[str, StatedKey], list[Row]] = defaultdict(list)
    for r in rows:
        if r.imported and r.rec.source.quotes and r.status == "ok":  # a transcription: figures in the source's words
            stated[(_source_of(r.rec), stated_key(r.rec))].append(r)
        else:
            out.append(r)
    merged: list[Row] = []
    for group in stated.values():
        head = _headline(group)
        head.also = [x for x in group if x is not head]
        merged.append(head)
    by_figure: dict[tuple[StatedKey, str | None, str | None], Row] = {}
    for r in sorted(merged, key=lambda r: (r.rec.created_at, r.rec.source.figure or "")):
        key = (stated_key(r.rec), _figure_text(r.tg), _figure_text(r.pp))
        first = by_figure.get(key)
        if first is not None and r.tg is not None and _source_of(first.rec) != _source_of(r.rec):
            first.repeated.append(r)
            continue
        by_figure[key] = r
        out.append(r)
    return out
