"""`collector tune` with the real llama-server and SmolLM2 on the CPU: the budget, the same answer twice, the time
budget, and the command line's errors."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import invoke
from procs import procs_with, wait_until

from collector.llama.binaries import LlamaTools
from collector.measure.server_run import Bench
from collector.models.ref import DEMO_MODEL
from collector.records import store
from collector.records.index import load_index, record_files
from collector.records.schema import SpeedRecord, TuneRecord
from collector.tune.lab import ServerLab
from collector.tune.search import OutOfTime, Search, key_of
from collector.tune.session import Question, tune

pytestmark = pytest.mark.slow

# At ctx 2048, llama.cpp's host buffers for SmolLM2 Q4_1 are ~154 MiB with an f16 KV cache and the default ubatch,
# ~133 MiB with q8_0 (logs of build 11434): a budget of 145 MiB puts the default over it, so the search must meet
# the boundary for real.
BUDGET = 145.0
SEARCH_S = 420  # the search's time budget: a quiet host finishes in far less, a busy one stops there by design
STOP_S = 2  # after the deadline: stopping the server under way (SIGKILL after 0.5 s) and writing the tune record


def _question(model: Path, **changes: object) -> Question:
    q = Question(model_ref=DEMO_MODEL, model_path=model, ctx=2048, depth=0, budget_mib=BUDGET,
                 budget_source="--memory-budget", scope="host", kv=("f16", "q8_0"), objective="tg", time_budget_s=900)
    return dataclasses.replace(q, **changes)  # type: ignore[arg-type]


def _speed(data: Path) -> dict[str, SpeedRecord]:
    return {r.id: r for r in load_index(data, cache=False).valid if isinstance(r, SpeedRecord)}


@pytest.mark.timeout(1500)  # two searches of at most SEARCH_S each, and the third that reuses everything
def test_tune_keeps_to_the_budget_and_gives_the_same_answer_from_the_same_trials(
        tmp_path: Path, llama_tools: LlamaTools, smollm2: Path) -> None:
    """On any host, quiet or busy: the rule, not a quiet machine, is asserted (issue 35, 7). A trial measured on a
    busy host is noisy by design; it is measured once more, never recommended from, and a re-run measures again
    exactly the configurations whose trials were noisy, reusing every quiet one. A search that a busy host makes
    run past its time budget stops there and recommends nothing."""
    data = tmp_path / "data"
    q = _question(smollm2, time_budget_s=SEARCH_S)
    rec, path = tune(q, tools=llama_tools, data_dir=data)
    assert store.load_record(path) == rec
    trials = _speed(data)
    noisy = {key_of(t.config) for t in trials.values() if t.noisy}
    assert set(rec.trials) == set(trials)  # every trial measured is a record, and the tune names it
    if rec.status != "ok":  # by design on a busy host: every trial of the default or the best was noisy, or the
        # search ran out of time; either way no recommendation, and why is said
        assert rec.error is not None and rec.chosen is None and rec.command == [], (rec.error, rec.steps)
        # only a host the trials found busy gets there: on a quiet one the search finishes well within SEARCH_S
        assert noisy and (rec.error.stage == "noisy" or rec.stopped == "time budget"), (rec.error, rec.steps)
        return
    c, d, g = rec.chosen, rec.default, rec.gain
    assert c is not None and d is not None and g is not None
    assert c.memory_mib is not None and c.memory_mib <= BUDGET and c.fits
    assert d.fits is False  # the default needs more than the budget: the boundary was met, not assumed
    assert rec.command == c.command and c.command[:3] == ["llama-server", "-m", "{model}"]
    assert set(rec.trials) <= set(trials)  # every trial is a record in the data dir
    tunes = {r.id for r in load_index(data, cache=False).valid if isinstance(r, TuneRecord)}
    for t in trials.values():
        assert {f"tune:{i}" for i in tunes} & set(t.tags), t.tags  # and belongs to a tune
        mib = t.memory_mib.used_mib("host")
        if t.status == "failed":  # only ever stopped for the budget, before measuring
            assert t.error is not None and t.error.stage == "budget" and mib is not None and mib > BUDGET
            assert not t.samples
        elif t.config != d.config:  # only the default is measured over the budget (it is the baseline)
            assert mib is not None and mib <= BUDGET, (t.command, mib)
    chosen_recs = [trials[i] for i in c.records]
    assert len(chosen_recs) >= 2 and all(r.config == c.config for r in chosen_recs)  # screened, then confirmed
    assert not any(r.noisy for r in chosen_recs)  # the choice stands on quiet trials only
    assert c.tg_tps is not None and c.tg_tps.n == sum(len(s.tg_tps) for r in chosen_recs for s in r.samples)
    assert g.low_pct <= g.pct <= g.high_pct

    lab = ServerLab(q, Bench(llama_tools, rec.host, rec.llama_cpp), data, rec.model, "again")
    search = Search(q, lab, rec.host, rec.model)  # the search alone, nothing saved
    try:
        search.run()
        finished = True
    except OutOfTime:  # re-measuring noisy trials on a busy host took its whole time budget
        finished = False
    again_measured = [r for i, r in _speed(data).items() if i not in trials]
    # what is measured again is what was noisy; every quiet trial is reused
    assert {key_of(r.config) for r in again_measured} <= noisy, [r.command for r in again_measured]
    assert search.probes == []  # every memory question answered by the first tune's probes and trials
    if again_measured or not finished:
        return  # a busy host: the search went on from new trials, so its choice may differ (and is checked above)
    assert (search.choice(c.config), search.choice(d.config)) == (c, d) and search.best == c.config
    assert set(c.records) | set(d.records) <= set(search.trials) <= set(rec.trials)
    again, again_path = tune(q, tools=llama_tools, data_dir=data)  # the same answer is not recorded twice
    assert (again, again_path) == (rec, path)
    assert len(tunes) == len([p for p in data.rglob("*-tune-*.yaml")])  # nothing new written


def test_tune_stops_at_its_time_budget(tmp_path: Path, llama_tools: LlamaTools, smollm2: Path) -> None:
    data = tmp_path / "data"
    rec, path = tune(_question(smollm2, time_budget_s=30), tools=llama_tools, data_dir=data)
    assert rec.stopped == "time budget" and rec.status == "failed"
    assert rec.seconds is not None and rec.seconds <= 30 + STOP_S
    assert rec.steps[-1].startswith("stopped at the time budget")  # before a step, or during one
    assert rec.chosen is None and rec.command == [] and rec.gain is None  # no recommendation from half a search
    # what it measured is kept, whatever the host's speed: one record per trial the steps say finished (a quiet
    # host finishes the default's in 30 s; a busy one may finish none), the default's first
    finished = [s for s in rec.steps if s.startswith("trial (") and "reused" not in s]
    assert set(rec.trials) == set(_speed(data)) and len(rec.trials) == len(finished), rec.steps
    assert rec.default is not None and (not rec.trials or rec.default.records)
    assert isinstance(store.load_record(path), TuneRecord)


def test_a_trial_running_into_the_time_budget_is_stopped_there_and_not_recorded(
        tmp_path: Path, llama_tools: LlamaTools, smollm2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # the servers' log dirs (in their argv) name tmp_path
    data = tmp_path / "data"
    rec, _ = tune(_question(smollm2, time_budget_s=4), tools=llama_tools, data_dir=data)  # the default takes ~10 s
    assert rec.stopped == "time budget" and rec.steps[-1].endswith("during a trial, which is not recorded")
    assert rec.seconds is not None and rec.seconds <= 4 + STOP_S
    assert _speed(data) == {} and rec.trials == [] and rec.status == "failed"  # half a trial is not a measurement
    assert procs_with(str(tmp_path)) == []


def test_ctrl_c_during_a_tune_keeps_its_trials_and_records_the_tune_as_interrupted(tmp_path: Path,
                                                                                 smollm2: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "collector.cli", "tune", str(smollm2), "--ctx", "2048",
                             "--memory-budget", str(BUDGET), "--data-dir", str(data)],
                            env={**os.environ, "TMPDIR": str(tmp_path)}, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,  # SIGINT as a terminal would deliver it:
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:  # events, not durations: a busy host takes longer to reach them (the test's timeout bounds it)
        wait_until(lambda: data.exists() and len(record_files(data)) >= 1, timeout=480)  # the default's trial
        wait_until(lambda: bool(procs_with(f"{tmp_path}/qa-tune-")), timeout=240)  # the next server is up
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:  # reaped and its pipes closed, even when the test failed (else the next test sees the warnings)
        proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode == 130, err
    assert procs_with(str(tmp_path)) == []
    records = load_index(data, cache=False).valid
    [rec] = [r for r in records if isinstance(r, TuneRecord)]
    assert rec.stopped == "interrupted" and rec.status == "failed" and rec.chosen is None and rec.command == []
    assert rec.trials and set(rec.trials) == {r.id for r in records if isinstance(r, SpeedRecord)}
    assert not list(data.rglob("*.tmp"))


def test_tune_command_line(tmp_path: Path, smollm2: Path) -> None:
    model = str(smollm2)
    code, out = invoke(["tune", model, "--ctx", "4096", "--depth", "1024", "--memory-budget", "300", "--dry-run"])
    assert code == 0, out
    assert "default: llama-server -m {model} -c 4096" in out and "300 MiB of host memory (--memory-budget)" in out
    for args, said in ((["--kv", "f16,q9"], "--kv 'f16,q9': q9 is not a KV cache type"),
                       (["--ctx", "100"], "--ctx '100'"),
                       (["--ctx", "1024", "--depth", "900"], "--depth 900 leaves no room in --ctx 1024")):
        code, out = invoke(["tune", model, "--dry-run", *args])
        assert (code, out.splitlines()[0]) == (1, out) and said in out, out
    code, out = invoke(["tune", str(tmp_path / "nope.gguf"), "--dry-run"])
    assert code == 1 and "nope.gguf" in out and "\n" not in out
    assert not list(tmp_path.iterdir())  # a dry run writes nothing
