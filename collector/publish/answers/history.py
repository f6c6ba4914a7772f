"""One configuration across llama.cpp builds: timelines, and a change flagged only when it exceeds the noise.

A timeline is a configuration without its build: the same device, model file, flags and number of clients
(`frame.config_key` less the build), measured by the collector; or the same llama-bench test (pp512, tg128 at a
depth) of the same model and settings, imported. Each build on it pools its quiet samples at the timeline's
headline depth; noisy runs are shown and never compared.

Step-detection rule (site/methodology.md, docs/history.md): builds are taken in build-number order,
and each build with at least MIN_SAMPLES samples is compared with the previous such build. Each gets a noise band:
the distribution-free 95 % confidence interval of its median (order statistics of the binomial; with fewer than 6
samples no such interval exists and the full min-max range is used), widened to span the medians of its separate
runs when it was measured more than once (sessions differ more than samples within one). Two consecutive builds
differ when their noise bands do not overlap AND their medians differ by more than STEP (5 %), both; the change
names the build range to bisect. Anything else is "no change beyond noise".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from collector.base.stats import MIN_SAMPLES, STEP, Interval, median, median_band, separate
from collector.publish.rows.devices import device_key
from collector.publish.rows.keys import TimelineKey, timeline_key
from collector.records.figures import stat_of
from collector.records.schema import SpeedRecord, Stat


@dataclass(frozen=True)
class BuildSamples:
    """One build's samples of one figure (tokens/s), and the median of each run when it was measured more than once."""

    build: int
    samples: tuple[float, ...]
    run_medians: tuple[float, ...] = ()

    @property
    def median(self) -> float:
        return median(self.samples)

    def band(self) -> tuple[float, float] | None:
        """The noise band (see the module docstring), or None when there are too few samples to compare."""
        if len(self.samples) < MIN_SAMPLES:
            return None
        lo, hi = median_band(self.samples)
        if len(self.run_medians) > 1:
            lo, hi = min(lo, *self.run_medians), max(hi, *self.run_medians)
        return lo, hi

    def interval(self) -> Interval | None:
        band = self.band()
        return None if band is None else Interval(self.median, band[0], band[1], "median95")


@dataclass(frozen=True)
class Change:
    """A change between two consecutive compared builds: bisect llama.cpp between `good` and `bad`."""

    before: int
    after: int
    median_before: float
    median_after: float

    @property
    def relative(self) -> float:
        return self.median_after / self.median_before - 1

    @property
    def kind(self) -> str:
        return "slowdown" if self.relative < 0 else "speedup"

    @property
    def bisect(self) -> str:
        return f"git bisect start b{self.after} b{self.before}"


def detect_changes(series: Sequence[BuildSamples], step: float = STEP) -> list[Change]:
    """The changes beyond noise between consecutive builds of one figure (the rule in the module docstring)."""
    compared = [(b, i) for b in sorted(series, key=lambda b: b.build) if (i := b.interval()) is not None]
    out = []
    for (a, ia), (b, ib) in zip(compared, compared[1:]):
        if separate(ia, ib, step).apart:
            out.append(Change(a.build, b.build, a.median, b.median))
    return out


# ---- timelines from records ----

@dataclass
class BuildPoint:
    """One build on a timeline: its records, and its figures at the headline depth (quiet samples only)."""

    build: int
    version: str
    records: list[SpeedRecord] = field(default_factory=list)
    noisy: list[SpeedRecord] = field(default_factory=list)  # shown, never compared
    figures: dict[str, Stat] = field(default_factory=dict)  # tg, pp
    series: dict[str, BuildSamples] = field(default_factory=dict)

    @property
    def compared(self) -> bool:
        return any(s.band() is not None for s in self.series.values())


@dataclass
class Timeline:
    key: TimelineKey
    device: str
    records: list[SpeedRecord] = field(default_factory=list)
    depth: int = 0
    points: list[BuildPoint] = field(default_factory=list)  # by build number
    changes: dict[str, list[Change]] = field(default_factory=dict)  # tg, pp

    @property
    def rec(self) -> SpeedRecord:
        return self.records[-1]

    @property
    def imported(self) -> bool:
        return self.rec.source.type == "imported"

    @property
    def test(self) -> str | None:
        """The llama-bench test name of an imported timeline (pp512, tg128 @ d512)."""
        return self.rec.samples[0].category if self.imported and self.rec.samples else None


def _samples(recs: list[SpeedRecord], depth: int, what: str) -> list[list[float]]:
    return [[v for s in r.samples if s.depth_tokens == depth for v in getattr(s, f"{what}_tps")] for r in recs]


def timelines(records: list[SpeedRecord]) -> list[Timeline]:
    """Every timeline with ok records from two or more llama.cpp builds, oldest record first within each."""
    groups: dict[TimelineKey, list[SpeedRecord]] = defaultdict(list)
    for rec in sorted(records, key=lambda r: (r.created_at, r.id)):
        key = timeline_key(rec)
        if key is not None:
            groups[key].append(rec)
    out = []
    for key, recs in groups.items():
        by_build: dict[int, list[SpeedRecord]] = defaultdict(list)
        for r in recs:
            by_build[r.llama_cpp.build_number or 0].append(r)
        if len(by_build) < 2:
            continue
        line = Timeline(key=key, device=device_key(recs[0].host), records=recs)
        quiet_depths = [{s.depth_tokens for r in rs if not _noisy(r) for s in r.samples} for rs in by_build.values()]
        common = set.intersection(*[d for d in quiet_depths if d]) if any(quiet_depths) else set()
        every = {s.depth_tokens for r in recs for s in r.samples}
        line.depth = min(common or every or {0})
        for build in sorted(by_build):
            rs = by_build[build]
            point = BuildPoint(build, f"b{build}", records=rs, noisy=[r for r in rs if _noisy(r)])
            quiet = [r for r in rs if not _noisy(r)]
            for what in ("tg", "pp"):
                per_run = [v for v in _samples(quiet, line.depth, what) if v]
                pooled = [v for vs in per_run for v in vs]
                fig = stat_of(pooled, digits=3)
                if fig is not None:
                    point.figures[what] = fig
                    point.series[what] = BuildSamples(build, tuple(pooled),
                                                      tuple(median(v) for v in per_run))
            line.points.append(point)
        for what in ("tg", "pp"):
            line.changes[what] = detect_changes([p.series[what] for p in line.points if what in p.series])
        out.append(line)
    return out


def _noisy(rec: SpeedRecord) -> bool:
    return bool(rec.conditions and rec.conditions.noisy)
