"""Names people can read: the model a crowd source's name names, names that name no model, test names.

A crowd source writes one model many ways: LocalScore shows the GGUF's general.name (or llamafile's title-cased
folder or file stem) as each submitter's file had it, so "Gemma 3 1b It", "Gemma-3-1B-It" and "gemma 3 1b it" are
one model; "Qwen Qwen3 30B A3B" is the repository owner/name of "Qwen3 30B A3B"; "driaforall.Dria Agent A 3B" the
owner.name of "Dria Agent A 3B"; "... Instruct GGUF" the repository's name of "... Instruct". `model_key` folds
exactly these spellings (case, '-', '_', whitespace, a trailing GGUF, an owner prefix) and nothing else: a
different checkpoint (QAT, AWQ, abliterated, bnb-4bit) is a different model and keeps its own name.

What names no model is never a model of its own: a path ("C:\\LLM_MODELS\\mistralai", "/models/x"), a name
without a letter ("."), or only words that name folders or files ("Model Hf", "hub", "Dir", "active", "Models").
Such a result is listed as "unnamed model (as submitted: ...)" and is never grouped with another (two unnamed
results may be two different models).

"Llama 3 8b Bnb 4bit" names a model: the GGUF converted from a bitsandbytes 4-bit copy of Llama 3 8B (the
general.name llama.cpp's converter takes from that repository's folder). Its weights went through NF4 before
the GGUF's own quantization, so it is not Meta's Llama 3 8B file either: it keeps its own name and group.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

UNNAMED = "unnamed model"
# words that name a folder, a file or a tool's default, never a model (the whole name made of them names none)
GENERIC_WORDS = frozenset({
    "model", "models", "hf", "hub", "dir", "directory", "folder", "active", "gguf", "ggml", "main", "snapshot",
    "snapshots", "blobs", "blob", "default", "latest", "local", "llm", "llms", "file", "files", "weights",
    "checkpoint", "checkpoints", "output", "out", "tmp", "temp", "download", "downloads", "cache", "home", "data",
    "test", "new", "untitled", "unknown", "none", "null", "the", "my"})
_PATH = re.compile(r"[\\/]|^[A-Za-z]:|^~")
_OWNER_DOT = re.compile(r"^[a-z0-9][a-z0-9-]*\.(?=[A-Za-z])")  # "driaforall.Dria Agent A 3B"
_SEPARATORS = re.compile(r"[\s_\-]+")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class ModelName:
    """How a record's model name reads: `key` groups spellings of one model; `label` is what a page shows."""

    key: str  # "gemma 3 1b it"; for an unnamed model "unnamed: <as submitted> <params>" (never shared)
    label: str  # the readable name; "unnamed model (as submitted: Model Hf)"
    as_submitted: str | None  # the name exactly as the record states it
    unnamed: bool
    why: str | None = None  # unnamed: "a path", "no letters", "only folder or file words"


def unnamed_reason(name: str | None) -> str | None:
    """Why a stated name names no model (None: it names one)."""
    if name is None or not name.strip():
        return "no name stated"
    text = unicodedata.normalize("NFKC", name).strip()
    if _PATH.search(text):
        return "a path"
    words = _WORD.findall(text.casefold())
    if not any(c.isalpha() for c in text):
        return "no letters"
    if words and all(w in GENERIC_WORDS for w in words):
        return "only folder or file words"
    return None


@lru_cache(maxsize=4096)
def model_key(name: str) -> str:
    """The spelling-free form of a model name: case, '-', '_' and whitespace, a trailing 'GGUF' and an owner
    prefix ('owner.Name', 'Owner Owner-name') folded; every other word kept."""
    text = unicodedata.normalize("NFKC", name).strip()
    text = _OWNER_DOT.sub("", text)
    words = _SEPARATORS.sub(" ", text.casefold()).strip().split(" ")
    if len(words) > 1 and words[-1] == "gguf":
        words = words[:-1]
    owner = len(words) > 1 and len(words[0]) >= 3 and words[1].startswith(words[0]) and words[1] != words[0]
    if owner:  # "qwen qwen3 30b a3b": the repository's owner/name
        words = words[1:]
    return " ".join(words)


@lru_cache(maxsize=4096)  # pure; every record of a crowd source asks, and they share a few hundred names
def model_name(name: str | None, params_stated: str | None = None) -> ModelName:
    """A stated model name (general.name, or a crowd source's name) as a page should group and show it."""
    why = unnamed_reason(name)
    if why is not None:
        shown = name if name is not None and name.strip() else "no name"
        return ModelName(key=f"unnamed: {name!r} {params_stated or ''}".strip(),
                         label=f"{UNNAMED} (as submitted: {shown})", as_submitted=name, unnamed=True, why=why)
    assert name is not None
    return ModelName(key=model_key(name), label=name.strip(), as_submitted=name, unnamed=False)


def _bare(spelling: str) -> bool:
    """Whether a spelling names the model alone: no owner prefix and no 'GGUF' that model_key folds away."""
    return _SEPARATORS.sub(" ", unicodedata.normalize("NFKC", spelling).casefold()).strip() == model_key(spelling)


def readable_labels(names: list[ModelName]) -> dict[str, str]:
    """key -> the label a page shows for every spelling of it: a spelling that names the model alone (not
    "Qwen Qwen3 ...", "owner.Name", "... GGUF"), the one most records use, then the one with the most capitals
    and spaces, then the first alphabetically; so one model has one name."""
    counts: dict[str, dict[str, int]] = {}
    for n in names:
        counts.setdefault(n.key, {}).setdefault(n.label, 0)
        counts[n.key][n.label] += 1
    out = {}
    for key, spellings in counts.items():
        out[key] = min(spellings, key=lambda s: (not _bare(s), -spellings[s], -sum(c.isupper() or c == " " for c in s),
                                                 s))
    return out


_TEST = re.compile(r"^\s*(pp|tg|pg)\s*(\d+)\s*(?:\+\s*(pp|tg)\s*(\d+))?\s*(?:@\s*d\s*(\d+))?\s*$", re.I)


def normalise_test(text: str | None) -> str | None:
    """One spelling per llama-bench test: 'tg512' and 'tg 512' -> 'tg 512', 'pp512+tg128' -> 'pp 512 + tg 128',
    'tg128 @ d4096' -> 'tg 128 @ d4096'; any other text only trimmed and with its whitespace collapsed."""
    if text is None:
        return None
    m = _TEST.match(text)
    if not m:
        return " ".join(text.split())
    out = f"{m[1].lower()} {m[2]}"
    if m[3]:
        out += f" + {m[3].lower()} {m[4]}"
    if m[5]:
        out += f" @ d{m[5]}"
    return out
