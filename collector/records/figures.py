"""The one definition of each published speed figure, shared by the collector (which records it) and the site,
the downloads and the run list (which read it).

A speed run's **headline** is every sample at the shallowest filled depth it measured: the median with min, max and
n, never a statistic pooled across depths (speed falls as the context fills). Re-measurements of one configuration
are pooled the same way: every sample of every run at the shallowest depth they measured. An imported figure is
its source's own, at the depth the source states (None where it states none or several).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from collector.base.stats import Interval
from collector.records.schema import Headline, Sample, SpeedRecord, Stat

FIGURES = {"tg": "tg_tps", "pp": "pp_tps", "ttft": "ttft_ms"}  # short name -> the sample and summary field


def pooled(samples: Iterable[Sample]) -> dict[int, dict[str, list[float]]]:
    """Every value of every figure, by filled depth (ascending), over the samples given."""
    out: dict[int, dict[str, list[float]]] = defaultdict(lambda: {k: [] for k in FIGURES})
    for s in samples:
        for short, field in FIGURES.items():
            out[s.depth_tokens][short] += getattr(s, field)
    return {d: out[d] for d in sorted(out)}


def stat_of(values: Sequence[float], digits: int | None = None) -> Stat | None:
    """The figure of raw samples: median with min, max and n (None for none)."""
    return Stat.of(values, digits=digits)


def headline(samples: Iterable[Sample], digits: int | None = None) -> Headline | None:
    """The headline of these samples (see the module docstring); None when no sample holds a figure."""
    for depth, values in pooled(samples).items():
        figs = {short: stat_of(v, digits) for short, v in values.items()}
        if any(figs.values()):
            return Headline(depth_tokens=depth, tg_tps=figs["tg"], pp_tps=figs["pp"], ttft_ms=figs["ttft"])
    return None


def record_headline(rec: SpeedRecord) -> Headline | None:
    """A record's headline: as the collector recorded it; computed from the samples for a record written before
    headlines were recorded; an imported record's stated figures at the one depth it states."""
    s = rec.summary
    if rec.source.type == "imported":
        depths = rec.method.depths
        if s.tg_tps is None and s.pp_tps is None and s.ttft_ms is None:
            return None
        return Headline(depth_tokens=depths[0] if len(depths) == 1 else None, tg_tps=s.tg_tps, pp_tps=s.pp_tps,
                        ttft_ms=s.ttft_ms)
    if s.headline is not None:
        return s.headline
    return headline(rec.samples, digits=3)


def interval_of(stat: Stat, samples: Sequence[float] | None = None) -> Interval:
    """The interval the data gives a figure: of its samples where they are at hand, else of what it states (a
    stated ± as mean ± it, a stored min-max range, else a point)."""
    if samples:
        return Interval.of_samples(samples)
    if stat.has_spread:
        return Interval(stat.value, float(stat.min), float(stat.max), "range")  # type: ignore[arg-type]
    if stat.stddev is not None:
        return Interval(stat.value, stat.value - stat.stddev, stat.value + stat.stddev, "stated")
    return Interval(stat.value, stat.value, stat.value, "point")
