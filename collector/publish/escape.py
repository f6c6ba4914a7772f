"""Escaping for every string that comes from a record: it must reach the page as text, never markup."""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Sequence

# Python-Markdown's backslash-escapable characters plus `|` (added by the tables extension); `<` and `&`
# are already entities after html.escape
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>])")


def h(value: object) -> str:
    """HTML-escape a value for an element body or a quoted attribute; None becomes an empty string."""
    return "" if value is None else html.escape(str(value), quote=True)


def md(value: object) -> str:
    """Escape a value for inline Markdown text: no HTML, no emphasis, no links, no table-cell breaks."""
    text = " ".join(h(value).split())  # a newline in a record would end a heading or a table row
    return _MD_SPECIAL.sub(r"\\\1", text)


def code_fence(body: str, lang: str = "bash", title: str | None = None) -> str:
    """A fenced code block whose fence is longer than any backtick run in `body` (so it cannot be closed early)."""
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    head = f'{fence}{lang}' + (f' title="{title}"' if title else "")
    return f"{head}\n{body}\n{fence}"


def shell_command(argv: Sequence[str], model_file: str | None) -> str:
    """The record's argv as one shell-quoted line, with `{model}` replaced by the model file name."""
    name = model_file or "MODEL.gguf"
    return shlex.join(a.replace("{model}", name) for a in argv)
