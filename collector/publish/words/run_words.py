"""What a run's raw facts say, in the words a reader knows: llama.cpp's auto-fit log lines as sentences, and the KLD
statistics by the names llama-perplexity prints them with (the glossary's), never as record field names.

The record keeps every log line verbatim (the data downloads have them); a page shows what they mean. A fit line this
module does not know is shown as "llama.cpp's fit also logged: ..." with its text, never dropped.
"""

from __future__ import annotations

import re
from typing import Any

from collector.publish.words.render import num
from collector.records.schema import KldResults

_PREFIX = re.compile(r"^(?:common_params_fit_impl|common_fit_params|llama_params_fit\w*|common_init_\w*):\s*")
# (a count of more digits is not llama.cpp's: the line is shown as it is, never a traceback)
_FIT: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"getting device memory data for initial parameters:?$"), None),
    (re.compile(r"fitting params to device memory \.\.\.$"), None),
    (re.compile(r"projected to use (\d{1,15}) MiB of host memory vs\. (\d{1,15}) MiB of total host memory"),
     lambda m: f"projected {int(m[1]):,} MiB of host memory, of {int(m[2]):,} MiB in total"),
    (re.compile(r"projected to use (\d{1,15}) MiB of device memory vs\. (\d{1,15}) MiB of free device memory"),
     lambda m: f"projected {int(m[1]):,} MiB of GPU memory, of {int(m[2]):,} MiB free"),
    (re.compile(r"will leave (\d{1,15}) >= (\d{1,15}) MiB of (?:free device|system) memory, no changes needed"),
     lambda m: f"changed nothing: {int(m[1]):,} MiB stay free, at least the {int(m[2]):,} MiB it keeps free"),
    (re.compile(r"cannot meet free memory target of (\d{1,15}) MiB, need to reduce device memory by (\d{1,15}) MiB"),
     lambda m: f"had to save {int(m[2]):,} MiB to keep {int(m[1]):,} MiB free"),
    (re.compile(r"context size reduced from (\d{1,15}) to (\d{1,15}) -> need (\d{1,15}) MiB less memory in total"),
     lambda m: f"reduced the context from {int(m[1]):,} to {int(m[2]):,} tokens ({int(m[3]):,} MiB less)"),
    (re.compile(r"entire model can be fit by reducing context"),
     lambda m: "fit the whole model by reducing the context"),
    (re.compile(r"context size set by user to (\d{1,15}) -> no change"),
     lambda m: f"kept the context of {int(m[1]):,} tokens the command sets"),
    (re.compile(r"successfully fit params to free device memory"), lambda m: "the settings fit the free memory"),
    (re.compile(r"failed to fit params to free device memory: (.+)$"),
     lambda m: f"the settings did not fit the free memory ({m[1].strip()})"),
    (re.compile(r"fitting params to free memory took ([\d.]+) seconds"), lambda m: f"fitting took {m[1]} s"),
]


def fit_words(lines: list[str]) -> str | None:
    """llama.cpp's auto-fit lines as one sentence; None when there are none."""
    said: list[str] = []
    for line in lines:
        body = _PREFIX.sub("", line.strip())
        for pattern, words in _FIT:
            m = pattern.search(body)
            if m:
                if words is not None:
                    said.append(words(m))
                break
        else:
            said.append(f"also logged: {body}" if body != line.strip() else body)
    return ("llama.cpp's automatic fit " + "; ".join(said) + ".") if said else None


# (label, value field, uncertainty field, unit); llama-perplexity's own names for its KLD summary
KLD_STATS: list[tuple[str, str, str | None, str]] = [
    ("Mean KLD", "kld_mean", "kld_mean_unc", ""), ("Maximum KLD", "kld_max", None, ""),
    ("99.9 % KLD", "kld_p99_9", None, ""), ("99.0 % KLD", "kld_p99", None, ""), ("95.0 % KLD", "kld_p95", None, ""),
    ("90.0 % KLD", "kld_p90", None, ""), ("Median KLD", "kld_median", None, ""), ("10.0 % KLD", "kld_p10", None, ""),
    ("5.0 % KLD", "kld_p5", None, ""), ("1.0 % KLD", "kld_p1", None, ""), ("0.1 % KLD", "kld_p0_1", None, ""),
    ("Minimum KLD", "kld_min", None, ""),
    ("Same top p", "same_top_p", "same_top_p_unc", " %"), ("RMS Δp", "dp_rms", "dp_rms_unc", " %"),
    ("Mean Δp", "dp_mean", "dp_mean_unc", " %"), ("Maximum Δp", "dp_max", None, " %"),
    ("99.9 % Δp", "dp_p99_9", None, " %"), ("99.0 % Δp", "dp_p99", None, " %"), ("95.0 % Δp", "dp_p95", None, " %"),
    ("90.0 % Δp", "dp_p90", None, " %"), ("75.0 % Δp", "dp_p75", None, " %"), ("Median Δp", "dp_median", None, " %"),
    ("25.0 % Δp", "dp_p25", None, " %"), ("10.0 % Δp", "dp_p10", None, " %"), ("5.0 % Δp", "dp_p5", None, " %"),
    ("1.0 % Δp", "dp_p1", None, " %"), ("0.1 % Δp", "dp_p0_1", None, " %"), ("Minimum Δp", "dp_min", None, " %"),
    ("Mean PPL(Q)", "ppl_q", "ppl_q_unc", ""), ("Mean PPL(base)", "ppl_base", "ppl_base_unc", ""),
    ("PPL ratio", "ppl_ratio", "ppl_ratio_unc", ""), ("ln PPL ratio", "ln_ppl_ratio", "ln_ppl_ratio_unc", ""),
    ("PPL difference", "ppl_diff", "ppl_diff_unc", ""), ("Correlation of ln PPL", "cor_ln_ppl", None, " %"),
]


def _figure(x: float) -> str:
    """As llama-perplexity prints it: six decimals at most, trailing zeros dropped (no rounding to 3 digits)."""
    return f"{x:.6f}".rstrip("0").rstrip(".") if x != int(x) or abs(x) < 1e6 else num(x)


def kld_stats(results: KldResults) -> list[tuple[str, str]]:
    """(label, value) of every statistic the record holds, in llama-perplexity's order and names."""
    out = []
    known = set()
    for label, key, unc, unit in KLD_STATS:
        known |= {key, unc}
        value = getattr(results, key)
        if value is None:
            continue
        u = getattr(results, unc) if unc else None
        out.append((label, _figure(value) + (f" ± {_figure(u)}" if u is not None else "") + unit))
    rest = [k for k, v in results.model_dump().items() if v is not None and k not in known]
    assert not rest, f"a KLD statistic without a name on the page: {rest}"  # a new schema field needs a label here
    return out
