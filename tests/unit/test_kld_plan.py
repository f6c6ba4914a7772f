"""Validation of a plan's kld: section: every error names file:line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.base.yamlcheck import Section, load_yaml_file
from collector.corpus import BUILTIN_CORPUS
from collector.quality.kld_plan import parse_kld


def parse(tmp_path: Path, body: str):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    f = tmp_path / "plan.yaml"
    f.write_text("name: t\nkld:\n" + "".join(f"  {line}\n" for line in body.strip().splitlines()), encoding="utf-8")
    return parse_kld(Section(load_yaml_file(f), f, "").section("kld"), tmp_path)


def test_defaults_and_pairs(tmp_path: Path) -> None:
    p = parse(tmp_path, "base: m.gguf\nquants: [m.gguf]\nkv_cache: [[q8_0, q8_0], q4_0]")
    assert (p.ctx_size, p.chunks, p.batch_size, p.config.flash_attn, p.keep_logits) == (512, 16, 2048, "on", True)
    assert p.kv_cache == (("q8_0", "q8_0"), ("q4_0", "q4_0"))
    assert p.corpus_path == BUILTIN_CORPUS and p.corpus_name == "python-docs-3.11"
    assert p.resolve("m.gguf") == tmp_path / "m.gguf"


def test_ladder(tmp_path: Path) -> None:
    p = parse(tmp_path, "ladder:\n  source: m.gguf\n  types: [q8_0, IQ2_XS]\ncorpus: builtin")
    assert p.base is None and p.ladder.types == ("Q8_0", "IQ2_XS") and p.ladder.base_type == "F16"


@pytest.mark.parametrize("body, where, text", [
    ("base: m.gguf\nquants: [m.gguf]\ncorpus: missing.txt", ":5", "kld.corpus: corpus file missing.txt not found"),
    ("base: m.gguf\nquants: [m.gguf]\nctxsize: 512", ":5", "kld.ctxsize: unknown key"),
    ("base: m.gguf\nquants: [m.gguf, nope.gguf]", ":4", "kld.quants: model file nope.gguf not found"),
    ("base: m.gguf\nkv_cache:\n  - q8_0\n  - [q4_0, q3_0]", ":6", "kld.kv_cache: ['q4_0', 'q3_0'] is not a KV-cache"),
    ("base: m.gguf\nquants: [m.gguf]\nctx_size: 512\nbatch_size: 768", ":6", "kld.batch_size: must be smaller"),
    ("base: m.gguf\nkv_cache: [q4_0]\nflash_attn: off", ":4", "kld.kv_cache: a quantized V cache needs flash"),
    ("base: m.gguf\nquants: [m.gguf]\nflash_attn: maybe", ":5", "kld.flash_attn: expected on, off or auto"),
    ("base: m.gguf\nquants: [m.gguf]\nn_gpu_layers: -5", ":5", "kld.n_gpu_layers: expected an integer >= 0, auto"),
    ("base: m.gguf\nquants: [m.gguf]\nextra_args: [-c, '9']", ":5", "kld.extra_args: -c is set by the collector"),
    ("base: m.gguf\nquants: [m.gguf]\nchunks: 0", ":5", "kld.chunks: must be a positive integer"),
    ("base: m.gguf", ":2", "kld: has nothing to score"),
    ("quants: [m.gguf]", ":2", "kld: needs `base:`"),
    ("base: m.gguf\nladder:\n  source: m.gguf\n  types: [Q4_K_M]", ":3", "kld.base: give either base or ladder"),
    ("ladder:\n  source: m.gguf\n  types: [Q4_K_M, Q9_K]", ":5", "kld.ladder.types: unknown quantization type"),
    ("ladder:\n  source: m.gguf\n  base_type: Q4_0\n  types: [Q4_K_M]", ":5", "kld.ladder.base_type: must be one"),
    ("base: m.gguf\nkv_cache: [q8_0]\nctx_size:\n  - 512\n  - big", ":7", "kld.ctx_size: expected an integer"),
    ("base: m.gguf\nkv_cache: [q8_0]\nctx_size:\n  - 512\n  - 512", ":7", "kld.ctx_size: 512 is listed twice"),
    ("base: m.gguf\nkv_cache: [q8_0]\nctx_size:\n  - 512\n  - 4", ":7", "kld.ctx_size: must be at least 8, got 4"),
    ("base: m.gguf\nkv_cache: [q8_0]\nctx_size: [1024, 512]", ":5", "kld.ctx_size: list the sizes from smallest"),
    ("base: m.gguf\nquants: [m.gguf]\nctx_size: [512, 1024]", ":5", "kld.ctx_size: several context sizes score "
     "the KV-cache types"),
    ("base: m.gguf\nkv_cache: [q8_0]\nctx_size: [512, 1024]\nbatch_size: 1536", ":6",
     "kld.batch_size: must be smaller than ctx_size (1024) or a multiple"),
    ("base: m.gguf\nkv_cache: [q8_0]\nctx_size: [512, 1024]\nchunks: [16, 8, 4]", ":6",
     "kld.chunks: gives 3 counts for 2 ctx_size(s)"),
    ("base: m.gguf\nkv_cache: [q8_0]\nctx_size: [512, 1024]\nchunks: [16, 0]", ":6",
     "kld.chunks: must be a positive integer"),
])
def test_errors_name_file_line_and_key(tmp_path: Path, body: str, where: str, text: str) -> None:
    with pytest.raises(CollectorError) as exc:
        parse(tmp_path, body)
    msg = str(exc.value)
    assert f"plan.yaml{where}:" in msg and text in msg, msg


def test_kv_cache_at_several_context_sizes(tmp_path: Path) -> None:
    p = parse(tmp_path, "base: m.gguf\nquants: [m.gguf]\nkv_cache: [q8_0]\nctx_size: [512, 2048]\nchunks: [16, 4]")
    assert p.sizes == (512, 2048) and p.ctx_size == 512 and p.config.ctx_size == 512 and p.chunks == 16
    at = p.at(2048)
    assert (at.ctx_size, at.config.ctx_size, at.chunks, at.sizes, at.kv_cache) == (2048, 2048, 4, (2048,),
                                                                                      (("q8_0", "q8_0"),))
    one = parse(tmp_path, "base: m.gguf\nkv_cache: [q8_0]\nctx_size: [256, 1024]\nchunks: 8")
    assert (one.at(256).chunks, one.at(1024).chunks) == (8, 8)
    single = parse(tmp_path, "base: m.gguf\nkv_cache: [q8_0]\nctx_size: 1024")
    assert single.sizes == (1024,) and single.at(1024) == single
