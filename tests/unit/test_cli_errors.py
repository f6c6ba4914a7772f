"""Hostile command lines (issue 25, 7): each is one line on stderr naming the file or flag and what to do, never
a traceback, and never "0 records valid" for a path that holds none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.records import store
from fixtures.records.factory import cpu_host, model, speed

COLLECTOR = [sys.executable, "-m", "collector.cli"]


def _cli(args: list[str], tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COLLECTOR, *args], capture_output=True, text=True, cwd=tmp, timeout=120,
                          env={**os.environ, "TMPDIR": str(tmp), **env})


def _one_error(r: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "pydantic" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    store.save_record(speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0}, ctx_size=512), tmp_path / "data")
    return tmp_path / "data"


@pytest.mark.parametrize("cache", ["a-file", "/proc/qa-cache"])
@pytest.mark.parametrize("command", [["validate", "DATA"], ["run", "--dry-run", "--data-dir", "DATA"]])
def test_a_cache_dir_that_cannot_be_one(tmp_path: Path, data: Path, cache: str, command: list[str]) -> None:
    if cache == "a-file":
        cache = str(tmp_path / "a-file")
        Path(cache).write_text("not a folder")
    line = _one_error(_cli([str(data) if a == "DATA" else a for a in command], tmp_path, COLLECTOR_CACHE_DIR=cache))
    assert "COLLECTOR_CACHE_DIR" in line and cache in line and "writable folder" in line, line


@pytest.mark.parametrize("path", ["/dev/null", "EMPTY"])
def test_validate_of_nothing_is_an_error(tmp_path: Path, path: str) -> None:
    if path == "EMPTY":
        path = str(tmp_path / "empty")
        Path(path).mkdir()
    r = _cli(["validate", path], tmp_path)
    assert r.returncode == 1 and "records valid" not in r.stdout, r.stdout
    assert path in r.stderr and "Traceback" not in r.stderr


def test_file_names_are_shown_escaped(tmp_path: Path, data: Path) -> None:
    """A name with ESC or a newline would recolour the terminal or fake a line of the report."""
    folder = next(data.rglob("*.yaml")).parent
    (folder / "a\x1b[31mred.yaml").write_text("schema_version: 1\n")
    (folder / "b\nerror: all good.yaml").write_text("schema_version: 1\n")
    r = _cli(["validate", str(data)], tmp_path)
    assert r.returncode == 1 and "\x1b" not in r.stderr + r.stdout
    invalid = [ln for ln in r.stderr.splitlines() if ln.startswith("invalid")]
    assert len(invalid) == 2 and any("a\\x1b[31mred.yaml" in ln for ln in invalid), r.stderr
    assert any("b\\nerror: all good.yaml" in ln for ln in invalid), r.stderr
    assert not any(ln.startswith("error: all good") for ln in r.stderr.splitlines())


@pytest.mark.parametrize("budget", ["nan", "inf", "-inf", "1e400"])
def test_tune_memory_budget_must_be_a_number(tmp_path: Path, budget: str) -> None:
    line = _one_error(_cli(["tune", "model.gguf", "--memory-budget", budget], tmp_path), code=2)
    assert "--memory-budget" in line and "budget nan" not in line, line


def test_tune_context_too_small_says_which_context_would_do(tmp_path: Path) -> None:
    line = _one_error(_cli(["tune", "model.gguf", "--ctx", "512"], tmp_path))
    assert "--ctx 512 is too small" in line and "--ctx 576 or more" in line and "at most 0" not in line, line
    line = _one_error(_cli(["tune", "model.gguf", "--ctx", "2048", "--depth", "1500"], tmp_path))
    assert "a depth of at most 1472" in line and "--ctx 2076" in line, line


@pytest.mark.slow
def test_quantize_out_dir_that_is_a_file(tmp_path: Path, llama_tools: object, smollm2: Path) -> None:
    hostname = tmp_path / "hostname"
    hostname.write_text("host\n")
    line = _one_error(_cli(["quantize", str(smollm2), "Q8_0", "--out-dir", str(hostname)], tmp_path))
    assert f"--out-dir {hostname}" in line and "folder that can be written" in line, line
    assert hostname.read_text() == "host\n"
