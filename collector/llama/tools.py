"""One way to run every llama.cpp tool: its own process group, a parent-death signal, a clean environment.

No llama.cpp process may outlive the collector: each child runs in a new session (so its whole group can be
signalled), gets SIGKILL from the kernel when the collector dies (PR_SET_PDEATHSIG on Linux), and every live
child is killed by an atexit hook and when a run is interrupted (Ctrl-C, SIGTERM, a timeout).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from collector.base.errors import CollectorError

LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1
_LIVE: dict[int, subprocess.Popen[bytes]] = {}


class ToolError(CollectorError):
    """A llama.cpp tool that could not start, failed or was stopped: the stage and the last lines of its log."""

    def __init__(self, message: str, stage: str, log_tail: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.stage = stage
        self.log_tail = list(log_tail)


def clean_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for llama.cpp tools: no LLAMA_ARG_* (they silently change defaults)."""
    base = dict(os.environ if base is None else base)
    return {k: v for k, v in base.items() if not k.startswith("LLAMA_ARG_")}


def _set_pdeathsig() -> None:
    """Runs in the child before exec: the kernel sends SIGKILL to it when the collector dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def spawn(argv: Sequence[str], *, stdout: IO[bytes] | int | None, stderr: IO[bytes] | int | None,
          env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a tool in its own session with the parent-death signal; it is killed with the collector."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            env=clean_env() if env is None else env, cwd=cwd, start_new_session=True,
                            preexec_fn=_set_pdeathsig if sys.platform == "linux" else None)
    _LIVE[proc.pid] = proc
    return proc


def signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session made pid the group id
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def stop(proc: subprocess.Popen[Any], grace_s: float) -> int | None:
    """SIGTERM the group, wait up to grace_s, then SIGKILL; the exit code. Children of a dead leader die too."""
    _LIVE.pop(proc.pid, None)
    if proc.poll() is None:
        signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait(10)
    else:
        signal_group(proc, signal.SIGKILL)
    return proc.returncode


def kill_all() -> None:
    """SIGKILL every tool this process started that is still running (atexit and interrupt safety net)."""
    for proc in list(_LIVE.values()):
        signal_group(proc, signal.SIGKILL)
        _LIVE.pop(proc.pid, None)


atexit.register(kill_all)


@contextmanager
def term_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C in the block (a sweep, a tune, an install), so the tool under way is stopped with
    its whole group and finished records stay; any exception out of the block kills every tool still running.
    Python's default SIGTERM action ends the process at once: no atexit hook, and the parent-death signal reaches
    only the direct child (pip), not the build backend and compilers below it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except BaseException:
        kill_all()  # belt and braces: nothing may outlive an aborted sweep
        raise
    finally:
        signal.signal(signal.SIGTERM, old)


def tail(text: str, n: int = LOG_TAIL_LINES) -> list[str]:
    """The last n non-blank lines."""
    return [line for line in text.splitlines() if line.strip()][-n:]


@dataclass
class ToolResult:
    """A finished tool run: its output (stdout and stderr interleaved unless kept apart), wall seconds."""

    argv: list[str]
    text: str
    seconds: float
    returncode: int
    stderr: str = ""
    log_tail: list[str] = field(default_factory=list)


def run_tool(argv: Sequence[str], stage: str, timeout_s: float | None = None, *, cwd: Path | None = None,
             merge: bool = True, check: bool = True, env: dict[str, str] | None = None) -> ToolResult:
    """Run a tool to completion; ToolError when it cannot start, times out, or (with `check`) exits non-zero.

    Output is decoded as UTF-8 (llama-perplexity prints ± and Δ). An interrupt (Ctrl-C, SIGTERM turned into
    KeyboardInterrupt) kills the tool's whole process group before it propagates. `env`: variables set for this
    tool beside the clean environment (the collector's own environment is never changed).
    """
    name = Path(argv[0]).name
    t0 = time.perf_counter()
    try:
        proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge else subprocess.PIPE, cwd=cwd,
                     env={**clean_env(), **env} if env else None)
    except OSError as exc:
        raise ToolError(f"{argv[0]} could not be started ({exc.strerror or exc})", stage) from None
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop(proc, 5)
        out, _ = proc.communicate()
        raise ToolError(f"{name} ran longer than {timeout_s:g} s and was stopped", stage,
                        tail(out.decode("utf-8", "replace"))) from None
    except BaseException:
        stop(proc, 5)
        raise
    _LIVE.pop(proc.pid, None)
    text = out.decode("utf-8", "replace")
    stderr = (err or b"").decode("utf-8", "replace")
    result = ToolResult(list(argv), text, time.perf_counter() - t0, proc.returncode, stderr, tail(text + stderr))
    if check and proc.returncode != 0:
        raise ToolError(f"{name} {exit_words(proc.returncode)}; see the log tail", stage, result.log_tail)
    return result


def exit_words(code: int) -> str:
    """'exited with 1' or 'was killed by signal 9 (SIGKILL)'."""
    if code >= 0:
        return f"exited with {code}"
    try:
        name = f" ({signal.Signals(-code).name})"
    except ValueError:
        name = ""
    return f"was killed by signal {-code}{name}"
