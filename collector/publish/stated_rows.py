"""Imported figures as a reader should count them: one row per configuration of a source, one row per figure.

- One source, one configuration (the same device, model file and flags): its figures are one row, headed by the
  source's own summary (the figure it states as an average, e.g. "AVERAGE 37.5 t/s" over six tests) rather than the
  highest of them; the others stay on the row as "also stated", each with the source's words that hold it.
- Several sources, one figure: a post that repeats another's table (the same device, model file, flags and the same
  figure as written) makes no second row; the row cites every post that states it.

Rows are frame.Row values: `records` holds the row's own record; `also` the other figures of the same source and
configuration, `repeated` the records of other sources stating the same figure.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING

from collector.records.schema import SpeedRecord, Stat
from collector.records.store import model_slug

if TYPE_CHECKING:  # frame calls merge_stated while it builds its rows
    from collector.publish.frame import Row


def _figure_text(s: Stat | None) -> str | None:
    return None if s is None else (s.text or repr(s.value))


def _file_key(rec: SpeedRecord) -> str:
    m = rec.model
    return json.dumps([model_slug(rec), m.quant or m.file_type, m.file_name, m.repo, m.finetune])


def _config_key(row: Row) -> str:
    return json.dumps([row.device, _file_key(row.rec), row.rec.config.model_dump(mode="json")], sort_keys=True)


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
    stated: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.imported and r.rec.source.quotes and r.status == "ok":  # a transcription: figures in the source's words
            stated[json.dumps([_source_of(r.rec), _config_key(r)])].append(r)
        else:
            out.append(r)
    merged: list[Row] = []
    for group in stated.values():
        head = _headline(group)
        head.also = [x for x in group if x is not head]
        merged.append(head)
    by_figure: dict[str, Row] = {}
    for r in sorted(merged, key=lambda r: (r.rec.created_at, r.rec.source.figure or "")):
        key = json.dumps([_config_key(r), _figure_text(r.tg), _figure_text(r.pp)])
        first = by_figure.get(key)
        if first is not None and r.tg is not None and _source_of(first.rec) != _source_of(r.rec):
            first.repeated.append(r)
            continue
        by_figure[key] = r
        out.append(r)
    return out
