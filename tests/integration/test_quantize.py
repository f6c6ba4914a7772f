"""The quant ladder with the real llama-quantize / llama-imatrix (shares its output folder with test_kld)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.base.cache import sha256_files
from collector.base.errors import CollectorError
from collector.cli import cli
from collector.corpus import BUILTIN_CORPUS
from collector.llama.binaries import LlamaTools
from collector.models.info import model_facts
from collector.quality.quantize import build_ladder, needs_imatrix
from fakes import fake_tool_folder

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
    # files built with an importance matrix live in the folder named after the imatrix's inputs, with plain names
    assert ladder.quants[1][1].parent == ladder.imatrix.parent != out
    assert ladder.quants[1][1].name == "SmolLM2-135M-Instruct.Q2_K_S.gguf"
    q2 = model_facts(ladder.quants[1][1])
    assert q2.size_bytes < model_facts(ladder.quants[0][1]).size_bytes
    # SmolLM2's 576-wide rows do not fit K-quant blocks: llama.cpp fell back, and the facts say so
    assert q2.quant_note and q2.quant_note.startswith("only ") and "fell back" in q2.quant_note
    assert "Q2_K" in q2.tensor_types and sum(q2.tensor_types.values()) > 100_000_000
    assert not list(out.rglob("*.part")) and not list(out.rglob("*.part.gguf"))
    again = build_ladder(llama_tools, smollm2, ["Q8_0", "Q2_K_S"], corpus=BUILTIN_CORPUS, imatrix_ctx=256,
                         imatrix_chunks=2, threads=2, out_dir=out)
    assert again.built == [] and again.quants == ladder.quants and again.quantize_seconds == 0

    res = CliRunner().invoke(cli, ["quantize", str(smollm2), "Q8_0", "--out-dir", str(out)])
    assert res.exit_code == 0, res.output
    assert "Q8_0     reused" in res.output and "F16      reused" in res.output


def test_ladder_files_are_reproducible(llama_tools: LlamaTools, smollm2: Path, tmp_path: Path,
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same inputs give the same bytes in another folder: no path ends up in the GGUF metadata."""
    first = build_ladder(llama_tools, smollm2, ["Q2_K_S"], corpus=BUILTIN_CORPUS, imatrix_ctx=256,
                         imatrix_chunks=2, threads=2, out_dir=_ladder_dir(tmp_path_factory))
    second = build_ladder(llama_tools, smollm2, ["Q2_K_S"], corpus=BUILTIN_CORPUS, imatrix_ctx=256,
                          imatrix_chunks=2, threads=2, out_dir=tmp_path / "elsewhere" / "ladder")
    assert second.built and first.imatrix != second.imatrix
    assert sha256_files([first.quants[0][1]]) == sha256_files([second.quants[0][1]])
    assert sha256_files([first.base]) == sha256_files([second.base])


def test_imatrix_types_need_a_corpus(llama_tools: LlamaTools, smollm2: Path,
                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    assert needs_imatrix("iq2_xs") and needs_imatrix("Q2_K_S") and not needs_imatrix("Q2_K")
    with pytest.raises(CollectorError, match="IQ2_XS need an importance matrix"):
        build_ladder(llama_tools, smollm2, ["IQ2_XS"], corpus=None, out_dir=_ladder_dir(tmp_path_factory))
    with pytest.raises(CollectorError, match="unknown quantization type 'Q9_K'"):
        build_ladder(llama_tools, smollm2, ["Q9_K"], out_dir=_ladder_dir(tmp_path_factory))


def test_failed_quantize_leaves_no_file(llama_tools: LlamaTools, smollm2: Path, tmp_path: Path) -> None:
    """A llama-quantize that dies half-way (SIGKILL after writing) leaves neither the output nor its temp file."""
    bindir = fake_tool_folder(llama_tools.bin_dir, tmp_path / "bin", "llama-quantize",
                              'for a; do out=$prev; prev=$a; done\necho partial > "$out"\necho "writing $out"\n'
                              'kill -KILL $$\n')
    out = tmp_path / "ladder"
    with pytest.raises(CollectorError, match="llama-quantize F16 of .* failed: llama-quantize was killed by signal 9"):
        build_ladder(LlamaTools(bindir, "--llama-bin"), smollm2, ["Q8_0"], out_dir=out)
    assert list(out.iterdir()) == []


def test_cli_quantize_bad_corpus(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["quantize", "x.gguf", "IQ2_XS", "--corpus", str(tmp_path / "nope.txt")])
    assert res.exit_code != 0 and "--corpus" in str(res.exception)
