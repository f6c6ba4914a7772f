"""Crowd results summarised, not raced: several results for one device + model + quant + test.

Results are grouped when they measured the same thing the same way: the same device set (catalog name, and how
many), the same model (names.model_key: spellings folded; an unnamed model never shares a group), the same quant,
runtime, test (names.normalise_test: "tg512" = "tg 512") and stated settings. The llama.cpp build is not part of
the key: one author's sweep over builds is one group, its builds a footnote.

A group is one summary: median, n, min-max, and its spread (max / min). A spread over WIDE is flagged. A result
agrees with another when the larger is at most WIDE times the smaller; a result is *contradicted* when it agrees
with fewer than half of its device's other results (two results that disagree contradict each other: neither is
the device's figure). A contradicted result is never a pick. A group is ranked by its median when its spread is
within WIDE; else by the median of its consistent results when they are a majority and agree among themselves
within WIDE; else it is unranked and listed with its spread.

Figures the gate holds back (bandwidth, source summary, zero) stay listed in their group but take no part in its
summary; a claim repeated by several posts counts once (its first record stands for it). Only imported results are
grouped here: the collector's own runs of one configuration are pooled by collector.records.pool, which keeps the
quiet runs and marks noisy ones (a noisy run at half the speed is the host's load, not a disagreeing source).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from collector.catalog import Catalog
from collector.judge.names import model_name, normalise_test
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord

WIDE = 1.5


@dataclass(frozen=True)
class GroupKey:
    device: str  # "NVIDIA GeForce RTX 4090", "2x NVIDIA GeForce RTX 3090", or a spelling not in the catalog
    model: str  # names.ModelName.key
    quant: str
    runtime: str
    test: str
    settings: str  # the stated config, as JSON (empty: "{}")
    metric: str  # tg | pp


@dataclass(frozen=True)
class Result:
    record_id: str
    value: float
    text: str  # as its source writes it
    held: bool  # held back by the gate: listed, not summarised
    contradicted: bool = False
    also: tuple[str, ...] = ()  # records of other posts stating the same claim


@dataclass
class CrowdGroup:
    key: GroupKey
    model_label: str
    results: list[Result] = field(default_factory=list)

    @property
    def counted(self) -> list[Result]:
        return [r for r in self.results if not r.held]

    @property
    def n(self) -> int:
        return len(self.counted)

    @property
    def median(self) -> float | None:
        vals = [r.value for r in self.counted]
        return statistics.median(vals) if vals else None

    @property
    def min(self) -> float | None:
        return min((r.value for r in self.counted), default=None)

    @property
    def max(self) -> float | None:
        return max((r.value for r in self.counted), default=None)

    @property
    def spread(self) -> float | None:
        """max / min of the counted results (None: fewer than two, or a zero)."""
        lo, hi = self.min, self.max
        return hi / lo if self.n > 1 and lo and hi else None

    @property
    def wide(self) -> bool:
        return (self.spread or 1.0) > WIDE

    @property
    def consistent(self) -> list[Result]:
        return [r for r in self.counted if not r.contradicted]

    @property
    def rank_value(self) -> float | None:
        """What the group is ranked by (rank_of)."""
        return rank_of([r.value for r in self.counted])

    @property
    def ranked_on(self) -> str:
        """Words for the rank: 'median of 3', 'median of 2 consistent of 3', 'unranked: results 22.3-396 (17.8x)'."""
        if self.rank_value is None:
            return (f"unranked: {self.n} results {self.min:g}-{self.max:g} ({self.spread:.3g}x)" if self.counted
                    else "unranked: every result held back")
        if not self.wide:
            return f"median of {self.n}"
        return f"median of {len(self.consistent)} consistent of {self.n} (results {self.min:g}-{self.max:g})"


def _device(rec: SpeedRecord, catalog: Catalog) -> str:
    if not rec.host.gpus:
        return f"CPU {rec.host.cpu.model or 'not stated'}"
    names = []
    for g in rec.host.gpus:
        dev = catalog.resolve(g.name)
        names.append(dev.name if dev else g.name)
    distinct = list(dict.fromkeys(names))
    if len(distinct) == 1:
        return distinct[0] if len(names) == 1 else f"{len(names)}x {distinct[0]}"
    return " + ".join(sorted(names))


def shape_key(rec: SpeedRecord) -> str:
    """The test a record's figure comes from, in one spelling."""
    cells = (rec.source.raw or {}).get("cells")
    if isinstance(cells, dict) and cells.get("test"):
        return normalise_test(str(cells["test"])) or ""
    if rec.method.endpoint == "LocalScore":
        return "LocalScore benchmark"
    if len(rec.samples) == 1:
        return normalise_test(rec.samples[0].category) or ""
    return "as the source states it"


def group_key(rec: SpeedRecord, metric: str, catalog: Catalog) -> GroupKey:
    m = rec.model
    settings = {k: v for k, v in rec.config.model_dump(mode="json").items() if v not in (None, [], {})}
    runtime = rec.source.runtime or "llama.cpp (as the source states it)"
    return GroupKey(_device(rec, catalog), model_name(m.name or m.basename or m.file_name, m.params_stated).key,
                    (m.quant or m.file_type or "not stated").upper(), runtime, shape_key(rec),
                    json.dumps(settings, sort_keys=True), metric)


def agree(a: float, b: float) -> bool:
    return a > 0 and b > 0 and max(a, b) <= WIDE * min(a, b)


def rank_of(values: list[float]) -> float | None:
    """What several results of one device are ranked by: their median when they agree within WIDE, else the median
    of their consistent majority when that agrees within WIDE, else None (listed unranked, with their spread)."""
    if not values:
        return None
    if max(values) <= WIDE * min(values):
        return statistics.median(values)
    ok = [v for v, bad in zip(values, contradicted(values)) if not bad]
    if ok and len(ok) * 2 > len(values) and max(ok) <= WIDE * min(ok):
        return statistics.median(ok)
    return None


def contradicted(values: list[float]) -> list[bool]:
    out = []
    for i, v in enumerate(values):
        others = values[:i] + values[i + 1:]
        out.append(bool(others) and 2 * sum(agree(v, o) for o in others) < len(others))
    return out


def crowd_groups(records: Iterable[AnyRecord], catalog: Catalog, held: set[tuple[str, str]] | None = None,
                 repeated: dict[str, tuple[str, ...]] | None = None) -> list[CrowdGroup]:
    """Every group of imported results (n >= 1), ordered by key. `held`: (record id, metric) the gate holds back;
    `repeated`: record id -> the ids of other posts stating the same claim (those are left out: counted once)."""
    held = held or set()
    repeated = repeated or {}
    dropped = {x for others in repeated.values() for x in others}
    groups: dict[GroupKey, CrowdGroup] = {}
    for rec in records:
        if not isinstance(rec, SpeedRecord) or rec.status != "ok" or rec.id in dropped or rec.measured:
            continue
        for metric in ("tg", "pp"):
            stat = getattr(rec.summary, f"{metric}_tps")
            if stat is None:
                continue
            key = group_key(rec, metric, catalog)
            g = groups.setdefault(key, CrowdGroup(key, model_name(rec.model.name or rec.model.basename or
                                                                  rec.model.file_name, rec.model.params_stated).label))
            g.results.append(Result(rec.id, stat.value, stat.text or f"{stat.value:g}", (rec.id, metric) in held,
                                    also=repeated.get(rec.id, ())))
    out = []
    for key in sorted(groups, key=lambda k: (k.model, k.quant, k.runtime, k.test, k.metric, k.device, k.settings)):
        g = groups[key]
        flags = iter(contradicted([r.value for r in g.counted]))
        g.results = [r if r.held else Result(r.record_id, r.value, r.text, r.held, next(flags), r.also)
                     for r in g.results]
        out.append(g)
    return out
