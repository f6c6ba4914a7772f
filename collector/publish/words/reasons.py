"""The answers' structured reasons in words: one sentence per reason, note, missing pick and tie.

A tie's sentence says exactly what the one rule (collector.base.stats.separate) found: the two figures within its
step of each other, or further apart but with overlapping intervals (and which intervals); nothing else."""

from __future__ import annotations

from collector.base.stats import INTERVAL_KINDS, Interval, Separation
from collector.publish.answers.context import (
    AloneAtDepth,
    ComparedAtDepthOnly,
    DeeperFigure,
    LargestContext,
    NoContext,
    PartlyFilled,
)
from collector.publish.answers.fits import Spill
from collector.publish.answers.picks import (
    AheadOfRunnerUp,
    Approximate,
    Balanced,
    Faithful,
    Fastest,
    Missing,
    NoKld,
    NoneWithinBudget,
    NoQuietRun,
    Note,
    Pick,
    Reason,
    Tie,
)
from collector.publish.words.render import figure_num, figure_value, num
from collector.records.schema import Stat

TITLES = {"fastest": "Fastest", "balanced": "Balanced", "faithful": "Most faithful", "context": "Largest context"}


def said(fig: Stat) -> str:
    """A figure in a sentence: as its source writes it ("~94", "22.40"), else rounded for reading."""
    return fig.text or figure_num(fig.value)


def _units(n: int, unit: str) -> str:
    return f"{n} {unit}(s)" if unit == "configuration" else f"{n} {unit}{'s' if n != 1 else ''}"


def title(pick: Pick) -> str:
    return TITLES[pick.kind] + (" (tie)" if pick.ties else "")


def why(reason: Reason) -> str:
    if isinstance(reason, Fastest):
        if reason.unit == "configuration":
            return f"highest generation speed of the {_units(reason.n, reason.unit)}: {said(reason.figure)} t/s"
        return f"highest generation speed of these {_units(reason.n, reason.unit)}"
    if isinstance(reason, Balanced):
        text = (f"fastest of the {_units(reason.n, reason.unit)} whose mean KLD is at or under {reason.budget:g} "
                f"(this one: {num(reason.kld, 4)})")
        return text + (f"; {figure_num(reason.share_pct)} % of the fastest" if reason.share_pct is not None else "")
    if isinstance(reason, Faithful):
        return (f"lowest mean KLD ({num(reason.kld, 4)}) of the {_units(reason.n, reason.unit)} with a KLD "
                "measurement")
    return _context_why(reason)


def _context_why(r: LargestContext) -> str:
    if r.n_at == 1:
        return (f"largest allocated context ({r.ctx:,} tokens) measured with its context filled: {said(r.figure)} "
                f"t/s with {r.depth:,} tokens filled")
    text = (f"largest allocated context ({r.ctx:,} tokens) among the configurations measured with {r.depth:,} tokens "
            f"filled that keep at least {r.keep:.0%} of the fastest of them: {said(r.figure)} t/s")
    if r.fastest is not None:
        share = r.figure.value / r.fastest.value * 100 if r.fastest.value else 100.0
        text += f" ({num(share)} % of {figure_num(r.fastest.value)} t/s)"
    return text


def _interval_text(i: Interval, unit: str) -> str:
    kind = INTERVAL_KINDS[i.kind]
    if i.kind == "point":
        return f"{_n(i.value, unit)} ({kind})"
    return f"{_n(i.low, unit)}–{_n(i.high, unit)} ({kind})"


def _n(x: float, unit: str) -> str:
    return num(x, 4) if unit == "kld" else figure_num(x)


def separation_text(sep: Separation, a: Interval, b: Interval, measure: str = "tg") -> str:
    """What the rule found, in words that are true of these two figures."""
    gap = f"{num(sep.gap_pct, 2)} % apart"
    if sep.why == "within-step":
        return f"{gap}, within the {sep.step_pct:g} % step below which two figures are never told apart"
    if sep.why == "overlap":
        return (f"{gap}, more than the {sep.step_pct:g} % step, but their intervals overlap: "
                f"{_interval_text(a, measure)} and {_interval_text(b, measure)}")
    return (f"{gap}, more than the {sep.step_pct:g} % step, and their intervals do not overlap: "
            f"{_interval_text(a, measure)} and {_interval_text(b, measure)}")


def tie_text(pick: Pick, tie: Tie) -> str:
    return separation_text(tie.sep, tie.a, tie.b, pick.measure)


def note(n: Note) -> str:
    if isinstance(n, AheadOfRunnerUp):
        return f"Ahead of the runner-up ({said(n.runner_up)} t/s): {separation_text(n.sep, n.a, n.b)}"
    if isinstance(n, Approximate):
        return "Approximate, as the source states it"
    if isinstance(n, AloneAtDepth):
        return (f"No other configuration was measured with {n.depth:,} tokens filled, so nothing is compared with it "
                "at that depth")
    if isinstance(n, ComparedAtDepthOnly):
        return (f"Compared with the {n.others} other configuration(s) measured with {n.depth:,} tokens filled only, "
                "never with speeds at other depths")
    if isinstance(n, DeeperFigure):
        return f"With {n.depth:,} tokens filled it runs {figure_value(n.figure)} t/s"
    assert isinstance(n, PartlyFilled)
    return f"Only {n.depth:,} of its {n.ctx:,} tokens were filled: the speed near a full context is not measured"


def missing(m: Missing) -> str:
    if isinstance(m, NoQuietRun):
        detail = ", ".join(x for x in (f"{m.failed} failed" if m.failed else "",
                                       f"{m.noisy} measured on a busy host (noisy)" if m.noisy else "") if x)
        return ("No recommendation: no quiet, successful configuration with a generation speed"
                + (f" ({detail})" if detail else "") + ".")
    if isinstance(m, NoKld):
        if m.other_files:
            return ("No balanced or most faithful pick: the KLD measured for this model is of other files ("
                    + ", ".join(m.other_files) + ") than the ones whose speed was measured here; see the KLD table.")
        return "No balanced or most faithful pick: no configuration of this model has a KLD measurement."
    if isinstance(m, NoneWithinBudget):
        whose = "configuration's" if m.unit == "configuration" else f"{m.unit}'s"
        return (f"No balanced pick: no {whose} mean KLD is at or under {m.budget:g} (the lowest is "
                f"{num(m.lowest, 4)}).")
    assert isinstance(m, NoContext)
    if m.why == "no-ctx":
        return "No largest-context pick: no configuration states its context size."
    return ("No largest-context pick: only the allocation was measured: no configuration was measured with its "
            "context filled (every speed is at depth 0 or from a prompt of unstated or few tokens), so no context "
            "size is recommended.")


def spill_text(s: Spill | None) -> str | None:
    if s is None:
        return None
    return (f"The file ({s.file_gb:.3g} GB, {s.file_how}) is larger than the GPU memory ({s.memory_gb:.3g} GB, "
            f"{s.memory_how}): the part that does not fit runs from system RAM, which is slower")


def tie_context(pick: Pick, tie: Tie) -> dict[str, object]:
    """A tie as a page prints it: the sentence, and the numbers it is about (data attributes a test re-checks)."""
    return {"text": tie_text(pick, tie), "rule": tie.sep.why, "a": tie.a.value, "a_lo": tie.a.low,
            "a_hi": tie.a.high, "b": tie.b.value, "b_lo": tie.b.low, "b_hi": tie.b.high,
            "step": tie.sep.step_pct}
