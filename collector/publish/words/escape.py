"""Escaping for every string that comes from a record, per output: pages (HTML and Markdown alike), shell
commands, CSV, SVG.

First, in every output, control characters, invisible and direction-changing characters are neutralised: they are
shown as visible `\\uXXXX` text, so a NUL cannot break an SVG, a soft hyphen or a tag character cannot hide in a
name, and a right-to-left override cannot make a copied command read differently from what it runs. On pages,
`h` is the one rule: its text is inert in raw HTML, in attributes and in Markdown alike.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Sequence

from markupsafe import Markup

# What a reader cannot see, or that changes how the text around it reads: C0/C1 controls (tab and newline aside;
# newlines are entities in `h`), the Unicode default-ignorable code points (soft hyphen, combining grapheme joiner,
# Mongolian vowel separator, zero-width and direction marks, bidi embeddings/overrides/isolates, invisible
# operators, variation selectors, Hangul fillers, tag characters U+E0000..U+E0FFF), the other format characters
# (Arabic number signs, interlinear annotations, the BOM), line and paragraph separators, and lone surrogates
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f"
                        "\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e"
                        "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\ud800-\udfff"
                        "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
                        "\U000e0000-\U000e0fff]")
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # OWASP: cells a spreadsheet would evaluate

# The one escaping rule for text from a record (and every other value a template prints): HTML's five specials
# as entities, and every character that Python-Markdown (with this site's extensions: attr_list, tables, toc,
# superfences) gives a meaning to in running text as a numeric character reference. Such text is the same
# characters whether it lands in raw HTML (a browser decodes the references), in a quoted attribute, or in a
# Markdown heading or paragraph (Python-Markdown passes references through as text): it never becomes emphasis,
# code, a link, an image, an attribute list ({: onerror=...}), a heading or a table cell. A newline is a
# reference too, so a record's text cannot end a Markdown line and start a block of its own. `_` inside a word
# (Q4_K_M, n_gpu_layers) is left as it is: Python-Markdown never reads an underscore between two letters or
# digits as emphasis, and leaving it keeps the pages' bytes as they were.
_REFS = {ord(c): f"&#{ord(c)};" for c in "\\`*{}[]#|\n\r"}
_REFS.update({ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord('"'): "&#34;", ord("'"): "&#39;"})
_SPECIAL = re.compile("[" + re.escape("".join(chr(k) for k in _REFS if 0x20 <= k < 0x7F)) + "]")  # _REFS' printable
# ASCII characters
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # an underscore not between two letters or digits


def neutralize(value: object) -> str:
    """The text with every invisible or direction-changing character replaced by visible `\\uXXXX` text."""
    text = "" if value is None else str(value)
    return _INVISIBLE.sub(_visible_code, text)


def _visible_code(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def h(value: object) -> str:
    """A value as text for any place of a page: an element body, a quoted attribute or Markdown text (the rule
    above); None becomes an empty string."""
    text = "" if value is None else str(value)
    if not (text.isascii() and text.isprintable()):  # printable ASCII holds no invisible character and no newline
        text = neutralize(text).translate(_REFS)
    elif _SPECIAL.search(text):  # most text has none of them: 10,000 run pages call this ~3 million times
        text = text.translate(_REFS)
    return _UNDERSCORE.sub("&#95;", text) if "_" in text else text


def md(value: object) -> Markup:
    """`h` as Markup (templates used to need a Markdown filter; `h` is now safe in Markdown text too)."""
    return Markup(h(value))


_FLAG = re.compile(r"(?<![^ ])(--?[A-Za-z][A-Za-z0-9_.-]{0,30})(?![^ ])")


def _whole_flags(body: str) -> str:
    """Escaped text of a one-line command in which every flag is kept whole where the line wraps (a phone would
    otherwise break `-ctv` after its hyphen); copying gives the same text, spans or not. Several lines (a log
    tail) are left as they are."""
    lines = str(body).split("\n")
    if len(lines) > 1:
        return "\n".join(h(line) for line in lines)  # raw newlines: the block shows the lines as they are
    return _FLAG.sub(r'<span class="qa-w">\1</span>', h(body))


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
    """A value for a CSV download: text that a spreadsheet would run as a formula is prefixed with a quote. Some
    spreadsheets skip leading spaces and read fullwidth or small forms (＝, ﹦, ＋) as the ASCII sign: the test is on
    the text as they read it. A carriage return or line feed is shown as `\\r` / `\\n`: CSV readers (Python's csv,
    LibreOffice, Excel) end a row at a bare one, and the next row would start with what follows."""
    if not isinstance(value, str):
        return value
    text = neutralize(value)
    head = unicodedata.normalize("NFKC", text[:8]).lstrip(" \u00a0\u3000")
    text = "'" + text if text.startswith(_CSV_FORMULA) or head.startswith(_CSV_FORMULA) else text
    return text.replace("\r", "\\r").replace("\n", "\\n") if "\r" in text or "\n" in text else text


def safe_url(value: object) -> str | None:
    """A source's link, only when it is a plain http(s) URL (never javascript:, data: or a relative path)."""
    text = neutralize(value).strip()
    return text if re.match(r"^https?://[^\s\"'<>\\]+$", text, re.I) else None
