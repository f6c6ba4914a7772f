"""The rows pages are made of: one per speed configuration (`Row`), one per KLD measurement (`KldRow`).

Figures are as collector.records.figures defines them; unknown is None, never a default."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from collector.base.stats import Interval
from collector.judge import FigureVerdict
from collector.publish.rows.devices import device_key
from collector.publish.rows.keys import ConfigKey
from collector.publish.rows.names import slug_of
from collector.records.figures import interval_of
from collector.records.schema import KldRecord, SpeedRecord, Stat
from collector.records.store import page_id_of


@dataclass
class Row:
    """One configuration on one device (or one imported figure), with everything a page shows about it."""

    key: ConfigKey
    records: list[SpeedRecord] = field(default_factory=list)  # oldest first
    noisy: bool = False
    tg: Stat | None = None
    pp: Stat | None = None
    ttft: Stat | None = None
    tg_depth: int | None = None  # the filled depth of the headline figures (None: the source does not say)
    depths: dict[int, dict[str, Stat]] = field(default_factory=dict)  # depth -> {tg, pp, ttft}
    samples: dict[int, dict[str, list[float]]] = field(default_factory=dict)  # the values behind `depths`
    kld: KldRow | None = None  # the joined KLD row
    kld_join: str | None = None
    kld_note: str | None = None
    held: dict[str, FigureVerdict] = field(default_factory=dict)  # tg/pp the judge holds back, with the reason
    pickable: bool = True  # False: held, contradicted by its device's other results, or a claim repeated elsewhere
    repeat: bool = False  # the same claim as another post's (that one stands for it; this one is counted once)
    disagree: str | None = None  # its device's results for the same model, quant and test spread widely: in words
    also: list[Row] = field(default_factory=list)  # imported: the source's other figures of this configuration
    repeated: list[Row] = field(default_factory=list)  # imported: other sources stating the same figure

    @property
    def rec(self) -> SpeedRecord:
        """The newest record: its command, memory and placement represent the configuration."""
        return self.records[-1]

    @property
    def status(self) -> str:
        return "ok" if any(r.status == "ok" for r in self.records) else "failed"

    @property
    def imported(self) -> bool:
        return self.rec.source.type == "imported"

    @property
    def page_id(self) -> str:
        return page_id_of(self.rec.id)

    @cached_property
    def device(self) -> str:  # computed once: a row's records share device and model (pages ask ~30 times)
        return device_key(self.rec.host)

    @cached_property
    def model(self) -> str:
        return slug_of(self.rec)

    @property
    def deepest(self) -> int | None:
        return max(self.depths) if self.depths else None

    def value(self, what: str = "tg") -> float | None:
        fig = getattr(self, what)
        return fig.value if fig else None

    def interval(self, what: str = "tg", depth: int | None = None) -> Interval | None:
        """A figure (the headline's, or at `depth`) with its interval, for stats.separate."""
        d = self.tg_depth if depth is None else depth
        fig = getattr(self, what) if depth is None else self.depths.get(depth, {}).get(what)
        if fig is None:
            return None
        return interval_of(fig, self.samples.get(d, {}).get(what) if d is not None else None)


@dataclass
class KldRow:
    """One KLD measurement as pages show it (a re-run of the same files, corpus, settings and build: the newest,
    with how many there were)."""

    rec: KldRecord
    n_records: int
    page_id: str
    status: str
    device: str
    device_label: str
    model: str
    model_name: str
    quant: str
    sha256: str | None
    imported: bool
    repo: str | None
    citation: str | None
    ctk: str | None  # KV cache types the KLD was measured with (None: not stated)
    ctv: str | None
    kv_default: bool  # measured with llama.cpp's default f16 cache (no type passed)
    kv_variant: bool  # one of a KV-cache ladder (the same file, several cache types)
    corpus: str | None
    corpus_key: str  # what makes two KLDs' corpora the same: its sha256, else its name
    reference: str | None  # the base the KLD is against, as a page says it ("F16", "BF16 of ...", None: not stated)
    scope: tuple[str | None, str, int | None]  # (reference, corpus, context): KLDs compare only within one
    corpus_ctx: int | None
    corpus_chunks: int | None
    base: str | None  # the base model and its quant, in words
    kld_mean: float | None
    kld_mean_unc: float | None
    kld_p99_9: float | None
    kld_max: float | None
    same_top_p: float | None
    same_top_p_unc: float | None
    ppl_ratio: float | None
    created_at: datetime
