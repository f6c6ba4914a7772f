"""One measurement per host at a time: an advisory lock in a host-wide place, held while anything loads the machine.

Two collectors measuring at once each measure the other's load (tg 34-68 t/s against ~100 alone on this CPU),
so a second `collector run` does not start measuring: it stops with a message naming the one that holds the
lock, or with `--wait` it waits until that one is done. The kernel drops the lock when its holder dies, so a
killed collector never blocks the next one.

The lock is one file per host, not per cache directory: a collector started with another COLLECTOR_CACHE_DIR (or
by another user) measures the same CPU and GPUs. It lives in /run/lock (else /var/lock, else /tmp) under a fixed
name; QUANT_ATLAS_LOCK names another file (for containers that share a machine but not /run, and for test
sessions that must not wait for each other). Everything that loads the machine takes it: run, tune, quantize and
imatrix, llama-bench, llama-perplexity and the compile of `collector llama install`; a holder that calls another
of them (a run's KLD part building its ladder) holds it once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from collector.base import settings
from collector.base.errors import CollectorError

LOCK_NAME = "quant-atlas-measure.lock"
LOCK_DIRS = ("/run/lock", "/var/lock", "/tmp")  # fixed: $TMPDIR differs between processes of one host
# this process holds the lock (any of its threads took it): a nested host_lock does not take it again (a second
# flock from the same process on another descriptor would wait for itself). Keyed by pid: a forked child holds none.
_held = {"pid": 0, "depth": 0}
_guard = threading.Lock()


def lock_path() -> Path:
    """The host's lock file: $QUANT_ATLAS_LOCK, else LOCK_NAME in the first of LOCK_DIRS that can hold it."""
    env = settings.lock_file()
    if env:
        return Path(env)
    for folder in LOCK_DIRS:
        if os.path.isdir(folder) and (os.access(folder, os.W_OK) or os.path.exists(os.path.join(folder, LOCK_NAME))):
            return Path(folder) / LOCK_NAME
    raise CollectorError(f"none of {', '.join(LOCK_DIRS)} can hold the host's measurement lock; set "
                         "QUANT_ATLAS_LOCK to a file every collector on this host can open")


def _open(path: Path) -> tuple[int, bool]:
    """The lock file's descriptor (made if missing, never through a symbolic link), and whether it can be written
    (a file another user made may be readable only: flock works on it all the same)."""
    flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        try:
            fd, writable = os.open(path, os.O_RDWR | flags, 0o666), True
        except PermissionError:
            fd, writable = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), False
    except OSError as exc:
        why = "a symbolic link (remove it)" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise CollectorError(f"{path}: the host's measurement lock cannot be opened ({why}); set QUANT_ATLAS_LOCK "
                             "to a file every collector on this host can open") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CollectorError(f"{path}: the host's measurement lock is not a regular file; remove it")
    if writable and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != 0o666:
        try:
            os.fchmod(fd, 0o666)  # the umask narrowed it: another user's collector must be able to take it too
        except OSError:
            pass
    return fd, writable


@contextmanager
def host_lock(what: str, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the host's measurement lock for the block; CollectorError (or waiting, with `wait`) when taken."""
    with _guard:
        nested = _held["pid"] == os.getpid() and _held["depth"] > 0
        if nested:
            _held["depth"] += 1
    if nested:
        try:
            yield
        finally:
            with _guard:
                _held["depth"] -= 1
        return
    path = lock_path()
    fd, writable = _open(path)
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
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}).encode(), 0)
        with _guard:
            _held.update(pid=os.getpid(), depth=1)
        try:
            yield
        finally:
            with _guard:
                _held.update(pid=0, depth=0)
    finally:
        os.close(fd)  # closing releases the lock


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])}, {str(info.get('what'))[:80]}, since {since}"
    except (ValueError, KeyError, TypeError, OSError):
        return "holder unknown"
