"""The one record reader: the fast path reads exactly what the store reads, refuses what it refuses, and its
cache serves unchanged files only."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.records import store
from collector.records.index import load_index
from fixtures.records.factory import cpu_host, fixture_records, model, speed

FIXTURE_DATA = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "records" / "data"


def _dump(recs: list) -> list:
    return sorted((r.model_dump() for r in recs), key=lambda d: d["id"])


def test_fixture_files_are_the_factory_records() -> None:
    """The committed fixture data is what the factory writes (regenerate it when the factory changes)."""
    index = load_index(FIXTURE_DATA, cache=False)
    assert not index.errors
    assert _dump(index.valid) == _dump(fixture_records())


def test_fast_reader_agrees_with_the_store(tmp_path: Path) -> None:
    tricky = ["on", "yes", "No", "012", "0o17", "1e3", "2026-01-02", "null", "~", "1_000", ".inf", "0x1F", "3:20"]
    for word in tricky:
        rec = speed(cpu_host(), model(word, word, 1000), {0: 10.0}, ctx_size=512)
        rec.tags.append(word)
        store.save_record(rec, tmp_path)
    fast = load_index(tmp_path, cache=False).valid
    assert _dump(fast) == _dump(store.load_record(p) for p in store_paths(tmp_path))
    assert sorted(r.tags[0] for r in fast) == sorted(tricky)


def store_paths(root: Path) -> list[Path]:
    return sorted(root.rglob("*.yaml"))


def test_bad_files_are_refused_with_file_and_reason(tmp_path: Path) -> None:
    good = store.save_record(speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0}, ctx_size=512), tmp_path)
    text = good.read_text(encoding="utf-8")
    folder = good.parent
    bad = {
        "binary.yaml": b"\xff\xfe\x00garbage",
        "truncated.yaml": text[: text.index("\nplan:")].encode() + b"\n",
        "inf.yaml": text.replace("median: 10.0", "median: .inf").encode(),
        "quoted.yaml": text.replace("load_seconds: 2.5", "load_seconds: '2.5'").encode(),
        "dup.yaml": text.encode(),  # the same id as the good file
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    index = load_index(tmp_path, cache=False)
    assert index.valid == []  # the original shares its id with dup.yaml: both refused
    for name in bad:
        why = index.errors[folder / name]
        assert why.startswith(str(folder / name)) and "\n" not in why, why
    assert "UTF-8" in index.errors[folder / "binary.yaml"]
    assert "needs" in index.errors[folder / "truncated.yaml"]
    assert "also the id of" in index.errors[folder / "dup.yaml"]
    assert "also the id of" in index.errors[good]


@pytest.mark.parametrize("live", [False, True])
def test_cache_serves_unchanged_files_and_rereads_changed_ones(tmp_path: Path, live: bool) -> None:
    data = tmp_path / "data"
    recs = [speed(cpu_host(), model(f"M{i}", "Q4_0", 1000 + i), {0: 10.0 + i}, ctx_size=512) for i in range(3)]
    paths = [store.save_record(r, data) for r in recs]
    first = load_index(data, live=live).valid
    second = load_index(data, live=live).valid
    assert _dump(second) == _dump(first) == _dump(recs)
    changed = recs[0].model_copy(update={"tags": ["changed"]})
    store.save_record(changed, data)
    paths[1].unlink()
    (paths[2].parent / "broken.yaml").write_text("schema_version: 1\nkind: [\n")
    third = load_index(data, live=live)
    assert {r.id: r.tags for r in third.valid} == {recs[0].id: ["changed"], recs[2].id: []}
    assert list(third.errors) == [paths[2].parent / "broken.yaml"]


@pytest.mark.parametrize("live", [False, True])
def test_cache_sees_a_same_size_edit_with_its_mtime_put_back(tmp_path: Path, live: bool) -> None:
    """The cache is keyed on the bytes: an edit that keeps inode, size and mtime (`status: ok` -> `status: xx`)
    is an edit, refused at once, never served from the cache as the valid record it was (issue 25, 4)."""
    path = store.save_record(speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0}, ctx_size=512), tmp_path)
    assert load_index(tmp_path, live=live).valid[0].model.quant == "Q4_0"
    st = path.stat()
    for old, new in ((b"Q4_0", b"Q5_0"), (b"status: ok", b"status: xx")):
        with open(path, "r+b") as fh:  # same inode, size and mtime
            text = fh.read().replace(old, new)
            fh.seek(0)
            fh.write(text)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert path.stat().st_size == st.st_size and path.stat().st_ino == st.st_ino
        if new == b"Q5_0":
            assert load_index(tmp_path, live=live).valid[0].model.quant == "Q5_0"
    index = load_index(tmp_path, live=live)
    assert index.valid == [] and "status" in index.errors[path]


def test_live_loads_keep_unchanged_records_in_memory(tmp_path: Path, monkeypatch) -> None:
    """load_index(live=True), as `mkdocs serve` rebuilds in one process: an unchanged file gives the same record
    object, neither read from the cache nor validated again; a new file is parsed; only the last data directory is
    kept; with the cache off nothing is kept."""
    import collector.records.index as index_mod

    data, other = tmp_path / "data", tmp_path / "other"
    paths = [store.save_record(speed(cpu_host(), model(f"M{i}", "Q4_0", 1000 + i), {0: 10.0 + i}, ctx_size=512),
                               data) for i in range(3)]
    store.save_record(speed(cpu_host(), model("O", "Q4_0", 2000), {0: 5.0}, ctx_size=512), other)
    (data / "broken.yaml").write_text("schema_version: 1\nkind: [\n")
    first = load_index(data, live=True)
    decoded: list[str] = []
    real = index_mod.record_from_json
    monkeypatch.setattr(index_mod, "record_from_json", lambda text: decoded.append(text) or real(text))
    new = store.save_record(speed(cpu_host(), model("M9", "Q4_0", 1009), {0: 19.0}, ctx_size=512), data)
    second = load_index(data, live=True)
    assert [second.records[p] for p in paths] == [first.records[p] for p in paths]
    assert all(second.records[p] is first.records[p] for p in paths)
    assert len(decoded) == 1 and second.records[new].id in decoded[0]  # only the new file
    assert second.errors == first.errors  # the refused file is refused again, with the same reason
    load_index(other, live=True)  # another data directory replaces the kept one
    decoded.clear()
    third = load_index(data, live=True)
    assert len(decoded) == 4 and all(third.records[p] is not first.records[p] for p in paths)
    monkeypatch.setenv("QUANT_ATLAS_CACHE", "0")
    assert all(load_index(data, live=True).records[p] is not third.records[p] for p in paths)


def test_cache_parses_only_new_files_and_survives_a_corrupt_cache(tmp_path: Path, monkeypatch) -> None:
    import collector.records.index as index_mod
    from collector.base.cache import cache_dir

    data = tmp_path / "data"
    for i in range(3):
        store.save_record(speed(cpu_host(), model(f"M{i}", "Q4_0", 1000 + i), {0: 10.0 + i}, ctx_size=512), data)
    first = load_index(data).valid
    parsed: list[Path] = []
    real = index_mod.read_record
    monkeypatch.setattr(index_mod, "read_record", lambda p, *a: parsed.append(p) or real(p, *a))
    new = store.save_record(speed(cpu_host(), model("M9", "Q4_0", 1009), {0: 19.0}, ctx_size=512), data)
    assert _dump(load_index(data).valid) == _dump([*first, store.load_record(new)])
    assert parsed == [new]
    for db in cache_dir("records").glob("*.sqlite"):
        db.write_bytes(b"\x00not a database" * 64)
    parsed.clear()
    assert len(load_index(data).valid) == 4 and len(parsed) == 4  # parsed again, no traceback


def test_cache_hits_by_content_after_a_fresh_checkout(tmp_path: Path, monkeypatch) -> None:
    """New mtimes and inodes with the same bytes (what a CI checkout gives) still hit; other bytes do not."""
    import shutil

    import collector.records.index as index_mod

    data = tmp_path / "data"
    paths = [store.save_record(speed(cpu_host(), model(f"M{i}", "Q4_0", 1000 + i), {0: 10.0 + i}, ctx_size=512),
                               data) for i in range(3)]
    first = load_index(data)
    for p in paths:  # a new file (new inode, new mtime) with the same bytes
        shutil.copy(p, p.with_suffix(".tmp"))
        os.replace(p.with_suffix(".tmp"), p)
        os.utime(p, ns=(1, 1))
    text = paths[0].read_text()
    paths[0].write_text(text.replace("Q4_0", "Q5_0"))  # same size, other bytes
    parsed: list[Path] = []
    real = index_mod.read_record
    monkeypatch.setattr(index_mod, "read_record", lambda p, *a: parsed.append(p) or real(p, *a))
    second = load_index(data)
    assert parsed == [paths[0]] and second.records[paths[0]].model.quant == "Q5_0"
    assert second.versions()[second.records[paths[1]].id] == first.versions()[first.records[paths[1]].id]
    assert second.versions()[second.records[paths[0]].id] != first.versions()[first.records[paths[0]].id]
    parsed.clear()
    assert _dump(load_index(data).valid) == _dump(second.valid) and parsed == []  # the new stamps were stored


# Hand edits a contributor might make: plain scalars of every YAML 1.1/1.2 flavour in a string field and in a number
# field, flow style, tags, anchors, comments, CRLF, a BOM, document markers, duplicate keys, several documents
_EDITS: list[tuple[str, str]] = [
    *((r"(?m)^  quant: .*$", f"  quant: {word}") for word in (
        "on", "yes", "No", "TRUE", "012", "0o17", "0x1F", "-0x1F", "1e3", "1E3", "+12", "-.5", "1.", ".inf", "-.Inf",
        ".NaN", "nan", "~", "null", "Null", "NULL", "", "1_000", "3:20", "2026-01-02", "'012'", '"on"', "!!str 012",
        "Q4_0 # a comment", "|\n    Q4_0", ">-\n    Q4_0", "&a Q4_0", "[Q4_0]", "{a: b}")),
    *((r"(?m)^  ctx_size: .*$", f"  ctx_size: {word}") for word in (
        "0x200", "+512", "512.0", "5.12e2", '"512"', "5_12", "0o1000", "01000", "!!int 512", "!!float 512", "~",
        "true", ".inf", "-512", "0512", "512.", "512.00", ".5e3", "5e+2", "1_024.0")),
    *((r"(?m)^  ram_total_mib: .*$", f"  ram_total_mib: {word}") for word in (
        "8192", "8192.0", "-0.0", "08192.50", "8.192e3", "8.192E+3", ".5", "1e-05", "8_192.0", "0x2000", "8192.")),
    (r"(?m)^tags: \[\]$", "tags: [a, 'b', 1, null, true]"),
    (r"(?m)^tags: \[\]$", "tags: &t [a]\nwarnings: *t"),
    (r"(?m)^tags: \[\]$", "tags:\n- a\ntags: [b]"),
    (r"(?m)^tags: \[\]$", "tags: !!seq [a]"),
    (r"\n", "\r\n"),
    (r"\A", "\ufeff"),
    (r"\A", "%YAML 1.2\n---\n"),
    (r"\A", "%YAML 1.1\n---\n"),
    (r"(?m)^  quant: .*$", "  quant: =\n  <<: {quant_note: x}"),
    (r"\Z", "\n...\n"),
    (r"\Z", "\n---\nkind: speed\n"),
    (r"\A", "# a record\n"),
]


def test_fast_reader_decides_exactly_what_the_store_decides(tmp_path: Path, monkeypatch) -> None:
    """Every hand edit is read the same with the fast path as with the store's reader alone: the same valid
    records, the same refused files with the same reasons."""
    import re

    import collector.records.index as index_mod

    good = store.save_record(speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0}, ctx_size=512), tmp_path / "a")
    text = good.read_text(encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    for i, (pattern, new) in enumerate(_EDITS):
        edited, n = re.subn(pattern, lambda _m, new=new: new, text, count=1)
        assert n == 1, pattern
        edited = re.sub(r"(?m)^id: .*$", f"id: EDIT{i:04d}", edited)
        (data / f"edit-{i:02d}.yaml").write_bytes(edited.encode("utf-8"))
    fast = load_index(data, cache=False)
    monkeypatch.setattr(index_mod, "_CParser", None)
    slow = load_index(data, cache=False)
    assert _dump(fast.valid) == _dump(slow.valid)
    assert fast.errors == slow.errors
    assert 10 < len(fast.valid) < len(_EDITS)  # both outcomes are exercised


def test_a_missing_libyaml_parser_is_said_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    from collector.records import index

    shutil.copytree(FIXTURE_DATA, tmp_path / "data")
    real = index._CParser
    monkeypatch.setattr(index, "_CParser", None)
    monkeypatch.setattr(index, "_SLOW_SAID", [])
    with caplog.at_level("WARNING", logger="collector"):
        slow = load_index(tmp_path / "data", cache=False)
        load_index(tmp_path / "data", cache=False)
    said = [r.getMessage() for r in caplog.records if "libyaml" in r.getMessage()]
    assert len(said) == 1 and "pip install --force-reinstall PyYAML" in said[0]
    monkeypatch.setattr(index, "_CParser", real)
    assert slow.records == load_index(tmp_path / "data", cache=False).records  # the same records, only slower


def test_only_regular_files_are_read_one_line_each(tmp_path: Path) -> None:
    """Symbolic links (dangling, to /dev/zero, to a folder), a FIFO, a device and a name that is not UTF-8 under
    records/ are refused with one line each, never opened: no traceback, no hang, no read until MemoryError
    (issue 25, 3)."""
    import signal

    good = store.save_record(speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0}, ctx_size=512), tmp_path)
    folder = good.parent
    (folder / "dangling.yaml").symlink_to(folder / "nowhere.yaml")
    (folder / "zero.yaml").symlink_to("/dev/zero")
    (folder / "good-link.yaml").symlink_to(good)
    (folder / "linked-dir").symlink_to(folder)
    os.mkfifo(folder / "f.yaml")
    odd = os.fsencode(folder) + b"/\xff\xfe.yaml"
    with open(odd, "wb") as fh:
        fh.write(good.read_bytes())
    signal.alarm(20)  # a FIFO opened for reading would block here forever
    try:
        index = load_index(tmp_path)
        again = load_index(tmp_path)  # and from the cache
    finally:
        signal.alarm(0)
    assert [p.name for p in index.records] == [good.name]
    names = {p.name: why for p, why in index.errors.items()}
    assert set(names) == {"dangling.yaml", "zero.yaml", "good-link.yaml", "linked-dir", "f.yaml",
                          os.fsdecode(b"\xff\xfe.yaml")}
    for name, why in names.items():
        assert "\n" not in why and why.startswith(str(folder / name)), why
    assert "symbolic link" in names["zero.yaml"] and "symbolic link" in names["linked-dir"]
    assert "FIFO" in names["f.yaml"] and "not UTF-8" in names[os.fsdecode(b"\xff\xfe.yaml")]
    assert again.errors == index.errors and list(again.records) == list(index.records)


def test_a_file_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    for odd in (Path("/dev/null"), Path("/dev/zero")):
        index = load_index(odd)
        assert not index.records and list(index.errors) == [odd] and "character device" in index.errors[odd]


def test_ids_that_give_the_same_run_page_are_both_refused(tmp_path: Path) -> None:
    """`r-qa-x` and `qa x` would share runs/r-qa-x/: one of them was dropped from the site without a word."""
    rec = speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0}, ctx_size=512)
    rec.id = "r-qa-x"
    first = store.save_record(rec, tmp_path)
    rec.id = "qa x"  # its file would have the same name: save_record refuses to replace the other record
    with pytest.raises(CollectorError, match="an id of its own"):
        store.save_record(rec, tmp_path)
    second = first.with_name("hand-made.yaml")  # as a stranger's pull request could hold it
    second.write_text(first.read_text().replace("id: r-qa-x", "id: qa x"))
    paths = [first, second]
    index = load_index(tmp_path, cache=False)
    assert index.valid == []
    for p in paths:
        assert "runs/r-qa-x/" in index.errors[p] and "id of its own" in index.errors[p]


def test_a_lone_surrogate_is_refused_by_validate_and_the_site(tmp_path: Path) -> None:
    good = store.save_record(speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0}, ctx_size=512), tmp_path)
    good.write_text(good.read_text().replace("  name: M\n", '  name: "\\uD800"\n', 1))
    index = load_index(tmp_path, cache=False)
    [why] = index.errors.values()
    assert index.valid == [] and "model.name" in why and "surrogate" in why and ":" in why.split(" ")[0]


def test_a_settled_file_keeps_its_digest_by_status_and_any_write_is_seen(tmp_path: Path, monkeypatch) -> None:
    """scan_digests reads a file again only when its status (inode, size, mtime, ctime) changed; a same-size edit
    with its mtime put back still changes the ctime, so it is read and seen. A file changed within SETTLED_NS of the
    scan (a write within one timestamp tick of the next could keep its times) is read at every scan."""
    import time

    import collector.records.index as index_mod

    path = store.save_record(speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0}, ctx_size=512), tmp_path)
    read: list[Path] = []
    digest = index_mod._digest
    monkeypatch.setattr(index_mod, "_digest", lambda p: read.append(p) or digest(p))
    for _ in range(2):  # just written: never kept by its status
        assert index_mod.scan_digests(tmp_path).digests == [digest(path)]
    assert read == [path, path]
    monkeypatch.setattr(index_mod, "SETTLED_NS", -10**12)  # as if written long before the scans
    first = index_mod.scan_digests(tmp_path).digests
    read.clear()
    assert index_mod.scan_digests(tmp_path).digests == first and read == []  # kept by its status, not read
    time.sleep(0.05)  # past the kernel's timestamp tick
    st = path.stat()
    with open(path, "r+b") as fh:  # same inode, size and mtime
        text = fh.read().replace(b"Q4_0", b"Q5_0")
        fh.seek(0)
        fh.write(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert index_mod.scan_digests(tmp_path).digests == [digest(path)] != first and read == [path]
    assert load_index(tmp_path).valid[0].model.quant == "Q5_0"
    path.unlink()
    assert index_mod.scan_digests(tmp_path).digests == []
    kept = index_mod.KeyValueCache("records", f"digests-{index_mod.scope(tmp_path)}", str(index_mod.CACHE_VERSION))
    assert kept.stored_keys() == []  # a file gone leaves the cache
