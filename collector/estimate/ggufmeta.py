"""A GGUF's metadata as llama.cpp reads it, checked: a key of the wrong type, out of range, or an array longer than
the model's layers fails with one line naming the file and the key (a model file from a stranger may hold
anything: a name that is a number, a layer count of 10^12, a per-layer array of millions of entries).

llama.cpp itself refuses such a file when it loads it (`key ... has wrong type`, LLAMA_MAX_LAYERS); the estimate
refuses it the same way instead of computing from it or raising.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gguf import GGUFReader, GGUFValueType

from collector.base.errors import CollectorError, short_repr

MAX_LAYERS = 4096  # llama.cpp's LLAMA_MAX_LAYERS is 512
MAX_DIM = 1 << 24  # widths, heads, vocabularies, contexts: every count an estimate multiplies
_INTS = {GGUFValueType.UINT8, GGUFValueType.INT8, GGUFValueType.UINT16, GGUFValueType.INT16, GGUFValueType.UINT32,
         GGUFValueType.INT32, GGUFValueType.UINT64, GGUFValueType.INT64}
_FLAGS = _INTS | {GGUFValueType.BOOL}
HOW = "llama.cpp would not load it as a model; give a model's GGUF file (gguf-dump lists its metadata)"


class Meta:
    """Typed, bounded reads of one GGUF's metadata keys; None for a key the file does not hold."""

    def __init__(self, reader: GGUFReader, path: Path) -> None:
        self.reader, self.path = reader, path

    def fail(self, key: str, what: str) -> CollectorError:
        return CollectorError(f"{self.path}: metadata {key} {what}; {HOW}")

    def _field(self, key: str) -> Any:
        return self.reader.get_field(key)

    def _kind(self, f: Any) -> str:
        names = [GGUFValueType(t).name.lower() for t in f.types]
        return "[".join(names) + "]" * (len(names) - 1)

    def text(self, key: str) -> str | None:
        f = self._field(key)
        if f is None:
            return None
        if list(f.types) != [GGUFValueType.STRING]:
            raise self.fail(key, f"is {self._kind(f)}, not text")
        return str(f.contents())

    def count(self, key: str, lo: int = 0, hi: int = MAX_DIM) -> int | None:
        f = self._field(key)
        if f is None:
            return None
        if len(f.types) != 1 or f.types[0] not in _INTS:
            raise self.fail(key, f"is {self._kind(f)}, not a whole number")
        return self._bounded(key, int(f.contents()), lo, hi)

    def _bounded(self, key: str, value: int, lo: int, hi: int) -> int:
        if not lo <= value <= hi:
            raise self.fail(key, f"is {short_repr(value)}, outside {lo}..{hi}")
        return value

    def counts(self, key: str, n: int, lo: int = 0, hi: int = MAX_DIM) -> list[int] | None:
        """A per-layer value: one number for every layer, or an array of at most `n` (the last one repeats)."""
        f = self._field(key)
        if f is None:
            return None
        if len(f.types) == 1:
            return [self.count(key, lo, hi) or 0] * n
        if len(f.types) != 2 or f.types[0] != GGUFValueType.ARRAY or f.types[1] not in _INTS:
            raise self.fail(key, f"is {self._kind(f)}, not a number per layer")
        if len(f.data) > max(n, 1):  # counted before the items are read: no list of millions is built
            raise self.fail(key, f"has {len(f.data)} entries for {n} layers")
        vals = [self._bounded(key, int(v), lo, hi) for v in f.contents()]
        return (vals + [vals[-1] if vals else 0] * n)[:n]

    def flags(self, key: str, n: int) -> list[bool] | None:
        """A per-layer yes/no array (at most `n` entries), or None when the key holds something else."""
        f = self._field(key)
        if f is None or len(f.types) == 1:
            return None
        if len(f.types) != 2 or f.types[0] != GGUFValueType.ARRAY or f.types[1] not in _FLAGS:
            raise self.fail(key, f"is {self._kind(f)}, not a yes/no per layer")
        if len(f.data) > max(n, 1):
            raise self.fail(key, f"has {len(f.data)} entries for {n} layers")
        return [bool(v) for v in f.contents()]

    def architecture(self) -> str:
        """general.architecture; a GGUF without one (an importance matrix) is no model."""
        arch = self.text("general.architecture")
        if not arch:
            if self.text("general.type") == "imatrix":
                raise CollectorError(f"{self.path}: an importance matrix (llama-imatrix's output, as `collector "
                                     "quantize` writes it), not a model; give the model's GGUF file")
            raise self.fail("general.architecture", "is missing or empty")
        return arch
