from __future__ import annotations

import copy
import errno
import os
import pickle
import stat
from pathlib import Path

import pytest

from collector.base import files
from collector.base.errors import CollectorError
from collector.records import store
from collector.records.flags import LlamaConfig, server_args
from collector.records.schema import (
    Conditions,
    CpuInfo,
    GpuInfo,
    Host,
    ModelInfo,
    Sample,
    Source,
    SpeedRecord,
    Stat,
    Summary,
)

SHA = "ab" * 32
CONFIG = LlamaConfig(ctx_size=1024, flash_attn="off", threads=2)


def _record(**kw: object) -> SpeedRecord:
    """A complete measured speed record (what the collector writes)."""
    base: dict[str, object] = dict(
        id=store.new_id(), created_at=store.utc_now(), status="ok",
        source=Source(type="measured", collector_version="0.1.0"),
        model=ModelInfo(name="SmolLM2 135M Instruct", quant="Q4_1", file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
                        sha256=SHA), config=CONFIG, command=["llama-server", "-m", "{model}", *server_args(CONFIG)],
        samples=[Sample(category="sql", tg_tps=[100.0, 102.0, 98.0])],
        summary=Summary(tg_tps=Stat.of([100.0, 102.0, 98.0])), conditions=Conditions(noisy=False))
    base.update(kw)
    return SpeedRecord(**base)


def test_save_load_roundtrip_keeps_order(tmp_path: Path) -> None:
    rec = _record()
    path = store.save_record(rec, tmp_path)
    text = path.read_text()
    assert text.startswith("schema_version: 1\nkind: speed\nid: ")
    assert store.load_record(path) == rec
    # the model's folder is named after its file without the quant label
    assert path.relative_to(tmp_path).parts[:3] == ("records", "cpu-unknown", "smollm2-135m-instruct")
    assert path.name.endswith(f"-speed-{rec.id}.yaml")


def test_device_slug_counts_identical_gpus() -> None:
    host = Host(gpus=[GpuInfo(name="NVIDIA GeForce RTX 3060"), GpuInfo(name="NVIDIA GeForce RTX 3060")])
    assert store.device_slug(host) == "2x-rtx-3060"
    assert store.device_slug(Host(gpus=[GpuInfo(name="NVIDIA H100 80GB HBM3")])) == "h100-80gb-hbm3"
    # a CPU's trademark signs are not part of its page's name ("Intel(R) Xeon(R) Processor" as /proc/cpuinfo says it)
    assert store.device_slug(Host(cpu=CpuInfo(model="Intel(R) Xeon(R) Processor"))) == "cpu-intel-xeon-processor"
    assert store.device_slug(Host(cpu=CpuInfo(model="AMD Ryzen\u2122 9 7950X"))) == "cpu-amd-ryzen-9-7950x"


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
    real_fsync = files.os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(CollectorError, match="No space left on device"):
        store.save_record(_record(), tmp_path)
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(("edit", "fragment"), [
    # a record cut off after its model block: no config, command, samples or summary
    (lambda t: t[: t.index("\nplan:")] + "\n", ":1: record: an ok measured speed record needs summary.tg_tps or "
     "summary.pp_tps; samples; summary.tg_tps with n"),
    (lambda t: t.replace("    median: 100.0", "    median: .inf"), "summary.tg_tps.median: Input should be a finite"),
    (lambda t: t.replace("    median: 100.0", "    median: .nan"), "summary.tg_tps.median: Input should be a finite"),
    (lambda t: t.replace("    median: 100.0", "    median: -500"), "greater than or equal to 0"),
    (lambda t: t.replace("load_seconds:", "load_seconds: '12.5'"), "load_seconds: Input should be a valid number"),
    (lambda t: t.replace("    median: 100.0", "    median: 200.0"), "median 200.0 lies outside min 98.0"),
    (lambda t: t.replace("  flash_attn: \"off\"", "  flash_attn: false"), "config.flash_attn: Input should be"),
    (lambda t: t.replace("sha256: " + "ab" * 32, "sha256: nothex"), "model.sha256: String should match"),
])
def test_invalid_records_are_named_with_file_line_and_reason(tmp_path: Path, edit: object, fragment: str) -> None:
    path = store.save_record(_record(), tmp_path)
    path.write_text(edit(path.read_text()))  # type: ignore[operator]
    with pytest.raises(CollectorError) as err:
        store.load_record(path)
    message = str(err.value)
    assert message.startswith(f"{path}:") and fragment in message, message
    assert "\n" not in message


def test_yaml_1_1_readers_read_strings_as_strings(tmp_path: Path) -> None:
    """on/off, yes/no, 1:20 and similar values are quoted: PyYAML (YAML 1.1) would read them as bools or numbers."""
    yaml = pytest.importorskip("yaml")
    rec = _record(host=Host(cpu=CpuInfo(model="on")), config=CONFIG.model_copy(update={"extra_args": [
        "--yes", "no", "1:20", "0o17", "012", "1_000", "~", "2026-01-01"]}))
    path = store.save_record(rec, tmp_path)
    data = yaml.safe_load(path.read_text())
    assert data["config"]["flash_attn"] == "off" and data["host"]["cpu"]["model"] == "on"
    assert data["config"]["extra_args"] == ["--yes", "no", "1:20", "0o17", "012", "1_000", "~", "2026-01-01"]
    assert store.load_record(path) == rec


def test_records_get_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = store.save_record(_record(), tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_names_are_bounded_and_stay_distinct() -> None:
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    a, b = store.slugify(long_a), store.slugify(long_b)
    assert len(a) <= store.SLUG_MAX and len(b) <= store.SLUG_MAX and a != b and a.startswith("xxxx")
    host = Host(cpu=CpuInfo(model="Z" * 288))
    assert len(store.device_slug(host)) <= store.SLUG_MAX
    rec = _record(host=host, model=ModelInfo(name="M" * 400, sha256=SHA, file_name="m" * 240 + ".Q4_0.gguf"))
    assert all(len(part) <= 100 for part in store.record_relpath(rec).parts)


def test_floats_read_back_as_floats_by_yaml_1_1_readers_too() -> None:
    """PyYAML's safe_load (YAML 1.1, the most common reader) takes `-2e-06` for a string: written `-2.0e-06`."""
    import yaml

    from collector.records.schema import KldRecord

    for value in (-2e-06, 1e-05, 1.5e-05, 1e16, 5e-324, 92.7, 0.1):
        assert yaml.safe_load(store.float_text(value)) == value
    rec = KldRecord.model_validate({"id": "x", "created_at": "2026-11-01T00:00:00Z", "status": "ok",
                                    "source": {"type": "imported", "citation": "c"}, "model": {"name": "m"},
                                    "corpus": {"name": "c"}, "results": {"kld_mean": 1e-05, "kld_p0_1": -2e-06}})
    loaded = yaml.safe_load(store.dump_record(rec))
    assert (loaded["results"]["kld_mean"], loaded["results"]["kld_p0_1"]) == (1e-05, -2e-06)


def test_an_id_that_is_not_a_plain_token_cannot_leave_the_data_folder(tmp_path: Path) -> None:
    for rid in ("../../../../../escaped", "a\x00b", "x/y"):
        path = store.save_record(_record(id=rid), tmp_path / "data")
        assert path.resolve().is_relative_to((tmp_path / "data" / "records").resolve()), path
        assert "/" not in path.name and "\x00" not in str(path) and store.load_record(path).id == rid


def test_loaded_blocks_share_their_given_field_names_and_a_change_stays_their_own(tmp_path: Path) -> None:
    """A loaded record's blocks share one object per set of given field names (half of what 10,000 records held in
    memory was ~25 sets a record); copies, unpickled records and assignments keep every record's own answer."""
    a, a2 = (store.load_record(store.save_record(_record(), tmp_path)) for _ in range(2))
    b, b2 = (store.record_from_json(store.record_json(_record())) for _ in range(2))
    c, c2 = (pickle.loads(pickle.dumps(_record())) for _ in range(2))
    for one, other in ((a, a2), (b, b2), (c, c2)):
        assert one.summary.model_fields_set is other.summary.model_fields_set
        assert one.conditions is not None and other.conditions is not None
        assert one.conditions.model_fields_set is other.conditions.model_fields_set
    assert b.conditions is not None and "noisy" in b.conditions.model_fields_set
    assert c.summary.model_fields_set == {"tg_tps"}
    # model_copy(update=...) adds to its copy's names only; so does an assignment, to the block assigned
    moved = c.model_copy(update={"summary": c.summary.model_copy(update={"ttft_ms": Stat.of([5.0])})})
    assert "ttft_ms" in moved.summary.model_fields_set and "ttft_ms" not in c.summary.model_fields_set
    c.summary.ttft_ms = Stat.of([6.0])
    assert "ttft_ms" in c.summary.model_fields_set and "ttft_ms" not in c2.summary.model_fields_set
    assert copy.deepcopy(c2) == c2 and "ttft_ms" not in copy.deepcopy(c2).summary.model_fields_set
