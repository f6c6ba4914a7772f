"""Rankings of one model file type (model + quant) across devices: which figures may be ranked together, and a
device's figure when it has several (decisions; pages.compare shows them).

Figures are ranked together only when they were measured the same way: the same runtime, the same llama.cpp build
where one is stated, and the same test shape. Several results of one device are summarised by their median with the
number of results and their range; results whose highest is more than WIDE times their lowest disagree widely."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from collector.publish.answers.picks import usable
from collector.publish.rows.frame import Row, device_label, quant_of
from collector.records.schema import Stat

WIDE = 1.5  # results of one device whose highest exceeds this multiple of their lowest "disagree widely"


class TestShape(NamedTuple):
    """How a figure was measured: a llama-bench test, LocalScore's benchmark, the collector's prompt suite (with
    its generation length and depth), or as each source states it."""

    kind: str  # llama-bench | localscore | measured | stated
    test: str | None = None  # llama-bench: the test as printed
    suite: str | None = None  # measured: the prompt suite's name
    n_predict: int | None = None
    depth: int | None = None


class RankShape(NamedTuple):
    """What must be equal for two figures to be ranked together: runtime (None: llama.cpp as the source states,
    or the collector's own llama-server for a measured figure), build, and test shape."""

    runtime: str | None
    build: str | None
    test: TestShape


def test_shape(r: Row) -> TestShape:
    rec = r.rec
    raw = rec.source.raw or {}
    cells = raw.get("cells") if isinstance(raw.get("cells"), dict) else None
    if cells and cells.get("test"):
        return TestShape("llama-bench", test=str(cells["test"]))
    if rec.method.endpoint == "LocalScore":
        return TestShape("localscore")
    if not r.imported:
        m = rec.method
        return TestShape("measured", suite=m.prompt_suite.name if m.prompt_suite else None, n_predict=m.n_predict,
                         depth=r.tg_depth)
    return TestShape("stated")


def shape_of(r: Row) -> RankShape:
    return RankShape(r.rec.source.runtime, r.rec.llama_cpp.version, test_shape(r))


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


def sections(rows: list[Row]) -> dict[RankShape, dict[str, DeviceLine]]:
    """Per way of measuring, per device: the figures ranked together."""
    out: dict[RankShape, dict[str, DeviceLine]] = defaultdict(dict)
    measured_best: dict[tuple[RankShape, str], Row] = {}
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
    return {k: v for k, v in sorted(by.items()) if any(len(d) > 1 for d in sections(v).values())}
