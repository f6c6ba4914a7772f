"""The statistics every layer uses (stdlib only): the collector's summaries, the tuner's decisions, the history
pages' change detection and the site's figures all come from here, so they agree.

- a median's distribution-free 95 % interval (order statistics of the binomial; under 6 samples none exists and
  the min-max range stands in);
- "beyond noise": two intervals apart AND medians more than STEP (5 %) apart, both (asv's regression threshold);
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


def apart(a: Band, b: Band) -> bool:
    """Two intervals that do not overlap."""
    return a[1] < b[0] or b[1] < a[0]


def differs(median_a: float, median_b: float, step: float = STEP) -> bool:
    """Medians more than `step` apart, relative to the first."""
    return abs(median_b / median_a - 1) > step


def changed(a: Band, median_a: float, b: Band, median_b: float, step: float = STEP) -> bool:
    """A change beyond noise: the intervals do not overlap and the medians differ by more than `step`."""
    return apart(a, b) and differs(median_a, median_b, step)


def faster_beyond_noise(new: Sequence[float], old: Sequence[float], step: float = STEP) -> bool:
    """`new`'s median interval lies wholly above `old`'s and its median is more than `step` higher."""
    if not new or not old:
        return False
    return median_band(new)[0] > median_band(old)[1] and median(new) > median(old) * (1 + step)


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
    return Gain(pct, low, high, apart(new_band, old_band) and abs(pct) > step * 100)


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
