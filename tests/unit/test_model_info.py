from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import collector.models.info as mi
from collector.base import cache
from collector.base.cache import sha256_files
from collector.base.errors import CollectorError
from collector.models.info import gguf_shards, model_facts
from collector.records.schema import ModelInfo
from moe_model import write_tiny_moe_gguf


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def smol_facts(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelInfo:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLLECTOR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return model_facts(smollm2)


def test_smollm2_facts(smol_facts: ModelInfo, smollm2: Path) -> None:
    f = smol_facts
    assert (f.arch, f.quant, f.file_type, f.size_label) == ("llama", "Q4_1", "Q4_1", "135M")
    assert f.name == "Smollm2 135M 8k Lc100K Mix1 Ep2"
    assert (f.file_name, f.n_files, f.size_bytes) == ("SmolLM2-135M-Instruct.Q4_1.gguf", 1, smollm2.stat().st_size)
    assert f.params_total == 134515008  # llama.cpp prints "model params = 134.52 M" for this file
    assert f.params_active == f.params_total  # dense
    assert (f.n_layers, f.n_vocab, f.ctx_train) == (30, 49152, 8192)
    assert (f.n_experts, f.n_experts_used) == (None, None)
    assert f.bits_per_weight == pytest.approx(8 * smollm2.stat().st_size / 134515008, abs=1e-4)


def test_smollm2_bytes_per_token_counts_the_tied_embedding(smol_facts: ModelInfo, smollm2: Path) -> None:
    # SmolLM2 has no output.weight: token_embd doubles as the output matrix, so every tensor byte is read.
    # The tensor data runs from offset 1785664 (gguf-dump) to the end of the file, with no padding in this file.
    assert smol_facts.bytes_per_token == smollm2.stat().st_size - 1785664 == 96576768


def test_smollm2_sha256_is_of_the_file_bytes(smol_facts: ModelInfo, smollm2: Path) -> None:
    assert smol_facts.sha256 == hashlib.sha256(smollm2.read_bytes()).hexdigest()


def test_sha256_cached_by_path_size_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc" * 1000)
    digest = sha256_files([f])
    assert digest == hashlib.sha256(b"abc" * 1000).hexdigest()
    with cache.KeyValueCache("hashes", "files", "1") as kv:
        entries = list(kv.items())
    assert len(entries) == 1 and entries[0][1] == digest

    def must_not_hash(paths: list[Path]) -> str:
        raise AssertionError("re-hashed a file whose path, size and mtime did not change")

    with monkeypatch.context() as m:
        m.setattr(cache, "_hash_files", must_not_hash)
        assert sha256_files([f]) == digest

    f.write_bytes(b"abd" * 1000)  # same size, new content
    os.utime(f, ns=(1, 1))  # and a different mtime
    assert sha256_files([f]) == hashlib.sha256(b"abd" * 1000).hexdigest()


def test_corrupt_cache_entry_is_rehashed(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"hello")
    sha256_files([f])
    with cache.KeyValueCache("hashes", "files", "1") as kv:
        kv.update([(k, "nope") for k, _ in list(kv.items())])
    assert sha256_files([f]) == hashlib.sha256(b"hello").hexdigest()
    for db in cache.cache_dir("hashes").glob("*.sqlite"):
        db.write_bytes(b"not a database")
    assert sha256_files([f]) == hashlib.sha256(b"hello").hexdigest()


def test_not_gguf_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"<html>not found</html>")
    with pytest.raises(CollectorError, match=rf"^{bad} is not a GGUF file"):
        model_facts(bad)
    with pytest.raises(CollectorError, match="model file not found"):
        model_facts(tmp_path / "missing.gguf")


def test_truncated_gguf_is_a_collector_error(tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(write_tiny_moe_gguf(tmp_path / "m.gguf", toy_vocab=500).read_bytes()[:5000])
    with pytest.raises(CollectorError, match=rf"^{cut}: unreadable GGUF"):
        model_facts(cut)


def test_split_model_counts_all_shards(tmp_path: Path) -> None:
    whole_path = write_tiny_moe_gguf(tmp_path / "whole.gguf", toy_vocab=500)
    first = write_tiny_moe_gguf(tmp_path / "split.gguf", split_max_tensors=10, toy_vocab=500)
    shards = sorted(tmp_path.glob("split-*-of-*.gguf"))
    assert first.name == "split-00001-of-00003.gguf" and len(shards) == 3
    whole, split = model_facts(whole_path), model_facts(shards[1])  # any shard finds its siblings
    assert whole.n_files == 1 and split.n_vocab == 500
    assert split.n_files == 3 and split.file_name == first.name
    assert split.size_bytes == sum(p.stat().st_size for p in shards)
    assert (split.params_total, split.params_active, split.bytes_per_token, split.n_vocab) == \
        (whole.params_total, whole.params_active, whole.bytes_per_token, whole.n_vocab)
    assert split.sha256 == hashlib.sha256(b"".join(p.read_bytes() for p in shards)).hexdigest()
    shards[2].unlink()
    with pytest.raises(CollectorError, match="split-00003-of-00003.gguf: shard of split model .* is missing"):
        gguf_shards(first)


def test_per_layer_expert_used_count(tmp_path: Path) -> None:
    import math

    from moe_model import tiny_moe_shapes
    shapes = tiny_moe_shapes(500, n_layers=2, n_experts=4)
    f = model_facts(write_tiny_moe_gguf(tmp_path / "m.gguf", n_experts_used=[1, 3], toy_vocab=500))
    per_layer = [sum(math.prod(v) for k, v in shapes.items() if k.startswith(f"blk.{i}.") and "_exps." in k)
                 for i in range(2)]
    total = sum(math.prod(v) for v in shapes.values())
    assert f.params_total == total
    assert f.params_active == total - per_layer[0] * 3 // 4 - per_layer[1] * 1 // 4
    assert (f.n_experts, f.n_experts_used) == (4, 3)  # the largest per-layer count


@pytest.mark.parametrize(("ftype", "quant", "name"), [
    (15, "Q4_K_M", "Q4_K - Medium"), (20, "IQ2_XS", "IQ2_XS - 2.3125 bpw"), (27, "IQ3_M", "IQ3_S mix - 3.66 bpw"),
    (0, "F32", "all F32"), (38, "MXFP4_MOE", "MXFP4 MoE"), (1024 | 18, "Q6_K", "(guessed) Q6_K"),
    (99, "FTYPE_99", "unknown, may not work"), (None, None, None),
])
def test_file_type_names(ftype: int | None, quant: str | None, name: str | None) -> None:
    assert mi._quant(ftype) == (quant, name)


def test_file_type_table_matches_gguf_enum() -> None:
    from gguf import LlamaFileType
    for member in LlamaFileType:
        if member.name != "GUESSED":
            assert mi.FILE_TYPES[member.value][0] == member.name.removeprefix("MOSTLY_").removeprefix("ALL_")
