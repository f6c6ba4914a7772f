"""Which processes are alive, for the tests that check nothing outlives a run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def procs_with(needle: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains `needle`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if needle.encode() in cmd and state != "Z" and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def wait_until(cond: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll `cond` every 50 ms; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
