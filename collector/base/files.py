"""Files the collector writes: atomically, with the umask's mode, under names that say which process owns them.

Every temporary file carries the writer's pid (`<name>.<pid>.part`, `.<name>.<pid>.<random>.tmp`), so a later
run can tell the leftovers of a dead process (SIGKILL, power loss) from the files of a live one and remove them
(`clean_stale`, `collector cache clean`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from collector.base.errors import CollectorError

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


MIN_FREE_BYTES = 16 << 20  # a record is tens of KiB, at most 4 MiB; less room than this and the next one may not fit


def check_writable(folder: Path, flag: str, min_free: int = MIN_FREE_BYTES) -> None:
    """CollectorError, before anything is measured, when records could not be written into `folder`: a path
    through a file, a folder that cannot be written (read-only disk, permissions), or one with less than
    `min_free` bytes free. Nothing is created: the nearest existing folder is probed with a temporary file."""
    folder = Path(folder)
    probe_at = folder
    while not probe_at.exists():
        if probe_at.is_symlink():  # a dangling link: creating the folder would fail
            raise CollectorError(f"{flag} {folder}: {probe_at} is a broken symbolic link; fix it or give another "
                                 "folder")
        probe_at = probe_at.parent
    if not probe_at.is_dir():
        raise CollectorError(f"{flag} {folder}: {probe_at} is a file, not a folder; give a folder for the records "
                             "(nothing was measured)")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe_at, prefix=f".qa-probe.{os.getpid()}.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
        st = os.statvfs(probe_at)
    except OSError as exc:
        raise CollectorError(f"{flag} {folder}: records cannot be written there ({exc.strerror or exc}); fix the "
                             "permissions or give another folder (nothing was measured)") from None
    free = st.f_bavail * st.f_frsize
    if free < min_free:
        raise CollectorError(f"{flag} {folder}: only {free // 1024} KiB free where the records go (at least "
                             f"{min_free >> 20} MiB needed); free disk space or give another folder (nothing was "
                             "measured)")


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


# the temporary folders of a run, a server's config home and a tune trial: tempfile names them qa-<kind>-<pid>-*
_WORK = re.compile(r"^qa-(?:run|xdg|tune)-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def work_dir(kind: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder whose name carries this process's pid, so that the folder a killed collector left
    (SIGKILL runs no cleanup) is recognised and removed by the next run and by `collector cache clean`."""
    return tempfile.TemporaryDirectory(prefix=f"qa-{kind}-{os.getpid()}-")


def clean_work_dirs(root: Path | None = None) -> list[Path]:
    """Remove the temporary folders (work_dir) of processes that are gone; returns what was removed."""
    root = Path(root or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        m = _WORK.match(entry.name)
        if m and entry.is_dir(follow_symlinks=False) and not pid_alive(int(m["pid"])):
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.lexists(entry.path):
                removed.append(Path(entry.path))
    return sorted(removed)


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
