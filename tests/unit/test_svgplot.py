"""The chart primitives: tick labels that say exactly their value, labels that fit, text that stays text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from collector.publish import charts
from collector.publish.charts import svgplot
from collector.publish.charts.draw import PHONE_W

SVG = "{http://www.w3.org/2000/svg}"


def _value(label: str) -> float:
    return float(label.replace(",", "").replace("\u2212", "-"))


def test_linear_tick_labels_read_back_as_their_values() -> None:
    for values in ([0.0, 0.14], [0.0, 0.0006], [40.0, 41.0], [0.0, 16384.0], [-3.0, 2.5], [7.0, 7.0]):
        scale = svgplot.linear(values, nbins=6, zero=True)
        labels = [name for _, name in scale.ticks]
        assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
        for v, name in scale.ticks:
            assert abs(_value(name) - v) <= 1e-9 * max(1.0, abs(v)), (values, v, name)
            assert scale.lo - 1e-9 <= v <= scale.hi + 1e-9
        if min(values) >= 0:
            assert scale.lo == 0.0  # from zero, as bars and speeds need


def test_log_ticks_are_plain_decimals_inside_the_view() -> None:
    scale = svgplot.logarithmic([0.0004, 0.2])
    assert [name for _, name in scale.ticks] == ["0.001", "0.01", "0.1"]
    assert all(scale.lo <= v <= scale.hi for v, _ in scale.ticks)


def test_fit_wraps_a_label_to_a_length_and_keeps_every_word() -> None:
    label = "aggregate generation throughput of all streams (t/s)"
    wrapped = svgplot.fit(label, 120.0)
    assert wrapped.split() == label.split() and "\n" in wrapped
    assert all(svgplot.text_width(line) <= 120.0 for line in wrapped.split("\n"))


def test_hostile_labels_stay_text_and_the_svg_parses() -> None:
    bars = [charts.Bar("<script>alert(1)</script> & \u202e Q4_0", 10.0, 9.0, 11.0),
            charts.Bar("x" * 300, 5.0)]
    svgs = charts.bar_chart([("speed", bars)])
    for variant, data in svgs.items():
        root = ET.fromstring(data)
        words = " ".join(" ".join(t.itertext()) for t in root.iter(f"{SVG}text"))
        assert "<script>" in words and b"<script>" not in data, variant
        assert "\\u202e" in words and "\u202e" not in words  # shown, not obeyed
        width = float(re.match(r"0 0 ([\d.]+)", root.get("viewBox", "")).group(1))  # type: ignore[union-attr]
        assert width == (PHONE_W if variant.startswith("phone-") else charts.W), variant  # a phone's column
    assert set(svgs) == {"light", "dark", "phone-light", "phone-dark"}
    assert svgs["light"] != svgs["dark"] and charts.LIGHT["measured"].encode() not in svgs["dark"]


def test_the_dark_variant_recolours_the_drawing_not_the_text() -> None:
    """A label that holds a palette colour's hex code keeps it in the dark variant (only attributes change)."""
    code = charts.LIGHT["measured"]
    svgs = charts.bar_chart([("speed", [charts.Bar(f"{code} build", 10.0), charts.Bar("other", 5.0)])])
    for variant, data in svgs.items():
        words = " ".join(" ".join(t.itertext()) for t in ET.fromstring(data).iter(f"{SVG}text"))
        assert f"{code} build" in words, variant
    assert f'fill="{code}"'.encode() not in svgs["dark"] and f'fill="{charts.THEMES["dark"]["measured"]}"'.encode() in \
        svgs["dark"]
