"""The one expected-error type of the collector, and how its messages quote values."""

from __future__ import annotations

import re
from typing import Any

# what a terminal would act on instead of showing: C0/C1 controls (ESC starts escape sequences, a newline fakes a
# second line), direction overrides and isolates, and lone surrogates (an undecodable file name)
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


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


def printable(text: str) -> str:
    """Text for the terminal with every control character, direction override and undecodable byte shown as an
    escape (\\x1b, \\n, \\u202e, \\udcff), so a file name or a record's text cannot move the cursor, recolour the
    terminal or fake a line."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1] if ord(m.group()) < 0xd800 else f"\\u{ord(m.group()):04x}",
                            text)
