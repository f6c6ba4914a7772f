"""The statistics every layer uses (stdlib only): the collector's summaries, the tuner's decisions, the history
pages' change detection and the site's figures all come from here, so they agree.

- a median's distribution-free 95 % interval (order statistics of the binomial; under 6 samples none exists and
  the min-max range stands in);
- "beyond noise", the one rule for whether the data can tell two figures apart (`separate`): their intervals do
  not overlap AND they differ by more than STEP (5 %), both (asv's regression threshold). Picks, ties, rankings,
  history steps and the tuner all decide with it, and the words a page prints for a tie say which part failed;
- a gain: the ratio of two medians with the range their intervals allow;
- spread: (max - min) / median, the noisy-run test's measure; percentiles (inclusive method).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import NamedTuple

STEP = 0.05  # relative change of the median that "beyond noise" must exceed
CONFIDENCE = 0.95
MIN_SAMPLES = 3  # fewer samples say nothing about noise: such a figure is shown, not compared

Band = tuple[float, float]


class Described(NamedTuple):
    """median, mean, min, max and n of a list of samples."""

    median: float
    mean: float
    min: float
    max: float
    n: int


def describe(values: Sequence[float]) -> Described | None:
    """The summary of raw samples; None for none."""
    if not values:
        return None
    return Described(statistics.median(values), statistics.fmean(values), min(values), max(values), len(values))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def median_band(values: Sequence[float], confidence: float = CONFIDENCE) -> Band:
    """The distribution-free confidence interval of the median: (x_(k), x_(n-k+1)) for the largest k with
    P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2; the min-max range when n is too small for one."""
    xs = sorted(values)
    n = len(xs)
    alpha = (1 - confidence) / 2
    k, cdf = 0, 0.0
    while k < n:
        nxt = cdf + math.comb(n, k) / 2 ** n  # P(B <= k)
        if nxt > alpha:
            break
        cdf, k = nxt, k + 1
    if k == 0:
        return xs[0], xs[-1]
    return xs[k - 1], xs[n - k]


class Interval(NamedTuple):
    """A figure with the interval the data gives it, and what kind of interval that is."""

    value: float
    low: float
    high: float
    kind: str  # one of INTERVAL_KINDS

    @classmethod
    def of_samples(cls, values: Sequence[float]) -> Interval:
        """The median with its 95 % interval (the min-max range under 6 samples)."""
        lo, hi = median_band(values)
        return cls(median(values), lo, hi, "median95" if len(values) >= 6 else "range")


INTERVAL_KINDS = {
    "median95": "95 % interval of the median",
    "range": "range of samples",
    "stated": "± as stated",
    "uncertainty": "± its uncertainty",
    "point": "single figure, no spread",
}


class Separation(NamedTuple):
    """Whether the data tells figure `a` from figure `b` (`separate`), and which part of the rule decided."""

    apart: bool
    why: str  # "within-step": they differ by STEP or less | "overlap": their intervals overlap | "apart"
    gap_pct: float  # |b / a - 1| in percent
    step_pct: float


def separate(a: Interval, b: Interval, step: float = STEP) -> Separation:
    """THE rule: the data tells `a` from `b` only when they differ by more than `step` (relative to `a`) AND their
    intervals do not overlap. A single figure is a point: only the step can separate it."""
    gap = abs(b.value / a.value - 1) if a.value else (0.0 if b.value == a.value else math.inf)
    if gap <= step:
        return Separation(False, "within-step", gap * 100, step * 100)
    if not apart((a.low, a.high), (b.low, b.high)):
        return Separation(False, "overlap", gap * 100, step * 100)
    return Separation(True, "apart", gap * 100, step * 100)


def apart(a: Band, b: Band) -> bool:
    """Two intervals that do not overlap."""
    return a[1] < b[0] or b[1] < a[0]


def faster_beyond_noise(new: Sequence[float], old: Sequence[float], step: float = STEP) -> bool:
    """`new` is faster than `old` and the data tells them apart (`separate` on their medians' intervals)."""
    if not new or not old:
        return False
    a, b = Interval.of_samples(old), Interval.of_samples(new)
    return b.value > a.value and separate(a, b, step).apart


class Gain(NamedTuple):
    """A ratio of medians in percent, the range the two intervals allow, and whether it is beyond noise."""

    pct: float
    low_pct: float
    high_pct: float
    beyond_noise: bool


def gain(new_median: float, new_band: Band, old_median: float, old_band: Band, step: float = STEP) -> Gain:
    pct = (new_median / old_median - 1) * 100
    low = (new_band[0] / old_band[1] - 1) * 100
    high = (new_band[1] / old_band[0] - 1) * 100
    beyond = separate(Interval(old_median, *old_band, "median95"), Interval(new_median, *new_band, "median95"), step)
    return Gain(pct, low, high, beyond.apart)


def spread_pct(values: Sequence[float]) -> float | None:
    """(max - min) / median in percent; None for fewer than two values or a median of 0."""
    if len(values) < 2:
        return None
    mid = median(values)
    return (max(values) - min(values)) / mid * 100 if mid > 0 else None


def percentile(values: Sequence[float], pct: int) -> float | None:
    """The pct-th percentile (inclusive method: within the samples' range); None for no samples."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]
