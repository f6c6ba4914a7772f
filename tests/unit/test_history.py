"""History across llama.cpp builds: the step-detection rule and the timelines built from records."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.base.stats import STEP, median_band
from collector.importers.llama_bench import bench_record
from collector.publish.answers.history import BuildSamples, detect_changes, timeline_key, timelines
from collector.records.schema import SpeedRecord
from fixtures.records.factory import fixture_records

# Real tg samples (t/s) at depth 0 of one measured run on this 2-core CPU: SmolLM2-135M Q4_1, ctx 1024, flash
# attention on, llama.cpp b11434, six prompts x three repetitions (data/records/cpu-amd-epyc/smollm2-135m-instruct/
# 2026-11-26-speed-01M8BSAF0BKW352EMRDTRJ4HVC.yaml); their spread is 18 % of the median.
REAL_TG = (74.341, 74.785, 70.847, 74.937, 75.661, 77.106, 78.35, 76.487, 74.14, 82.46, 80.719, 79.744, 73.823,
           72.083, 66.766, 71.523, 74.794, 71.33)


def _build(build: int, samples: tuple[float, ...] | list[float], runs: tuple[float, ...] = ()) -> BuildSamples:
    return BuildSamples(build, tuple(samples), runs)


def test_median_band_is_the_order_statistics_interval() -> None:
    assert median_band([5.0, 1.0, 3.0, 2.0, 4.0]) == (1.0, 5.0)  # n=5: no 95 % interval, the whole range
    xs = sorted(REAL_TG)
    # n=18: P(B < 5) = 0.015 <= 0.025 < P(B < 6) = 0.048: the 5th and the 14th smallest (coverage 96.9 %)
    assert median_band(REAL_TG) == (xs[4], xs[13])


def test_noise_of_the_measured_spread_is_not_a_change() -> None:
    halves = [_build(11401, REAL_TG[::2]), _build(11434, REAL_TG[1::2])]
    assert detect_changes(halves) == []
    # the same samples in another order, and 3 % faster (within the noise and under the step): still nothing
    assert detect_changes([_build(11401, REAL_TG), _build(11434, [v * 1.03 for v in reversed(REAL_TG)])]) == []
    # the run is six prompts x three repetitions: any split that gives both "builds" every prompt (one repetition
    # of each against the other two) stays quiet
    for rep in range(3):
        one = [v for i, v in enumerate(REAL_TG) if i % 3 == rep]
        two = [v for i, v in enumerate(REAL_TG) if i % 3 != rep]
        assert detect_changes([_build(1, one), _build(2, two)]) == [], rep
        assert detect_changes([_build(1, two), _build(2, one)]) == [], rep


def test_an_injected_slowdown_is_flagged_with_the_range_to_bisect() -> None:
    slow = [round(v * 0.85, 3) for v in REAL_TG]
    [change] = detect_changes([_build(11401, REAL_TG), _build(11434, slow)])
    assert (change.before, change.after, change.kind) == (11401, 11434, "slowdown")
    assert change.relative == pytest.approx(-0.15, abs=0.005)
    assert change.bisect == "git bisect start b11434 b11401"
    # in a longer series only the step itself is flagged, between the two builds around it
    series = [_build(11300, REAL_TG[::2]), _build(11350, REAL_TG[1::2]), _build(11401, slow[::2]),
              _build(11434, slow[1::2])]
    [change] = detect_changes(series[::-1])  # order of input does not matter: builds are sorted
    assert (change.before, change.after) == (11350, 11401)


def test_a_change_needs_both_separate_bands_and_more_than_the_step() -> None:
    tight = [_build(1, [100.0, 100.1, 100.2, 100.1]), _build(2, [97.0, 97.1, 97.2, 97.1])]
    assert detect_changes(tight) == []  # bands apart, but 3 % is under the 5 % step
    assert len(detect_changes(tight, step=0.02)) == 1
    wide = [_build(1, [50.0, 100.0, 150.0]), _build(2, [60.0, 80.0, 140.0])]
    assert detect_changes(wide) == []  # 20 % slower median, but the ranges overlap: noise
    assert STEP == 0.05


def test_too_few_samples_are_not_compared_and_runs_widen_the_band() -> None:
    assert _build(1, [100.0, 101.0]).band() is None
    assert detect_changes([_build(1, [100.0, 101.0]), _build(2, [50.0, 51.0, 52.0])]) == []
    # measured in two runs whose medians differ: the band spans both (runs vary more than samples within one)
    samples = [100.0] * 15 + [90.0] * 3
    assert _build(1, samples).band() == (100.0, 100.0)
    two_runs = _build(1, samples, runs=(100.0, 90.0))
    assert two_runs.band() == (90.0, 100.0)
    assert len(detect_changes([_build(1, samples), _build(2, [93.0] * 9)])) == 1  # -7 %, apart from one run
    assert detect_changes([two_runs, _build(2, [93.0] * 9)]) == []  # within what the two runs of build 1 span


def test_timelines_of_the_fixture_records() -> None:
    records = [r for r in fixture_records() if isinstance(r, SpeedRecord)]
    lines = {line.device: line for line in timelines(records)}
    assert set(lines) == {"cpu-test-xeon-cpu-2-20ghz", "rtx-4090"}  # the configurations with two builds
    cpu = lines["cpu-test-xeon-cpu-2-20ghz"]
    assert [p.version for p in cpu.points] == ["b11401", "b11434"] and cpu.depth == 0
    assert [p.figures["tg"].n for p in cpu.points] == [3, 6]  # b11434 pools its two runs; the noisy run is apart
    [change] = cpu.changes["tg"]
    assert (change.before, change.after, change.kind) == (11401, 11434, "speedup")
    assert lines["rtx-4090"].changes == {"tg": [], "pp": []}
    # imported figures without a build, and failed runs, are on no timeline
    assert all(timeline_key(r) is None for r in records if r.status != "ok" or not r.llama_cpp.build_number)


def _bench(build: int, samples: list[float]) -> dict[str, object]:
    return {"build_commit": "unknown", "build_number": build, "model_filename": "/nonexistent/smol.gguf",
            "model_type": "llama 135M Q4_1", "n_prompt": 0, "n_gen": 16, "n_threads": 2, "n_batch": 2048,
            "n_ubatch": 512, "n_gpu_layers": 0, "flash_attn": 1, "type_k": "f16", "type_v": "f16", "n_depth": 0,
            "cpu_info": "AMD EPYC 7B13", "gpu_info": "", "backends": "CPU", "samples_ts": samples,
            "avg_ts": sum(samples) / len(samples), "test_time": "2026-11-26T12:00:00Z"}


def test_llama_bench_imports_of_two_builds_share_a_timeline(tmp_path: Path) -> None:
    old = bench_record(_bench(0, [80.0, 81.0, 80.5]), tmp_path / "old.jsonl", 1, build_number=11401)
    new = bench_record(_bench(11434, [68.0, 68.5, 69.0]), tmp_path / "new.jsonl", 1)
    assert (old.llama_cpp.version, old.llama_cpp.build_source) == ("b11401", "--llama-build (llama-bench reported "
                                                                              "build 0)")
    with pytest.raises(CollectorError, match=r"new\.jsonl:1: llama-bench reports build 11434, not --llama-build 11401"):
        bench_record(_bench(11434, [68.0]), tmp_path / "new.jsonl", 1, build_number=11401)
    [line] = timelines([old, new])
    assert line.imported and line.test == "tg16"
    [change] = line.changes["tg"]
    assert (change.before, change.after, change.kind) == (11401, 11434, "slowdown")
    assert "pp" not in line.points[0].figures
