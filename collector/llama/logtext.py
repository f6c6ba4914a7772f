"""A llama.cpp log as lines the log parsers may trust: what a model file wrote into it cannot pass for llama.cpp.

llama.cpp prints some strings of the GGUF verbatim, newlines included: `print_info: general.name = ...`, the text
of special tokens (`print_info: EOS token = 2 '...'`, the EOG list, the logit biases it adds), and older builds the
chat template itself. A model file whose general.name is "x\\nload_tensors: CUDA0 model buffer size = 9999 MiB"
would otherwise add a line of its own to the log. So, before a log is split into lines:

- every GGUF string that could start a line of its own (a newline followed by text) is found where llama.cpp
  prints such a value (after `= `, `: `, a quote, a parenthesis, `added ` or `from `) and its newlines are made
  visible (`\\n`): what it holds stays inside the line it was printed on;
- lines are split at `\\n` only (a carriage return, form feed or U+2028 in a value does not end a line);
- every fact is read from a line that starts with the tag of the llama.cpp function that prints it (the parsers'
  patterns are anchored), so a value in the middle of a line is never read;
- the server's chat-template message ends the load's lines: its example is rendered by the GGUF's template, so
  nothing after it is read as a load fact (the exit table is read after the server's own exit line);
- a line longer than MAX_LINE is no llama.cpp fact line and is not read (every pattern sees a bounded line), and
  a number of more than MAX_DIGITS digits is not a count (unknown, never a traceback).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# llama.cpp's longest fact line (system_info with every backend's features) is a few hundred characters
MAX_LINE = 2048
MAX_DIGITS = 15  # counts and sizes: 10**15 is past anything a log states (MiB, tokens, layers)

# Colour codes (the escape byte is often lost when a log is pasted, leaving "[34m"), the process id some builds
# print first ("[53409] "), the time and level ("0.00.189.901 I ") and the "cmn  common_param: " tag.
_ANSI = re.compile(r"\x1b?\[\d{1,3}(?:;\d{1,3})*m")
_PID = re.compile(r"^\[\d{1,12}\] ")
_PREFIX = re.compile(r"^\d{1,6}\.\d{1,6}\.\d{1,6}\.\d{1,6} [IWEDC] ")
_TAG = re.compile(r"^cmn\s{1,16}\S{1,64}:\s")
# what llama.cpp prints right before a value of the GGUF: "key = value", "key: value", '...', ('...'), "added
# <token> logit bias", "... from <path>"
_LEADS = ("= ", ": ", "'", "(", "added ", "from ")
_STARTS_LINE = re.compile(r"\n[ \t]*\S")
# the server's chat-template message ("srv  init: init: chat template, example_format: '...", older builds
# "main: chat template, chat_template: ..."): the first line whose text the GGUF's template rendered
_CHAT_TEMPLATE = re.compile(r"^(?:srv\s{1,16})?\w{1,40}: (?:\w{1,40}: )?chat template, ")
_DIGITS = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")


def clean_line(raw: str) -> str:
    """One log line without colour codes, process id, time/level prefix and `cmn` tag; "" for an overlong line."""
    if len(raw) > MAX_LINE * 4:
        return ""
    line = _ANSI.sub("", raw.rstrip("\r\n"))
    line = _PREFIX.sub("", _PID.sub("", line).lstrip())
    line = _TAG.sub("", line)
    return line if len(line) <= MAX_LINE else ""


def count(text: str | None) -> int | None:
    """A whole number as a log writes it (ASCII digits, at most MAX_DIGITS); None for anything else."""
    return int(text) if text is not None and _DIGITS.fullmatch(text) else None


def line_breakers(strings: Iterable[str]) -> list[str]:
    """The strings that would start a line of their own where llama.cpp prints them, longest first."""
    return sorted({s for s in strings if isinstance(s, str) and _STARTS_LINE.search(s)}, key=len, reverse=True)


_KEY = 4  # characters after a value's first newline that index it


def neutralise(text: str, printed: Iterable[str]) -> str:
    """`text` with the newlines of every printed value made visible where llama.cpp prints a value.

    One pass over the log's newlines, whatever the number of values (a vocabulary may hold 10^5 tokens with a
    newline): each value is indexed by the characters after its first newline, and an occurrence is checked only
    at a newline of the log followed by them."""
    index: dict[str, list[tuple[str, int]]] = {}
    for value in line_breakers(printed):
        j = value.index("\n")
        index.setdefault(value[j + 1:j + 1 + _KEY], []).append((value, j))
    if not index:
        return text
    spans: list[tuple[int, int]] = []
    q = text.find("\n")
    while q != -1:
        for value, j in index.get(text[q + 1:q + 1 + _KEY], ()):
            p = q - j
            if p >= 0 and text.startswith(value, p) and text.endswith(_LEADS, max(0, p - 6), p):
                spans.append((p, p + len(value)))
                break  # the longest value that fits here
        q = text.find("\n", q + 1)
    parts, at = [], 0
    for start, end in sorted(spans):
        if start >= at:
            parts += [text[at:start], text[start:end].replace("\n", "\\n")]
            at = end
    return "".join(parts) + text[at:] if parts else text


def log_lines(text: str, printed: Iterable[str] = ()) -> list[str]:
    """The clean lines of a log, split at newlines only, the GGUF's printed values kept inside their lines."""
    return [clean_line(raw) for raw in neutralise(text, printed).split("\n")]


def load_end(lines: list[str]) -> int:
    """The index of the line that ends the load's facts: the server's chat-template message (len(lines): none)."""
    return next((i for i, line in enumerate(lines) if _CHAT_TEMPLATE.match(line)), len(lines))
