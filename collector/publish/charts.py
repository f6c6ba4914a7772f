"""SVG charts with matplotlib's Figure API: a light and a dark variant, byte-identical for the same data.

Determinism: `svg.hashsalt` is the chart id (stable clip-path/marker ids) and the metadata Date/Creator are
dropped. Text is kept as text (`svg.fonttype: none`): smaller, faster, selectable.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

THEMES = {
    "light": {"fg": "#1f2430", "grid": "#d0d4dc", "measured": "#3f51b5", "imported": "#e08a00", "front": "#c62828"},
    "dark": {"fg": "#e3e6ee", "grid": "#454b5a", "measured": "#8c9eff", "imported": "#ffb74d", "front": "#ff6e6e"},
}
MAX_BARS = 30  # a bar chart shows at most this many bars (the highest values); the table has the rest
MAX_LINES = 8


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    imported: bool = False


def _render(chart_id: str, height: float, draw: Callable[[Axes, dict[str, str]], None]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for variant, t in THEMES.items():
        rc = {"svg.hashsalt": f"{chart_id}-{variant}", "svg.fonttype": "none", "font.size": 9,
              "text.color": t["fg"], "axes.labelcolor": t["fg"], "axes.edgecolor": t["fg"],
              "xtick.color": t["fg"], "ytick.color": t["fg"], "savefig.transparent": True,
              "font.family": "sans-serif"}
        with mpl.rc_context(rc):
            fig = Figure(figsize=(7.0, height), layout="constrained")
            ax = fig.add_subplot()
            ax.grid(True, color=t["grid"], linewidth=0.5)
            ax.set_axisbelow(True)
            draw(ax, t)
            buf = io.BytesIO()
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
        out[variant] = buf.getvalue()
    return out


def _short(label: str, n: int = 60) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def bar_chart(chart_id: str, labels: Sequence[str], values: Sequence[float], imported: Sequence[bool],
              xlabel: str) -> dict[str, bytes]:
    """Horizontal bars, highest first, capped at MAX_BARS."""
    order = sorted(range(len(values)), key=lambda i: -values[i])[:MAX_BARS]
    height = 1.0 + 0.24 * max(len(order), 1)

    def draw(ax: Axes, t: dict[str, str]) -> None:
        ys = list(range(len(order)))[::-1]
        ax.barh(ys, [values[i] for i in order], color=[t["imported"] if imported[i] else t["measured"] for i in order])
        ax.set_yticks(ys, [_short(labels[i]) for i in order])
        ax.set_xlabel(xlabel)
        if any(imported[i] for i in order):
            from matplotlib.patches import Patch
            ax.legend(handles=[Patch(color=t["measured"], label="measured"),
                               Patch(color=t["imported"], label="imported (published source)")],
                      loc="lower right", frameon=False)
    return _render(chart_id, height, draw)


def line_chart(chart_id: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]], xlabel: str,
               ylabel: str) -> dict[str, bytes]:
    """One line per series (label, xs, ys), at most MAX_LINES."""
    def draw(ax: Axes, t: dict[str, str]) -> None:
        for label, xs, ys in series[:MAX_LINES]:
            ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, label=_short(label, 50))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="best", frameon=False, fontsize=7)
    return _render(chart_id, 3.6, draw)


def pareto_chart(chart_id: str, points: Sequence[Point], front: Sequence[int], xlabel: str, ylabel: str,
                 logx: bool = False) -> dict[str, bytes]:
    """Scatter of every point, the frontier joined by a line and labelled."""
    def draw(ax: Axes, t: dict[str, str]) -> None:
        for flag, name in ((False, "measured"), (True, "imported (published source)")):
            pts = [p for p in points if p.imported == flag]
            if pts:
                ax.scatter([p.x for p in pts], [p.y for p in pts], s=18, color=t["imported" if flag else "measured"],
                           label=name, zorder=3)
        fpts = [points[i] for i in front]
        ax.plot([p.x for p in fpts], [p.y for p in fpts], color=t["front"], linewidth=1, label="Pareto frontier",
                zorder=2)
        for p in fpts[:12]:
            ax.annotate(_short(p.label, 24), (p.x, p.y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if logx and all(p.x > 0 for p in points):
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="best", frameon=False, fontsize=7)
    return _render(chart_id, 3.8, draw)
