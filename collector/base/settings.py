"""Every environment variable the collector itself reads, in one place (read when asked, so a test or a caller that
sets one is heard). Variables that belong to other programs (CUDA_VISIBLE_DEVICES, GGML_VK_VISIBLE_DEVICES,
VULKAN_SDK, CMAKE_ARGS) pass through to them unread, except where noted.

- COLLECTOR_CACHE_DIR: the cache root (default $XDG_CACHE_HOME/quant-atlas, else ~/.cache/quant-atlas).
- QUANT_ATLAS_CACHE=0: no cache is read or written (records are still validated, pages still built).
- QUANT_ATLAS_JOBS: worker processes for parsing and page generation (default: the cores).
- QUANT_ATLAS_LOCK: the host's measurement lock file (default /run/lock, else /var/lock, else /tmp).
- QUANT_ATLAS_DATA: the data directory the site is built from (default: the plugin's `data_dir`, else data/ next to
  mkdocs.yml).
- LLAMA_CPP_BUILD_JOBS: parallel compile jobs of llama.cpp builds (default: the cores).
"""

from __future__ import annotations

import os


def _get(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def cache_dir() -> str | None:
    return _get("COLLECTOR_CACHE_DIR")


def xdg_cache_home() -> str | None:
    return _get("XDG_CACHE_HOME")


def cache_enabled() -> bool:
    return os.environ.get("QUANT_ATLAS_CACHE", "1") != "0"


def jobs() -> str:
    return os.environ.get("QUANT_ATLAS_JOBS", "").strip()


def lock_file() -> str | None:
    return _get("QUANT_ATLAS_LOCK")


def site_data() -> str | None:
    return _get("QUANT_ATLAS_DATA")


def build_jobs() -> str:
    return os.environ.get("LLAMA_CPP_BUILD_JOBS", "").strip()
