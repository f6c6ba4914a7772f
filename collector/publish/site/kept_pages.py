"""Generated pages kept across builds, keyed by a digest of everything they are made from: a build after one new
record renders again only the device and model pages whose inputs changed (the rest come from the last build).

A page function's output is a function of its arguments and of this package (its code, templates, catalog and
model table, and the versions of the libraries it renders with: `pages_stamp`, which ties the cache). The key of a
call is the sha256 of its arguments pickled whole, in structure: rows with every field (figures, verdicts, the
joined KLD row, other sources' repeats), not an id of them, so a page whose inputs changed through another device's
record (a KLD row joined to its files, a claim another post repeats) is rendered again. A record read from the data
directory enters the key as its file's path and sha256 (what `RecordIndex.versions` says), not its fields; a fitted
estimator as its own key (what its kept estimate sections are keyed by); any other object (a copy of a record changed
for a view, a row, a figure) as all of its fields.

Pickling for a key is made deterministic: dataclasses and pydantic models pickle as their declared fields only (not
a cached property filled by an earlier reader, not pydantic's set of fields given), and the pickler's memo is off
(`fast`), so whether two equal values are one object or two does not change the key. What still could (a set of
strings, ordered by a per-process hash seed) only makes a call miss, never serves a stale page. Arguments that
cannot be pickled so (a cycle, a lambda) are rendered every build.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from collector.estimate.estimator import Estimator
from collector.publish.pages.files import GeneratedFile
from collector.publish.site.page_memo import Kept


def _record(version: str) -> None:
    """Stands for a record read from the data directory in a key (never called: keys are not unpickled)."""


def _estimator(key: str) -> None:
    """Stands for a fitted estimator in a key (never called)."""


_ESTIMATOR = object()  # in _FIELDS: the type is an Estimator's


def _fields_of(t: type) -> Callable[[Any], tuple[Any, ...]] | object | None:
    """How a key pickles an object of type t: its declared fields' values (a function giving them), _ESTIMATOR, or
    None for pickle's own way (classes and functions by name, plain values)."""
    if issubclass(t, Estimator):
        return _ESTIMATOR
    if issubclass(t, type):
        return None
    if issubclass(t, BaseModel):
        names = tuple(t.model_fields)
    elif is_dataclass(t):
        names = tuple(f.name for f in fields(t))
    else:
        return None
    def few(obj: Any) -> tuple[Any, ...]:
        return tuple(getattr(obj, name) for name in names)

    return attrgetter(*names) if len(names) > 1 else few  # attrgetter of several gives a tuple of them, in C


_FIELDS: dict[type, Any] = {}  # type -> _fields_of(type), asked once per type


class _Keyer(pickle.Pickler):
    def __init__(self, out: io.BytesIO, known: dict[int, str]) -> None:
        super().__init__(out, protocol=5)
        self.known = known
        self.fast = True  # no memo: the key does not depend on which equal values share one object

    def reducer_override(self, obj: Any) -> Any:
        t = type(obj)
        try:
            how = _FIELDS[t]
        except KeyError:
            how = _FIELDS[t] = _fields_of(t)
        if how is None:
            return NotImplemented
        if how is _ESTIMATOR:  # its answers are a function of its key (and the code): see Estimator.of
            if obj.key is None:
                raise pickle.PicklingError("an estimator without a key")
            return _estimator, (obj.key,)
        version = self.known.get(id(obj))
        if version is not None:
            return _record, (version,)
        return t, how(obj)


def _encode(files: list[GeneratedFile]) -> str:
    return json.dumps([[g.src_uri, g.content] if isinstance(g.content, str) else
                       [g.src_uri, None, base64.b64encode(g.content).decode("ascii")] for g in files])


def _decode(text: str) -> list[GeneratedFile]:
    return [GeneratedFile(e[0], e[1] if e[1] is not None else base64.b64decode(e[2])) for e in json.loads(text)]


class KeptPages(Kept):
    """One build's use of the kept pages of one data directory (`site/pages-<data dir>.sqlite`); `known`: id() of
    each record object read from the files -> its version (path and sha256). `use`: False keeps nothing."""

    what = "device and model page rendering"

    def __init__(self, site_key: Path, known: dict[int, str], use: bool | None = None) -> None:
        super().__init__("pages", site_key, use)
        self.known = known

    def key(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The key of fn(*args, **kwargs); None when its arguments cannot be pickled for one."""
        out = io.BytesIO()
        try:
            _Keyer(out, self.known).dump((fn.__module__, fn.__qualname__, args, sorted(kwargs.items())))
        except (pickle.PicklingError, TypeError, ValueError, AttributeError, RecursionError):
            return None
        return hashlib.sha256(out.getvalue()).hexdigest()

    def call(self, fn: Callable[..., list[GeneratedFile]], *args: Any, **kwargs: Any) -> list[GeneratedFile]:
        """fn(*args, **kwargs), from the last build when its key is kept."""
        key = self.key(fn, args, kwargs) if self.kv.db is not None else None
        if key is None:
            return fn(*args, **kwargs)
        self.used.add(key)
        kept = self.kv.get(key)
        if kept is not None:
            self.reused += 1
            return _decode(kept)
        files = fn(*args, **kwargs)
        self.new.append((key, _encode(files)))
        return files


__all__ = ["KeptPages"]
