"""The host's measurement lock (issue 25, 9): one file per host, whatever the cache directory; taken once by a
holder that nests; never opened through a planted symbolic link."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from procs import wait_until

from collector.base import lock
from collector.base.errors import CollectorError

HOLD = """
import os, sys, time
from collector.base.lock import host_lock
with host_lock("a test holder"):
    open(sys.argv[1], "w").close()
    time.sleep(60)
"""


def test_the_lock_is_host_wide_not_per_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUANT_ATLAS_LOCK")
    first = lock.lock_path()
    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path / "another-cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert lock.lock_path() == first and first.name == lock.LOCK_NAME
    assert str(first.parent) in lock.LOCK_DIRS and not str(first).startswith(str(tmp_path))


def test_a_second_process_with_another_cache_dir_is_refused(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ready = tmp_path / "ready"
    env = {**os.environ, "COLLECTOR_CACHE_DIR": str(tmp_path / "cache-a")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ready)], env=env)
    try:
        wait_until(ready.exists, timeout=30)
        monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path / "cache-b"))
        with pytest.raises(CollectorError, match=rf"another collector is measuring on this host \(pid "
                                                 rf"{holder.pid}, a test holder"), lock.host_lock("second"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with lock.host_lock("after"):  # the kernel dropped the killed holder's lock
        pass


def test_a_holder_that_nests_takes_it_once() -> None:
    with lock.host_lock("run"), lock.host_lock("its KLD ladder"), lock.host_lock("llama-bench"):
        pass
    with lock.host_lock("again"):
        pass


def test_a_planted_symlink_or_a_folder_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    planted = tmp_path / "measure.lock"
    planted.symlink_to(victim)
    monkeypatch.setenv("QUANT_ATLAS_LOCK", str(planted))
    with pytest.raises(CollectorError, match="symbolic link"), lock.host_lock("x"):
        pass
    assert victim.read_text() == "keep me"
    folder = tmp_path / "folder.lock"
    folder.mkdir()
    monkeypatch.setenv("QUANT_ATLAS_LOCK", str(folder))
    with pytest.raises(CollectorError, match="measurement lock"), lock.host_lock("x"):
        pass


def test_other_users_can_open_the_lock_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "new.lock"
    monkeypatch.setenv("QUANT_ATLAS_LOCK", str(path))
    old = os.umask(0o077)
    try:
        with lock.host_lock("x"):
            pass
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666
