"""The collector's cache directory: demo models, file hashes, base logits."""

from __future__ import annotations

import os
from pathlib import Path

from collector.errors import CollectorError


def cache_dir(sub: str = "") -> Path:
    """$COLLECTOR_CACHE_DIR, else $XDG_CACHE_HOME/quant-atlas, else ~/.cache/quant-atlas; created."""
    root = os.environ.get("COLLECTOR_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "quant-atlas")
    path = Path(root) / sub if sub else Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where the folder should be, /proc, a read-only disk
        where = "COLLECTOR_CACHE_DIR" if os.environ.get("COLLECTOR_CACHE_DIR") else "the cache directory"
        raise CollectorError(f"{path}: cannot be used as {where} ({exc.strerror or exc}); point COLLECTOR_CACHE_DIR "
                             "at a writable folder") from None
    return path
