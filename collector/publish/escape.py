"""Escaping for every string that comes from a record, per output: HTML, Markdown, shell commands, CSV, SVG.

First, in every output, control characters and Unicode direction overrides are neutralised: they are shown as
visible `\\uXXXX` text, so a NUL cannot break an SVG and a right-to-left override cannot make a copied command
read differently from what it runs.
"""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Sequence

from markupsafe import Markup

# C0/C1 controls (tab and newline aside), zero-width and direction marks, bidi embeddings/overrides/isolates, BOM
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e"
                        "\u2060-\u2064\u2066-\u2069\u061c\ufeff\ufff9-\ufffb]")
# Python-Markdown's backslash-escapable characters plus `|` (added by the tables extension); `<` and `&`
# are already entities after html.escape
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # OWASP: cells a spreadsheet would evaluate


def neutralize(value: object) -> str:
    """The text with every control character and direction override replaced by visible `\\uXXXX`."""
    text = "" if value is None else str(value)
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def h(value: object) -> str:
    """HTML-escape a value for an element body or a quoted attribute; None becomes an empty string."""
    return html.escape(neutralize(value), quote=True)


def md(value: object) -> Markup:
    """Escape a value for inline Markdown text: no HTML, no emphasis, no links, no table-cell breaks."""
    text = " ".join(h(value).split())  # a newline in a record would end a heading or a table row
    return Markup(_MD_SPECIAL.sub(r"\\\1", text))


_FLAG = re.compile(r"(?<![^ ])(--?[A-Za-z][A-Za-z0-9_.-]{0,30})(?![^ ])")


def _whole_flags(body: str) -> str:
    """Escaped text of a one-line command in which every flag is kept whole where the line wraps (a phone would
    otherwise break `-ctv` after its hyphen); copying gives the same text, spans or not. Several lines (a log
    tail) are left as they are."""
    text = h(neutralize(body))
    return text if "\n" in text else _FLAG.sub(r'<span class="qa-w">\1</span>', text)


def code_block(body: str) -> Markup:
    """A shell command as the page's code block (Material adds its copy button): raw HTML, which Markdown passes
    through untouched (no fence to close early, no highlighting pass over thousands of commands)."""
    return Markup(f'<div class="language-bash highlight"><pre><code>{_whole_flags(body)}</code></pre></div>')


def inline_command(body: str) -> Markup:
    """A command or its flags inside a sentence or a table cell, as inline code with its flags kept whole."""
    return Markup(f"<code>{_whole_flags(body)}</code>")


def shell_command(argv: Sequence[str], model_file: str | None) -> str:
    """The record's argv as one shell-quoted line, with `{model}` replaced by the model file name."""
    name = model_file or "MODEL.gguf"
    return shlex.join(neutralize(a.replace("{model}", name)) for a in argv)


def csv_cell(value: object) -> object:
    """A value for a CSV download: text that a spreadsheet would run as a formula is prefixed with a quote."""
    if not isinstance(value, str):
        return value
    text = neutralize(value)
    return "'" + text if text.startswith(_CSV_FORMULA) else text


def safe_url(value: object) -> str | None:
    """A source's link, only when it is a plain http(s) URL (never javascript:, data: or a relative path)."""
    text = neutralize(value).strip()
    return text if re.match(r"^https?://[^\s\"'<>\\]+$", text, re.I) else None
