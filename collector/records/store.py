"""Load, save and validate record files: one immutable YAML file per run, written atomically."""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ulid import ULID

from collector.errors import CollectorError
from collector.records.schema import SCHEMA_VERSION, Host, KldRecord, Record, SpeedRecord
from collector.yamlcheck import load_yaml_file

AnyRecord = SpeedRecord | KldRecord
_ADAPTER: TypeAdapter[AnyRecord] = TypeAdapter(Record)


def new_id() -> str:
    """A new ULID: 26 characters, sortable by creation time, safe in file names."""
    return str(ULID())


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _yaml() -> YAML:
    y = YAML()  # round-trip: keeps key order and comments
    y.default_flow_style = False
    y.width = 4096  # never fold long commands or log lines
    return y


def slugify(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "unknown"


_GPU_NOISE = re.compile(r"\b(nvidia|geforce|amd|radeon|tesla|intel|corporation)\b", re.I)


def device_slug(host: Host) -> str:
    """`rtx-4090`, `2x-rtx-3060`, or `cpu-<model>` for CPU-only records."""
    if host.gpus:
        counts: dict[str, int] = {}
        for gpu in host.gpus:
            name = slugify(_GPU_NOISE.sub(" ", gpu.name))
            counts[name] = counts.get(name, 0) + 1
        return "+".join(f"{n}x-{name}" if n > 1 else name for name, n in counts.items())
    return "cpu-" + slugify(host.cpu.model or "unknown")


def model_slug(record: AnyRecord) -> str:
    m = record.model
    if m.name:
        return slugify(m.name)
    if m.file_name:
        return slugify(re.sub(r"(-\d{5}-of-\d{5})?\.gguf$", "", m.file_name))
    return "unknown-model"


def record_relpath(record: AnyRecord) -> Path:
    """records/<device>/<model>/<date>-<kind>-<id>.yaml, relative to the data directory."""
    date = record.created_at.strftime("%Y-%m-%d")
    return Path("records") / device_slug(record.host) / model_slug(record) / f"{date}-{record.kind}-{record.id}.yaml"


def record_to_dict(record: AnyRecord) -> dict[str, Any]:
    data = record.model_dump(mode="json", by_alias=True)
    # schema_version and kind first: a reader sees what the file is before anything else
    head = {"schema_version": data.pop("schema_version"), "kind": data.pop("kind")}
    return {**head, **data}


def dump_record(record: AnyRecord) -> str:
    buf = io.StringIO()
    _yaml().dump(record_to_dict(record), buf)
    return buf.getvalue()


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory, fsync, rename: never a partial file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save_record(record: AnyRecord, data_dir: Path) -> Path:
    """Validate and write one record under data_dir; returns its path. Raises CollectorError on I/O failure."""
    _ADAPTER.validate_python(record_to_dict(record))  # what we write must load back
    path = Path(data_dir) / record_relpath(record)
    try:
        atomic_write_text(path, dump_record(record))
    except OSError as exc:
        raise CollectorError(f"{path}: could not write the record ({exc.strerror or exc}); free disk space "
                             "or fix permissions and run again (nothing partial was left)") from exc
    return path


def parse_record(data: Any, origin: str) -> AnyRecord:
    """Validate a loaded mapping; refuses unknown and newer schema versions. `origin` names the file."""
    if not isinstance(data, dict):
        raise CollectorError(f"{origin}: not a record (expected a YAML mapping)")
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise CollectorError(f"{origin}: schema_version is missing or not an integer")
    if version > SCHEMA_VERSION:
        raise CollectorError(f"{origin}: schema_version {version} is newer than this collector understands "
                             f"({SCHEMA_VERSION}); upgrade the collector")
    if version < 1:
        raise CollectorError(f"{origin}: schema_version {version} is not a known version")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if p not in ("speed", "kld"))
        more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise CollectorError(f"{origin}: {loc or 'record'}: {err['msg']}{more}") from None


def load_record(path: Path) -> AnyRecord:
    return parse_record(load_yaml_file(path), str(path))


def record_files(data_dir: Path) -> list[Path]:
    root = Path(data_dir)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.yaml") if not p.name.startswith("."))


def iter_records(data_dir: Path) -> Iterator[tuple[Path, AnyRecord | CollectorError]]:
    """Every record file under data_dir with its record, or the error that makes it invalid."""
    for path in record_files(data_dir):
        try:
            yield path, load_record(path)
        except CollectorError as exc:
            yield path, exc


def load_records(data_dir: Path) -> list[AnyRecord]:
    """All valid records under data_dir (invalid files are skipped; `validate` reports them)."""
    return [rec for _, rec in iter_records(data_dir) if not isinstance(rec, CollectorError)]
