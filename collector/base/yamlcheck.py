"""Validation of hand-written YAML (plans) with errors that name file, line and key."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from collector.base.errors import CollectorError, short_repr

T = TypeVar("T")
_MISSING: Any = object()


MAX_BYTES = 1 << 20  # a plan or transcription is a few KiB; a record tens of KiB
MAX_NODES = 200_000  # values after alias expansion: an alias bomb stops here instead of filling memory


def load_yaml_file(path: Path, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> Any:
    """Round-trip load (line numbers kept); CollectorError naming file:line on any problem.

    Bounded: a file over `max_bytes` is refused before parsing, a document whose values expand (through
    aliases) past `max_nodes` is refused before anything walks it, and bytes that are not UTF-8 are named by line.
    """
    raw = read_regular(path, max_bytes)
    if len(raw) > max_bytes:
        raise CollectorError(f"{path}: larger than {max_bytes // 1024} KiB; this is not a file the collector "
                             "writes or expects (check the path)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CollectorError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                             "save the file as UTF-8") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise CollectorError(f"{path}:{line}: a NUL byte; this is not a YAML text file")
    try:
        data = YAML().load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0][:120]
        raise CollectorError(f"{path}{where}: not valid YAML ({problem})") from None
    except RecursionError:
        raise CollectorError(f"{path}: nested too deeply to be a plan or record") from None
    if count_nodes(data, max_nodes) > max_nodes:
        raise CollectorError(f"{path}: more than {max_nodes:,} values once its aliases (*name) are expanded; "
                             "write the values out or use fewer aliases")
    bad = surrogate_at(data)
    if bad is not None:
        at = line_of(data, bad)
        raise CollectorError(f"{path}{f':{at}' if at else ''}: {'.'.join(map(str, bad)) or 'a value'}: a "
                             "\\uD800-\\uDFFF escape (a lone surrogate) is not a character; remove it")
    return data


def read_regular(path: Path, max_bytes: int) -> bytes:
    """At most max_bytes + 1 bytes of a regular file; CollectorError for anything else (a FIFO would block, a
    device never ends, a directory cannot be read) or when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens without waiting for a writer
    except OSError as exc:
        raise CollectorError(f"{path}: cannot read ({exc.strerror or exc}); check the path") from None
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise CollectorError(f"{path}: {kind}, not a regular file; give the path of a file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(max_bytes + 1)
    except OSError as exc:
        raise CollectorError(f"{path}: cannot read ({exc.strerror or exc}); check the path") from None
    finally:
        os.close(fd)


def file_kind(mode: int) -> str | None:
    """None for a regular file, else what it is, in words."""
    if stat.S_ISREG(mode):
        return None
    for test, words in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "not a regular file"


def surrogate_at(data: Any) -> tuple[Any, ...] | None:
    """The key path of the first string (key or value) holding a lone surrogate, () for the document itself."""
    todo: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while todo:
        v, where = todo.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(v, dict):
            todo += [(k, where) for k in v] + [(x, (*where, k)) for k, x in v.items()]
        elif isinstance(v, list):
            todo += [(x, (*where, i)) for i, x in enumerate(v)]
    return None


def count_nodes(data: Any, limit: int) -> int:
    """Values in a loaded document with aliases expanded, counting stops just past `limit`."""
    n, todo = 0, [data]
    while todo and n <= limit:
        v = todo.pop()
        n += 1
        if isinstance(v, dict):
            todo.extend(v.keys())
            todo.extend(v.values())
        elif isinstance(v, list):
            todo.extend(v)
    return n


def line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest key or item of `loc` that a round-trip-loaded document has."""
    line = None
    node = data
    for part in loc:
        try:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        except (KeyError, AttributeError, TypeError, IndexError):
            break
    return line


class Section:
    """A YAML mapping plus the file it came from; every error names file:line and the key path."""

    def __init__(self, data: Any, file: Path, name: str, line: int | None = None, what: str = "plan") -> None:
        if data is None:
            data = CommentedMap()
        where = f"{file}:{line + 1}" if line is not None else f"{file}:1" if not name else str(file)
        if not isinstance(data, dict):
            raise CollectorError(f"{where}: {name or what} must be a mapping of key: value, got {short_repr(data)}")
        self.data = data
        self.file = Path(file)
        self.name = name
        self.line = line
        self.what = what

    def where(self, key: str | None = None) -> str:
        """"file:line" of a key (1-based), or of the section itself."""
        line = self.line
        if key is not None and isinstance(self.data, CommentedMap):
            try:
                line = self.data.lc.key(key)[0]
            except (KeyError, AttributeError, TypeError):
                pass
        return f"{self.file}:{line + 1}" if line is not None else str(self.file)

    def keypath(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def fail(self, key: str | None, message: str) -> CollectorError:
        label = self.keypath(key) if key is not None else (self.name or self.what)
        return CollectorError(f"{self.where(key)}: {label}: {message}")

    def check_keys(self, allowed: Iterable[str]) -> None:
        """Unknown keys fail before anything starts, with the allowed ones listed."""
        allowed = list(allowed)
        for key in self.data:
            if key not in allowed:
                raise self.fail(str(key), f"unknown key; allowed here: {', '.join(allowed)}")

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING,
            check: Callable[[Any], str | None] | None = None) -> Any:
        """The value of `key` checked against `kind` (bool is never accepted as int); `check` returns an error text."""
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                raise self.fail(key, "is required")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"expected {_names(kinds)}, got {value!r}")
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            raise self.fail(key, f"expected {_names(kinds)}, got {value!r}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.fail(key, problem)
        return value

    def checked(self, key: str, check: Callable[[Any], tuple[Any, str | None]], where: str | None = None) -> Any:
        """The value of `key` through `check` (value -> (normalised value, problem)); `where` overrides file:line."""
        value, problem = check(self.data[key])
        if problem:
            raise CollectorError(f"{where or self.where(key)}: {self.keypath(key)}: {problem}")
        return value

    def section(self, key: str) -> Section:
        value = self.data.get(key)
        line = None
        if isinstance(self.data, CommentedMap) and key in self.data:
            line = self.data.lc.key(key)[0]
        return Section(value, self.file, self.keypath(key), line, self.what)

    def seq(self, key: str, default: Any = _MISSING) -> list[Any]:
        """A list value; a scalar is accepted as a one-element list (matrix: `ctx_size: 4096`)."""
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                raise self.fail(key, "is required")
            return list(default)
        value = self.data[key]
        if isinstance(value, (list, CommentedSeq)):
            if not value:
                raise self.fail(key, "is an empty list; give at least one value or remove the key")
            return list(value)
        if isinstance(value, dict):
            raise self.fail(key, "expected a value or a list of values, got a mapping")
        return [value]

    def item_where(self, key: str, index: int) -> str:
        """"file:line" of the index-th element of a list value."""
        value = self.data.get(key)
        if isinstance(value, CommentedSeq):
            try:
                return f"{self.file}:{value.lc.item(index)[0] + 1}"
            except (KeyError, AttributeError, TypeError, IndexError):
                pass
        return self.where(key)


def _names(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             dict: "a mapping"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
