"""Load every record for the site quickly: libyaml with YAML 1.2 core-schema scalars, falling back to the store.

ruamel's pure-Python parser takes about 15 ms per record file here, so 10,000 records would take minutes.
libyaml (PyYAML's C parser, installed with MkDocs) is about ten times faster, but PyYAML resolves plain
scalars by YAML 1.1 (`on`, `yes` become booleans; ruamel writes them unquoted under 1.2). So this loader
keeps only the YAML 1.2 core-schema resolvers (null, true/false, ints, floats), the same set ruamel writes
against. Any file the fast path cannot validate goes through `store.load_record`, so errors and edge cases
behave exactly as `collector validate` reports them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from collector.cache import cache_dir
from collector.errors import CollectorError
from collector.publish.parallel import pmap
from collector.records.schema import SCHEMA_VERSION
from collector.records.store import (AnyRecord, atomic_write_text, load_record, parse_record, record_files,
                                     record_to_dict)

try:
    import yaml

    _Base: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
except ImportError:  # PyYAML comes with MkDocs; without it every file takes the store's path
    yaml = None  # type: ignore[assignment]
    _Base = None

_CORE = [  # (tag, regex, first characters): YAML 1.2 core schema
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+.0123456789")),
]

if _Base is not None:
    class _Core12Loader(_Base):  # type: ignore[misc, valid-type]
        """Safe loader whose plain scalars resolve like YAML 1.2's core schema (no 1.1 booleans, no dates)."""

        yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}

    for _tag, _rx, _firsts in _CORE:
        _Core12Loader.add_implicit_resolver(_tag, re.compile(_rx), _firsts)

    def _int(loader: Any, node: Any) -> int:
        text = loader.construct_scalar(node)
        return int(text, 16) if text.startswith("0x") else int(text, 10)  # 1.2: "012" is twelve, not octal

    _Core12Loader.add_constructor("tag:yaml.org,2002:int", _int)


def _fast(path: Path) -> AnyRecord:
    with open(path, "rb") as fh:
        data = yaml.load(fh, Loader=_Core12Loader)  # noqa: S506 - a safe loader subclass
    return parse_record(data, str(path))


PARALLEL_FROM = 400  # files; below this, forking costs more than it saves
CACHE_VERSION = 1


def _one(path: Path) -> AnyRecord | None:
    try:
        return _fast(path) if _Base is not None else load_record(path)
    except Exception:  # noqa: BLE001 - any doubt: let the store decide, with its exact semantics
        pass
    try:
        return load_record(path)
    except CollectorError:
        return None


def _cache_file(data_dir: Path) -> Path:
    key = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]
    return cache_dir("site") / f"records-{key}.json"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    ok = isinstance(data, dict) and data.get("version") == CACHE_VERSION and data.get("schema") == SCHEMA_VERSION
    return data.get("files", {}) if ok else {}


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def load_site_records(data_dir: Path, cache: bool | None = None) -> list[AnyRecord]:
    """Every valid record under data_dir (invalid files are skipped, as store.load_records does).

    With the cache (default; QUANT_ATLAS_CACHE=0 turns it off) a file whose size, mtime and inode are
    unchanged since the last build is taken from a JSON cache of validated records instead of re-parsing
    its YAML; the cached mapping is validated again, so a schema change can never serve stale shapes.
    """
    files = record_files(Path(data_dir))
    use = cache if cache is not None else os.environ.get("QUANT_ATLAS_CACHE", "1") != "0"
    cfile = _cache_file(data_dir) if use else None
    known = _read_cache(cfile) if cfile else {}
    stamps = [_stamp(p.stat()) for p in files]
    out: list[AnyRecord | None] = [None] * len(files)
    todo: list[int] = []
    for i, (path, stamp) in enumerate(zip(files, stamps)):
        entry = known.get(str(path))
        if entry is None or entry.get("stamp") != stamp:
            todo.append(i)
            continue
        if entry.get("record") is not None:
            try:
                out[i] = parse_record(entry["record"], str(path))
            except CollectorError:
                todo.append(i)
    for i, rec in zip(todo, pmap(_one, [files[i] for i in todo], PARALLEL_FROM)):
        out[i] = rec
    if cfile and (todo or len(known) != len(files)):
        entries = {str(p): {"stamp": st, "record": None if r is None else record_to_dict(r)}
                   for p, st, r in zip(files, stamps, out)}
        try:
            atomic_write_text(cfile, json.dumps({"version": CACHE_VERSION, "schema": SCHEMA_VERSION,
                                                 "files": entries}, ensure_ascii=False))
        except OSError:
            pass  # a cache that cannot be written only costs time
    return [r for r in out if r is not None]
