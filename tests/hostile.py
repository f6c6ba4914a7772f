"""What a stranger can hand the collector, made by the tests (issue 35): GGUF files with hostile metadata, text
generators for the property tests (seeded `random`, so a failure names the seed and case that reproduce it).

- `rewrite_gguf`: a copy of a real GGUF with metadata keys set, retyped or removed (its tensors unchanged), the way
  a model file from a stranger could be; llama.cpp loads it when its tensors and the keys it needs are intact.
- `hostile_text`: random text of a given length mixing what parsers and pages trip on: control characters, ANSI
  sequences, digits and absurd numbers, markup, quotes, separators, invisible and right-to-left characters.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

DROP = object()  # a value for `changes` that removes the key


def rewrite_gguf(src: Path, dst: Path, changes: Mapping[str, Any], reader: GGUFReader | None = None) -> Path:
    """`src` with metadata keys changed: a value (typed like the original key, or str/int/float/list for a new
    one), (value, GGUFValueType[, sub type]) for an explicit type, or DROP to remove the key. Returns dst."""
    r = reader or GGUFReader(src)
    w = GGUFWriter(dst, r.fields["general.architecture"].contents())
    done = set()
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name in changes:
            done.add(name)
            if changes[name] is DROP:
                continue
            _put(w, name, changes[name], f.types)
        else:
            _put(w, name, f.contents(), f.types)
    for name, value in changes.items():
        if name not in done and value is not DROP:
            _put(w, name, value, [])
    for t in r.tensors:
        w.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def _put(w: GGUFWriter, name: str, value: Any, types: list[GGUFValueType]) -> None:
    if isinstance(value, tuple):  # an explicit type
        w.add_key_value(name, value[0], value[1], sub_type=value[2] if len(value) > 2 else None)
        return
    if not types:
        types = ([GGUFValueType.STRING] if isinstance(value, str) else [GGUFValueType.INT64] if isinstance(value, int)
                 else [GGUFValueType.FLOAT64] if isinstance(value, float) else
                 [GGUFValueType.ARRAY, GGUFValueType.STRING if value and isinstance(value[0], str) else
                  GGUFValueType.INT64])
    if types[0] == GGUFValueType.ARRAY:
        w.add_key_value(name, value, types[0], sub_type=types[1] if len(types) > 1 else None)
    else:
        w.add_key_value(name, value, types[0])


# pieces the text generator draws from; weights favour the ones that broke something before
_PIECES = [
    "\x00", "\x1b", "\x1b[31m", "\x1b[2J\x1b[H", "\x1b]0;title\x07", "\x07", "\x08", "\r", "\n", "\r\n", "\t",
    "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", "\u202e", "\u2066", "\u200b", "\ufeff", "\u00ad",
    "<script>", "</td>", "<img src=x onerror=alert(1)>", "**", "`", "```", "|", "{: onerror=x }", "[x](javascript:1)",
    "&#x3C;", "{{ 7*7 }}", "{%", "#", "- ", "> ", "!!! note", "\\", "'", '"', "=", "+", "-", "@", "=1+1", "~",
    "±", "–", ",", ".", ":", ";", "_", "/", "..", "%", "$(x)", "`id`",
    "0", "1", "9", "1.5", "-1", "1e400", "nan", "inf", "0x1F", "9" * 30, "1" * 400, "½", "²", "١٢", "٣",
    "Q4_K_M", "_Q1", "IQ2_XS", "-UD-", "GB", " GB", "24GB", "~24 GB", "MiB", " MiB", "8B", "B", "K_M", "Q4",
    "index", "devices", "models", "compare", "runs", "data", "..", "/", "%2F", " ", "  ", "a", "é", "日本", "😀",
]


def hostile_text(rng: random.Random, length: int) -> str:
    """About `length` characters: long runs of one piece (what makes a pattern backtrack) and mixtures."""
    out: list[str] = []
    size = 0
    while size < length:
        piece = rng.choice(_PIECES)
        if rng.random() < 0.3:  # a run: "1.1.1.1...", "_Q1_Q1_Q1...", "((((("
            run = rng.choice([piece, piece + rng.choice(_PIECES)])
            reps = max(1, min(length - size, rng.choice([10, 100, 1000, 10_000, 100_000])) // max(len(run), 1))
            piece = run * reps
        out.append(piece)
        size += len(piece)
    return "".join(out)[:max(length, 0)]


def lengths(rng: random.Random, most: int, n: int) -> list[int]:
    """n lengths from 0 to `most`, spread over every order of magnitude (most of them short)."""
    return [0, 1, most, *(int(10 ** rng.uniform(0, np.log10(max(most, 2)))) for _ in range(max(n - 3, 0)))]


def imatrix_gguf(path: Path) -> Path:
    """A GGUF as llama-imatrix writes it (tools/imatrix/imatrix.cpp, save_imatrix): general.type "imatrix", the
    datasets and chunk counts, one in_sum2 and counts tensor per weight, and no general.architecture and no
    <arch>.block_count. gguf-py's writer always adds an architecture, so the bytes are written here."""
    import struct

    def text(s: str) -> bytes:
        return struct.pack("<Q", len(s.encode())) + s.encode()

    kvs = [(text("general.type"), struct.pack("<I", 8) + text("imatrix")),
           (text("imatrix.chunk_count"), struct.pack("<I", 4) + struct.pack("<I", 16)),
           (text("imatrix.chunk_size"), struct.pack("<I", 4) + struct.pack("<I", 512)),
           (text("imatrix.datasets"), struct.pack("<I", 9) + struct.pack("<I", 8) + struct.pack("<Q", 1)
            + text("python-docs-3.11.txt"))]
    tensors = [("blk.0.ffn_down.weight.in_sum2", 64), ("blk.0.ffn_down.weight.counts", 1)]
    head = b"GGUF" + struct.pack("<I", 3) + struct.pack("<Q", len(tensors)) + struct.pack("<Q", len(kvs))
    body = b"".join(k + v for k, v in kvs)
    infos, offset = b"", 0
    for name, n in tensors:
        infos += text(name) + struct.pack("<I", 1) + struct.pack("<Q", n) + struct.pack("<I", 0) + \
            struct.pack("<Q", offset)
        offset += (n * 4 + 31) // 32 * 32
    out = head + body + infos
    out += b"\0" * (-len(out) % 32) + b"\0" * offset
    path.write_bytes(out)
    return path
