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


def test_cache_serves_unchanged_files_and_rereads_changed_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    recs = [speed(cpu_host(), model(f"M{i}", "Q4_0", 1000 + i, sha=f"s{i}"), 10.0 + i) for i in range(3)]
    paths = [save_record(r, data) for r in recs]
    first = load_site_records(data)
    assert list((tmp_path / "cache" / "site").glob("records-*.json"))
    second = load_site_records(data)
    assert [r.model_dump() for r in second] == [r.model_dump() for r in first] == [r.model_dump() for r in load_records(data)]
    # a changed file is re-read; a removed one disappears; a broken one is skipped, as the store does
    changed = recs[0].model_copy(update={"tags": ["changed"]})
    save_record(changed, data)
    paths[1].unlink()
    (data / "records" / "broken.yaml").write_text("schema_version: 1\nkind: [\n")
    third = load_site_records(data)
    assert [r.model_dump() for r in third] == [r.model_dump() for r in load_records(data)]
    assert {r.id: r.tags for r in third} == {recs[0].id: ["changed"], recs[2].id: []}


def test_cache_is_really_used_when_the_stamp_is_unchanged(tmp_path: Path, monkeypatch) -> None:
    import os

    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path / "cache"))
    path = save_record(speed(cpu_host(), model("M", "Q4_0", 1000, sha="s"), 10.0), tmp_path / "data")
    assert load_site_records(tmp_path / "data")[0].model.quant == "Q4_0"
    st = path.stat()
    with open(path, "r+b") as fh:  # same inode, same size, same mtime: the stamp cannot see this edit
        text = fh.read().replace(b"Q4_0", b"Q5_0")
        fh.seek(0)
        fh.write(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert load_site_records(tmp_path / "data")[0].model.quant == "Q4_0"
    assert load_site_records(tmp_path / "data", cache=False)[0].model.quant == "Q5_0"
