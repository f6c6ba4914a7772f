"""The "largest context" pick: only from speeds measured with the context filled, compared at the same depth.

A context that was only allocated (measured at depth 0, or with a prompt of a few tokens) says nothing about the
speed once it holds a conversation, so it is never picked. At each filled depth d > 0 the configurations measured
at d are compared with the fastest of them at d; those keeping `keep` of it are candidates, and the pick is the
largest allocated context among the candidates of any depth (a deeper depth wins a tie in context). Tune trials
are speed rows like any other, so a tune's answer measured at its depth takes part.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.publish.rows.frame import Row
from collector.records.schema import Stat

FULL_ENOUGH = 0.5  # a context "measured full" when the depth of the comparison reaches this share of it


@dataclass(frozen=True)
class LargestContext:
    """The largest allocated context (`ctx`) measured with `depth` tokens filled: `figure` there; `n_at`
    configurations were measured at that depth, keeping at least `keep` of the fastest of them (`fastest`, None
    when the pick is that fastest)."""

    ctx: int
    depth: int
    figure: Stat
    n_at: int
    keep: float
    fastest: Stat | None


@dataclass(frozen=True)
class AloneAtDepth:
    """No other configuration was measured with `depth` tokens filled."""

    depth: int


@dataclass(frozen=True)
class ComparedAtDepthOnly:
    """Compared with the `others` configurations measured at `depth` only, never at other depths."""

    others: int
    depth: int


@dataclass(frozen=True)
class DeeperFigure:
    """The pick was also measured deeper: `figure` with `depth` tokens filled."""

    depth: int
    figure: Stat


@dataclass(frozen=True)
class PartlyFilled:
    """Only `depth` of its `ctx` tokens were filled: the speed near a full context is not measured."""

    depth: int
    ctx: int


ContextNote = AloneAtDepth | ComparedAtDepthOnly | DeeperFigure | PartlyFilled


@dataclass(frozen=True)
class NoContext:
    """No largest-context pick: no configuration states its context size ("no-ctx"), or none was measured with
    its context filled ("allocation-only")."""

    why: str


@dataclass(frozen=True)
class ContextFound:
    row: Row
    reason: LargestContext
    notes: tuple[ContextNote, ...]


def _tg(r: Row, depth: int) -> Stat | None:
    return r.depths.get(depth, {}).get("tg")


def context_pick(rows: list[Row], keep: float) -> ContextFound | NoContext:
    """The pick with its reason and notes, or why there is none."""
    with_ctx = [r for r in rows if r.rec.config.ctx_size]
    if not with_ctx:
        return NoContext("no-ctx")
    depths = sorted({d for r in with_ctx for d in r.depths if d > 0 and _tg(r, d) is not None})
    if not depths:
        return NoContext("allocation-only")
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
    r, depth, fig, fastest, fastest_row, n_at = best
    ctx = int(r.rec.config.ctx_size or 0)
    notes: list[ContextNote] = [AloneAtDepth(depth) if n_at == 1 else ComparedAtDepthOnly(n_at - 1, depth)]
    deeper = max((d for d in r.depths if d > depth and _tg(r, d) is not None), default=None)
    filled = depth
    if deeper is not None:
        notes.append(DeeperFigure(deeper, _tg(r, deeper)))  # type: ignore[arg-type]
        filled = deeper
    if filled < FULL_ENOUGH * ctx:
        notes.append(PartlyFilled(filled, ctx))
    reason = LargestContext(ctx, depth, fig, n_at, keep, None if fastest_row is r else fastest)
    return ContextFound(r, reason, tuple(notes))


def _rank(found: tuple[Row, int, Stat, Stat, Row, int]) -> tuple[int, bool, int]:
    return found[0].rec.config.ctx_size or 0, found[5] > 1, found[1]
