"""The transcriptions of ../shared/sources/*.txt: every number and quote is the source's own; records import once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from collector.importers.transcription import import_transcription, load_transcription
from collector.records import index, store

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO.parent / "shared" / "sources"  # CI: a fresh clone with shared/ beside it, as here
TRANSCRIPTIONS = REPO / "imports" / "sources"
SOURCE_FILES = sorted(SOURCES.glob("*.txt"))


def _load(path: Path) -> dict[str, Any]:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def _norm(text: str) -> str:
    return " ".join(text.split())


def _numbers_in(text: str) -> set[float]:
    """Every number the text prints, thousands separators dropped ("32,768" -> 32768)."""
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    return {float(m) for m in re.findall(r"\d+(?:\.\d+)?", text)}


def _leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, value)]


def test_sources_are_there() -> None:
    assert len(SOURCE_FILES) == 5, f"expected the 5 community sources in {SOURCES}"


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_transcription_numbers_and_quotes_are_verbatim(source: Path) -> None:
    tr = TRANSCRIPTIONS / f"{source.stem}.yaml"
    assert tr.is_file(), f"{source.name} has no transcription at {tr}"
    data = _load(tr)
    text = source.read_text(encoding="utf-8")
    assert data["source_file"] == source.name
    stated = _numbers_in(text)
    figures = data["figures"]
    assert figures, f"{tr}: no figures"
    for fig in figures:
        for quote in fig["quotes"]:
            assert _norm(quote) in _norm(text), f"{tr} figure {fig['id']}: quote not in the source: {quote!r}"
        values = _leaves(fig["record"], fig["id"]) + _leaves(data.get("defaults") or {}, "defaults")
        for where, value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            assert float(value) in stated, f"{tr} {where}: {value} is not a number the source states"


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_each_source_gives_records_with_its_citation(source: Path) -> None:
    records = load_transcription(TRANSCRIPTIONS / f"{source.stem}.yaml")
    assert records
    for rec in records:
        assert rec.source.type == "imported"
        assert rec.source.citation.startswith(f"{source.name}: ")
        assert rec.source.figure.startswith(f"{source.stem}#") and rec.source.note


def _all_records() -> list[store.AnyRecord]:
    return [rec for tr in sorted(TRANSCRIPTIONS.glob("*.yaml")) for rec in load_transcription(tr)]


def test_devices_and_the_rtx_4090_command() -> None:
    records = _all_records()
    assert {store.device_slug(r.host) for r in records} == {"rtx-4090", "2x-rtx-3060", "3x-r9700-pro"}
    rtx = [r for r in records if store.device_slug(r.host) == "rtx-4090"]
    with_cmd = [r for r in rtx if r.command and r.command[0].endswith("llama-server")]
    assert with_cmd and all("{model}" in r.command for r in with_cmd)
    assert all(r.kind == "kld" for r in records if store.device_slug(r.host) == "3x-r9700-pro")
    kld = [r for r in records if r.kind == "kld"]
    assert len(kld) == 4 and all((r.corpus.name, r.corpus.chunks, r.corpus.ctx_size) == ("wikitext-2", 583, 512)
                                 for r in kld)


def test_stated_vram_is_not_converted() -> None:
    rtx3060 = [r for r in _all_records()
               if store.device_slug(r.host) == "2x-rtx-3060" and r.memory_mib.vram_used_stated]
    assert rtx3060 and all(r.memory_mib.vram_unit == "GB" and len(r.memory_mib.vram_used_stated) == 2 for r in rtx3060)
    assert all(g.vram_total_mib is None for r in rtx3060 for g in r.host.gpus)


def test_import_twice_does_not_duplicate(tmp_path: Path) -> None:
    tr = TRANSCRIPTIONS / "003_e82c61687ba11590.yaml"
    written, skipped = import_transcription(tr, tmp_path)
    assert written and not skipped
    first = set(index.record_files(tmp_path))
    again, skipped = import_transcription(tr, tmp_path)
    assert again == [] and len(skipped) == len(written)
    assert set(index.record_files(tmp_path)) == first
    forced, _ = import_transcription(tr, tmp_path, force=True)  # replaces, never duplicates
    after = set(index.record_files(tmp_path))
    assert len(after) == len(first) and after == set(forced)


def test_committed_data_holds_every_figure_once() -> None:
    figures: dict[str, int] = {}
    for _, rec in store.iter_records(REPO / "data"):
        assert not isinstance(rec, Exception), rec
        if rec.source.figure:
            figures[rec.source.figure] = figures.get(rec.source.figure, 0) + 1
    for tr in sorted(TRANSCRIPTIONS.glob("*.yaml")):
        for fig in _load(tr)["figures"]:
            key = f"{tr.stem}#{fig['id']}"
            assert figures.get(key) == 1, (f"{key}: {figures.get(key, 0)} records under data/ "
                                           f"(run `collector import transcription {tr}`)")


def test_imported_figures_have_device_and_run_pages() -> None:
    from collector.publish import render_site

    pages = {g.src_uri: g.content for g in render_site(REPO / "data")}
    imported = [r for r in index.load_records(REPO / "data") if r.source.figure]
    for rec in imported:
        assert rec.id in pages[f"devices/{store.device_slug(rec.host)}.md"], rec.source.figure
        run = pages[f"runs/{rec.id}.md"]
        assert "imported" in run and rec.source.figure.split("#")[0].split("_", 1)[1] in run  # the cited file
    assert {store.device_slug(r.host) for r in imported} == {"rtx-4090", "2x-rtx-3060", "3x-r9700-pro"}
    assert "./llama-server" in pages["devices/rtx-4090.md"]


def test_committed_records_match_their_transcriptions() -> None:
    """data/ is regenerated whenever a transcription changes (`collector import transcription FILE --force`)."""
    committed = {r.source.figure: r for r in index.load_records(REPO / "data") if r.source.figure}
    for tr in sorted(TRANSCRIPTIONS.glob("*.yaml")):
        for fresh in load_transcription(tr):
            old = committed[fresh.source.figure]
            a, b = store.record_to_dict(old), store.record_to_dict(fresh)
            ignore = {"id"} | ({"created_at"} if "import time" in (fresh.source.note or "") else set())
            for key in ignore:
                a.pop(key), b.pop(key)
            assert a == b, f"{fresh.source.figure}: data/ is stale; re-import {tr} with --force"
