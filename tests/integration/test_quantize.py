"""The quant ladder with the real llama-quantize / llama-imatrix (shares its output folder with test_kld)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.cli import cli
from collector.errors import CollectorError
from collector.kld_plan import BUILTIN_CORPUS
from collector.llama.binaries import LlamaTools
from collector.model_info import model_facts
from collector.quantize import build_ladder, needs_imatrix

pytestmark = pytest.mark.slow


def _ladder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "ladder"


def test_ladder_types_imatrix_and_reuse(llama_tools: LlamaTools, smollm2: Path,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    out = _ladder_dir(tmp_path_factory)
    ladder = build_ladder(llama_tools, smollm2, ["Q8_0", "Q2_K_S"], corpus=BUILTIN_CORPUS, imatrix_ctx=256,
                          imatrix_chunks=2, threads=2, out_dir=out)
    assert model_facts(ladder.base).quant == "F16"
    assert [(t, model_facts(p).quant) for t, p in ladder.quants] == [("Q8_0", "Q8_0"), ("Q2_K_S", "Q2_K_S")]
    assert ladder.imatrix is not None and ladder.imatrix.is_file()
    # the imatrix file depends on the corpus, so the file built with it says which one
    assert ladder.imatrix.stem in ladder.quants[1][1].name
    assert model_facts(ladder.quants[1][1]).size_bytes < model_facts(ladder.quants[0][1]).size_bytes
    assert not list(out.glob("*.part")) and not list(out.glob("*.part.gguf"))
    again = build_ladder(llama_tools, smollm2, ["Q8_0", "Q2_K_S"], corpus=BUILTIN_CORPUS, imatrix_ctx=256,
                         imatrix_chunks=2, threads=2, out_dir=out)
    assert again.built == [] and again.quants == ladder.quants and again.quantize_seconds == 0

    res = CliRunner().invoke(cli, ["quantize", str(smollm2), "Q8_0", "--out-dir", str(out)])
    assert res.exit_code == 0, res.output
    assert "Q8_0     reused" in res.output and "F16      reused" in res.output


def test_imatrix_types_need_a_corpus(llama_tools: LlamaTools, smollm2: Path,
                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    assert needs_imatrix("iq2_xs") and needs_imatrix("Q2_K_S") and not needs_imatrix("Q2_K")
    with pytest.raises(CollectorError, match="IQ2_XS need an importance matrix"):
        build_ladder(llama_tools, smollm2, ["IQ2_XS"], corpus=None, out_dir=_ladder_dir(tmp_path_factory))
    with pytest.raises(CollectorError, match="unknown quantization type 'Q9_K'"):
        build_ladder(llama_tools, smollm2, ["Q9_K"], out_dir=_ladder_dir(tmp_path_factory))


def test_failed_quantize_leaves_no_file(llama_tools: LlamaTools, smollm2: Path, tmp_path: Path) -> None:
    """A llama-quantize that dies half-way (SIGKILL after writing) leaves neither the output nor its temp file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in llama_tools.bin_dir.iterdir():
        if tool.name != "llama-quantize":
            (bindir / tool.name).symlink_to(tool)
    (bindir / "llama-quantize").write_text('#!/bin/sh\nfor a; do out=$prev; prev=$a; done\n'
                                           'echo partial > "$out"\necho "writing $out"\nkill -KILL $$\n')
    (bindir / "llama-quantize").chmod(0o755)
    out = tmp_path / "ladder"
    with pytest.raises(CollectorError, match="llama-quantize F16 of .* failed: llama-quantize was killed by signal 9"):
        build_ladder(LlamaTools(bindir, "--llama-bin"), smollm2, ["Q8_0"], out_dir=out)
    assert list(out.iterdir()) == []


def test_cli_quantize_bad_corpus(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["quantize", "x.gguf", "IQ2_XS", "--corpus", str(tmp_path / "nope.txt")])
    assert res.exit_code != 0 and "--corpus" in str(res.exception)
