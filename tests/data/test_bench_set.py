"""Published llama-bench / llama-sweep-bench figures kept under imports/llama-bench/ (collector import bench-set).

The committed records are checked against the kept source files, read here independently of the importer: a seeded
sample of figures and every figure with weights in system RAM against their rows, the kept copies against the
sha256 their manifests record, data/ against a fresh import. Hostile manifests and kept files fail with one line.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from collector.base.errors import CollectorError
from collector.importers import bench_set
from collector.judge import judge_records
from collector.records import index, store
from collector.records.index import load_index
from collector.records.schema import SpeedRecord

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / "imports" / "llama-bench"
SWEEP = ["PP", "TG", "N_KV", "T_PP s", "S_PP t/s", "T_TG s", "S_TG t/s"]


def _manifests() -> list[Path]:
    return sorted(p.parent for p in SOURCES.glob("*/source.yaml"))


@functools.lru_cache(maxsize=1)
def _imported() -> tuple[SpeedRecord, ...]:
    """data/'s records from the bench-set sources (their figure keys name the source folder)."""
    prefixes = tuple(f"{p.name}/" for p in _manifests())
    recs = index.load_index(REPO / "data", cache=False).records.values()
    return tuple(r for r in recs if isinstance(r, SpeedRecord) and (r.source.figure or "").startswith(prefixes))


def _kept_lines(figure: str) -> tuple[Path, list[str], int, str | None]:
    """(kept file, its lines, the 1-based line, pp/tg for a sweep row) of a figure key '<src>/<file>:<line>[:kind]'."""
    path, _, rest = figure.partition(":")
    line, _, kind = rest.partition(":")
    kept = SOURCES / path
    return kept, kept.read_bytes().decode("utf-8").splitlines(), int(line), kind or None


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _check_figure(rec: SpeedRecord) -> None:
    """One record against its kept source row, parsed here."""
    assert rec.source.figure and rec.source.type == "imported"
    kept, lines, n, kind = _kept_lines(rec.source.figure)
    text = "\n".join(lines)
    assert f"{kept.relative_to(REPO).as_posix()} line {n}" in (rec.source.citation or "")
    for quote in rec.source.quotes:
        assert quote in text, (rec.source.figure, quote)
    for stated in (rec.host.ram_stated, rec.host.cpu.model if rec.host.cpu.model and kept.suffix != ".jsonl"
                   else None):
        assert stated is None or any(stated in q for q in rec.source.quotes), (rec.source.figure, stated)
    sample = rec.samples[0]
    if kept.suffix == ".jsonl":
        test = json.loads(lines[n - 1])["bench_raw"]
        stat = rec.summary.pp_tps if test["n_gen"] == 0 else rec.summary.tg_tps
        assert stat is not None and stat.mean == test["avg_ts"] and stat.n == len(test["samples_ts"])
        assert (sample.prompt_tokens, sample.gen_tokens) == (test["n_prompt"], test["n_gen"])
        assert rec.llama_cpp.build_number == test["build_number"] and rec.llama_cpp.backend == test["backends"]
        assert rec.model.file_name == Path(test["model_filename"]).name
        return
    if kind:  # a sweep-bench row: the header is the nearest one above
        head = next(i for i in range(n - 2, -1, -1) if _cells(lines[i])[:3] == ["PP", "TG", "N_KV"])
        assert _cells(lines[head]) == SWEEP
        row = dict(zip(SWEEP, _cells(lines[n - 1]), strict=True))
        cell = row["S_PP t/s" if kind == "pp" else "S_TG t/s"]
        stat = rec.summary.pp_tps if kind == "pp" else rec.summary.tg_tps
        assert stat is not None and stat.text == cell and stat.stated == float(cell)
        assert sample.depth_tokens == int(row["N_KV"])
        assert (sample.prompt_tokens if kind == "pp" else sample.gen_tokens) == int(row["PP" if kind == "pp" else "TG"])
        for word in rec.command:
            assert word == "{model}" or word in text, word  # the command as printed
        return
    head = next(i for i in range(n - 2, -1, -1) if "test" in _cells(lines[i]) and "t/s" in _cells(lines[i]))
    row = dict(zip(_cells(lines[head]), _cells(lines[n - 1]), strict=True))
    stat = rec.summary.pp_tps or rec.summary.tg_tps or rec.summary.pg_tps
    assert stat is not None and stat.text == row["t/s"]
    mean, _, sd = row["t/s"].replace("Â±", "±").replace(" + ", " ± ").partition(" ± ")
    assert (stat.mean, stat.stddev) == (float(mean), float(sd))
    assert sample.category == row["test"] and rec.model.size_stated == row["size"]
    assert rec.llama_cpp.backend == row["backend"]


def test_every_kept_copy_has_the_sha256_its_manifest_records() -> None:
    assert len(_manifests()) >= 4
    for root in _manifests():
        meta = YAML(typ="safe").load((root / "source.yaml").read_text(encoding="utf-8"))
        files = {k["file"]: k["sha256"] for k in meta["kept"]}
        assert set(files) == {p.name for p in root.iterdir() if p.name != "source.yaml"}, root  # nothing unlisted
        for name, digest in files.items():
            assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, f"{root.name}/{name}"


def test_a_seeded_sample_and_every_offload_figure_equal_their_source_rows() -> None:
    records = sorted(_imported(), key=lambda r: r.source.figure or "")
    assert len(records) >= 300
    offload = [r for r in records if bench_set.OFFLOAD_TAG in r.tags]
    rest = [r for r in records if bench_set.OFFLOAD_TAG not in r.tags]
    picked = random.Random(32).sample(rest, 24)
    assert len({(r.source.figure or "").split("/")[0] for r in picked}) >= 3
    for rec in picked + offload:
        _check_figure(rec)


def test_the_intel_threads_figures_equal_their_rows_and_a_fork_is_not_fitted() -> None:
    """Every figure of the Intel Arc threads (a "+" for llama-bench's "±" in one Windows paste); ipex-llm's own
    llama.cpp build is published with its runtime and never fitted (its builds are not llama.cpp's)."""
    from collector.estimate.points import collect

    intel = [r for r in _imported() if (r.source.figure or "").startswith("github-threads-intel/")]
    assert len(intel) == 16
    for rec in intel:
        _check_figure(rec)
    plus = [r for r in intel if r.summary.tg_tps and r.summary.tg_tps.text == "50.90 + 0.06"]
    assert [(r.summary.tg_tps.mean, r.summary.tg_tps.stddev) for r in plus if r.summary.tg_tps] == [(50.90, 0.06)]
    fork = [r for r in intel if r.source.runtime == "ipex-llm (llama-bench)"]
    assert len(fork) == 6 and all(r.llama_cpp.build_number is None for r in fork)
    points, left = collect(intel)
    assert {p.record for p in points}.isdisjoint({r.id for r in fork}) and len(points) == 8  # 4 tg, 4 pp
    assert left == {"runtime ipex-llm (llama-bench): not fitted (docs/estimates.md)": 6,
                    "model facts not known (no table model of qwen2 has 1.78 B parameters)": 2}  # Qwen2 1.5B


def test_offload_figures_state_their_flags_and_ram_as_written() -> None:
    offload = [r for r in _imported() if bench_set.OFFLOAD_TAG in r.tags]
    assert len(offload) >= 30
    assert len({r.source.url for r in offload}) >= 4  # threads
    with_ram = [r for r in offload if r.host.ram_stated]
    assert len(with_ram) >= 30
    for rec in offload:
        kept, lines, _, _ = _kept_lines(rec.source.figure or "")
        text = "\n".join(lines)
        args = rec.config.extra_args
        overrides = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-ot"]
        assert rec.config.n_cpu_moe or any("=CPU" in o for o in overrides), rec.source.figure
        assert all(o in text for o in overrides), rec.source.figure  # each override as the source writes it
        if rec.host.ram_stated:
            assert rec.host.ram_stated in text


def test_nothing_unstated_is_filled_in() -> None:
    recs = _imported()
    forks = [r for r in recs if (r.source.runtime or "").startswith("ik_llama.cpp")]
    assert forks and all(r.llama_cpp.version is None and r.llama_cpp.build_number is None for r in forks)
    sweeps = [r for r in recs if r.source.tool == "llama-sweep-bench"]
    assert sweeps and all(s.stated is not None and s.mean is None and s.n is None
                          for r in sweeps for s in (r.summary.pp_tps, r.summary.tg_tps) if s is not None)
    assert all(r.host.ram_stated is None for r in recs if (r.source.figure or "").startswith("llama-cpp-benches/"))
    assert all(r.source.date is None for r in recs if (r.source.figure or "").startswith("lhl-strix-halo-testing/"))


@pytest.mark.parametrize("root", _manifests(), ids=lambda p: p.name)
def test_committed_records_match_a_fresh_import(root: Path) -> None:
    fresh = {r.source.figure: r for r in bench_set.load_records(root)}
    committed = {r.source.figure: r for r in _imported() if (r.source.figure or "").startswith(f"{root.name}/")}
    assert set(fresh) == set(committed)
    for key, rec in fresh.items():
        a, b = store.record_to_dict(rec), store.record_to_dict(committed[key])
        for k in ("id", "created_at"):
            a.pop(k), b.pop(k)
        assert a == b, f"{key}: data/ is stale; re-import with --force"


# --- a small source of our own, to break -------------------------------------------------------------------------

KEPT_MD = """\
  Device 0: NVIDIA GeForce RTX 3090, compute capability 8.6, VMM: yes
| model                          |       size |     params | backend    | ngl |            test |                  t/s |
| ------------------------------ | ---------: | ---------: | ---------- | --: | --------------: | -------------------: |
| qwen3moe 30B.A3B Q4_K - Medium |  17.28 GiB |    30.53 B | CUDA       |  99 |           pp512 |       1234.56 ± 7.89 |
| qwen3moe 30B.A3B Q4_K - Medium |  17.28 GiB |    30.53 B | CUDA       |  99 |           tg128 |         45.67 ± 0.12 |

build: 0123abcd (6000)

RAM: 64GB DDR5-6000 (2 channels)
./llama-sweep-bench -m /m/Qwen3-30B-A3B-Q4_K_M.gguf -c 4096 -ngl 99 -fa -ot exps=CPU --threads 8
ggml_cuda_init: found 1 CUDA devices:
  Device 0: NVIDIA GeForce RTX 3090, compute capability 8.6, VMM: yes
build: 6001 (4567abcd) with cc (GCC) 14.2.1 for x86_64-linux-gnu

|    PP |     TG |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |
|-------|--------|--------|----------|----------|----------|----------|
|   512 |    128 |      0 |    0.500 |  1024.00 |    4.000 |    32.00 |
|   512 |    128 |    512 |    0.600 |   853.33 |    4.100 |    31.22 |
|   512 |    128 |   1024 |    0.700 |   731.43 |    4.200 |    30.48 |
"""
MANIFEST = """\
title: a test source
kept:
  - file: post.md
    sha256: {sha}
    url: https://example.invalid/thread
    excerpt: true
    parts:
      - lines: [1, 8]
        url: https://example.invalid/thread#1
        runtime: llama.cpp
      - lines: [10, 19]
        url: https://example.invalid/thread#2
        author: someone
        date: "2025-05-01"
        runtime: llama.cpp
        ram_stated: 64GB DDR5-6000 (2 channels)
        model_name: Qwen3-30B-A3B
        quant: Q4_K_M
        command: ["./llama-sweep-bench", "-m", "{{model}}", "-c", "4096", "-ngl", "99", "-fa", "-ot", "exps=CPU", \
"--threads", "8"]
        depths: [0, 1024]
        quotes: ["RAM: 64GB DDR5-6000 (2 channels)"]
"""


def _source(tmp_path: Path, kept: str = KEPT_MD, manifest: str = MANIFEST, name: str = "post.md") -> Path:
    root = tmp_path / "imports" / "llama-bench" / "test-source"
    root.mkdir(parents=True)
    (root / name).write_text(kept, encoding="utf-8")
    sha = hashlib.sha256(kept.encode()).hexdigest()
    (root / "source.yaml").write_text(manifest.format(sha=sha), encoding="utf-8")
    return root


def test_a_small_source_imports_every_stated_value(tmp_path: Path) -> None:
    recs = {r.source.figure: r for r in bench_set.load_records(_source(tmp_path))}
    assert sorted(recs) == ["test-source/post.md:17:pp", "test-source/post.md:17:tg", "test-source/post.md:19:pp",
                            "test-source/post.md:19:tg", "test-source/post.md:4", "test-source/post.md:5"]
    bench = recs["test-source/post.md:5"]
    assert bench.summary.tg_tps is not None and bench.summary.tg_tps.text == "45.67 ± 0.12"
    assert bench.llama_cpp.build_number == 6000 and not bench.tags and bench.host.ram_stated is None
    tg = recs["test-source/post.md:19:tg"]
    assert tg.summary.tg_tps is not None and (tg.summary.tg_tps.stated, tg.summary.tg_tps.text) == (30.48, "30.48")
    assert tg.samples[0].depth_tokens == 1024 and tg.samples[0].gen_tokens == 128
    assert tg.config.extra_args == ["-ot", "exps=CPU"] and tg.config.threads == 8 and tg.config.flash_attn == "on"
    assert tg.config.ctx_size == 4096 and tg.tags == [bench_set.OFFLOAD_TAG]
    assert tg.host.ram_stated == "64GB DDR5-6000 (2 channels)" and tg.source.command == "printed"
    assert (tg.llama_cpp.build_number, tg.llama_cpp.commit, tg.llama_cpp.backend) == (6001, "4567abcd", "CUDA")
    assert tg.source.runtime == "llama.cpp (llama-sweep-bench)" and tg.source.date == "2025-05-01"


def test_a_json_test_names_its_model_by_its_file() -> None:
    """llama-bench's own model name is llama.cpp's architecture and size class: "llama 13B Q4_K - Medium" for lhl's
    Mistral Small 24B, "gpt-oss ?B F16" for a 20B and a 120B file alike (one model whose figures "disagreed"). lhl's
    records are named by the file each test names; its architecture and size class stay in model.arch and
    size_label (what tells the judge that GLM-4.5-Air is a mixture of experts)."""
    lhl = [r for r in _imported() if (r.source.figure or "").startswith("lhl-strix-halo-testing/")]
    names = {(r.model.file_name, r.model.name, r.model.arch, r.model.size_label) for r in lhl}
    assert ("Mistral-Small-3.1-24B-Instruct-2503-UD-Q4_K_XL.gguf", "Mistral-Small-3.1-24B-Instruct-2503", "llama",
            "13B") in names
    assert ("GLM-4.5-Air-UD-Q4_K_XL-00001-of-00002.gguf", "GLM-4.5-Air", "glm4moe", "106B.A12B") in names
    assert {n for f, n, _, _ in names if f and f.startswith("gpt-oss")} == {"gpt-oss-20b", "gpt-oss-120b"}
    judged = judge_records(list(_imported()))
    assert not [r.id for r in lhl for m in ("tg", "pp") if (g := judged.group(r.id, m)) is not None and g.wide
                and r.model.name and r.model.name.startswith("gpt-oss")]
    assert not [f for f in judged.flagged() if f.record_id in {r.id for r in lhl}]  # MoE read as MoE


def test_reimport_adds_nothing_and_a_changed_copy_is_refused(tmp_path: Path) -> None:
    root = _source(tmp_path)
    data = tmp_path / "data"
    written, skipped = bench_set.import_bench_set(root, data)
    assert len(written) == 6 and not skipped
    again, skipped = bench_set.import_bench_set(root, data)
    assert again == [] and len(skipped) == 6
    first = {r.source.figure: (r.id, r.created_at) for r in load_index(data).valid}
    forced, skipped = bench_set.import_bench_set(root, data, force=True)  # replaced: each keeps its id and date
    assert sorted(forced) == sorted(written) and not skipped
    assert {r.source.figure: (r.id, r.created_at) for r in load_index(data).valid} == first
    kept = root / "post.md"
    kept.write_text(kept.read_text(encoding="utf-8").replace("45.67", "46.67"), encoding="utf-8")
    with pytest.raises(CollectorError, match=r"post\.md: its sha256 is not the one"):
        bench_set.load_records(root)


BROKEN = {
    "no manifest": (None, None, "no source.yaml"),
    "unknown key": (KEPT_MD, MANIFEST.replace("        runtime: llama.cpp\n      - lines",
                                              "        runtime: llama.cpp\n        colour: red\n      - lines"),
                    "unknown key"),
    "quote not in the copy": (KEPT_MD, MANIFEST.replace('quotes: ["RAM', 'quotes: ["SAM'), "is not in"),
    "ram without its quote": (KEPT_MD, MANIFEST.replace("ram_stated: 64GB", "ram_stated: 96GB"),
                              "in none of the part's quotes"),
    "lines past the end": (KEPT_MD, MANIFEST.replace("lines: [10, 19]", "lines: [10, 99]"), "has 19"),
    "a depth not in the table": (KEPT_MD, MANIFEST.replace("depths: [0, 1024]", "depths: [0, 2048]"),
                                 "no sweep row at that N_KV"),
    "a rate that is not one": (KEPT_MD.replace("731.43", "fast"), MANIFEST, "is not a rate"),
    "a config the registry refuses": (KEPT_MD, MANIFEST.replace("model_name: Qwen3", "config: {{gpu_count: 2}}\n"
                                                                "        model_name: Qwen3"), "config"),
    "an unknown runtime": (KEPT_MD, MANIFEST.replace("runtime: llama.cpp\n      - lines",
                                                     "runtime: vllm\n      - lines"), "one of llama.cpp"),
    "not UTF-8": ("\udcff", MANIFEST, "not UTF-8"),
    "not a mapping": (KEPT_MD, "- just\n- a list\n", "must be a mapping"),
    "two parts on one row": (KEPT_MD, MANIFEST.replace("lines: [10, 19]", "lines: [1, 19]"), "same rows"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_sources_fail_with_one_line_and_write_nothing(tmp_path: Path, case: str) -> None:
    kept, manifest, words = BROKEN[case]
    if kept is None:
        root = tmp_path / "imports" / "llama-bench" / "empty"
        root.mkdir(parents=True)
    elif kept == "\udcff":
        root = _source(tmp_path)
        raw = (root / "post.md").read_bytes().replace(b"Device 0", b"Device \xff")
        (root / "post.md").write_bytes(raw)
        meta = (root / "source.yaml").read_text(encoding="utf-8")
        sha = hashlib.sha256(KEPT_MD.encode()).hexdigest()
        (root / "source.yaml").write_text(meta.replace(sha, hashlib.sha256(raw).hexdigest()), encoding="utf-8")
    else:
        root = _source(tmp_path, kept, manifest)
    r = subprocess.run([sys.executable, "-m", "collector.cli", "import", "bench-set", str(root), "--data-dir",
                        str(tmp_path / "data")], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)})
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert words in lines[0], lines[0]
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").rglob("*.yaml"))


def test_a_kept_file_that_is_a_link_is_refused(tmp_path: Path) -> None:
    root = _source(tmp_path)
    target = tmp_path / "elsewhere.md"
    shutil.move(root / "post.md", target)
    (root / "post.md").symlink_to(target)
    with pytest.raises(CollectorError, match="symbolic link"):
        bench_set.load_records(root)


def test_a_printed_command_becomes_its_config() -> None:
    cfg = bench_set.config_from_command(["./llama-sweep-bench", "--model", "{model}", "-c", "32768", "-ngl", "99",
                                         "-fa", "-ctk", "q8_0", "-ctv", "q8_0", "-rtr", "-ot", "blk\\.1[4-9]=CPU",
                                         "--n-cpu-moe", "12", "-ub", "2048", "--threads", "24"], "here")
    assert (cfg.ctx_size, cfg.n_gpu_layers, cfg.flash_attn, cfg.cache_type_k, cfg.cache_type_v) == \
        (32768, 99, "on", "q8_0", "q8_0")
    assert (cfg.n_cpu_moe, cfg.ubatch_size, cfg.threads) == (12, 2048, 24)
    assert cfg.extra_args == ["-rtr", "-ot", "blk\\.1[4-9]=CPU"]
    with pytest.raises(CollectorError, match="here: command -c 'lots': not a whole number"):
        bench_set.config_from_command(["x", "-c", "lots"], "here")
