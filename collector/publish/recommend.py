"""Pick recommended launch configurations for one model on one device from its speed rows.

Every pick is a real run (a row of the speed frame); nothing is interpolated. Generation speed is tokens
per second, KLD is the mean KL divergence (nats) against the base model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from collector.publish.frame import clean

KLD_BUDGET = 0.05  # mean KLD (nats): the "balanced" pick must stay at or under this
KEEP_SPEED = 0.8  # the "largest context" pick must keep at least this share of the fastest speed


@dataclass(frozen=True)
class Recommendation:
    kind: str  # fastest | balanced | faithful | context
    title: str
    row: dict[str, Any]
    why: str


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _usable(rows: pd.DataFrame) -> pd.DataFrame:
    ok = rows[(rows["status"] == "ok") & rows["tg"].notna()]
    # the fastest first; ties broken by id so the same data always gives the same pick
    return ok.sort_values(["tg", "page_id"], ascending=[False, True])


def _kld_pool(ok: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """Rows with a mean KLD on the corpus most of them share: KLDs from different corpora never compete."""
    with_kld = ok[ok["kld_mean"].notna()]
    if with_kld.empty:
        return with_kld, None
    corpus = Counter(with_kld["corpus_key"]).most_common(1)[0][0]
    return with_kld[with_kld["corpus_key"] == corpus], corpus


def recommend(rows: pd.DataFrame, kld_budget: float = KLD_BUDGET, keep: float = KEEP_SPEED) -> list[Recommendation]:
    """Fastest, balanced (fastest with mean KLD <= budget), most faithful, largest context keeping speed.

    `rows` are the speed rows of one model on one device; picks that have no candidate are left out.
    """
    ok = _usable(rows)
    if ok.empty:
        return []
    out: list[Recommendation] = []
    n = len(ok)
    best = ok.iloc[0]
    out.append(Recommendation("fastest", "Fastest", clean(best.to_dict()),
                              f"highest generation speed of the {n} successful configuration(s): "
                              f"{_fmt(best['tg'])} t/s"))
    pool, _ = _kld_pool(ok)
    if not pool.empty:
        within = pool[pool["kld_mean"] <= kld_budget]
        if not within.empty:
            b = within.iloc[0]
            out.append(Recommendation(
                "balanced", "Balanced", clean(b.to_dict()),
                f"fastest of the {len(within)} configuration(s) whose mean KLD stays at or under {kld_budget:g} "
                f"(this one: {b['kld_mean']:.4g}); {_fmt(b['tg'] / best['tg'] * 100)}% of the fastest speed"))
        faithful = pool.sort_values(["kld_mean", "tg", "page_id"], ascending=[True, False, True]).iloc[0]
        out.append(Recommendation(
            "faithful", "Most faithful", clean(faithful.to_dict()),
            f"lowest mean KLD ({faithful['kld_mean']:.4g}) of the {len(pool)} configuration(s) with a KLD "
            f"measurement; the fastest of those tied"))
    with_ctx = ok[ok["ctx"].notna() & (ok["tg"] >= keep * best["tg"])]
    if not with_ctx.empty:
        c = with_ctx.sort_values(["ctx", "tg", "page_id"], ascending=[False, False, True]).iloc[0]
        out.append(Recommendation(
            "context", "Largest context", clean(c.to_dict()),
            f"largest allocated context ({int(c['ctx'])} tokens) among configurations keeping at least "
            f"{keep:.0%} of the fastest speed ({_fmt(c['tg'] / best['tg'] * 100)}%)"))
    return out


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
