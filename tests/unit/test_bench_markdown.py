"""llama-bench markdown tables (its default `-o md`, as people paste it) imported cell by cell.

The fixtures are real output of several llama-bench versions, each copied from a public source named in its
header: build 2824 (`pp 512`, May 2024), the llama-bench README's tables (`mostly Q4_0`, n_batch and threads
columns), 5298 (Vulkan, `fa`), 6457 (CUDA), 7340 (a `pp4096+tg128` test), 9608 (CPU, `threads`, MiB / M units) and
the `-d` depth tests (`pp512 @ d512`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.base.errors import CollectorError
from collector.cli import cli
from collector.importers.bench_markdown import find_tables
from collector.importers.llama_bench_md import Context, markdown_records, parse_test
from collector.publish.words.render import figure_detail
from collector.records import index
from collector.records.schema import SpeedRecord

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llama-bench-md"
ALL = sorted(FIXTURES.glob("*.md"))
FA = {"0": "off", "1": "on"}


def _records(path: Path, **ctx: object) -> list[SpeedRecord]:
    context = Context(citation=f"fixture {path.name}", **ctx)  # type: ignore[arg-type]
    return markdown_records(path.read_text(encoding="utf-8"), path.name, context)


def _cells_of_line(path: Path, line: int) -> tuple[list[str], list[str]]:
    """The header and the cells of a table row, split here straight from the file (not by the importer)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = line - 1
    while not lines[start - 1].lstrip().startswith("| ---"):
        start -= 1
    header = [c.strip() for c in lines[start - 2].strip().strip("|").split("|")]
    return header, [c.strip() for c in lines[line - 1].strip().strip("|").split("|")]


def test_fixtures_are_captured_output_with_their_source() -> None:
    assert len(ALL) >= 6
    for path in ALL:
        head = path.read_text(encoding="utf-8").split("-->", 1)[0]
        assert re.search(r"source: https://github\.com/\S+", head), path.name
        assert "verbatim" in head, path.name


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_every_cell_of_every_row_is_in_its_record(path: Path) -> None:
    records = _records(path, gpus=["the GPU the source names"])
    rows = [ln for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.startswith("| ") and not ln.startswith("| model") and not ln.startswith("| ---")]
    assert len(records) == len(rows)
    for rec in records:
        assert rec.source.raw is not None
        header, cells = _cells_of_line(path, rec.source.raw["line"])
        row = dict(zip(header, cells, strict=True))
        assert rec.source.raw["cells"] == row  # every column, unknown ones included, verbatim
        stat = rec.summary.pp_tps or rec.summary.tg_tps or rec.summary.pg_tps
        assert stat is not None and stat.text == row["t/s"]
        mean, _, sd = row["t/s"].partition(" ± ")
        assert stat.mean == float(mean) and stat.stddev == float(sd) and stat.n is None
        # the words beside it say what the cell shows: a mean with its standard deviation, the count unknown
        assert figure_detail(stat) == "mean ± sd, as stated; n not stated"
        assert rec.samples[0].category == row["test"]
        assert rec.model.name == row["model"] and rec.model.size_stated == row["size"]
        assert rec.model.params_stated == row["params"] and rec.llama_cpp.backend == row["backend"]
        assert rec.host.gpus[0].backend == row["backend"]
        if "ngl" in row:
            assert rec.config.n_gpu_layers == (int(row["ngl"]) if int(row["ngl"]) >= 0 else "all")
        for col, key in (("threads", "threads"), ("n_batch", "batch_size"), ("n_ubatch", "ubatch_size")):
            assert getattr(rec.config, key) == (int(row[col]) if col in row else None)
        assert rec.config.flash_attn == (FA[row["fa"]] if "fa" in row else None)
        for col in ("ngl", "threads", "n_batch", "fa"):
            if col in row:
                i = rec.command.index({"ngl": "-ngl", "threads": "-t", "n_batch": "-b", "fa": "-fa"}[col])
                assert rec.command[i + 1] == row[col]
        assert rec.source.command == "reconstructed" and rec.source.runtime == "llama.cpp (llama-bench)"


def test_test_names_of_every_version() -> None:
    t = parse_test("pp 512")
    assert t is not None and (t.kind, t.n_prompt, t.n_gen, t.depth) == ("pp", 512, 0, 0)
    t = parse_test("tg128 @ d8192")
    assert t is not None and (t.kind, t.n_prompt, t.n_gen, t.depth) == ("tg", 0, 128, 8192)
    t = parse_test("pp512 @ d4096")
    assert t is not None and (t.kind, t.n_prompt, t.depth) == ("pp", 512, 4096)
    t = parse_test("pp4096+tg128")
    assert t is not None and (t.kind, t.n_prompt, t.n_gen) == ("pg", 4096, 128)
    assert parse_test("pp512 @ 4096") is None and parse_test("512") is None


def test_build_line_devices_and_depths_as_printed() -> None:
    [pp, tg] = _records(FIXTURES / "llama-cpp-pr15952-cuda-b6457.md")
    assert (pp.llama_cpp.version, pp.llama_cpp.commit, pp.llama_cpp.build_number) == ("b6457", "08a216474", 6457)
    assert [g.name for g in pp.host.gpus] == ["NVIDIA GeForce RTX 5070"]  # llama.cpp's own device line
    assert pp.model.arch == "qwen3moe" and pp.model.size_label == "30B.A3B" and pp.model.quant == "Q3_K_M"
    assert tg.summary.tg_tps is not None and tg.summary.tg_tps.text == "11.09 ± 0.00"
    xd = _records(FIXTURES / "xiongjiedai-4090-b2824.md")
    assert {r.llama_cpp.version for r in xd} == {"b2824"} and xd[4].samples[0].category == "tg 512"
    assert xd[4].summary.tg_tps is not None and xd[4].summary.tg_tps.text == "130.58 ± 0.66"
    depth = _records(FIXTURES / "llama-cpp-pr13096-depth.md", gpus=["RTX 4080"])
    assert [(r.samples[0].depth_tokens, r.method.depths) for r in depth] == [(0, [0]), (0, [0]), (512, [512]),
                                                                             (512, [512])]
    assert all(r.llama_cpp.version is None for r in depth)  # no build line: unknown, not guessed
    assert depth[2].command == ["llama-bench", "-m", "{model}", "-p", "512", "-n", "0", "-d", "512", "-ngl", "99"]


def test_a_build_line_before_a_table_is_not_its_build() -> None:
    recs = _records(FIXTURES / "geerlingguy-ai-benchmarks-issue43-b7340.md", gpus=["Intel Arc"])
    assert {r.llama_cpp.version for r in recs} == {None}
    pg = recs[3]
    assert pg.summary.pg_tps is not None and pg.summary.pg_tps.text == "9752.17 ± 68.03"
    assert pg.summary.pp_tps is None and pg.summary.tg_tps is None
    assert pg.command[:9] == ["llama-bench", "-m", "{model}", "-p", "0", "-n", "0", "-pg", "4096,128"]


def test_a_cpu_table_needs_the_cpu_named(tmp_path: Path) -> None:
    path = FIXTURES / "llama-cpp-pr24511-cpu-threads-b9608.md"
    with pytest.raises(CollectorError, match=r"pr24511.*:9: llama.cpp printed no device line .* --cpu NAME"):
        _records(path)
    recs = _records(path, cpu="a CPU the source names")
    assert recs[0].host.gpus == [] and recs[0].host.cpu.model == "a CPU the source names"
    assert recs[0].model.size_stated == "497.39 MiB" and recs[0].model.params_stated == "752.39 M"


def test_cli_reads_stdin_requires_a_citation_and_reimports_nothing(tmp_path: Path) -> None:
    text = (FIXTURES / "llama-cpp-pr13324-vulkan-fa-b5298.md").read_text(encoding="utf-8")
    data = tmp_path / "data"
    res = CliRunner().invoke(cli, ["import", "llama-bench", "-", "--data-dir", str(data)], input=text)
    assert isinstance(res.exception, CollectorError) and "--citation" in str(res.exception)
    args = ["import", "llama-bench", "-", "--data-dir", str(data), "--citation", "llama.cpp PR 13324",
            "--url", "https://github.com/ggml-org/llama.cpp/pull/13324", "--date", "2025-05-06"]
    res = CliRunner().invoke(cli, args, input=text)
    assert res.exit_code == 0, res.output
    first = set(index.record_files(data))
    assert len(first) == 2
    [rec] = [r for r in index.load_records(data) if r.summary.tg_tps]
    assert rec.source.citation == "llama.cpp PR 13324" and rec.source.date == "2025-05-06"
    assert rec.source.url == "https://github.com/ggml-org/llama.cpp/pull/13324"
    again = CliRunner().invoke(cli, args, input="pasted again:\n" + text)
    assert again.exit_code == 0 and "skipped 2 tests already imported" in again.output
    assert set(index.record_files(data)) == first


@pytest.mark.parametrize("change, message", [
    (("|  99 |  1 |           pp512 |", "|  99 |  1 | 1 |           pp512 |"), r":10: 9 cells under a header of 8"),
    (("139.97 ± 1.06", "fast"), r":10: t/s 'fast' is not a figure"),
    (("pp512 |", "pp-512 |"), r":10: test 'pp-512' is not a llama-bench test name"),
    (("|  99 |  1 |           pp512", "|  lots |  1 |           pp512"), r":10: column ngl: 'lots' is not"),
])
def test_bad_cells_fail_naming_the_line_and_write_nothing(tmp_path: Path, change: tuple[str, str],
                                                          message: str) -> None:
    text = (FIXTURES / "llama-cpp-pr13324-vulkan-fa-b5298.md").read_text(encoding="utf-8")
    assert change[0] in text
    bad = tmp_path / "bad.md"
    bad.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    res = CliRunner().invoke(cli, ["import", "llama-bench", str(bad), "--data-dir", str(tmp_path / "data"),
                                   "--citation", "x"])
    assert isinstance(res.exception, CollectorError)
    assert re.search(message, str(res.exception)), str(res.exception)
    assert not (tmp_path / "data").exists()


def test_any_bytes_give_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "noise.md"
    path.write_bytes(b"| test | t/s |\n|---|---|\n| \xff\x00 | \xfe |\n" + bytes(range(256)))
    res = CliRunner().invoke(cli, ["import", "llama-bench", str(path), "--citation", "x", "--gpu", "G",
                                   "--data-dir", str(tmp_path / "data")])
    assert isinstance(res.exception, CollectorError) and "\n" not in str(res.exception)


def test_tables_that_are_not_llama_bench_are_passed_over() -> None:
    text = "| GPU | 8B Q4_K_M |\n|---|---|\n| 4090 24GB | 127.74 |\n"
    assert find_tables(text, "x") == []


def test_what_llama_cpp_logs_between_the_rows_is_passed_over_and_a_windows_plus_is_a_stddev() -> None:
    """The Vulkan backend's "Compiling shaders...Done!" lands between the header and the rows when stderr and stdout
    share a terminal (llama.cpp#10597); a Windows console without a ± glyph prints "+" (ipex-llm#13309)."""
    head = ("| model | size | params | backend | ngl | test | t/s |\n| --- | ---: | ---: | --- | --: | ---: | ---: |\n")
    row = "| llama 8B Q4_K - Medium | 4.58 GiB | 8.03 B | Vulkan | 99 | {test} | {rate} |\n"
    text = (head + "ggml_vulkan: Compiling shaders..............................Done!\n"
            + row.format(test="pp512", rate="154.20 ± 0.02") + "ggml_vulkan: Compiling shaders..Done!\n"
            + row.format(test="tg128", rate="50.90 + 0.06") + "\nbuild: a0dd7795 (5589)\n")
    [table] = find_tables(text, "x")
    assert [r.line for r in table.rows] == [4, 6] and table.build_number == 5589
    pp, tg = markdown_records(text, "x", Context(citation="x", gpus=["Arc A770"]))
    assert tg.summary.tg_tps is not None and (tg.summary.tg_tps.mean, tg.summary.tg_tps.stddev) == (50.90, 0.06)
    assert tg.summary.tg_tps.text == "50.90 + 0.06"
    # any other line ends the table: its rows after it are not read as this table's
    [cut] = find_tables(text.replace("ggml_vulkan: Compiling shaders..Done!", "main: error"), "x")
    assert [r.line for r in cut.rows] == [4] and cut.build_number is None


def test_device_lines_of_a_run_without_a_table_are_not_the_next_tables() -> None:
    """A failed run (its device lines, an error, no table) pasted before another run: the table gets its own."""
    one = (FIXTURES / "llama-cpp-pr15952-cuda-b6457.md").read_text(encoding="utf-8").split("-->\n", 1)[1]
    failed = ("ggml_cuda_init: found 2 CUDA devices:\n  Device 0: NVIDIA GeForce RTX 3090, compute capability 8.6\n"
              "  Device 1: NVIDIA GeForce RTX 3090, compute capability 8.6\nmain: error: failed to load model\n")
    [table] = find_tables(failed + one, "x")
    assert table.devices == ["NVIDIA GeForce RTX 5070"]
    text = one.replace("build: 08a216474 (6457)", "build: unknown (0)")
    recs = markdown_records(text, "x", Context(citation="x"))
    assert recs[0].llama_cpp.version is None and recs[0].llama_cpp.commit is None
