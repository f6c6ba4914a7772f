from __future__ import annotations

import errno
from pathlib import Path

import pytest

from collector.errors import CollectorError
from collector.records import store
from collector.records.schema import GpuInfo, Host, ModelInfo, Source, SpeedRecord


def _record(**kw) -> SpeedRecord:
    base = dict(id=store.new_id(), created_at=store.utc_now(), status="ok",
                source=Source(type="measured", collector_version="0.1.0"),
                model=ModelInfo(name="SmolLM2 135M Instruct", quant="Q4_1"))
    base.update(kw)
    return SpeedRecord(**base)


def test_save_load_roundtrip_keeps_order(tmp_path: Path) -> None:
    rec = _record()
    path = store.save_record(rec, tmp_path)
    text = path.read_text()
    assert text.startswith("schema_version: 1\nkind: speed\nid: ")
    assert store.load_record(path) == rec
    assert path.relative_to(tmp_path).parts[:3] == ("records", "cpu-unknown", "smollm2-135m-instruct")
    assert path.name.endswith(f"-speed-{rec.id}.yaml")


def test_device_slug_counts_identical_gpus() -> None:
    host = Host(gpus=[GpuInfo(name="NVIDIA GeForce RTX 3060"), GpuInfo(name="NVIDIA GeForce RTX 3060")])
    assert store.device_slug(host) == "2x-rtx-3060"
    assert store.device_slug(Host(gpus=[GpuInfo(name="NVIDIA H100 80GB HBM3")])) == "h100-80gb-hbm3"


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = store.save_record(_record(), tmp_path)
    path.write_text(path.read_text().replace("schema_version: 1", "schema_version: 2"))
    with pytest.raises(CollectorError, match="newer than this collector"):
        store.load_record(path)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = store.save_record(_record(), tmp_path)
    path.write_text(path.read_text() + "bogus_key: 1\n")
    with pytest.raises(CollectorError, match=r"bogus_key: Extra inputs are not permitted"):
        store.load_record(path)


def test_failed_record_needs_error() -> None:
    with pytest.raises(ValueError, match="needs an error block"):
        _record(status="failed")


def test_imported_needs_citation() -> None:
    with pytest.raises(ValueError, match="citation"):
        Source(type="imported")


def test_disk_full_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync = store.os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)
    with pytest.raises(CollectorError, match="No space left on device"):
        store.save_record(_record(), tmp_path)
    monkeypatch.setattr(store.os, "fsync", real_fsync)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
