"""A configuration's facts in words, as every page says them: its KV cache types, whether the model is a mixture of
experts, the file's size, the date, and the source's own words that hold its figure. Unknown is said, never
defaulted."""

from __future__ import annotations

from collector.publish.rows.frame import kv_types
from collector.publish.rows.row import Row
from collector.records.store import AnyRecord


def kv_text(row: Row) -> str:
    k, v, defaulted = kv_types(row.rec)
    if k is None and v is None:
        return "not stated"
    text = f"{k or 'not stated'}/{v or 'not stated'}"
    return text + " (default)" if defaulted else text

def moe_text(rec: AnyRecord) -> str:
    m = rec.model
    if m.n_experts:
        return f"MoE, {m.n_experts} experts" + (f", {m.n_experts_used} active" if m.n_experts_used else "")
    if m.moe is False:
        return "dense"
    return "MoE: not stated" if m.moe is None else "MoE"

def size_text(rec: AnyRecord) -> str:
    m = rec.model
    if m.size_bytes:
        return f"{m.size_bytes / 1e9:.2f} GB"
    return f"{m.size_stated} (as stated)" if m.size_stated else "size not stated"

def date_text(rec: AnyRecord) -> str:
    if rec.source.type == "imported":
        return f"{rec.source.date} (as stated)" if rec.source.date else "not stated"
    return rec.created_at.strftime("%Y-%m-%d")

def quote_of(row: Row) -> str | None:
    """The source's own words that hold the headline figure (the first quote containing it)."""
    quotes = row.rec.source.quotes
    if not quotes:
        return None
    tg = row.tg
    if tg is not None:
        needle = (tg.text or "").lstrip("~")
        hit = next((q for q in quotes if needle and needle in q), None)
        if hit:
            return hit
    return quotes[0]
