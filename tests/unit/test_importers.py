"""Importer edge cases that need no llama.cpp run: transcription errors, citations, atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.base.errors import CollectorError
from collector.cli import cli
from collector.importers.intake import write_records
from collector.importers.llama_bench import bench_command, bench_label
from collector.importers.transcription import import_transcription, load_transcription
from collector.records import store
from collector.records.schema import Stat

REPO = Path(__file__).resolve().parents[2]
GOOD = """\
source_file: x.txt
title: A title
figures:
  - id: one
    kind: speed
    quotes: ["22.4 tok/s"]
    record:
      host: {gpus: [{name: RTX 3060}]}
      model: {name: A model}
      samples: [{category: run, tg_tps: [22.4]}]
      summary: {tg_tps: {stated: "22.4"}}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_citation_is_named_invalid_by_validate(tmp_path: Path) -> None:
    [path] = import_transcription(_write(tmp_path, GOOD), tmp_path / "data")[0]
    text = path.read_text(encoding="utf-8")
    assert "citation: 'x.txt: A title'" in text
    path.write_text(text.replace("citation: 'x.txt: A title'", "citation: ''"), encoding="utf-8")
    res = CliRunner().invoke(cli, ["validate", str(tmp_path / "data")])
    assert isinstance(res.exception, CollectorError)
    assert f"1 of 1 files under {tmp_path / 'data'} are invalid" in str(res.exception)
    assert str(path) in res.stderr and "source.citation" in res.stderr


@pytest.mark.parametrize("change, message", [
    (("    kind: speed\n", "    kind: speed\n    colour: red\n"), r"t\.yaml:\d+: figures\[0\]\.colour: unknown key"),
    (("    record:\n", "    record:\n      status: ok\n"), r"status is set by the importer"),
    (('    quotes: ["22.4 tok/s"]\n', ""), r"figures\[0\]\.quotes: is required"),
    (("title: A title\n", "title: A title\ndate: Feb 2026\n"), r"t\.yaml:\d+: date: 'Feb 2026' is not an ISO date"),
    (("tg_tps: [22.4]", "tg_tps: [fast]"), r"figure one: samples\.0\.tg_tps\.0"),
])
def test_bad_transcriptions_fail_naming_file_and_line(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(CollectorError, match=message):
        import_transcription(path, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_duplicate_figure_ids_are_refused(tmp_path: Path) -> None:
    fig = GOOD.split("figures:\n", 1)[1]
    with pytest.raises(CollectorError, match=r"'one' is used twice"):
        load_transcription(_write(tmp_path, GOOD + fig))


def test_a_bad_record_leaves_nothing_on_disk(tmp_path: Path) -> None:
    good, other = load_transcription(_write(tmp_path, GOOD))[0], load_transcription(_write(tmp_path, GOOD))[0]
    other.source.citation = " "  # only the model validator catches this: assignment is not re-validated
    with pytest.raises(CollectorError, match="record x#one: source: an imported record needs source.citation"):
        write_records([good, other], tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_transcribed_date_is_the_sources_and_created_at_the_import_time() -> None:
    before = store.utc_now()
    [rec, *_] = load_transcription(REPO / "imports" / "sources" / "003_e82c61687ba11590.yaml")
    assert rec.source.date == "2026-02-14" and rec.created_at >= before  # the stated day, never completed
    [rec, *_] = load_transcription(REPO / "imports" / "sources" / "004_a78e30ba098ebd42.yaml")
    assert rec.source.date is None and rec.created_at >= before  # not stated: unknown, not the import time


def test_summary_figures_as_written_and_reconstructed_commands(tmp_path: Path) -> None:
    text = GOOD.replace('      summary: {tg_tps: {stated: "22.4"}}\n',
                        '      config: {ctx_size: 32768, tensor_split: "1,1"}\n'
                        '      summary: {tg_tps: {stated: "~94"}, pp_tps: {mean: "22.00", n: 5}}\n')
    assert text != GOOD
    text = text.replace("    kind: speed\n", "    kind: speed\n    reconstruct_command: true\n")
    [rec] = load_transcription(_write(tmp_path, text))
    tg, pp = rec.summary.tg_tps, rec.summary.pp_tps
    assert (tg.stated, tg.text, tg.approx) == (94.0, "~94", True)
    assert (pp.mean, pp.text, pp.approx, pp.n) == (22.0, "22.00", False, 5)
    assert rec.command == ["llama-server", "-m", "{model}", "-c", "32768", "-ts", "1,1"]
    assert rec.source.command == "reconstructed"
    with pytest.raises(CollectorError, match=r"summary\.tg_tps\.stated: 'about 94' is not a figure"):
        load_transcription(_write(tmp_path, text.replace('"~94"', '"about 94"')))
    printed = text.replace("      samples:", "      command: [llama-server, -c, \"32768\"]\n      samples:")
    with pytest.raises(CollectorError, match="has a printed command; keep one of the two"):
        load_transcription(_write(tmp_path, printed))


def test_stat_keeps_the_tools_mean() -> None:
    s = Stat.of([1.0, 4.0, 2.0], mean=2.5)
    assert (s.median, s.mean, s.min, s.max, s.n) == (2.0, 2.5, 1.0, 4.0, 3)
    assert Stat.of([]) is None and Stat.of([1.0, 3.0]).mean == 2.0


def test_bench_labels_and_commands() -> None:
    t = {"n_prompt": 512, "n_gen": 128, "n_depth": 4096, "samples_ts": [1.0, 2.0, 3.0], "flash_attn": 1,
         "n_cpu_moe": 10, "tensor_split": "0.50/0.50", "tensor_buft_overrides": "exps=CPU", "no_kv_offload": False,
         "fit_target": 1024, "fit_min_ctx": 4096}
    assert bench_label(t) == "pp512+tg128 @ d4096"
    argv = bench_command(t)
    assert argv[:9] == ["llama-bench", "-m", "{model}", "-p", "0", "-n", "0", "-pg", "512,128"]
    for pair in (["-d", "4096"], ["-fa", "on"], ["-ncmoe", "10"], ["-ts", "0.50/0.50"], ["-ot", "exps=CPU"],
                 ["-nkvo", "0"], ["-fitt", "1024"], ["-r", "3"]):
        assert any(argv[i:i + 2] == pair for i in range(len(argv))), pair
    assert "-ts" not in bench_command({**t, "tensor_split": "0.00"})


def test_cli_names_the_bad_line_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bench.jsonl"
    bad.write_text('[info] starting\n{"build_commit": "abc", "build_number": 1,\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "collector.cli", "import", "llama-bench", str(bad),
                           "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and f"{bad}:2: not valid llama-bench JSONL" in proc.stderr
    assert not (tmp_path / "data").exists()


# --- hostile import inputs (issue 25, 8): every one a one-line error naming the file, nothing written ---------

BENCH = REPO / "tests" / "fixtures" / "llama-bench-b11401.jsonl"


def _bench_line(**changes: str) -> str:
    """The first test of a captured llama-bench -o jsonl output, with raw JSON text replaced per field."""
    import re

    line = BENCH.read_text().splitlines()[0]
    line = re.sub(r'"model_filename": "[^"]*"', '"model_filename": "/nonexistent/SmolLM2-135M-Instruct.Q4_1.gguf"',
                  line)
    for key, raw in changes.items():
        line, n = re.subn(rf'"{key}": (?:"[^"]*"|[^,}}]+)', f'"{key}": {raw}', line)
        assert n == 1, key
    return line + "\n"


def _import_error(tmp_path: Path, path: Path) -> str:
    from collector.importers.llama_bench import import_llama_bench

    with pytest.raises(CollectorError) as err:
        import_llama_bench(path, tmp_path / "data")
    message = str(err.value)
    assert "\n" not in message and "pydantic" not in message and str(path) in message, message
    assert not (tmp_path / "data").exists()
    return message


@pytest.mark.parametrize("key", ["n_prompt", "n_depth", "flash_attn", "build_number", "n_threads"])
def test_numbers_out_of_range_are_refused(tmp_path: Path, key: str) -> None:
    for raw in ("1e400", "-1e400", "1" + "0" * 400, "NaN", "Infinity"):
        path = tmp_path / "bench.jsonl"
        path.write_text(_bench_line(**{key: raw}))
        _import_error(tmp_path, path)


def test_deep_nesting_and_huge_or_endless_inputs_are_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('[{"a": ' + "[" * 100_000 + "]" * 100_000 + "}]")
    assert "nested" in _import_error(tmp_path, deep)
    deep_line = tmp_path / "deep.jsonl"
    deep_line.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    assert "nested" in _import_error(tmp_path, deep_line)
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(17 << 20)  # sparse: costs no disk
    assert "larger than 16 MiB" in _import_error(tmp_path, big)
    assert "character device" in _import_error(tmp_path, Path("/dev/zero"))
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert "FIFO" in _import_error(tmp_path, fifo)


def test_a_value_the_schema_refuses_is_one_line_not_a_pydantic_dump(tmp_path: Path) -> None:
    path = tmp_path / "bench.jsonl"
    path.write_text(_bench_line(model_size="-5"))
    message = _import_error(tmp_path, path)
    assert "model.size_bytes" in message or "size_bytes" in message, message
    path.write_text(_bench_line(n_threads="0"))
    assert "n_threads" in _import_error(tmp_path, path)


def test_a_test_time_without_its_zone_is_utc(tmp_path: Path) -> None:
    from collector.importers.llama_bench import import_llama_bench

    path = tmp_path / "bench.jsonl"
    path.write_text(_bench_line(test_time='"2026-11-26T15:09:32"'))
    [written], _ = import_llama_bench(path, tmp_path / "data")
    rec = store.load_record(written)
    assert rec.created_at.isoformat() == "2026-11-26T15:09:32+00:00" and "UTC" in (rec.source.note or "")


@pytest.mark.parametrize("text, fragment", [
    ("- a list\n", "t.yaml:1: transcription must be a mapping"),
    (GOOD.replace("  - id: one\n", "  - 5\n  - id: one\n"), "figures[0] must be a mapping"),
    (GOOD.replace('{stated: "22.4"}', "{stated: 22.40}"), 'in quotes ("22.4")'),
    (GOOD.replace("record:\n", "reconstruct_command: true\n    record:\n").replace(
        "model: {name: A model}", "model: {name: A model}\n      config: {ctx_size: -1}"), "config: ctx_size"),
])
def test_transcription_errors_say_transcription(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(CollectorError) as err:
        load_transcription(_write(tmp_path, text))
    message = str(err.value)
    assert fragment in message and "\n" not in message and "plan" not in message, message
