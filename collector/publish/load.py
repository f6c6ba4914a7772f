"""Load every record for the site quickly: libyaml with YAML 1.2 core-schema scalars, falling back to the store.

ruamel's pure-Python parser takes about 15 ms per record file here, so 10,000 records would take minutes.
libyaml (PyYAML's C parser, installed with MkDocs) is about ten times faster, but PyYAML resolves plain
scalars by YAML 1.1 (`on`, `yes` become booleans; ruamel writes them unquoted under 1.2). So this loader
keeps only the YAML 1.2 core-schema resolvers (null, true/false, ints, floats), the same set ruamel writes
against. Any file the fast path cannot validate goes through `store.load_record`, so errors and edge cases
behave exactly as `collector validate` reports them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from collector.errors import CollectorError
from collector.publish.parallel import pmap
from collector.records.store import AnyRecord, load_record, parse_record, record_files

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


def _one(path: Path) -> AnyRecord | None:
    try:
        return _fast(path) if _Base is not None else load_record(path)
    except Exception:  # noqa: BLE001 - any doubt: let the store decide, with its exact semantics
        pass
    try:
        return load_record(path)
    except CollectorError:
        return None


def load_site_records(data_dir: Path) -> list[AnyRecord]:
    """Every valid record under data_dir (invalid files are skipped, as store.load_records does)."""
    return [r for r in pmap(_one, record_files(Path(data_dir)), PARALLEL_FROM) if r is not None]
