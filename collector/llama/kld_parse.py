"""Parse the summary that `llama-perplexity --kl-divergence` prints (ref/llama-cpp.md §4)."""

from __future__ import annotations

import re

from collector.base.errors import CollectorError
from collector.records.schema import KldResults

# "<key> : <value> [± <unc>] [%]"; keys can carry leading spaces (" 5.0%   KLD")
_LINE = re.compile(r"^\s*(?P<key>[^:]+?)\s*:\s*(?P<val>-?[\d.]+(?:e[-+]?\d+)?)\s*%?"
                   r"(?:\s*±\s*(?P<unc>[\d.]+(?:e[-+]?\d+)?))?\s*%?\s*$")

_PCT = {"Maximum": "max", "Minimum": "min", "Median": "median", "99.9%": "p99_9", "99.0%": "p99",
        "95.0%": "p95", "90.0%": "p90", "75.0%": "p75", "25.0%": "p25", "10.0%": "p10", "5.0%": "p5",
        "1.0%": "p1", "0.1%": "p0_1", "Mean": "mean"}

_FIXED = {
    "Mean PPL(Q)": "ppl_q",
    "Mean PPL(base)": "ppl_base",
    "Cor(ln(PPL(Q)), ln(PPL(base)))": "cor_ln_ppl",
    "Mean ln(PPL(Q)/PPL(base))": "ln_ppl_ratio",
    "Mean PPL(Q)/PPL(base)": "ppl_ratio",
    "Mean PPL(Q)-PPL(base)": "ppl_diff",
    "RMS Δp": "dp_rms",
    "Same top p": "same_top_p",
}


def _field(key: str) -> str | None:
    key = " ".join(key.split())
    if key in _FIXED:
        return _FIXED[key]
    parts = key.split(" ")
    if len(parts) == 2 and parts[1] in ("KLD", "Δp") and parts[0] in _PCT:
        return ("kld_" if parts[1] == "KLD" else "dp_") + _PCT[parts[0]]
    return None


def parse_kld_summary(text: str) -> KldResults:
    """Every statistic of the three summary sections; CollectorError if the summary is missing.

    llama-perplexity skips the summary when fewer than 100 tokens were scored, so a missing summary
    means the corpus was too short for the context size (or the run died before the end).
    """
    start = text.find("====== Perplexity statistics ======")
    if start < 0:
        raise CollectorError("llama-perplexity printed no KLD summary: fewer than 100 tokens were scored "
                             "(use a longer corpus or a smaller ctx_size) or the run ended early")
    values: dict[str, float] = {}
    for line in text[start:].splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        name = _field(m["key"])
        if name is None:
            continue
        values[name] = float(m["val"])
        if m["unc"] is not None:
            values[name + "_unc"] = float(m["unc"])
    if "kld_mean" not in values:
        raise CollectorError("llama-perplexity output has no 'Mean KLD' line; is this a --kl-divergence run?")
    return KldResults(**values)
