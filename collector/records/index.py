"""The one record reader: every record under a data directory, valid or with the reason it is not.

`collector validate`, the collector's "already recorded" checks, the importers and the site all read records
through `load_index`, so they agree on what is valid: a file the validator refuses is never published.

Speed: ruamel's pure-Python parser takes ~15-20 ms per record; libyaml (PyYAML's C parser, installed with MkDocs)
is about ten times faster. PyYAML resolves plain scalars by YAML 1.1 (`on` would become a boolean), so the fast
loader keeps only the YAML 1.2 core-schema resolvers, the set the store writes against. Any file the fast path
cannot validate goes through the store's ruamel reader, whose errors name file:line; so the fast path only ever
decides "valid". Parsed records are cached per data directory, keyed by each file's size, mtime and inode, and
re-validated when used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.cache import cache_dir
from collector.errors import CollectorError
from collector.files import atomic_write_text, pid_alive
from collector.records.store import RECORD_MAX_BYTES, AnyRecord, load_record, parse_record, record_to_dict

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
    class _Core12Loader(_Base):
        """Safe loader whose plain scalars resolve like YAML 1.2's core schema (no 1.1 booleans, no dates)."""

        yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}

    for _tag, _rx, _firsts in _CORE:
        _Core12Loader.add_implicit_resolver(_tag, re.compile(_rx), _firsts)

    def _int(loader: Any, node: Any) -> int:
        text = loader.construct_scalar(node)
        return int(text, 16) if text.startswith("0x") else int(text, 10)  # 1.2: "012" is twelve, not octal

    _Core12Loader.add_constructor("tag:yaml.org,2002:int", _int)

PARALLEL_FROM = 400  # files; below this, forking costs more than it saves
CACHE_VERSION = 2
# the cache holds validation results: they are only reusable with the same schema and reader code
_CODE_STAMP = hashlib.sha256(b"".join((Path(__file__).parent / n).read_bytes()
                                      for n in ("schema.py", "store.py", "index.py"))).hexdigest()[:16]
_TMP = re.compile(r"^\..+\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")


@dataclass
class RecordIndex:
    """Valid records by file, and every refused file with a one-line reason naming file (and line)."""

    records: dict[Path, AnyRecord] = field(default_factory=dict)
    errors: dict[Path, str] = field(default_factory=dict)

    @property
    def valid(self) -> list[AnyRecord]:
        return list(self.records.values())


def _fast(path: Path) -> AnyRecord:
    if os.path.getsize(path) > RECORD_MAX_BYTES:
        raise CollectorError("too large")
    with open(path, "rb") as fh:
        data = yaml.load(fh, Loader=_Core12Loader)
    return parse_record(data, str(path))


def _one(path: Path) -> AnyRecord | str:
    """The record in `path`, or the store's one-line reason it is not one."""
    if _Base is not None:
        try:
            return _fast(path)
        except Exception:
            pass
    try:
        return load_record(path)
    except CollectorError as exc:
        return str(exc)


def _cache_file(data_dir: Path) -> Path:
    key = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]
    return cache_dir("records") / f"index-{key}.json"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    ok = isinstance(data, dict) and data.get("version") == CACHE_VERSION and data.get("code") == _CODE_STAMP
    return data.get("files", {}) if ok else {}


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def scan(data_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(record files, other files under records/ that do not belong there, each with the reason)."""
    root = Path(data_dir)
    if root.is_file():
        return [root], []
    files, strays = [], []
    for dirpath, dirnames, names in os.walk(root):
        dirnames.sort()
        for name in sorted(names):
            path = Path(dirpath) / name
            m = _TMP.match(name)
            if m:
                if not pid_alive(int(m["pid"])):
                    strays.append((path, "a temporary file left by an interrupted write (its process is gone); "
                                         "delete it, or run `collector cache clean --data-dir DIR`"))
            elif name.endswith(".yaml") and not name.startswith("."):
                files.append(path)
    return files, strays


def load_index(data_dir: Path, cache: bool | None = None) -> RecordIndex:
    """Every record file under data_dir: valid ones parsed, the others with their reason; ids must be unique.

    With the cache (default; QUANT_ATLAS_CACHE=0 turns it off) a file whose size, mtime and inode are unchanged
    since the last load is taken from a JSON cache of validated records instead of re-parsing its YAML.
    """
    from collector.parallel import pmap

    files, strays = scan(Path(data_dir))
    use = cache if cache is not None else os.environ.get("QUANT_ATLAS_CACHE", "1") != "0"
    cfile = _cache_file(data_dir) if use else None
    known = _read_cache(cfile) if cfile else {}
    stamps = [_stamp(p.stat()) for p in files]
    out: list[AnyRecord | str | None] = [None] * len(files)
    todo: list[int] = []
    for i, (path, stamp) in enumerate(zip(files, stamps)):
        entry = known.get(str(path))
        if entry is None or entry.get("stamp") != stamp:
            todo.append(i)
        elif entry.get("error") is not None:
            out[i] = str(entry["error"])
        else:
            try:
                out[i] = parse_record(entry["record"], str(path))
            except (CollectorError, KeyError, TypeError):
                todo.append(i)
    for i, got in zip(todo, pmap(_one, [files[i] for i in todo], PARALLEL_FROM)):
        out[i] = got
    if cfile and (todo or len(known) != len(files)):
        entries = {str(p): {"stamp": st, "record": None if isinstance(r, str) else record_to_dict(r),  # type: ignore[arg-type]
                            "error": r if isinstance(r, str) else None}
                   for p, st, r in zip(files, stamps, out)}
        try:
            atomic_write_text(cfile, json.dumps({"version": CACHE_VERSION, "code": _CODE_STAMP,
                                                 "files": entries}, ensure_ascii=False))
        except OSError:
            pass  # a cache that cannot be written only costs time
    index = RecordIndex()
    by_id: dict[str, list[Path]] = defaultdict(list)
    for path, item in zip(files, out):
        if isinstance(item, str):
            index.errors[path] = item
        elif item is not None:
            index.records[path] = item
            by_id[item.id].append(path)
    for rid, paths in by_id.items():
        if len(paths) > 1:
            for p in paths:
                others = ", ".join(str(o) for o in paths if o != p)
                index.errors[p] = f"{p}: id {rid} is also the id of {others}; every record needs its own id"
                index.records.pop(p, None)
    for path, why in strays:
        index.errors[path] = f"{path}: {why}"
    return index


def load_records(data_dir: Path) -> list[AnyRecord]:
    """The valid records under data_dir (the refused ones are what `collector validate` lists)."""
    return load_index(data_dir).valid


def record_files(data_dir: Path) -> list[Path]:
    """Every record file (*.yaml) under data_dir, sorted."""
    return scan(Path(data_dir))[0]
