"""Issue 34: two KLDs of the same quant name against different references are never ranked together on the site."""

from __future__ import annotations

import re

import pytest

from collector.publish import build_site
from collector.records.schema import CpuInfo, Host
from fixtures.records.factory import gpu, kld, model, speed

pytestmark = pytest.mark.site

HOST = Host(cpu=CpuInfo(model="x"), gpus=[gpu("NVIDIA GeForce RTX 4090")])


def test_one_quant_scored_against_f16_and_against_q8_0_is_ranked_only_with_its_own_reference() -> None:
    """Q4_K_M has a KLD against the F16 (0.040) and one against a Q8_0 (0.0011, far smaller: a different question).
    The device page's picks and its speed-vs-KLD chart use the F16 scope only, so the most faithful file is Q5_K_M
    (0.030), never Q4_K_M by its Q8_0 figure; the model page lists both, each with what it was measured against."""
    f16, q8 = model("M", "F16", 16_000_000_000), model("M", "Q8_0", 8_500_000_000)
    q4, q5 = model("M", "Q4_K_M", 5_000_000_000), model("M", "Q5_K_M", 5_700_000_000)
    records = [speed(HOST, m, {0: v}, ctx_size=4096) for m, v in ((q4, 100.0), (q5, 90.0))]
    records += [kld(HOST, q4, 0.040, base=f16), kld(HOST, q5, 0.030, base=f16), kld(HOST, q4, 0.0011, base=q8)]
    site = build_site(records)
    pages = {g.src_uri: g.content for g in site.whole() if isinstance(g.content, str)}
    device = pages["devices/rtx-4090.md"]
    picks = device[device.index("Fast and faithful"):]
    faithful = re.search(r"Most faithful.{0,600}", picks, re.S)
    assert faithful and "Q5_K_M" in faithful.group(0) and "Q4_K_M" not in faithful.group(0), picks[:1500]
    assert "0.0011" not in picks[:picks.find("## ", 5)]  # the Q8_0-scored figure ranks nothing in the section
    ladder = next(v for k, v in pages.items() if k.startswith("models/") and k != "models/index.md")
    rows = re.findall(r"<tr>.*?</tr>", ladder, re.S)
    against = {("0.0011" in r, "Q8_0" in r, "F16" in r) for r in rows if "Q4_K_M" in r and "0.0" in r}
    assert (True, True, False) in against and (False, False, True) in against, rows
