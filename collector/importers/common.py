"""What every importer shares: model facts from a local file, idempotent writes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from collector.errors import CollectorError
from collector.model_info import model_facts
from collector.records import store
from collector.records.index import load_index
from collector.records.schema import ModelInfo
from collector.records.store import AnyRecord


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


def existing_figures(data_dir: Path) -> dict[str, list[Path]]:
    """source.figure -> the record files that already hold it (the re-import key)."""
    found: dict[str, list[Path]] = {}
    root = Path(data_dir)
    if not root.exists():
        return found
    for path, rec in load_index(root).records.items():
        if rec.source.type == "imported" and rec.source.figure:
            found.setdefault(rec.source.figure, []).append(path)
    return found


def write_records(records: Sequence[AnyRecord], data_dir: Path, force: bool = False) -> tuple[list[Path], list[str]]:
    """Save records; one whose source.figure is already under data_dir is skipped, or replaced with `force`.

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
        written.append(store.save_record(rec, data_dir))
        for path in old:  # replaced only after the new file is safely on disk
            path.unlink(missing_ok=True)
    return written, skipped
