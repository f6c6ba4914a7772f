"""The speed model's error on figures it was not fitted on, and the ranges those errors give.

Three ways of leaving figures out, each refitting the model without them and predicting them:

- **source**: one publisher at a time (estimate.points.source_key: a repository's author, a notebook set, a
  document): its harness, builds and machines are not in the fit. A device measured only by that source is then
  a device nobody measured; one measured elsewhere keeps the effect the other sources give it.
- **time**: every figure of a build published in YEAR or later, fitted on the earlier builds only (the model as it
  stood before those builds existed).
- **device**: one GPU at a time (all its sets of several together), every other figure kept.

A check is one left-out figure. The stated range of an estimate is the estimate times the 10th and 90th percentiles
of measured / estimated over the leave-one-source-out checks of its vendor class (NVIDIA, AMD, Apple, Intel), or
over every class's checks where the class has checks from fewer than MIN_SOURCES sources. Its coverage is measured
the same way the range is meant: for each source, the range computed without that source's checks, and the share
of that source's checks that fall inside it (`coverage`).

The group an estimate is judged by (its *gate*, `gate_of`) is its vendor class, except for a device class only one
source measured (`apart_classes`: every figure of, say, the HBM datacenter GPUs from one publisher): left out by
source, that class is one the fit never saw, so its checks measure something else than the rest of its vendor's;
such a class is judged on its own checks (its range, having one source, is every class's) and kept out of its
vendor's range and coverage. An estimate is shown on the site only where its gate had at least MIN_CHECKS
leave-one-source-out checks with a median absolute error within BOUND_PCT and its stated range held at least
MIN_COVERAGE of them (a range that holds a third of what it never saw is not stated), and, where the gate has at least
MIN_CHECKS figures of builds from TIME_SPLIT on, the range held MIN_COVERAGE of those too when the model was fitted on
the earlier builds only (`later_coverage`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

from collector.base import stats
from collector.estimate.points import Point, vendor_class
from collector.estimate.speed import SpeedFit, backend_key, fit, predict

MODES = ("source", "time", "device")
TIME_SPLIT = "2025"  # the time check: fitted on builds before this year, tested on this year's and later
MIN_CHECKS = 10
MIN_SOURCES = 2
BOUND_PCT = 25.0
MIN_COVERAGE = 0.70  # the share of left-out figures the stated 10th-90th percentile range must hold to be shown
LOW_Q, HIGH_Q = 10, 90


@dataclass(frozen=True)
class Held:
    """One left-out figure and its estimate."""

    mode: str
    point: Point
    estimate: float

    @property
    def ratio(self) -> float:
        return self.point.value / self.estimate

    @property
    def error_pct(self) -> float:
        return (self.estimate / self.point.value - 1) * 100


def _refit(train: list[Point], test: list[Point], mode: str, metric: str) -> list[Held]:
    if not train or not test:
        return []
    f = fit(train, metric)
    out = []
    for p in test:
        est = predict(f, p)
        if est == est and est > 0:
            out.append(Held(mode, p, est))
    return out


def leave_source_out(points: list[Point], metric: str) -> list[Held]:
    pts = [p for p in points if p.metric == metric]
    out: list[Held] = []
    for source in sorted({p.source for p in pts}):
        out += _refit([p for p in pts if p.source != source], [p for p in pts if p.source == source], "source",
                      metric)
    return out


def leave_later_out(points: list[Point], metric: str, year: str = TIME_SPLIT) -> list[Held]:
    dated = [(p.year, p) for p in points if p.metric == metric and p.year is not None]
    return _refit([p for y, p in dated if y < year], [p for y, p in dated if y >= year], "time", metric)


def leave_device_out(points: list[Point], metric: str) -> list[Held]:
    pts = [p for p in points if p.metric == metric]
    out: list[Held] = []
    for gpu in sorted({p.gpu for p in pts}):
        out += _refit([p for p in pts if p.gpu != gpu], [p for p in pts if p.gpu == gpu], "device", metric)
    return out


CHECKS: dict[str, Callable[[list[Point], str], list[Held]]] = {
    "source": leave_source_out, "time": leave_later_out, "device": leave_device_out}


@dataclass(frozen=True)
class Range:
    """The stated range's factors (10th and 90th percentile of measured / estimated) and whose checks they are."""

    low: float
    high: float
    basis: str  # "NVIDIA" or "every class"
    n: int


def apart_classes(checks: list[Held]) -> frozenset[str]:
    """Device classes with at least MIN_CHECKS leave-one-source-out checks, every one of one source."""
    sources: dict[str, set[str]] = defaultdict(set)
    n: dict[str, int] = defaultdict(int)
    for h in checks:
        if h.mode == "source":
            sources[h.point.cls].add(h.point.source)
            n[h.point.cls] += 1
    return frozenset(c for c, s in sources.items() if len(s) == 1 and n[c] >= MIN_CHECKS)


def gate_of(p: Point, apart: frozenset[str]) -> str:
    """The group whose checks judge an estimate of this point: its device class where one source measured that
    class alone, else its vendor class."""
    return p.cls if p.cls in apart else p.vendor


def gate_name(group: str) -> str:
    """A gate in words: 'the NVIDIA class', 'the NVIDIA discrete GPU (HBM) class (one source measured it)'."""
    vendor = vendor_class(group)
    return f"the {group} class" if group == vendor else f"the {group} class (one source measured it)"


def range_for(checks: list[Held], group: str, without: str | None = None,
              apart: frozenset[str] | None = None) -> Range | None:
    """The range for an estimate of a device judged by this group (a vendor class, or a device class one source
    measured alone: gate_of), from leave-one-source-out checks (without one source's: what the coverage check uses).

    A new source's figures differ from an estimate by a shift of their own (harness, build, machine) and a spread
    around it, so the range is the 10th-90th percentile of shift + spread: each source's median log ratio counted
    once (a source of 800 figures is one source), every check's deviation from its source's median counted once."""
    apart = apart_classes(checks) if apart is None else apart
    usable = [h for h in checks if h.mode == "source" and h.point.source != without]
    mine = [h for h in usable if gate_of(h.point, apart) == group]
    basis = group
    if len({h.point.source for h in mine}) < MIN_SOURCES or len(mine) < MIN_CHECKS:
        mine, basis = usable, "every class"
    if len(mine) < MIN_CHECKS:
        return None
    by: dict[str, list[float]] = defaultdict(list)
    for h in mine:
        by[h.point.source].append(math.log(h.ratio))
    shifts = {src: stats.median(v) for src, v in by.items()}
    spread = [x - shifts[src] for src, v in by.items() for x in v]
    values = sorted(a + b for a in shifts.values() for b in spread)
    lo = stats.percentile(values, LOW_Q)
    hi = stats.percentile(values, HIGH_Q)
    return Range(math.exp(lo or 0.0), math.exp(hi or 0.0), basis, len(mine))


@dataclass(frozen=True)
class GroupError:
    """The held-out error of one group of checks (a vendor class, a backend or a left-out source)."""

    metric: str
    mode: str
    by: str  # vendor | backend | source | all
    group: str
    n: int  # checks
    n_sources: int
    median_pct: float
    p90_pct: float
    signed_pct: float  # median signed error: estimate above (+) or below (-) the figures
    coverage: float | None  # share of the checks inside the range stated for them (each source left out; by time)
    # a vendor class left out by source: its checks by time (figures of later builds, fitted on earlier ones)
    later_n: int = 0
    later_coverage: float | None = None

    def _short_of(self) -> str | None:
        """Which rule keeps the group's estimates off the pages: "checks", "error", "coverage", "later" (None: none
        does)."""
        if self.n < MIN_CHECKS:
            return "checks"
        if self.median_pct > BOUND_PCT:
            return "error"
        if self.coverage is None or self.coverage < MIN_COVERAGE:
            return "coverage"
        if self.later_n >= MIN_CHECKS and (self.later_coverage is None or self.later_coverage < MIN_COVERAGE):
            return "later"
        return None

    @property
    def shortfall(self) -> str | None:
        """Why this group's estimates are not shown, in a sentence (None: they are)."""
        rule = self._short_of()
        said = f"median error {self.median_pct:.0f} % over {self.n} figures"
        if rule in ("checks", "error"):
            return f"{said} (shown within {BOUND_PCT:.0f} % over at least {MIN_CHECKS})"
        if rule == "coverage":
            held = "could not be checked" if self.coverage is None else f"held {self.coverage * 100:.0f} % of them"
            return (f"{said}, but the range an estimate would state {held} (shown where it holds "
                    f"{MIN_COVERAGE * 100:.0f} %)")
        if rule == "later":
            held = ("could not be checked against" if self.later_coverage is None else
                    f"held {self.later_coverage * 100:.0f} %")
            return (f"{said}; but fitted on builds before {TIME_SPLIT}, the range {held} of the {self.later_n} "
                    f"figures of later builds (shown where it holds {MIN_COVERAGE * 100:.0f} %)")
        return None

    @property
    def meets(self) -> bool:
        return self._short_of() is None

    @property
    def verdict(self) -> str:
        """Whether the group's estimates are shown, in a table cell's words."""
        return {"checks": f"not shown: {self.n} figure(s), at least {MIN_CHECKS} needed",
                "error": f"not shown: median error above {BOUND_PCT:.0f} %",
                "coverage": f"not shown: the range held under {MIN_COVERAGE * 100:.0f} %",
                "later": f"not shown: the range held under {MIN_COVERAGE * 100:.0f} % of later builds",
                None: "shown"}[self._short_of()]


def covered(checks: list[Held], apart: frozenset[str]) -> dict[int, bool]:
    """For each leave-one-source-out check (by id), whether the range stated without its source holds it; for each
    check by time (a figure of a later build), whether the range an estimate of its class states holds it."""
    out: dict[int, bool] = {}
    cache: dict[tuple[str, str | None], Range | None] = {}
    for h in checks:
        if h.mode not in ("source", "time"):
            continue
        k = (gate_of(h.point, apart), h.point.source if h.mode == "source" else None)
        if k not in cache:
            cache[k] = range_for(checks, k[0], without=k[1], apart=apart)
        r = cache[k]
        if r is not None:
            out[id(h)] = r.low <= h.ratio <= r.high
    return out


def summarise(checks: list[Held], metric: str) -> list[GroupError]:
    apart = apart_classes(checks)
    inside = covered(checks, apart)
    groups: dict[tuple[str, str, str], list[Held]] = defaultdict(list)
    for h in checks:
        if h.point.metric != metric:
            continue
        groups[(h.mode, "vendor", h.point.vendor)].append(h)
        if h.mode in ("source", "time"):
            groups[(h.mode, "gate", gate_of(h.point, apart))].append(h)
        groups[(h.mode, "backend", backend_key(h.point) or "not stated")].append(h)
        groups[(h.mode, "all", "every class")].append(h)
        if h.mode == "source":
            groups[(h.mode, "source", h.point.source)].append(h)
    out = []
    for (mode, by, group), hs in sorted(groups.items()):
        errs = [abs(h.error_pct) for h in hs]
        judged = [inside[id(h)] for h in hs if id(h) in inside]
        out.append(GroupError(metric, mode, by, group, len(hs), len({h.point.source for h in hs}),
                              stats.median(errs), stats.percentile(errs, 90) or 0.0,
                              stats.median([h.error_pct for h in hs]),
                              round(sum(judged) / len(judged), 3) if judged else None))
    later = {(e.by, e.group): e for e in out if e.mode == "time"}
    return [replace(e, later_n=later[(e.by, e.group)].n, later_coverage=later[(e.by, e.group)].coverage)
            if e.mode == "source" and e.by in ("vendor", "gate") and (e.by, e.group) in later else e for e in out]


def class_error(errors: list[GroupError], metric: str, group: str) -> GroupError | None:
    """The leave-one-source-out error of a gate (gate_of: a vendor class, or a device class one source measured
    alone): what decides whether its estimates are shown."""
    return next((e for e in errors if (e.metric, e.mode, e.by, e.group) == (metric, "source", "gate", group)),
                None)


def fitted_all(points: list[Point], metric: str) -> tuple[SpeedFit, list[Held]]:
    """The model fitted on every point of a metric, and every held-out check of it."""
    checks: list[Held] = []
    for run in CHECKS.values():
        checks += run(points, metric)
    return fit(points, metric), checks
