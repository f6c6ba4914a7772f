"""The site's fast loader must read exactly what the store reads (YAML 1.2 scalars, invalid files skipped)."""

from __future__ import annotations

from pathlib import Path

from fixtures.records.factory import cpu_host, model, speed
from collector.publish.load import load_site_records
from collector.records.schema import Source
from collector.records.store import load_records, save_record

FIXTURE_DATA = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "records" / "data"


def test_same_records_as_the_store_on_fixtures() -> None:
    assert [r.model_dump() for r in load_site_records(FIXTURE_DATA)] == [r.model_dump() for r in load_records(FIXTURE_DATA)]


def test_yaml_1_1_lookalikes_stay_strings_and_bad_files_are_skipped(tmp_path: Path) -> None:
    tricky = ["on", "yes", "No", "012", "0o17", "1e3", "2026-01-02", "null", "~", "1_000", ".inf", "0x1F", "3:20"]
    for i, word in enumerate(tricky):
        rec = speed(cpu_host(), model(word, word, 10 ** i, sha=word), 1.0,
                    source=Source(type="imported", citation=word, note=word))
        save_record(rec, tmp_path)
    (tmp_path / "records" / "broken.yaml").write_text("schema_version: 1\nkind: speed\nid: [unclosed\n")
    (tmp_path / "records" / "invalid.yaml").write_text("schema_version: 1\nkind: speed\nid: x\nstatus: maybe\n")
    fast, store = load_site_records(tmp_path), load_records(tmp_path)
    assert len(fast) == len(tricky)
    assert [r.model_dump() for r in fast] == [r.model_dump() for r in store]
    assert sorted(r.source.note for r in fast) == sorted(tricky)
    assert all(r.config.flash_attn == "on" for r in fast)
