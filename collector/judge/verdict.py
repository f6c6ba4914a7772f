"""A verdict on one figure of one record: computed from the record, never written into it.

A record's stated figures are never changed. The verdict is a function of the record, the device catalog and the
kept source files, so it is recomputed on every build and every `collector validate`: a better catalog figure or
a corrected rule changes it everywhere at once, and a record file stays what its run or its source wrote (stored
verdicts would go stale, and editing a record after it is written breaks the rule that records are immutable).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# statuses: a held figure is shown struck through with its reason, and never picked, ranked, charted or fitted
IMPLAUSIBLE = "implausible"  # beyond what the device could do (memory bandwidth)
AGAINST_SOURCE = "against its source"  # the source's own summary says otherwise
INVALID = "invalid"  # a zero or negative time or rate
HELD = (IMPLAUSIBLE, AGAINST_SOURCE, INVALID)

# the figures of a speed record a verdict can name (summary keys, and their words)
FIGURES = {"tg": "tg_tps", "pp": "pp_tps", "pg": "pg_tps", "ttft": "ttft_ms", "tg client": "tg_tps_client",
           "throughput": "throughput_tps"}
UNITS = {"tg": "t/s", "pp": "t/s", "pg": "t/s", "ttft": "ms", "tg client": "t/s", "throughput": "t/s"}


@dataclass(frozen=True)
class Verdict:
    """One rule's finding on one figure. `numbers` are the figures behind it, named (units in the names)."""

    status: str  # one of HELD
    rule: str  # "bandwidth", "source summary", "post's own average", "zero or negative"
    reason: str  # one line for a reader: "implies 5.57 TB/s of weight reads; Apple M1 (7-core GPU): 68.2 GB/s"
    numbers: dict[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True)
class FigureVerdict:
    """Every held verdict on one figure of one record, with the figure exactly as the record states it."""

    record_id: str
    figure: str  # a key of FIGURES, or "samples[i].tg" for one sample list
    value: float  # the figure's headline value as stated (Stat.value)
    text: str  # as its source writes it ("1133.05 ± 23.04"), else the number
    verdicts: tuple[Verdict, ...]

    @property
    def held(self) -> bool:
        return any(v.status in HELD for v in self.verdicts)

    @property
    def status(self) -> str:
        """The first held status (rules run physics first, then the source's summary, then zero/negative)."""
        return next((v.status for v in self.verdicts if v.status in HELD), "ok")

    @property
    def reason(self) -> str:
        """Every verdict's reason, joined: 'implies 5.57 TB/s ...; source README says OOM'."""
        return "; ".join(v.reason for v in self.verdicts)


def rate(bytes_per_s: float) -> str:
    """Bytes per second in words: '68.2 GB/s', '5.57 TB/s' (decimal units, as memory bandwidth is quoted)."""
    for unit, scale in (("TB/s", 1e12), ("GB/s", 1e9), ("MB/s", 1e6)):
        if bytes_per_s >= scale:
            return f"{bytes_per_s / scale:.3g} {unit}"
    return f"{bytes_per_s:.3g} B/s"


def size(n_bytes: float) -> str:
    """A byte count in words: '4.92 GB' (decimal)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes:.0f} B"
