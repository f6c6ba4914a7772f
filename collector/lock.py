"""One measurement per host at a time: an advisory lock in the cache directory, held while measuring.

Two collectors measuring at once each measure the other's load (tg 34-68 t/s against ~100 alone on this CPU),
so a second `collector run` does not start measuring: it stops with a message naming the one that holds the
lock, or with `--wait` it waits until that one is done. The kernel drops the lock when its holder dies, so a
killed collector never blocks the next one.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from collector.cache import cache_dir
from collector.errors import CollectorError


def lock_path() -> Path:
    return cache_dir() / "measure.lock"


@contextmanager
def host_lock(what: str, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the host's measurement lock for the block; CollectorError (or waiting, with `wait`) when taken."""
    path = lock_path()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise CollectorError(f"another collector is measuring on this host ({holder}); measuring at the same "
                                     "time would slow both and spoil both results: wait for it, or run again with "
                                     "--wait to start when it is done") from None
            if on_wait:
                on_wait(f"waiting for the other collector on this host to finish ({holder})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])}, {str(info.get('what'))[:80]}, since {since}"
    except (ValueError, KeyError, TypeError, OSError):
        return "holder unknown"
