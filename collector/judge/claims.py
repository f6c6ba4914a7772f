"""One claim repeated by several posts: the same device, model file, settings and figure, as written, stated by
posts that are different sources. It is one claim citing all of them, never two results (a tie with itself).

A post that restates another's figure often states a little more or less around it (a build number, the
repository, a placement line): settings must agree where both posts state them, and the figure must be written
the same ("~94"); what only one of them states does not split the claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.catalog import Catalog
from collector.judge.names import model_key, normalise_test
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord


@dataclass(frozen=True)
class RepeatedClaim:
    """Records stating one claim, the first (earliest imported) standing for it; `sources` cites every post."""

    metric: str  # tg | pp
    text: str  # the figure as written: "~94"
    records: tuple[str, ...]  # record ids, the first stands for the claim
    sources: tuple[str, ...]  # each record's citation, in the same order


def source_of(rec: AnyRecord) -> str:
    """The source a record's figure comes from: its transcription or table (the figure key before '#')."""
    return (rec.source.figure or rec.id).split("#")[0]


def _device(rec: SpeedRecord, catalog: Catalog) -> tuple[str, ...]:
    out = []
    for g in rec.host.gpus:
        dev = catalog.resolve(g.name)
        out.append(dev.name if dev else " ".join(g.name.casefold().split()))
    return tuple(sorted(out)) or (f"cpu {rec.host.cpu.model or ''}".casefold(),)


def _model(rec: SpeedRecord) -> tuple[str, str, str]:
    m = rec.model
    name = m.name or m.basename or ""
    return model_key(name) if name else "", (m.finetune or "").casefold(), (m.quant or m.file_type or "").upper()


def _settings(rec: SpeedRecord) -> dict[str, Any]:
    """The settings a post states (config values that are not null/empty)."""
    return {k: v for k, v in rec.config.model_dump(mode="json").items() if v not in (None, [], {})}


def _compatible(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def _figure(rec: SpeedRecord, metric: str) -> str | None:
    stat = getattr(rec.summary, f"{metric}_tps")
    return None if stat is None else (stat.text or repr(stat.value))


def repeated_claims(records: list[AnyRecord], catalog: Catalog) -> list[RepeatedClaim]:
    """Every claim stated by two or more sources (transcribed posts: imported records with the source's quotes)."""
    posts = sorted((r for r in records if isinstance(r, SpeedRecord) and r.status == "ok"
                    and r.source.type == "imported" and r.source.quotes),
                   key=lambda r: (r.created_at, r.source.figure or "", r.id))
    out: list[RepeatedClaim] = []
    for metric in ("tg", "pp"):
        groups: list[list[SpeedRecord]] = []
        for rec in posts:
            text = _figure(rec, metric)
            if text is None:
                continue
            key = (_device(rec, catalog), _model(rec), text, normalise_test(rec.samples[0].category) if len(rec.samples)
                   == 1 else None)
            for group in groups:
                head = group[0]
                same = (_device(head, catalog), _model(head), _figure(head, metric),
                        normalise_test(head.samples[0].category) if len(head.samples) == 1 else None) == key
                if same and all(_compatible(_settings(rec), _settings(x)) for x in group) and \
                        source_of(rec) not in {source_of(x) for x in group}:
                    group.append(rec)
                    break
            else:
                groups.append([rec])
        out += [RepeatedClaim(metric, _figure(g[0], metric) or "", tuple(r.id for r in g),
                              tuple(r.source.citation or source_of(r) for r in g)) for g in groups if len(g) > 1]
    return out
