"""Recommended launch configurations for one model on one device, from its configuration rows: pure decisions.

Every pick is a real configuration (its samples pooled over re-measurements); nothing is interpolated, a noisy
configuration is never picked, and a configuration the data cannot tell from the pick (collector.base.stats.separate,
the one rule) is a tie, with the separation that decided it. Reasons are structured (the dataclasses below);
collector.publish.words.reasons says them. Generation speed is tokens per second, KLD the mean KL divergence (nats)
against the base model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from collector.base.stats import Interval, Separation, separate
from collector.publish.answers.context import ContextNote, LargestContext, NoContext, context_pick
from collector.publish.rows.frame import KldRow, Row
from collector.records.schema import Stat

KLD_BUDGET = 0.05  # mean KLD (nats): the "balanced" pick must stay at or under this
KEEP_SPEED = 0.8  # the "largest context" pick must keep at least this share of the fastest speed


# ---- why a pick was made ----

@dataclass(frozen=True)
class Fastest:
    """The highest generation speed of `n` candidates (configurations, or files compared like with like)."""

    n: int
    figure: Stat
    unit: str = "configuration"


@dataclass(frozen=True)
class Balanced:
    """The fastest of `n` candidates whose mean KLD is at or under `budget` (this one's: `kld`); `share_pct` of the
    fastest candidate's speed (None where not said)."""

    n: int
    budget: float
    kld: float
    share_pct: float | None
    unit: str = "configuration"


@dataclass(frozen=True)
class Faithful:
    """The lowest mean KLD of `n` candidates with one."""

    n: int
    kld: float
    unit: str = "configuration"


Reason = Fastest | Balanced | Faithful | LargestContext


# ---- what else a reader should know about a pick ----

@dataclass(frozen=True)
class AheadOfRunnerUp:
    """The pick is ahead of the runner-up beyond noise (`sep` says by how much and how)."""

    runner_up: Stat
    sep: Separation
    a: Interval  # the pick's figure with its interval
    b: Interval  # the runner-up's


@dataclass(frozen=True)
class Approximate:
    """The pick's figure is approximate, as its source states it."""


Note = AheadOfRunnerUp | Approximate | ContextNote


# ---- why a pick is missing ----

@dataclass(frozen=True)
class NoQuietRun:
    """No quiet, successful configuration with a generation speed (`failed` failed, `noisy` on a busy host)."""

    failed: int
    noisy: int


@dataclass(frozen=True)
class NoKld:
    """No configuration of this model has a KLD; `other_files`: the model's files that do have one elsewhere."""

    other_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoneWithinBudget:
    """No candidate's mean KLD is at or under the budget (the lowest is `lowest`)."""

    budget: float
    lowest: float
    unit: str = "configuration"


Missing = NoQuietRun | NoKld | NoneWithinBudget | NoContext


@dataclass(frozen=True)
class Tie:
    """A candidate the data cannot tell from the pick, and the separation that says so."""

    row: Row
    sep: Separation
    a: Interval  # the pick's figure with its interval
    b: Interval  # this candidate's


@dataclass
class Pick:
    kind: str  # fastest | balanced | faithful | context
    row: Row
    reason: Reason
    ties: list[Tie] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    measure: str = "tg"  # what the ties were decided on: tg | kld


def usable(rows: list[Row]) -> list[Row]:
    """Quiet, successful configurations with a generation speed the judge lets through (not held back, not
    contradicted by the device's other results, not a repeated claim), fastest first (ties in speed by id). Runs with
    several clients at once are left out: their tg is one stream's under load, not comparable with one client's."""
    ok = [r for r in rows if r.status == "ok" and r.tg is not None and not r.noisy and r.pickable
          and (r.rec.method.concurrency or 1) == 1]
    return sorted(ok, key=lambda r: (-r.tg.value, r.page_id))  # type: ignore[union-attr]


def by_speed(kind: str, cands: list[Row], reason: Reason) -> Pick:
    """The fastest of `cands` (fastest first), with its ties and whether it is ahead beyond noise."""
    best = cands[0]
    a = best.interval("tg")
    assert a is not None and best.tg is not None
    ties, ahead = [], None
    for r in cands[1:]:
        b = r.interval("tg")
        if b is None:
            continue
        sep = separate(a, b)
        if not sep.apart:
            ties.append(Tie(r, sep, a, b))
        elif ahead is None:
            ahead = AheadOfRunnerUp(r.tg, sep, a, b)  # type: ignore[arg-type]
    notes: list[Note] = [ahead] if ahead is not None and not ties else []
    if best.tg.approx:
        notes.append(Approximate())
    return Pick(kind, best, reason, ties, notes)


def kld_row_interval(k: KldRow) -> Interval:
    """A mean KLD with its ± uncertainty (a point where none is stated)."""
    assert k.kld_mean is not None
    unc = k.kld_mean_unc or 0.0
    return Interval(k.kld_mean, k.kld_mean - unc, k.kld_mean + unc, "uncertainty" if unc else "point")


def kld_interval(row: Row) -> Interval:
    assert row.kld is not None
    return kld_row_interval(row.kld)


def kld_pool(rows: list[Row]) -> tuple[list[Row], tuple[str | None, str, int | None] | None]:
    """Rows with a mean KLD in the scope most of them share (one reference, corpus and context): KLDs measured
    against another base, on another text or at another context never compete."""
    with_kld = [r for r in rows if r.kld and r.kld.kld_mean is not None]
    if not with_kld:
        return [], None
    scope = Counter(r.kld.scope for r in with_kld if r.kld).most_common(1)[0][0]
    return [r for r in with_kld if r.kld and r.kld.scope == scope], scope


def mean_kld(row: Row) -> float:
    """The mean KLD of a row of a KLD pool (kld_pool keeps only rows that have one)."""
    assert row.kld is not None and row.kld.kld_mean is not None
    return row.kld.kld_mean


def balanced(cands: list[Row], fastest: Row | None, budget: float, unit: str) -> Pick | NoneWithinBudget:
    """The fastest of `cands` (fastest first, all with a KLD) within the KLD budget."""
    within = [r for r in cands if mean_kld(r) <= budget]
    if not within:
        return NoneWithinBudget(budget, min(mean_kld(r) for r in cands), unit)
    b = within[0]
    assert b.tg is not None
    share = b.tg.value / fastest.tg.value * 100 if fastest is not None and fastest.tg else None
    return by_speed("balanced", within, Balanced(len(within), budget, mean_kld(b), share, unit))


def recommend(rows: list[Row], kld_budget: float = KLD_BUDGET, keep: float = KEEP_SPEED) -> tuple[list[Pick],
                                                                                                  list[Missing]]:
    """(picks, why each missing pick is missing) for the configurations of one model on one device."""
    picks: list[Pick] = []
    missing: list[Missing] = []
    ok = usable(rows)
    if not ok:
        return [], [NoQuietRun(sum(1 for r in rows if r.status == "failed"), sum(1 for r in rows if r.noisy))]
    best = ok[0]
    assert best.tg is not None
    picks.append(by_speed("fastest", ok, Fastest(len(ok), best.tg)))
    pool, _ = kld_pool(ok)
    if not pool:
        missing.append(NoKld())
    else:
        found = balanced([r for r in ok if r in pool], best, kld_budget, "configuration")
        (picks if isinstance(found, Pick) else missing).append(found)  # type: ignore[arg-type]
        picks.append(faithful_pick(pool))
    ctx = context_pick(ok, keep)
    if isinstance(ctx, NoContext):
        missing.append(ctx)
    else:
        picks.append(Pick("context", ctx.row, ctx.reason, [], list(ctx.notes)))
    return picks, missing


def faithful_pick(pool: list[Row], unit: str = "configuration") -> Pick:
    """Lowest mean KLD; the candidates the data cannot tell from it (KLD ± its uncertainty) are a tie."""
    order = sorted(pool, key=lambda r: (mean_kld(r), -(r.value() or 0.0), r.page_id))
    best = order[0]
    a = kld_interval(best)
    ties = [Tie(r, sep, a, b) for r in order[1:] if not (sep := separate(a, b := kld_interval(r))).apart]
    return Pick("faithful", best, Faithful(len(pool), a.value, unit), ties, measure="kld")


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated when lower x (KLD or size) and higher y (speed) are better, by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best_y = float("-inf")
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front
