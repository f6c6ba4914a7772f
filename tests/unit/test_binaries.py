from __future__ import annotations

from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.llama.binaries import LlamaTools, find_tools, parse_version
from collector.llama.tools import clean_env


def test_parse_version_of_this_tree() -> None:
    v = parse_version("version: 0.6.0-dev (build 0, commit unknown)\nbuilt with GNU 12.2.0 for Linux x86_64\n")
    assert (v.version, v.build_number, v.commit, v.backend) == ("b0-unknown", 0, "unknown", "CPU")
    assert (v.compiler, v.target) == ("GNU 12.2.0", "Linux")


def test_parse_version_cuda_build() -> None:
    v = parse_version("ggml_cuda_init: found 1 CUDA devices\nversion: 8054 (abc1234)\nbuilt with cc for x86_64\n")
    assert (v.version, v.commit, v.backend) == ("b8054-abc1234", "abc1234", "CUDA")


def test_order_llama_bin_env_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "llama-server").write_text("#!/bin/sh\n")
        (d / "llama-server").chmod(0o755)
    assert find_tools(a, env={"LLAMA_CPP_BIN": str(b)}).found_by == "--llama-bin"
    assert find_tools(None, env={"LLAMA_CPP_BIN": str(b)}).bin_dir == b.resolve()
    assert find_tools(None, env={"PATH": str(a)}).found_by == "PATH"


def test_bad_llama_bin_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match=r"--llama-bin .*: no llama-server"):
        find_tools(tmp_path)


def test_missing_tool_in_build_is_named(tmp_path: Path) -> None:
    (tmp_path / "llama-perplexity").write_text("#!/bin/sh\n")
    (tmp_path / "llama-perplexity").chmod(0o755)
    (tmp_path / "llama-bench").write_text("not executable")
    tools = LlamaTools(tmp_path, "--llama-bin")
    for missing in ("llama-nonexistent", "llama-bench"):
        with pytest.raises(CollectorError, match=f"{missing} not found in {tmp_path} \\(found via --llama-bin\\)"):
            tools.path(missing)
    assert tools.path("llama-perplexity") == tmp_path / "llama-perplexity"


def test_clean_env_drops_llama_arg() -> None:
    assert clean_env({"LLAMA_ARG_CTX_SIZE": "1", "PATH": "/bin"}) == {"PATH": "/bin"}
