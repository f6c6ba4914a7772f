"""What every importer shares: bounded reads of the input, one-line errors, model facts from a local file,
idempotent writes."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from collector.base.errors import CollectorError, short_repr
from collector.models.info import model_facts
from collector.records import store
from collector.records.index import load_index
from collector.records.schema import ModelInfo
from collector.records.store import AnyRecord

IMPORT_MAX_BYTES = 16 << 20  # tool output and logs are KiB to a few MiB; /dev/zero or a disk image is not one
JSON_MAX_DEPTH = 32  # llama-bench's objects are two levels deep


def read_input(file: Path, what: str) -> str:
    """The text of an import's input: a regular file (not a FIFO, a device or /dev/zero) of at most
    IMPORT_MAX_BYTES, decoded as UTF-8 (undecodable bytes replaced); CollectorError naming the file otherwise."""
    from collector.base.yamlcheck import read_regular

    raw = read_regular(Path(file), IMPORT_MAX_BYTES)
    if len(raw) > IMPORT_MAX_BYTES:
        raise CollectorError(f"{file}: larger than {IMPORT_MAX_BYTES >> 20} MiB; this is not {what} (check the path)")
    return raw.decode("utf-8", errors="replace")


KEPT_MAX_BYTES = 64 << 20  # a kept source copy (the LocalScore TSV is 240 KB)


def read_kept(root: Path, meta_path: Path, key: str, name: str) -> tuple[Path, str]:
    """(path, text) of a kept source copy that `meta_path` names under `key`: a regular UTF-8 file inside `root` of
    at most KEPT_MAX_BYTES; CollectorError naming source.yaml's key otherwise (a stranger's folder may point it at
    /dev/zero, a FIFO, a directory or a file elsewhere)."""
    from collector.base.yamlcheck import read_regular

    path = Path(root) / name
    where = f"{meta_path}: {key} {short_repr(name)}"
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise CollectorError(f"{where}: not inside {root}; a kept copy lies in its source folder")
    try:
        raw = read_regular(path, KEPT_MAX_BYTES)
    except CollectorError as exc:
        raise CollectorError(f"{where}: {exc}") from None
    if len(raw) > KEPT_MAX_BYTES:
        raise CollectorError(f"{where}: larger than {KEPT_MAX_BYTES >> 20} MiB; not a kept source copy")
    try:
        return path, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise CollectorError(f"{path}:{line}: bytes that are not UTF-8; restore the kept copy of the pinned "
                             "commit") from None


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def no_json_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a number JSON allows")


def loads_json(text: str) -> Any:
    """json.loads for tool output: numbers must be finite (1e400, NaN and Infinity are refused), nesting is bounded;
    ValueError (json.JSONDecodeError for bad syntax) otherwise."""
    depth = max_depth(text)
    if depth > JSON_MAX_DEPTH:
        raise ValueError(f"nested {depth} levels deep (llama-bench writes 2)")
    return json.loads(text, parse_float=finite_float, parse_constant=no_json_constant)


def max_depth(text: str) -> int:
    """How deep the brackets of a JSON text nest (strings skipped): checked before json recurses that deep."""
    depth = most = 0
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            most = max(most, depth)
        elif ch in "]}":
            depth -= 1
    return most


def one_line(exc: BaseException) -> str:
    """An exception as one line for an import error: pydantic's multi-line dump becomes `field: message (got
    value)` and a count of the others; anything else its first line."""
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        if errors:
            err = errors[0]
            loc = ".".join(str(p) for p in err["loc"]) or "value"
            got = "" if err["type"] == "missing" else f" (got {short_repr(err.get('input'))})"
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            return f"{loc}: {err['msg'].removeprefix('Value error, ')}{got}{more}"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def local_model_facts(path: Path | None, flag: str) -> ModelInfo | None:
    """Full facts (incl. sha256) of a GGUF file given on the command line; None when no path was given."""
    if path is None:
        return None
    if not Path(path).is_file():
        raise CollectorError(f"{flag} {path}: no such model file; pass the GGUF the output was produced with "
                             "or leave the flag out")
    info = model_facts(Path(path))
    info.origin = str(path)
    return info


def merge_model(stated: ModelInfo, facts: ModelInfo | None) -> ModelInfo:
    """The facts read from the file win; what the tool stated fills the gaps."""
    if facts is None:
        return stated
    merged = stated.model_dump()
    merged.update({k: v for k, v in facts.model_dump().items() if v is not None})
    return ModelInfo(**merged)


def existing_figures(data_dir: Path) -> dict[str, list[tuple[Path, AnyRecord]]]:
    """source.figure -> the record files that already hold it (the re-import key), with their records."""
    found: dict[str, list[tuple[Path, AnyRecord]]] = {}
    root = Path(data_dir)
    if not root.exists():
        return found
    for path, rec in load_index(root).records.items():
        if rec.source.type == "imported" and rec.source.figure:
            found.setdefault(rec.source.figure, []).append((path, rec))
    return found


def write_records(records: Sequence[AnyRecord], data_dir: Path, force: bool = False) -> tuple[list[Path], list[str]]:
    """Save records; one whose source.figure is already under data_dir is skipped, or replaced with `force`. A
    replaced figure keeps its record's id and created_at (of the one record that held it): its run page stays where
    links point, and a figure its source does not date keeps the time it was first imported.

    Returns (written paths, skipped figure keys). Every record is validated before the first file is written,
    so a bad record leaves nothing on disk.
    """
    for rec in records:
        store.parse_record(store.record_to_dict(rec), f"record {rec.source.figure or rec.id}")
    have = existing_figures(data_dir)
    written: list[Path] = []
    skipped: list[str] = []
    for rec in records:
        key = rec.source.figure
        old = have.get(key, []) if key else []
        if old and not force:
            skipped.append(key or "")
            continue
        if len(old) == 1 and store.page_id_of(old[0][1].id) == old[0][1].id:  # (an id that slugs: written anew)
            rec = rec.model_copy(update={"id": old[0][1].id, "created_at": old[0][1].created_at})
        written.append(store.save_record(rec, data_dir))
        for path, _ in old:  # replaced only after the new file is safely on disk
            if path.resolve() != written[-1].resolve():
                path.unlink(missing_ok=True)
    return written, skipped
