"""Files the collector writes: atomically, with the umask's mode, under names that say which process owns them.

Every temporary file carries the writer's pid (`<name>.<pid>.part`, `.<name>.<pid>.<random>.tmp`), so a later
run can tell the leftovers of a dead process (SIGKILL, power loss) from the files of a live one and remove them
(`clean_stale`, `collector cache clean`).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# <anything>.<pid>.part[.ext] and .<name>.<pid>.<random>.tmp
_STALE = re.compile(r"^(?:.+\.(?P<a>\d+)\.part(?:\.[A-Za-z0-9]+)?|\..+\.(?P<b>\d+)\.[A-Za-z0-9_]+\.tmp)$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def part_path(path: Path) -> Path:
    """The temporary name a tool writes `path` under (this process's pid in it)."""
    return path.with_name(f"{path.name}.{os.getpid()}.part")


def atomic_write_text(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: never a partial file at `path`; mode from the umask."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path) as fh:
        fh.write(data)


@contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write `path` through (a big pickle streams into it): a temporary file in the same
    directory named for this process, fsynced and renamed on success, removed on any error or Ctrl-C; never a
    partial file at `path`; mode from the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; a record is as readable as any file
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_owner(name: str) -> int | None:
    """The pid of the process writing a file of this name, when it is one of our temporary names; else None."""
    m = _STALE.match(name)
    return int(m["a"] or m["b"]) if m else None


def stale_files(root: Path) -> list[Path]:
    """Temporary files under `root` whose writing process is gone."""
    out: list[Path] = []
    if not root.is_dir():
        return out
    for dirpath, _, names in os.walk(root):
        for name in names:
            pid = temp_owner(name)
            if pid is not None and not pid_alive(pid):
                out.append(Path(dirpath) / name)
    return sorted(out)


def clean_stale(roots: Iterable[Path]) -> list[Path]:
    """Remove the leftovers of dead processes under each root; returns what was removed."""
    removed = []
    for root in roots:
        for path in stale_files(Path(root)):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed
