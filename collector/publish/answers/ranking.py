"""Rankings of one model file type (model + quant) across devices: which figures may be ranked together, and a
device's figure when it has several (decisions; pages.compare shows them).

Figures are ranked together only when they were measured the same way: the same source table (one author's sweep,
whatever builds it used: those are a footnote), runtime, test (one spelling: "tg512" is "tg 512") and stated
settings. Several results of one device are summarised by their median with the number of results and their range;
results whose highest is more than WIDE times their lowest disagree widely, and such a device is ranked on its
consistent majority or, without one, listed unranked (collector.judge.crowd.rank_of). Figures the judge holds back
are listed, never counted."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from collector.judge.crowd import WIDE, rank_of
from collector.judge.names import normalise_test
from collector.publish.rows.frame import Row, device_label, quant_of
from collector.publish.rows.names import UNNAMED_SLUG
from collector.records.schema import Stat


class TestShape(NamedTuple):
    """How a figure was measured: a llama-bench test (one spelling: "tg 512"), LocalScore's benchmark, the
    collector's prompt suite (with its generation length and depth), or as each source states it."""

    kind: str  # llama-bench | localscore | measured | stated
    test: str | None = None  # llama-bench: the test, normalised
    suite: str | None = None  # measured: the prompt suite's name
    n_predict: int | None = None
    depth: int | None = None


class RankShape(NamedTuple):
    """What must be equal for two figures to be ranked together: the source table (one author's sweep is one
    ranking whatever builds it used; the collector's own runs are one), the runtime, the test and the stated
    settings. Builds are a footnote of a ranking, not a section of their own."""

    source: str
    runtime: str | None
    test: TestShape
    settings: str


MEASURED_SOURCE = "measured by the collector"


def test_shape(r: Row) -> TestShape:
    rec = r.rec
    raw = rec.source.raw or {}
    cells = raw.get("cells") if isinstance(raw.get("cells"), dict) else None
    if cells and cells.get("test"):
        return TestShape("llama-bench", test=normalise_test(str(cells["test"])))
    if rec.method.endpoint == "LocalScore":
        return TestShape("localscore")
    if not r.imported:
        m = rec.method
        return TestShape("measured", suite=m.prompt_suite.name if m.prompt_suite else None, n_predict=m.n_predict,
                         depth=r.tg_depth)
    return TestShape("stated")


def source_table(r: Row) -> str:
    """The table a figure belongs to: its source's title, else its citation up to the first comma (the
    repository or post it cites), or the collector's own runs."""
    if not r.imported:
        return MEASURED_SOURCE
    s = r.rec.source
    return s.title or (s.citation or "source not named").split(",")[0]


def shape_of(r: Row) -> RankShape:
    settings = {k: v for k, v in r.rec.config.model_dump(mode="json").items() if v not in (None, [], {})}
    return RankShape(source_table(r), r.rec.source.runtime, test_shape(r),
                     json.dumps(settings, sort_keys=True) if r.imported else "")


@dataclass
class DeviceLine:
    """One device's figures in one ranking: every result, those the judge holds back listed but not counted."""

    device: str
    label: str
    what: str = "tg"
    figures: list[Row] = field(default_factory=list)

    @property
    def counted(self) -> list[Row]:
        return [r for r in self.figures if self.what not in r.held and getattr(r, self.what) is not None]

    @property
    def values(self) -> list[float]:
        return [getattr(r, self.what).value for r in self.counted]

    def stat(self) -> Stat | None:
        """The device's figure: one row's own (its n and range), or the median, n and range of its results."""
        figs = [getattr(r, self.what) for r in self.counted]
        if len(figs) == 1:
            return figs[0]
        return Stat.of(self.values)

    @property
    def rank(self) -> float | None:
        """What the device is ranked by (judge.crowd.rank_of); None: its results disagree and it is unranked."""
        return rank_of(self.values)

    @property
    def spread(self) -> float | None:
        vals = self.values
        return max(vals) / min(vals) if len(vals) > 1 and min(vals) > 0 else None

    @property
    def wide(self) -> bool:
        return (self.spread or 1.0) > WIDE

    @property
    def builds(self) -> list[str]:
        return sorted({r.rec.llama_cpp.version or "not stated" for r in self.figures})


def _eligible(rows: list[Row]) -> list[Row]:
    """Quiet, ok, one-client figures; a claim another post already states is counted once (not here)."""
    ok = [r for r in rows if r.status == "ok" and not r.noisy and not r.repeat
          and (r.rec.method.concurrency or 1) == 1 and (r.tg is not None or r.pp is not None)]
    return sorted(ok, key=lambda r: (-(r.value("tg") or r.value("pp") or 0.0), r.page_id))


# the sections of each list the last groups() returned (the compare pages and home rank those lists again); the list
# is held, so its id stands for it until the next groups()
_RANKED: dict[int, tuple[list[Row], dict[RankShape, dict[str, DeviceLine]]]] = {}


def sections(rows: list[Row]) -> dict[RankShape, dict[str, DeviceLine]]:
    """Per way of measuring, per device: the figures ranked together (tg where any has one, else pp)."""
    hit = _RANKED.get(id(rows))
    return hit[1] if hit is not None and hit[0] is rows else _sections(rows)


def _sections(rows: list[Row]) -> dict[RankShape, dict[str, DeviceLine]]:
    out: dict[RankShape, dict[str, DeviceLine]] = defaultdict(dict)
    measured_best: dict[tuple[RankShape, str], Row] = {}
    cands = _eligible(rows)
    has_tg = {shape_of(r) for r in cands if r.tg is not None}
    for r in cands:
        key = shape_of(r)
        what = "tg" if key in has_tg else "pp"
        if not r.imported:  # a device's fastest quiet configuration stands for it (fastest first)
            if (key, r.device) in measured_best or what in r.held:
                continue
            measured_best[(key, r.device)] = r
        line = out[key].setdefault(r.device, DeviceLine(r.device, device_label(r.rec.host), what))
        line.figures.append(r)
    return out


def groups(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    """(model, quant) -> rows, for those measured on at least two devices the same way; models that no name
    names are never compared (two unnamed results may be two models)."""
    by: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        if r.model != UNNAMED_SLUG:
            by[(r.model, quant_of(r.rec))].append(r)
    _RANKED.clear()
    found = {}
    for k, v in sorted(by.items()):
        ranked = _sections(v)
        if any(len(d) > 1 for d in ranked.values()):
            found[k] = v
            _RANKED[id(v)] = (v, ranked)
    return found
