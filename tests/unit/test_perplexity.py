"""llama-perplexity helpers that need no model: size prediction, header, fatal log lines, argv."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.llama.perplexity import (
    _fatal_in_log,
    check_free_space,
    logits_size_bytes,
    portable_argv,
    read_logits_header,
    scored_tokens,
)


def test_logits_size_matches_real_files() -> None:
    # the real base files of SmolLM2 (V=49152): 16 chunks at c=512, and 2 chunks at c=256 (measured here)
    assert logits_size_bytes(512, 16, 49152) == 401_145_748
    assert logits_size_bytes(256, 2, 49152) == 24_973_316
    assert logits_size_bytes(512, 1, 49153) - logits_size_bytes(512, 1, 49152) == 255 * 4  # odd V pads
    assert scored_tokens(512, 16) == 16 * 255 and scored_tokens(128, 1) == 63


def test_header(tmp_path: Path) -> None:
    f = tmp_path / "base.kld"
    f.write_bytes(b"_logits_" + struct.pack("<iii", 256, 49152, 2) + b"\0" * 64)
    assert read_logits_header(f) == (256, 49152, 2)
    f.write_bytes(b"garbage-not-logits-file")
    with pytest.raises(CollectorError, match="not a llama-perplexity base-logits file"):
        read_logits_header(f)


@pytest.mark.parametrize("line, text", [
    ("0.00.198.964 E kl_divergence: inconsistent vocabulary (49152 vs 49216)",
     "vocabulary of 49152 tokens but the model has 49216"),
    ("E kl_divergence: base.kld has been computed with 512, while the current context is 256. Increase it with -c",
     "computed with ctx_size 512 but this pass used 256"),
    ("E perplexity: you need at least 1024 tokens to evaluate perplexity with a context of 512",
     "ctx_size 512 needs at least 1024 tokens"),
    ("E kl_divergence: x.kld does not look like a file containing log-probabilities", "not a llama-perplexity logits"),
    ("E kl_divergence: failed reading evaluation tokens from x.kld", "truncated"),
])
def test_fatal_log_lines(line: str, text: str) -> None:
    found = _fatal_in_log(f"I load\n{line}\nI more\n")
    assert found is not None and text in found[0] and found[1] == line.strip()
    assert _fatal_in_log("I all good\nFinal estimate: PPL = 11.8 +/- 1.7\n") is None


def test_free_space_refused_before_run(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match="base logits needs .* MiB but only .* MiB are free"):
        check_free_space(tmp_path, 1 << 60, "the base logits")
    check_free_space(tmp_path, 1024, "the base logits")


def test_portable_argv() -> None:
    argv = ["/x/bin/llama-perplexity", "-m", "/m/q.gguf", "--kl-divergence-base", "/c/b.kld", "-c", "512"]
    assert portable_argv(argv, {"/m/q.gguf": "{model}", "/c/b.kld": "{base_logits}"}) == [
        "llama-perplexity", "-m", "{model}", "--kl-divergence-base", "{base_logits}", "-c", "512"]
