"""The transcriptions of ../shared/sources/*.txt: every number and quote is the source's own, every figure is written
as the source writes it (issue 8: unknown stays unknown, never a default); records import once."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from collector.importers.transcription import import_transcription, load_transcription
from collector.records import index, store
from collector.records.flags import FLAGS, RESPELLINGS, server_args
from sitebuild import page_commands

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
    """Required where CI provides ../shared (QA_REQUIRE_SOURCES=1, set by .ci/run); a contributor's clone without it
    skips the transcription checks and says why."""
    if not SOURCES.is_dir() and os.environ.get("QA_REQUIRE_SOURCES") != "1":
        pytest.skip(f"no {SOURCES} beside this clone: the transcriptions cannot be checked against their sources")
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
        for quote in fig["quotes"] + fig.get("caveats", []):
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


def _figure_records(source: Path) -> list[tuple[dict[str, Any], store.AnyRecord, str]]:
    """(the transcribed figure, its record, the source text) for every figure of one source."""
    tr = TRANSCRIPTIONS / f"{source.stem}.yaml"
    figures = {fig["id"]: fig for fig in _load(tr)["figures"]}
    text = source.read_text(encoding="utf-8")
    return [(figures[rec.source.figure.split("#", 1)[1]], rec, text) for rec in load_transcription(tr)]


_SUMMARY_KEYS = ("stated", "mean", "median")
_FIGURE_TEXT = re.compile(r"^~?\d+(?:\.\d+)?$")


def _holding(number: str, quote: str) -> re.Match[str] | None:
    """Where the quote prints `number` ("94" in "~94 t/s"), with the "~" before it when there is one; a number
    inside a longer one ("194", "94.5", "2.94") does not count."""
    return re.search(rf"(?<![\d.])(~\s*)?{re.escape(number)}(?!\.?\d)", quote)


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_summary_figures_are_strings_as_written(source: Path) -> None:
    data = _load(TRANSCRIPTIONS / f"{source.stem}.yaml")
    written = [("defaults", data.get("defaults") or {})] + [(f["id"], f["record"]) for f in data["figures"]]
    for where, body in written:
        for name, stat in (body.get("summary") or {}).items():
            for key in _SUMMARY_KEYS:
                if key in stat:
                    value = stat[key]
                    assert isinstance(value, str) and _FIGURE_TEXT.match(value), (
                        f"{source.stem} {where}: summary.{name}.{key} must be the figure as the source writes it, "
                        f"a string such as \"~94\" or \"22.00\", not {value!r}")
    for fig, rec, _ in _figure_records(source):
        for name in ("tg_tps", "pp_tps", "ttft_ms", "pg_tps"):
            stat = getattr(rec.summary, name, None) if rec.kind == "speed" else None
            if stat is None:
                continue
            raw = fig["record"]["summary"][name]
            assert stat.text == next(raw[k] for k in _SUMMARY_KEYS if k in raw).strip()
            assert stat.approx == stat.text.startswith("~"), f"{rec.source.figure}: {name}"


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_each_figure_is_quoted_as_written_headline_first(source: Path) -> None:
    """The first quote holds the headline figure; the quote that holds a figure decides whether it is approximate
    (a "~" before the number in the source keeps it approximate); a stated mean of n runs says so."""
    for _fig, rec, _ in _figure_records(source):
        key, quotes = rec.source.figure, rec.source.quotes
        if rec.kind == "kld":
            stated = f"{rec.results.kld_mean}"
            assert _holding(stated, quotes[0]), f"{key}: the first quote must hold the mean KLD {stated}"
            continue
        stats = [(n, s) for n in ("tg_tps", "pp_tps") if (s := getattr(rec.summary, n)) is not None]
        assert stats, key
        for i, (name, stat) in enumerate(stats):
            number = stat.text.lstrip("~").strip()
            holding = [(q, m) for q in quotes if (m := _holding(number, q))]
            assert holding, f"{key}: no quote holds {name} {stat.text!r}"
            if i == 0:
                assert holding[0][0] == quotes[0], f"{key}: the headline {name} {stat.text!r} must be quoted first"
            first_quote, match = holding[0]
            assert bool(match.group(1)) == stat.approx, (
                f"{key}: {name} is written {stat.text!r} but its quote says {match.group(0)!r}: {first_quote!r}")
            if stat.approx:  # an approximate figure is never filed as an exact sample
                assert all(float(number) not in getattr(s, name) for s in rec.samples), key
            if stat.mean is not None and stat.n is not None:
                assert any(re.search(rf"\b{stat.n} runs\b", q) for q in quotes), (
                    f"{key}: a mean of {stat.n} runs needs a quote saying so")


def _states_cache_type(quote: str, value: str) -> bool:
    """The quote names the KV cache type: `q8_0` itself, or "Q8" said of the KV cache."""
    if re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", quote, re.I):
        return True
    short = value.split("_", 1)[0]
    return bool(re.search(rf"\b{re.escape(short)}\b", quote, re.I) and re.search(r"\bKV\b|cache", quote, re.I))


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_kv_cache_type_only_where_a_quote_states_it(source: Path) -> None:
    for _, rec, _ in _figure_records(source):
        for side in ("cache_type_k", "cache_type_v"):
            value = getattr(rec.config, side)
            if value is not None:
                assert any(_states_cache_type(q, value) for q in rec.source.quotes), (
                    f"{rec.source.figure}: config.{side} {value} but no quote of the figure states it")
        if rec.kind == "speed":
            assert rec.placement.kv_type_k is None and rec.placement.kv_type_v is None, rec.source.figure


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_dates_build_and_authorship_only_from_the_source(source: Path) -> None:
    text = source.read_text(encoding="utf-8")
    for _, rec, _ in _figure_records(source):
        key, date = rec.source.figure, rec.source.date
        if date is not None:
            assert date[:10] in text, f"{key}: date {date} is not a day the source states"
            if len(date) > 10:
                assert date[11:16] in text, f"{key}: time of {date} is not stated in the source"
        for what, value in (("llama_cpp.version", rec.llama_cpp.version), ("source.author", rec.source.author),
                            ("source.url", rec.source.url)):
            assert value is None or value in text, f"{key}: {what} {value!r} is not in the source"
        if rec.llama_cpp.build_number is not None:
            assert str(rec.llama_cpp.build_number) in text, key


def _stated_strings(rec: store.AnyRecord) -> list[tuple[str, str | None]]:
    m, h = rec.model, rec.host
    return [("model.name", m.name), ("model.basename", m.basename), ("model.finetune", m.finetune),
            ("model.quant", m.quant), ("model.file_name", m.file_name), ("model.size_label", m.size_label),
            ("model.size_stated", m.size_stated), ("host.ram_stated", h.ram_stated),
            ("host.gpus_vram_stated", h.gpus_vram_stated), ("host.cpu.model", h.cpu.model), ("host.os", h.os),
            ("llama_cpp.backend", rec.llama_cpp.backend)] + \
        [(f"host.gpus[{i}].{k}", getattr(g, k)) for i, g in enumerate(h.gpus) for k in ("name", "vram_stated",
                                                                                         "backend")]


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_model_and_host_facts_are_written_as_the_source_writes_them(source: Path) -> None:
    """Sizes and memory are the source's own strings ("24GB", "64GB DDR4-3200", "44.7 GB"), never converted."""
    text = _norm(source.read_text(encoding="utf-8"))
    for _, rec, _ in _figure_records(source):
        for what, value in _stated_strings(rec):
            assert value is None or _norm(value) in text, f"{rec.source.figure}: {what} {value!r} is not in the source"
        assert all(g.vram_total_mib is None for g in rec.host.gpus) and rec.host.ram_total_mib is None
        assert rec.model.size_bytes is None and rec.model.params_total is None


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_moe_and_fine_tune_facts_as_stated(source: Path) -> None:
    text = source.read_text(encoding="utf-8")
    states_experts = re.search(r"\b512 experts per layer, 10 active per token\b", text)
    for _, rec, _ in _figure_records(source):
        key, m = rec.source.figure, rec.model
        if m.n_experts is not None:
            assert re.search(rf"\b{m.n_experts} experts\b", text), f"{key}: n_experts {m.n_experts} is not stated"
        if m.n_experts_used is not None:
            assert re.search(rf"\b{m.n_experts_used} active\b", text), key
        if states_experts:
            assert (m.moe, m.n_experts, m.n_experts_used) == (True, 512, 10), key
        elif m.moe:  # implied only (the model's name, a MoE format): said why, and no expert count made up
            assert m.n_experts is None and m.n_experts_used is None, key
            assert "mixture of experts" in (rec.source.note or "").lower(), f"{key}: the note must say why moe"
        if "abliterated" in (m.file_name or "").lower() or any("abliterated" in q.lower() for q in rec.source.quotes):
            assert (m.finetune, m.basename) == ("abliterated", "Qwen3-Coder-Next"), key
            assert "abliterated" in store.model_display_name(m), key
        else:
            assert m.finetune is None, key


def _spellings(flag_key: str) -> set[str]:
    names = set(FLAGS[flag_key].server)
    return names | {old for old, now in RESPELLINGS.items() if now in names}


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_commands_are_printed_or_rebuilt_from_stated_flags(source: Path) -> None:
    text = _norm(source.read_text(encoding="utf-8"))
    for fig, rec, _ in _figure_records(source):
        key = rec.source.figure
        if rec.kind != "speed" or not rec.command:
            assert rec.source.command is None and not fig.get("reconstruct_command"), key
            continue
        if fig.get("reconstruct_command"):
            assert "command" not in fig["record"] and rec.source.command == "reconstructed", key
            assert rec.command == ["llama-server", "-m", "{model}", *server_args(rec.config)], key
            continue
        assert rec.source.command == "printed", key
        for arg in rec.command:  # every printed argument is the source's own
            assert arg == "{model}" or arg in text, f"{key}: {arg!r} is not in the printed command"
        argv = rec.command
        for flag_key in FLAGS:  # and the config says what the printed command passes
            value = getattr(rec.config, flag_key)
            if value is not None:
                assert any(a in _spellings(flag_key) and argv[i + 1] == str(value)
                           for i, a in enumerate(argv[:-1])), f"{key}: config.{flag_key}={value} is not printed"
        assert all(a in argv for a in rec.config.extra_args), key


def test_the_2x_rtx_3060_commands_are_rebuilt_from_its_stated_flags() -> None:
    records = load_transcription(TRANSCRIPTIONS / "003_e82c61687ba11590.yaml")
    runs = [r for r in records if r.config.ctx_size]
    assert len(runs) == 5 and all(r.source.command == "reconstructed" for r in runs)
    for r in runs:
        pairs = list(zip(r.command, r.command[1:]))
        for pair in (("-c", str(r.config.ctx_size)), ("-ctk", "q8_0"), ("-ctv", "q4_0"), ("-fa", "on"),
                     ("--n-cpu-moe", "0"), ("-ts", "1,1")):
            assert pair in pairs, (r.source.figure, pair)
        assert r.host.gpus == [r.host.gpus[0]] * 2 and r.host.gpus[0].vram_stated == "12GB"
        assert r.source.date == "2026-02-14" and r.model.moe is True and r.model.n_experts is None
    [base] = [r for r in records if not r.config.ctx_size]
    assert base.source.date == "2026-02-07" and not base.command and base.source.command is None
    assert base.config.cache_type_k is None and base.summary.tg_tps.text == "~21.0" and base.summary.tg_tps.approx


def test_the_rtx_4090_headline_figures() -> None:
    by_key = {r.source.figure: r for tr in sorted(TRANSCRIPTIONS.glob("*.yaml")) for r in load_transcription(tr)}
    prod = by_key["002_631fd2e3eda61eae#abliterated-iq2_xs-168k-max-speed"]
    assert (prod.summary.tg_tps.text, prod.summary.tg_tps.approx, prod.summary.tg_tps.stated) == ("~94", True, 94.0)
    assert "~94" in prod.source.quotes[0] and prod.source.date is None
    avg = by_key["001_9f15dc8e6be5eb17#ud-iq2_xxs-200k"].summary.tg_tps
    assert (avg.mean, avg.text, avg.n, avg.approx) == (21.78, "21.78", 5, False)
    for rec in by_key.values():
        if store.device_slug(rec.host) == "rtx-4090":
            assert [(g.name, g.vram_stated) for g in rec.host.gpus] == [("NVIDIA RTX 4090", "24GB")]
            assert rec.host.ram_stated == "64GB DDR4-3200" and rec.host.cpu.model == "AMD Ryzen 9 5950X"


def test_the_r9700_kld_figures() -> None:
    records = load_transcription(TRANSCRIPTIONS / "004_a78e30ba098ebd42.yaml")
    assert {r.kind for r in records} == {"kld"} and len(records) == 4
    ud = next(r for r in records if r.model.quant == "UD-Q5_K_M")
    assert (ud.results.kld_mean, ud.results.kld_max, ud.results.same_top_p) == (0.0217, 4.75, 94.0)
    assert ud.model.size_stated == "55.2 GB"
    for r in records:
        assert [g.name for g in r.host.gpus] == ["R9700 PRO"] * 3 and r.host.gpus_vram_stated == "96 GB"
        assert all(g.vram_stated is None for g in r.host.gpus)  # 96 GB is stated for the three together
        assert r.host.cpu.model is None and r.host.ram_stated is None  # not stated
        assert r.base_model is None and r.kld_method is None and r.config.cache_type_k is None


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
    assert all(g.vram_total_mib is None and g.vram_stated == "12GB" for r in rtx3060 for g in r.host.gpus)


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
    data = index.load_index(REPO / "data", cache=False)
    assert not data.errors, data.errors
    for rec in data.records.values():
        if rec.source.figure:
            figures[rec.source.figure] = figures.get(rec.source.figure, 0) + 1
    for tr in sorted(TRANSCRIPTIONS.glob("*.yaml")):
        for fig in _load(tr)["figures"]:
            key = f"{tr.stem}#{fig['id']}"
            assert figures.get(key) == 1, (f"{key}: {figures.get(key, 0)} records under data/ "
                                           f"(run `collector import transcription {tr}`)")


def test_imported_figures_have_device_and_run_pages() -> None:
    from collector.publish import render_site
    from collector.publish.pages.run import run_html
    from collector.publish.rows.devices import device_key

    pages = {g.src_uri: g.content for g in render_site(REPO / "data")}
    stems = {tr.stem for tr in TRANSCRIPTIONS.glob("*.yaml")}
    imported = [r for r in index.load_records(REPO / "data") if (r.source.figure or "").split("#")[0] in stems]
    for rec in imported:
        assert rec.id in pages[f"devices/{device_key(rec.host)}.md"], rec.source.figure  # one page per GPU
        run = run_html(rec)  # run pages are written outside MkDocs, one template each
        assert "imported" in run and rec.source.figure.split("#")[0].split("_", 1)[1] in run  # the cited file
    assert {device_key(r.host) for r in imported} == {"rtx-4090", "2x-rtx-3060", "3x-ai-pro-r9700"}
    # the printed command, as a reader runs it (llama-server from PATH; README: "Published command")
    assert "llama-server -m huihui-ai_Qwen3-Coder-Next-abliterated-IQ2_XS.gguf --port 8085 -c 168000 -ctk q8_0 " \
           "-ctv q8_0 --flash-attn on --jinja --metrics" in page_commands(pages["devices/rtx-4090.md"])


def test_committed_records_match_their_transcriptions() -> None:
    """data/ is regenerated whenever a transcription changes (`collector import transcription FILE --force`).

    id and created_at are the import's own (created_at is always the import time; the source's date is
    source.date), so they are the only fields that may differ."""
    committed = {r.source.figure: r for r in index.load_records(REPO / "data") if r.source.figure}
    for tr in sorted(TRANSCRIPTIONS.glob("*.yaml")):
        for fresh in load_transcription(tr):
            old = committed[fresh.source.figure]
            a, b = store.record_to_dict(old), store.record_to_dict(fresh)
            for key in ("id", "created_at"):
                a.pop(key), b.pop(key)
            assert a == b, f"{fresh.source.figure}: data/ is stale; re-import {tr} with --force"
