"""Every input surface of the command line gives one line (file, row or key, and what to do) within bounded time
and memory (issue 35, 6): GGUF files given to `collector estimate`, llama-bench markdown tables, the LocalScore and
XiongjieDai source folders, and a llama-server whose `--list-devices` prints an unexpected shape.

The console script's entry point runs (test_hostile_cli.run_main): anything but one line, a traceback included,
fails. Inputs are made here: GGUFs by gguf-py from a tiny model, folders from the kept sources with one thing
changed (source.yaml pinning the changed file's sha256, as a stranger's folder would).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from gguf import GGUFReader, GGUFValueType
from hostile import DROP, hostile_text, imatrix_gguf, lengths, rewrite_gguf
from test_hostile_cli import run_main

from fakes import fake_llama_server

REPO = Path(__file__).resolve().parents[2]
FIXTURE_DATA = REPO / "tests" / "fixtures" / "records" / "data"
SEED = int(os.environ.get("QA_FUZZ_SEED", "20261206"))
Run = Any  # (args) -> (code, output)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    def run(args: list[str]) -> tuple[int, str]:
        return run_main(args, capsys, monkeypatch, tmp_path)
    return run


def _one_line(code: int, out: str, *words: str) -> str:
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), out[-3000:]
    assert "\x1b" not in out and "\x07" not in out, repr(out)  # no control code reaches the terminal
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# --- collector estimate FILE.gguf ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GGUFReader]:
    from moe_model import write_tiny_moe_gguf

    path = write_tiny_moe_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf", toy_vocab=64)
    return path, GGUFReader(path)


def _estimate(cli: Run, model: Path) -> tuple[int, str]:
    return cli(["estimate", str(model), "--device", "RTX 4090", "--data-dir", str(FIXTURE_DATA)])


def test_a_sound_tiny_gguf_is_estimated(cli: Run, tiny: tuple[Path, GGUFReader]) -> None:
    code, out = _estimate(cli, tiny[0])
    assert code == 0 and "Tiny-MoE-Test" in out, out


BAD_GGUF = {
    "name not text": ({"general.name": (5, GGUFValueType.UINT32)}, "general.name"),
    "block_count text": ({"qwen3moe.block_count": ("two", GGUFValueType.STRING)}, "qwen3moe.block_count"),
    "block_count missing": ({"qwen3moe.block_count": DROP}, "qwen3moe.block_count"),
    "block_count huge": ({"qwen3moe.block_count": (10**12, GGUFValueType.UINT64)}, "qwen3moe.block_count"),
    "block_count negative": ({"qwen3moe.block_count": (-2, GGUFValueType.INT32)}, "qwen3moe.block_count"),
    "heads a float": ({"qwen3moe.attention.head_count": (4.5, GGUFValueType.FLOAT32)},
                      "qwen3moe.attention.head_count"),
    "heads zero": ({"qwen3moe.attention.head_count": (0, GGUFValueType.UINT32),
                    "qwen3moe.attention.key_length": DROP}, "qwen3moe.attention.head_count"),
    "kv heads a huge array": ({"qwen3moe.attention.head_count_kv": ([2] * 300_000, GGUFValueType.ARRAY,
                                                                    GGUFValueType.INT32)},
                              "qwen3moe.attention.head_count_kv"),
    "kv heads strings": ({"qwen3moe.attention.head_count_kv": (["a", "b"], GGUFValueType.ARRAY,
                                                               GGUFValueType.STRING)},
                         "qwen3moe.attention.head_count_kv"),
    "experts used a float": ({"qwen3moe.expert_used_count": (2.5, GGUFValueType.FLOAT32)},
                             "qwen3moe.expert_used_count"),
    "experts zero": ({"qwen3moe.expert_count": (0, GGUFValueType.UINT32)}, None),
    "embedding huge": ({"qwen3moe.embedding_length": (1 << 62, GGUFValueType.UINT64)},
                       "qwen3moe.embedding_length"),
    "file type text": ({"general.file_type": ("Q4", GGUFValueType.STRING)}, "general.file_type"),
    "window a list of text": ({"qwen3moe.attention.sliding_window": (128, GGUFValueType.UINT32),
                               "qwen3moe.attention.sliding_window_pattern": (["x"], GGUFValueType.ARRAY,
                                                                             GGUFValueType.STRING)},
                              "qwen3moe.attention.sliding_window_pattern"),
    "context negative": ({"qwen3moe.context_length": (-1, GGUFValueType.INT64)}, "qwen3moe.context_length"),
    "no architecture": ({"general.architecture": ("", GGUFValueType.STRING)}, "general.architecture"),
}


@pytest.mark.parametrize("case", list(BAD_GGUF))
def test_a_gguf_with_unexpected_metadata_is_one_line_naming_the_key(case: str, cli: Run, tmp_path: Path,
                                                                     tiny: tuple[Path, GGUFReader]) -> None:
    changes, key = BAD_GGUF[case]
    path = rewrite_gguf(tiny[0], tmp_path / "m.gguf", changes, tiny[1])
    start = time.process_time()
    code, out = _estimate(cli, path)
    assert time.process_time() - start < 30
    if key is None and code == 0:  # a value llama.cpp takes (no experts: a dense reading) may be estimated
        return
    _one_line(code, out, "m.gguf", key or "")


def test_the_importance_matrix_collector_quantize_writes_is_not_a_model(cli: Run, tmp_path: Path) -> None:
    code, out = _estimate(cli, imatrix_gguf(tmp_path / "imatrix.gguf"))
    _one_line(code, out, "imatrix.gguf", "importance matrix")


def test_control_codes_of_a_gguf_name_do_not_reach_the_terminal(cli: Run, tmp_path: Path,
                                                               tiny: tuple[Path, GGUFReader]) -> None:
    name = "\x1b[2J\x1b]0;pwned\x07\x1b[31mEvil\u202eName\r\nfake: line"
    path = rewrite_gguf(tiny[0], tmp_path / "m.gguf", {"general.name": name}, tiny[1])
    code, out = _estimate(cli, path)
    assert code == 0 and "Evil" in out, out
    assert not any(c in out for c in "\x1b\x07\u202e\r"), repr(out)
    assert not any(line.startswith("fake: line") for line in out.splitlines())


# --- collector import llama-bench post.md ----------------------------------------------------------------------

HEADER = "| model | size | params | backend | ngl | test | t/s |\n| --- | ---: | ---: | --- | --: | --: | --: |\n"
ROW = "| llama 8B Q4_K - Medium | 4.58 GiB | 8.03 B | CUDA | {ngl} | {test} | {rate} |\n"
DEVICE = "Device 0: NVIDIA GeForce RTX 4090, compute capability 8.9, VMM: yes\n"


def _row(**cells: str) -> str:
    return ROW.format(**{"ngl": "99", "test": "tg128", "rate": "130.58 ± 0.66", **cells})


BAD_TABLES = {
    "rate 400 digits": DEVICE + HEADER + _row(rate="1" * 400),
    "rate past 1e15": DEVICE + HEADER + _row(rate="99999999999999999999 ± 1"),
    "test 5000 digits": DEVICE + HEADER + _row(test="pp" + "9" * 5000),
    "depth past 2**53": DEVICE + HEADER + _row(test="tg128 @ d" + "9" * 20),
    "ngl huge": DEVICE + HEADER + _row(ngl="9" * 30),
    "ngl 5000 digits": DEVICE + HEADER + _row(ngl="9" * 5000),
    "split 1.2.3": DEVICE + HEADER.replace("| t/s |", "| ts | t/s |").replace("--: |\n", "--: | --: |\n", 1)
    + _row().replace("| 130.58", "| 1.2.3/4 | 130.58"),
    "100k columns": DEVICE + "| test | t/s |" + " x |" * 100_000 + "\n|---|---|" + "---|" * 100_000 + "\n",
    "metal device, spaces": "ggml_metal_init: found device: x" + " " * 1_000_000 + "y\n" + HEADER + _row(),
    "200k rows": DEVICE + HEADER + _row() * 150_000,
    "empty gpu name": "Device 0:  , compute capability 8.9\n" + HEADER + _row(),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_a_markdown_table_it_cannot_take_is_one_line(case: str, cli: Run, tmp_path: Path) -> None:
    post = tmp_path / "post.md"
    post.write_text(BAD_TABLES[case])
    start = time.process_time()
    code, out = cli(["import", "llama-bench", str(post), "--citation", "a thread", "--data-dir",
                     str(tmp_path / "data")])
    assert time.process_time() - start < 30, "bounded time"
    _one_line(code, out, "post.md")
    assert not (tmp_path / "data").exists()  # nothing partial on disk


def test_a_build_line_of_5000_digits_is_no_build(cli: Run, tmp_path: Path) -> None:
    """int() of the build number raised ValueError (Python refuses 4300+ digits): the build is not stated."""
    post = tmp_path / "post.md"
    post.write_text(DEVICE + HEADER + _row() + "\nbuild: abc123 (" + "9" * 5000 + ")\n")
    code, out = cli(["import", "llama-bench", str(post), "--citation", "t", "--data-dir", str(tmp_path / "data")])
    assert code == 0 and out.startswith("imported "), out[-2000:]
    from collector.records.index import load_records

    [rec] = load_records(tmp_path / "data")
    assert rec.llama_cpp.build_number is None and "build_line" not in (rec.source.raw or {})


def test_random_markdown_tables_give_records_or_one_line(cli: Run, tmp_path: Path) -> None:
    """Property test: a real table with hostile text in random cells, or random lines between its rows."""
    rng = random.Random(SEED)
    good = DEVICE + HEADER + _row() + _row(test="pp512", rate="4000.1 ± 20.5") + "\nbuild: 4426e298 (2824)\n"
    spent = 0.0
    for n, size in enumerate(lengths(rng, 200_000, 30)):
        lines = good.splitlines(keepends=True)
        i = rng.randrange(len(lines))
        noise = hostile_text(rng, size)
        if rng.random() < 0.5 and lines[i].startswith("|"):
            cells = lines[i].split("|")
            j = rng.randrange(1, len(cells) - 1)
            cells[j] = f" {noise.replace('|', '')} "
            lines[i] = "|".join(cells)
        else:
            lines.insert(i, noise + "\n")
        post = tmp_path / f"post{n}.md"
        post.write_text("".join(lines), encoding="utf-8", errors="surrogatepass")
        start = time.process_time()
        code, out = cli(["import", "llama-bench", str(post), "--citation", "t", "--data-dir", str(tmp_path / "d")])
        took = time.process_time() - start
        spent += took
        assert took < 20, (SEED, n, size)
        if code != 0:
            _one_line(code, out)
    assert spent < 120


# --- collector import localscore|xiongjiedai SOURCE ------------------------------------------------------------

def _pin(folder: Path, kept: str, data: bytes) -> None:
    (folder / kept).write_bytes(data)
    meta = folder / "source.yaml"
    text = meta.read_text()
    old = next(line for line in text.splitlines() if line.startswith("sha256:"))
    meta.write_text(text.replace(old, f"sha256: {hashlib.sha256(data).hexdigest()}"))


def _localscore(tmp_path: Path) -> Path:
    folder = tmp_path / "localscore"
    shutil.copytree(REPO / "imports" / "localscore", folder)
    return folder


def _tsv(folder: Path) -> list[str]:
    return (folder / "localscore_results.tsv").read_text().splitlines(keepends=True)


def _cell(line: str, column: int, value: str) -> str:
    cells = line.rstrip("\n").split("\t")
    cells[column] = value
    return "\t".join(cells) + "\n"


LOCALSCORE = {  # what replaces row 2 of the kept TSV (columns: localscore.COLUMNS)
    "gen_tps 400 digits": lambda r: _cell(r, 2, "1" * 400),
    "gen_tps past 1e15": lambda r: _cell(r, 2, "9" * 20),
    "empty GPU name": lambda r: _cell(_cell(r, 11, ""), 12, "GPU"),
    "a cell past csv's limit": lambda r: _cell(r, 7, "x" * 200_000),
    "not UTF-8": lambda r: r,  # bytes replaced below
    "one cell short": lambda r: r.rsplit("\t", 1)[0] + "\n",
    "a quote": lambda r: _cell(r, 7, '"x'),
}


@pytest.mark.parametrize("case", list(LOCALSCORE))
def test_a_localscore_folder_it_cannot_take_is_one_line(case: str, cli: Run, tmp_path: Path) -> None:
    folder = _localscore(tmp_path)
    lines = _tsv(folder)
    lines[1] = LOCALSCORE[case](lines[1])
    data = "".join(lines).encode()
    if case == "not UTF-8":
        data = data.replace(b"\t", b"\t\xff\xfe", 1)
    _pin(folder, "localscore_results.tsv", data)
    code, out = cli(["import", "localscore", str(folder), "--data-dir", str(tmp_path / "data")])
    if case == "a quote" and code == 0:  # a quote is text in a TSV cell: imported as written
        return
    _one_line(code, out, "localscore_results.tsv")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("kept", ["/dev/zero", "missing.tsv", ".", "fifo", "../../outside.tsv"])
def test_a_localscore_source_yaml_pointing_anywhere_is_one_line(kept: str, cli: Run, tmp_path: Path) -> None:
    folder = _localscore(tmp_path)
    if kept == "fifo":
        os.mkfifo(folder / "fifo")
    (tmp_path / "outside.tsv").write_text("x")
    meta = folder / "source.yaml"
    meta.write_text(meta.read_text().replace("kept: localscore_results.tsv", f"kept: {kept}"))
    start = time.monotonic()
    code, out = cli(["import", "localscore", str(folder), "--data-dir", str(tmp_path / "data")])
    assert time.monotonic() - start < 30
    _one_line(code, out, "kept")


def _xiongjiedai(tmp_path: Path) -> Path:
    folder = tmp_path / "xj"
    shutil.copytree(REPO / "imports" / "xiongjiedai", folder)
    return folder


XIONGJIEDAI = {
    "GPU count huge": ("readme_gpu: 3070 8GB", "readme_gpu: 3070 8GB * 999999999999"),
    "GPU count 5000 digits": ("readme_gpu: 3070 8GB", "readme_gpu: 3070 8GB * " + "9" * 5000),
    "kept /dev/zero": ("kept: notebooks/3070_v3.md", "kept: /dev/zero"),
    "kept missing": ("kept: notebooks/3070_v3.md", "kept: notebooks/nope.md"),
    "kept outside": ("kept: notebooks/3070_v3.md", "kept: ../../../../etc/hostname"),
    "notebooks not a list": ("notebooks:\n", "notebooks: 5\nx:\n"),
}


@pytest.mark.parametrize("case", list(XIONGJIEDAI))
def test_a_xiongjiedai_folder_it_cannot_take_is_one_line(case: str, cli: Run, tmp_path: Path) -> None:
    folder = _xiongjiedai(tmp_path)
    meta = folder / "source.yaml"
    old, new = XIONGJIEDAI[case]
    assert old in meta.read_text()
    meta.write_text(meta.read_text().replace(old, new, 1))
    start = time.monotonic()
    code, out = cli(["import", "xiongjiedai", str(folder), "--data-dir", str(tmp_path / "data")])
    assert time.monotonic() - start < 30
    _one_line(code, out, "source.yaml" if "kept" not in case else "kept")
    assert not (tmp_path / "data").exists()


def test_a_xiongjiedai_notebook_of_many_tables_is_read_in_bounded_time(tmp_path: Path) -> None:
    """Each table looked up its cell by splitting the whole file again (and each row its number by a list search):
    a cell of 100,000 lines and 5,000 one-row tables took minutes."""
    from collector.importers.xiongjiedai import load_records

    folder = _xiongjiedai(tmp_path)
    kept = folder / "notebooks" / "3070_v3.md"
    lines = kept.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("| model"))
    table = "\n" + "".join(lines[at:at + 3]) + "\n"  # the header, the separator and the first row
    _pin_notebook(folder, "notebooks/3070_v3.md", "".join(lines[:at]) + "printed\n" * 100_000 + table * 5000)
    start = time.process_time()
    records = load_records(folder)
    assert time.process_time() - start < 60, "bounded time"
    assert sum(1 for r in records if "3070_v3" in (r.source.citation or "")) == 5000


def _pin_notebook(folder: Path, kept: str, text: str) -> None:
    (folder / kept).write_text(text)
    meta = folder / "source.yaml"
    lines = meta.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.strip() == f"kept: {kept}")
    j = next(i for i in range(at, len(lines)) if lines[i].strip().startswith("kept_sha256:"))
    lines[j] = f"  kept_sha256: {hashlib.sha256(text.encode()).hexdigest()}\n"
    meta.write_text("".join(lines))


# --- a llama-server's device list ------------------------------------------------------------------------------

LISTINGS = [
    "Available devices:\n  CUDA0: NVIDIA (" + "9" * 400 + " MiB, 1 MiB free)\n",
    "Available devices:\n  CUDA0: NVIDIA (99999999999999999999 MiB, 9 MiB free)\n",
    "Available devices:\n  Vulkan0: \x1b[2J\x1b]0;pwned\x07<b>x</b>\u202e (1024 MiB, 512 MiB free)\n",
    "Available devices:\n" + "  CUDA0: x (1 MiB, 1 MiB free)\n" * 50_000,
]


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda s: repr(s[20:50]))
def test_a_device_list_of_an_unexpected_shape_does_not_crash_the_host_probe(listing: str, cli: Run,
                                                                            tmp_path: Path) -> None:
    """`collector tune --dry-run` (and `collector run`) probe the host with `llama-server --list-devices`."""
    folder = fake_llama_server(tmp_path / "bin", "", build=11434, devices=listing)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    code, out = cli(["tune", str(model), "--dry-run", "--llama-bin", str(folder), "--memory-budget", "500"])
    assert code == 0, out[-2000:]
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
