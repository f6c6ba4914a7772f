"""Recommended launch configurations for one model on one device, from its configuration rows.

Every pick is a real configuration (its samples pooled over re-measurements); nothing is interpolated, a noisy
configuration is never picked, and a pick the runner-up matches within the spread is a tie, said so. Generation
speed is tokens per second, KLD the mean KL divergence (nats) against the base model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from collector.publish.frame import Row
from collector.records.schema import Stat

KLD_BUDGET = 0.05  # mean KLD (nats): the "balanced" pick must stay at or under this
KEEP_SPEED = 0.8  # the "largest context" pick must keep at least this share of the fastest speed
FULL_ENOUGH = 0.5  # a context "measured full" when its deepest filled depth reaches this share of it


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
    (alo, ahi), (blo, bhi) = interval(a), interval(b)
    return alo <= bhi and blo <= ahi


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _said(fig: Stat) -> str:
    """A figure in a sentence: as its source writes it ("~94", "22.40"), else rounded for reading."""
    return fig.text or _fmt(fig.value)


def usable(rows: list[Row]) -> list[Row]:
    """Quiet, successful configurations with a generation speed, fastest first (ties in speed by id). Runs with
    several clients at once are left out: their tg is one stream's under load, not comparable with one client's."""
    ok = [r for r in rows if r.status == "ok" and r.tg is not None and not r.noisy
          and (r.rec.method.concurrency or 1) == 1]
    return sorted(ok, key=lambda r: (-r.tg.value, r.page_id))  # type: ignore[union-attr]


def _by_speed(title: str, kind: str, cands: list[Row], why: str) -> Pick:
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
            notes.append(f"The runner-up states {_said(second.tg)} t/s; a single figure has no spread, so "
                         "the gap is not known to exceed the noise")
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
    picks.append(_by_speed("Fastest", "fastest", ok,
                           f"highest generation speed of the {len(ok)} configuration(s): {_said(best.tg)} t/s"))

    pool, _ = kld_pool(ok)
    if not pool:
        missing.append("No balanced or most faithful pick: no configuration of this model has a KLD measurement.")
    else:
        within = [r for r in ok if r in pool and r.kld and r.kld["kld_mean"] <= kld_budget]
        if within:
            b = within[0]
            assert b.tg is not None and b.kld is not None
            picks.append(_by_speed(
                "Balanced", "balanced", within,
                f"fastest of the {len(within)} configuration(s) whose mean KLD is at or under {kld_budget:g} "
                f"(this one: {b.kld['kld_mean']:.4g}); {_fmt(b.tg.value / best.tg.value * 100)} % of the fastest"))
        else:
            lowest = min(r.kld["kld_mean"] for r in pool if r.kld)
            missing.append(f"No balanced pick: no configuration's mean KLD is at or under {kld_budget:g} "
                           f"(the lowest is {lowest:.4g}).")
        picks.append(faithful_pick(pool))

    with_ctx = [r for r in ok if r.rec.config.ctx_size]
    if not with_ctx:
        missing.append("No largest-context pick: no configuration states its context size.")
    else:
        ctx_pick = _context(with_ctx, best, keep)
        if ctx_pick:
            picks.append(ctx_pick)
        else:
            missing.append(f"No largest-context pick: no configuration keeps {keep:.0%} of the fastest speed.")
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


def _context(with_ctx: list[Row], best: Row, keep: float) -> Pick | None:
    """The largest allocated context that still keeps `keep` of the fastest speed, judged at the deepest fill
    that was measured; the page says how much of the context that fill is."""
    assert best.tg is not None

    def at_depth(r: Row) -> tuple[Stat | None, int | None]:
        if r.deepest is not None and "tg" in r.depths[r.deepest]:
            return r.depths[r.deepest]["tg"], r.deepest
        return r.tg, r.tg_depth

    def speed(r: Row) -> float:
        fig = at_depth(r)[0]
        return fig.value if fig else 0.0

    cands = [r for r in with_ctx if speed(r) >= keep * best.tg.value]
    if not cands:
        return None
    c = sorted(cands, key=lambda r: (-(r.rec.config.ctx_size or 0), -speed(r), r.page_id))[0]
    ctx = int(c.rec.config.ctx_size or 0)
    fig, depth = at_depth(c)
    assert fig is not None
    notes = []
    if depth is None:
        prompt = next((s.prompt_tokens for s in c.rec.samples if s.prompt_tokens), None)
        filled = f"a {prompt}-token prompt" if prompt else "a prompt whose size it does not state"
        notes.append(f"Only the allocation is known: the source measured with {filled}, so the speed with this "
                     "context filled is not measured.")
        where = "as stated"
    elif depth == 0:
        where = "with an empty context"
        notes.append("Only the allocation is known: it was measured at depth 0, so the speed with this context "
                     "filled is not measured.")
    else:
        where = f"with {depth:,} tokens filled"
        if depth < FULL_ENOUGH * ctx:
            notes.append(f"Only {depth:,} of its {ctx:,} tokens were filled: the speed near a full context is not "
                         "measured.")
    return Pick("context", "Largest context", c,
                f"largest allocated context ({ctx:,} tokens) among configurations keeping at least {keep:.0%} of the "
                f"fastest speed: {_said(fig)} t/s {where} ({_fmt(fig.value / best.tg.value * 100)} %)", [], notes)


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
