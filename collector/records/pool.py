"""Pooling a configuration's speed records: the quiet ones, their samples at one filled depth.

A figure rests on quiet runs; when every run of a configuration was noisy its figures are still shown (marked),
never recommended (docs/collector.md, "Noisy runs"). The tune, its pages and the device pages pool the same way."""

from __future__ import annotations

from collections.abc import Sequence

from collector.records.schema import SpeedRecord


def all_noisy(records: Sequence[SpeedRecord]) -> bool:
    """Only noisy runs: figures a recommendation may not rest on."""
    return bool(records) and all(r.noisy for r in records)


def quiet_or_all(records: Sequence[SpeedRecord]) -> list[SpeedRecord]:
    """The runs a configuration's figures come from: the quiet ones, or every one when all are noisy."""
    return [r for r in records if not r.noisy] or list(records)


def values_at(records: Sequence[SpeedRecord], depth: int, what: str) -> list[float]:
    """Every sample of `what` (tg_tps, pp_tps, ttft_ms) at this filled depth, over the records in order."""
    return [v for r in records for s in r.samples if s.depth_tokens == depth for v in getattr(s, what)]
