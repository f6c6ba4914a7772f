"""The "largest context" pick: only from speeds measured with the context filled, compared at the same depth.

A context that was only allocated (measured at depth 0, or with a prompt of a few tokens) says nothing about the
speed once it holds a conversation, so it is never picked. At each filled depth d > 0 the configurations measured
at d are compared with the fastest of them at d; those keeping `keep` of it are candidates, and the pick is the
largest allocated context among the candidates of any depth (a deeper depth wins a tie in context). Tune trials
are speed rows like any other, so a tune's answer measured at its depth takes part.
"""

from __future__ import annotations

from collector.publish.frame import Row
from collector.publish.render import figure_num, figure_value, num
from collector.records.schema import Stat

FULL_ENOUGH = 0.5  # a context "measured full" when the depth of the comparison reaches this share of it


def _tg(r: Row, depth: int) -> Stat | None:
    return r.depths.get(depth, {}).get("tg")


def context_pick(rows: list[Row], keep: float) -> tuple[Row, int, Stat, Stat, Row, int] | str:
    """(pick, depth, its speed there, the fastest speed there, the fastest row there, how many configurations were
    measured at that depth), or why there is none."""
    with_ctx = [r for r in rows if r.rec.config.ctx_size]
    if not with_ctx:
        return "no configuration states its context size"
    depths = sorted({d for r in with_ctx for d in r.depths if d > 0 and _tg(r, d) is not None})
    if not depths:
        return ("only the allocation was measured: no configuration was measured with its context filled (every "
                "speed is at depth 0 or from a prompt of unstated or few tokens), so no context size is recommended")
    best: tuple[Row, int, Stat, Stat, Row, int] | None = None
    for d in depths:
        at = [(r, f) for r in with_ctx if (f := _tg(r, d)) is not None]
        fastest_row, fastest = max(at, key=lambda rf: (rf[1].value, rf[0].page_id))
        cands = [(r, f) for r, f in at if f.value >= keep * fastest.value]
        r, f = max(cands, key=lambda rf: (rf[0].rec.config.ctx_size or 0, rf[1].value, rf[0].page_id))
        found = (r, d, f, fastest, fastest_row, len(at))
        # the largest context; for one context, a depth where it was compared with others, then the deepest
        if best is None or _rank(found) >= _rank(best):
            best = found
    assert best is not None
    return best


def _rank(found: tuple[Row, int, Stat, Stat, Row, int]) -> tuple[int, bool, int]:
    return found[0].rec.config.ctx_size or 0, found[5] > 1, found[1]


def context_why(pick: tuple[Row, int, Stat, Stat, Row, int], keep: float, said: str) -> tuple[str, list[str]]:
    """The reason and notes of the pick (`said`: its speed as a sentence writes it)."""
    r, depth, fig, fastest, fastest_row, n_at = pick
    ctx = int(r.rec.config.ctx_size or 0)
    if n_at == 1:
        why = (f"largest allocated context ({ctx:,} tokens) measured with its context filled: {said} t/s with "
               f"{depth:,} tokens filled")
        notes = [f"No other configuration was measured with {depth:,} tokens filled, so nothing is compared with it "
                 "at that depth"]
    else:
        share = fig.value / fastest.value * 100 if fastest.value else 100.0
        why = (f"largest allocated context ({ctx:,} tokens) among the configurations measured with {depth:,} tokens "
               f"filled that keep at least {keep:.0%} of the fastest of them: {said} t/s"
               + ("" if fastest_row is r else f" ({num(share)} % of {figure_num(fastest.value)} t/s)"))
        notes = [f"Compared with the {n_at - 1} other configuration(s) measured with {depth:,} tokens filled only, "
                 "never with speeds at other depths"]
    deeper = max((d for d in r.depths if d > depth and _tg(r, d) is not None), default=None)
    if deeper is not None:
        notes.append(f"With {deeper:,} tokens filled it runs {figure_value(_tg(r, deeper))} t/s")
        depth = deeper
    if depth < FULL_ENOUGH * ctx:
        notes.append(f"Only {depth:,} of its {ctx:,} tokens were filled: the speed near a full context is not "
                     "measured")
    return why, notes
