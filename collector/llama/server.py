"""ServerProcess: spawn llama-server with a clean environment, wait until ready, capture its log, stop it.

The server never outlives the collector: it runs in its own session (so its whole process group can be
killed), gets SIGKILL from the kernel when the collector dies (PR_SET_PDEATHSIG on Linux), and every
live ServerProcess is also killed by an atexit hook and on SIGTERM/SIGINT.

Two commands exist for one run. `argv` is what is executed (real model path, port, log file, -lv 4).
`published_command()` is what a record stores and a reader can copy: the same flags in the same order,
with the model path replaced by "{model}", the port by "{port}", and the collector-only log plumbing
(`--log-file F`, `-lv 4`) dropped because it does not change what llama.cpp computes.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from collector.base.errors import CollectorError
from collector.base.files import work_dir
from collector.llama import tools
from collector.llama.binaries import help_flags
from collector.llama.install import AMX_ISSUE, NO_AMX
from collector.llama.tools import ToolError, clean_env

SYSTEM_CONFIG = Path("/etc/llama.cpp/config.ini")
PORT_ATTEMPTS = 3
_OOM_MARKERS = ("out of memory", "failed to allocate", "unable to allocate", "cudaMalloc failed",
                "failed to create context", "failed to load model", "error loading model")
_ARG_MARKERS = ("invalid argument", "unknown argument", "error while handling argument", "error: invalid value")
DYING_WAIT_S = 1.0
_AMX_BUFFER = "AMX model buffer size"  # load_tensors: the weights repacked for the AMX kernels
_BIND_MARKERS = ("couldn't bind", "address already in use", "failed to bind")


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the server may still lose a race: see start())."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_args(server: Path, model: Path, flags: Sequence[str], *, port: int | str, log_file: Path | str | None,
                webui_flag: bool | None = None) -> list[str]:
    """The argv of one run (log_file None: without -lv/--log-file)."""
    argv = [str(server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    if log_file is not None:
        argv += ["-lv", "4", "--log-file", str(log_file)]
    if webui_flag is None:
        webui_flag = "--no-webui" in help_flags(server)
    if webui_flag:
        argv.append("--no-webui")
    return argv + [*flags, "--metrics"]


def check_config_files() -> None:
    """Refuse to run when a system llama.cpp config file could silently change the defaults."""
    if SYSTEM_CONFIG.exists():
        raise CollectorError(f"{SYSTEM_CONFIG} exists and llama.cpp reads it before the command line; "
                             "move it away so the measured flags are the only settings")


class ServerProcess:
    """A running llama-server on 127.0.0.1. Use as a context manager; `base_url`, `load_seconds` once ready."""

    def __init__(self, server: Path, model: Path, flags: Sequence[str], *, log_dir: Path,
                 load_timeout_s: float = 600.0, port_picker: Callable[[], int] = free_port,
                 poll_s: float = 0.05, stop_grace_s: float = 10.0) -> None:
        self.server = Path(server)
        self.model = Path(model)
        self.flags = list(flags)
        self.log_dir = Path(log_dir)
        self.load_timeout_s = load_timeout_s
        self.port_picker = port_picker
        self.poll_s = poll_s
        self.stop_grace_s = stop_grace_s
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.load_seconds: float | None = None
        self.log_file = self.log_dir / "llama-server.log"
        self.argv: list[str] = []
        self._xdg: tempfile.TemporaryDirectory[str] | None = None  # made on start: dry runs create nothing
        self.died: int | None = None  # the exit code when the server ended on its own (negative: the signal)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def published_command(self) -> list[str]:
        """The command a reader can copy: the model path is {model}; the collector's plumbing (host, port,
        log file and verbosity, --no-webui, --metrics) is left out, since none of it changes what is computed."""
        return ["llama-server", "-m", "{model}", *self.flags]

    def __enter__(self) -> ServerProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, Exception) and self.proc is not None:
            # a request failed: a server that is dying (killed, crashed) gets a moment to end on its own, so that
            # its record says how it ended (the connection closes before the process is gone)
            try:
                self.proc.wait(timeout=DYING_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
        self.stop()

    def start(self) -> None:
        """Spawn and wait for /health 200; retries on a fresh port when the port was taken."""
        check_config_files()
        if not self.model.is_file():
            raise ToolError(f"model file {self.model} not found; check the plan's models: entry", "load")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for attempt in range(1, PORT_ATTEMPTS + 1):
                self.port = self.port_picker()
                try:
                    self._spawn_and_wait()
                    return
                except ToolError as exc:
                    if exc.stage != "bind":
                        raise
                    if attempt == PORT_ATTEMPTS:
                        raise ToolError(f"llama-server could not bind 127.0.0.1 after {PORT_ATTEMPTS} tries (last "
                                        f"port {self.port}); free a port or check the firewall", "load",
                                        exc.log_tail) from exc
        except BaseException:
            self.stop()  # no process and no temporary config directory outlive a failed start
            raise

    def _spawn_and_wait(self) -> None:
        self.argv = server_args(self.server, self.model, self.flags, port=self.port or 0, log_file=self.log_file)
        env = clean_env()
        if self._xdg is None:
            self._xdg = work_dir("xdg")  # its name carries our pid: a killed collector's is removed later
        env["XDG_CONFIG_HOME"] = self._xdg.name  # so ~/.config/llama.cpp/config.ini cannot change defaults
        self.log_file.unlink(missing_ok=True)
        stderr_path = self.log_dir / "llama-server.stderr"
        with open(stderr_path, "wb") as err:
            t0 = time.monotonic()
            self.proc = tools.spawn(self.argv, stdout=err, stderr=err, env=env)
        with httpx.Client(timeout=2.0) as http:
            while True:
                code = self.proc.poll()
                if code is not None:
                    self._raise_exited(code)
                try:
                    if http.get(f"{self.base_url}/health").status_code == 200:
                        self.load_seconds = time.monotonic() - t0
                        return
                except httpx.HTTPError:
                    pass  # listener not up yet, or the model is still loading (503)
                if time.monotonic() - t0 > self.load_timeout_s:
                    tail = self.log_tail()
                    self.stop()
                    raise ToolError(f"llama-server did not become ready within {self.load_timeout_s:g} s "
                                    "(speed.load_timeout_s in the plan); see the log tail", "load", tail)
                time.sleep(self.poll_s)

    def _raise_exited(self, code: int) -> None:
        tail = self.log_tail()
        text = "\n".join(tail).lower()
        self.stop()
        if any(m in text for m in _BIND_MARKERS):
            raise ToolError(f"port {self.port} taken", "bind", tail)
        bad_arg = next((line.strip() for line in tail if any(m in line.lower() for m in _ARG_MARKERS)), None)
        if bad_arg:
            raise ToolError(f"llama-server refused its arguments ({bad_arg[-160:]}); fix the plan's flags", "load",
                            tail)
        why = next((m for m in _OOM_MARKERS if m in text), None)
        hint = f" ({why}); a smaller ctx_size or fewer GPU layers may fit" if why else ""
        if code == -signal.SIGSEGV and _AMX_BUFFER in self.log_text():
            hint = (f"; its log shows llama.cpp's AMX kernels in use, which crash on some Intel CPUs ({AMX_ISSUE}): "
                    "use a llama.cpp compiled without them (`collector llama install` and `make` compile so on "
                    f"x86-64: CMAKE_ARGS with -DCMAKE_C_FLAGS='{NO_AMX}' and the same -DCMAKE_CXX_FLAGS)")
        raise ToolError(f"llama-server {tools.exit_words(code)} while loading{hint}; see the log tail", "load", tail)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """The server log so far: the -lv 4 log file, plus stderr when the log file never appeared."""
        parts = []
        for path in (self.log_file, self.log_dir / "llama-server.stderr"):
            try:
                parts.append(path.read_text(errors="replace"))
            except OSError:
                continue
            if parts[-1].strip():
                break
        return "".join(parts)

    def log_tail(self, n: int = tools.LOG_TAIL_LINES) -> list[str]:
        return tools.tail(self.log_text(), n)

    def stop(self, grace_s: float | None = None) -> int | None:
        """SIGTERM the process group, wait up to grace_s (default stop_grace_s), then SIGKILL; exit code."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is not None and self.died is None:
            self.died = proc.returncode  # it was gone before we stopped it: killed, crashed or exited
        code = None if proc is None else tools.stop(proc, self.stop_grace_s if grace_s is None else grace_s)
        if self._xdg is not None:
            self._xdg.cleanup()
            self._xdg = None
        return code
