"""Charts as SVG (light and dark variants): bars, lines, panels, the speed-vs-KLD Pareto scatter, history and tune
charts (`draw`), drawn by our own small SVG layer (`svgplot`: ticks from matplotlib's locators, text widths from
DejaVu Sans metrics). Charts take numbers and labels, never records."""

from collector.publish.charts.draw import (
    LIGHT,
    MAX_BARS,
    MAX_LINES,
    THEMES,
    Bar,
    Point,
    Series,
    Spot,
    W,
    bar_chart,
    history_chart,
    identity_chart,
    line_chart,
    panel_lines_chart,
    pareto_chart,
    tune_chart,
)

__all__ = ["LIGHT", "MAX_BARS", "MAX_LINES", "THEMES", "W", "Bar", "Point", "Series", "Spot", "bar_chart",
           "history_chart", "identity_chart", "line_chart", "panel_lines_chart", "pareto_chart", "tune_chart"]
