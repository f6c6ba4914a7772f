"""The one expected-error type of the collector, and how its messages quote values."""

from __future__ import annotations

from typing import Any


class CollectorError(Exception):
    """An expected failure. The message is one line that says what went wrong and what to do next."""


def short_repr(value: Any, limit: int = 60) -> str:
    """repr() of a value cut to `limit` characters: error messages never echo a huge input."""
    text = repr(value) if not isinstance(value, (dict, list)) or _small(value) else f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _small(value: Any, budget: int = 50) -> bool:
    """Whether a nested value has at most `budget` items (checked without expanding more than that)."""
    todo, seen = [value], 0
    while todo:
        v = todo.pop()
        seen += 1
        if seen > budget:
            return False
        if isinstance(v, dict):
            todo += list(v.values())[: budget]
        elif isinstance(v, list):
            todo += v[: budget]
    return True
