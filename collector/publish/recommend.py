"""Recommended launch configurations for one model on one device, from its configuration rows.

Every pick is a real configuration (its samples pooled over re-measurements); nothing is interpolated, a noisy
configuration is never picked, and a pick the runner-up matches within the spread is a tie, said so. Generation
speed is tokens per second, KLD the mean KL divergence (nats) against the base model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from collector.publish.context_pick import context_pick, context_why
from collector.publish.frame import Row
from collector.publish.render import figure_num
from collector.records.schema import Stat

KLD_BUDGET = 0.05  # mean KLD (nats): the "balanced" pick must stay at or under this
NOISE_FLOOR = 0.05  # figures without a spread closer than this share are never told apart (as on the history pages)
KEEP_SPEED = 0.8  # the "largest context" pick must keep at least this share of the fastest speed


@dataclass
class Pick:
    kind: str  # fastest | balanced | faithful | context
    title: str
    row: Row
    why: str
    ties: list[Row] = field(default_factory=list)  # configurations the pick cannot be told apart from
    notes: list[str] = field(default_factory=list)


def interval(fig: Stat) -> tuple[float, float]:
    """The range a figure's samples spanned; a single figure is a point."""
    if fig.has_spread:
        return float(fig.min), float(fig.max)  # type: ignore[arg-type]
    return fig.value, fig.value


def overlaps(a: Stat, b: Stat) -> bool:
    """Whether the data cannot tell the two figures apart: their ranges of samples overlap; or one has no spread
    (a single figure, a source's stated one) and they are closer than the noise floor."""
    if not (a.has_spread and b.has_spread):
        hi = max(a.value, b.value)
        if hi > 0 and abs(a.value - b.value) / hi < NOISE_FLOOR:
            return True
    (alo, ahi), (blo, bhi) = interval(a), interval(b)
    return alo <= bhi and blo <= ahi


def _fmt(x: float) -> str:
    """A speed in a sentence: as the tables write it (one formatter for a figure everywhere)."""
    return figure_num(x)


def _said(fig: Stat) -> str:
    """A figure in a sentence: as its source writes it ("~94", "22.40"), else rounded for reading."""
    return fig.text or _fmt(fig.value)


def usable(rows: list[Row]) -> list[Row]:
    """Quiet, successful configurations with a generation speed, fastest first (ties in speed by id). Runs with
    several clients at once are left out: their tg is one stream's under load, not comparable with one client's."""
    ok = [r for r in rows if r.status == "ok" and r.tg is not None and not r.noisy
          and (r.rec.method.concurrency or 1) == 1]
    return sorted(ok, key=lambda r: (-r.tg.value, r.page_id))  # type: ignore[union-attr]


def by_speed(title: str, kind: str, cands: list[Row], why: str) -> Pick:
    best = cands[0]
    assert best.tg is not None
    ties = [r for r in cands[1:] if r.tg is not None and overlaps(best.tg, r.tg)]
    notes = []
    if len(cands) > 1 and not ties:
        second = cands[1]
        assert second.tg is not None
        if best.tg.has_spread and second.tg.has_spread:
            notes.append(f"Ahead of the runner-up ({_said(second.tg)} t/s) beyond both ranges of samples")
        else:
            notes.append(f"The runner-up states {_said(second.tg)} t/s; single figures have no spread, and these are "
                         f"more than {NOISE_FLOOR:.0%} apart")
    if best.tg.approx:
        notes.append("Approximate, as the source states it")
    return Pick(kind, title + (" (tie)" if ties else ""), best, why, ties, notes)


def kld_pool(rows: list[Row]) -> tuple[list[Row], str | None]:
    """Rows with a mean KLD on the corpus most of them share: KLDs from different corpora never compete."""
    with_kld = [r for r in rows if r.kld and r.kld.get("kld_mean") is not None]
    if not with_kld:
        return [], None
    corpus = Counter(r.kld["corpus_key"] for r in with_kld if r.kld).most_common(1)[0][0]
    return [r for r in with_kld if r.kld and r.kld["corpus_key"] == corpus], corpus


def recommend(rows: list[Row], kld_budget: float = KLD_BUDGET, keep: float = KEEP_SPEED) -> tuple[list[Pick],
                                                                                                  list[str]]:
    """(picks, why each missing pick is missing) for the configurations of one model on one device."""
    picks: list[Pick] = []
    missing: list[str] = []
    ok = usable(rows)
    if not ok:
        noisy = sum(1 for r in rows if r.noisy)
        failed = sum(1 for r in rows if r.status == "failed")
        reasons = [f"{failed} failed" if failed else "", f"{noisy} measured on a busy host (noisy)" if noisy else ""]
        detail = ", ".join(x for x in reasons if x)
        return [], ["No recommendation: no quiet, successful configuration with a generation speed"
                    + (f" ({detail})" if detail else "") + "."]
    best = ok[0]
    assert best.tg is not None
    picks.append(by_speed("Fastest", "fastest", ok,
                           f"highest generation speed of the {len(ok)} configuration(s): {_said(best.tg)} t/s"))

    pool, _ = kld_pool(ok)
    if not pool:
        missing.append("No balanced or most faithful pick: no configuration of this model has a KLD measurement.")
    else:
        within = [r for r in ok if r in pool and r.kld and r.kld["kld_mean"] <= kld_budget]
        if within:
            b = within[0]
            assert b.tg is not None and b.kld is not None
            picks.append(by_speed(
                "Balanced", "balanced", within,
                f"fastest of the {len(within)} configuration(s) whose mean KLD is at or under {kld_budget:g} "
                f"(this one: {b.kld['kld_mean']:.4g}); {_fmt(b.tg.value / best.tg.value * 100)} % of the fastest"))
        else:
            lowest = min(r.kld["kld_mean"] for r in pool if r.kld)
            missing.append(f"No balanced pick: no configuration's mean KLD is at or under {kld_budget:g} "
                           f"(the lowest is {lowest:.4g}).")
        picks.append(faithful_pick(pool))

    found = context_pick(ok, keep)
    if isinstance(found, str):
        missing.append(f"No largest-context pick: {found}.")
    else:
        why, notes = context_why(found, keep, _said(found[2]))
        picks.append(Pick("context", "Largest context", found[0], why, [], notes))
    return picks, missing


def faithful_pick(pool: list[Row]) -> Pick:
    """Lowest mean KLD; the configurations whose KLD ± its uncertainty overlaps it are a tie."""
    order = sorted(pool, key=lambda r: (r.kld["kld_mean"], -(r.value() or 0.0), r.page_id))  # type: ignore[index]
    best = order[0]
    assert best.kld is not None
    k, unc = best.kld["kld_mean"], best.kld.get("kld_mean_unc") or 0.0
    ties = [r for r in order[1:] if r.kld and r.kld["kld_mean"] - (r.kld.get("kld_mean_unc") or 0.0) <= k + unc]
    return Pick("faithful", "Most faithful" + (" (tie)" if ties else ""), best,
                f"lowest mean KLD ({k:.4g}) of the {len(pool)} configuration(s) with a KLD measurement", ties)


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
