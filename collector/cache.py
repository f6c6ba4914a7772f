"""The collector's cache directory: demo models, file hashes, base logits."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(sub: str = "") -> Path:
    """$COLLECTOR_CACHE_DIR, else $XDG_CACHE_HOME/quant-atlas, else ~/.cache/quant-atlas; created."""
    root = os.environ.get("COLLECTOR_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "quant-atlas")
    path = Path(root) / sub if sub else Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
