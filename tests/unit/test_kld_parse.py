from __future__ import annotations

from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.llama.kld_parse import parse_kld_summary

SAMPLE = Path(__file__).parent.parent / "fixtures" / "kld-Q2_K-smollm2.txt"


def test_parses_every_statistic_of_the_real_sample() -> None:
    r = parse_kld_summary(SAMPLE.read_text(encoding="utf-8"))
    assert (r.ppl_q, r.ppl_q_unc) == (7.310657, 0.277392)
    assert (r.ppl_base, r.ppl_base_unc) == (5.363407, 0.195634)
    assert r.cor_ln_ppl == 93.13
    assert (r.ln_ppl_ratio, r.ln_ppl_ratio_unc) == (0.309734, 0.013868)
    assert (r.ppl_ratio, r.ppl_diff, r.ppl_diff_unc) == (1.363062, 1.947250, 0.118915)
    assert (r.kld_mean, r.kld_mean_unc) == (0.361818, 0.005908)
    assert (r.kld_max, r.kld_p99_9, r.kld_p99, r.kld_p95, r.kld_p90) == (6.618105, 2.682488, 1.740982, 1.005211,
                                                                       0.788776)
    assert (r.kld_median, r.kld_p10, r.kld_p5, r.kld_p1, r.kld_p0_1, r.kld_min) == (
        0.278798, 0.017596, 0.006379, 0.001058, 0.000069, 0.000007)
    assert (r.dp_mean, r.dp_mean_unc) == (-7.783, 0.278)
    assert (r.dp_max, r.dp_p99_9, r.dp_p75, r.dp_median, r.dp_p25, r.dp_p0_1, r.dp_min) == (
        65.960, 56.940, 0.072, -2.322, -14.485, -82.832, -86.563)
    assert (r.dp_rms, r.dp_rms_unc) == (19.402, 0.330)
    assert (r.same_top_p, r.same_top_p_unc) == (74.755, 0.680)
    assert all(v is not None for v in r.model_dump().values())


def test_missing_summary_is_a_clear_error() -> None:
    head = SAMPLE.read_text(encoding="utf-8").split("====== Perplexity")[0]
    with pytest.raises(CollectorError, match="fewer than 100 tokens"):
        parse_kld_summary(head)
