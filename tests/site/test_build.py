"""`mkdocs build --strict` on the fixture records, and what the generated pages must contain."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from collector.publish import build_site, render_site
from collector.publish.site.build import HOME_PLACEHOLDER, RESERVED_PREFIXES
from collector.publish.site.run_pages import MANIFEST
from collector.records.index import load_records
from fixtures.records.factory import HOSTILE
from sitebuild import mkdocs_build, page_commands, page_text

pytestmark = pytest.mark.site
REPO = Path(__file__).resolve().parents[2]
FIXTURE_DATA = REPO / "tests" / "fixtures" / "records" / "data"
SVG = "{http://www.w3.org/2000/svg}"


def _html(site: Path, url: str) -> str:
    return (site / url / "index.html").read_text(encoding="utf-8")


def _section(page: str, start: str, end: str) -> str:
    text = page_text(page)
    return text[text.index(start):text.index(end, text.index(start))]


def test_strict_build_has_every_page(built_site: Path) -> None:
    for url in ("", "devices", "models", "compare", "runs", "data", "methodology", "contributing", "glossary",
                "devices/rtx-4090", "devices/2x-rtx-3060", "devices/3x-ai-pro-r9700",
                "devices/cpu-test-xeon-cpu-2-20ghz", "models/llama-test-8b", "models/qwen3-moe-test"):
        assert (built_site / url / "index.html").is_file(), url
    n = len(load_records(FIXTURE_DATA))
    assert len(list((built_site / "runs").glob("*/index.html"))) == n
    assert not (built_site / "runs" / "_shell").exists()
    assert "runs/_shell" not in (built_site / "sitemap.xml").read_text(encoding="utf-8")
    data = json.loads((built_site / "data" / "records.json").read_text(encoding="utf-8"))
    assert len(data) == n


def test_every_gpu_page_recommends_a_runnable_command(built_site: Path) -> None:
    # 2x RTX 3060: the source states every flag, so the command is rebuilt from them, and said so
    dev = _html(built_site, "devices/2x-rtx-3060")
    cmds = page_commands(dev)
    assert cmds and all(c.startswith("llama-server -m Coder-REAP-Test.i1-IQ3_M.gguf") for c in cmds)
    assert "-ctk q8_0 -ctv q4_0 -fa on" in cmds[0] and "-ts 1,1" in cmds[0] and "--n-cpu-moe 0" in cmds[0]
    assert "rebuilt from the flags the source states" in page_text(dev)
    assert "No command:" not in page_text(dev)
    # 3x R9700: KLD only; its figures and the most faithful pick are on its page, titled by its GPUs
    dev = _html(built_site, "devices/3x-ai-pro-r9700")
    text = page_text(dev)
    assert text.startswith("3x AMD Radeon AI PRO R9700")
    assert "Most faithful: Coder Next Test" in text and "UD-Q5_K_M: mean KLD 0.0217" in text
    assert "0.21" in text and "CPU: not stated" in text
    # the measured GPU page: the command each pick was measured with
    dev = _html(built_site, "devices/rtx-4090")
    assert any(c == "llama-server -m Llama-Test-8B.Q4_K_M.gguf -c 8192 -ngl 99" for c in
               page_commands(dev))


def test_stated_figures_keep_their_tilde_digits_and_quote(built_site: Path) -> None:
    text = page_text(_html(built_site, "devices/rtx-4090"))
    pub = text[text.index("stated by its source"):]  # the answer cards of the published setups
    assert "~94 t/s approximate, as stated; no spread" in pub
    assert "TG: ~94 t/s (86-94 over the day)" in pub  # the quote that holds the figure
    text = page_text(_html(built_site, "devices/2x-rtx-3060"))
    assert "22.40 t/s" in text and "22.00 t/s" in text  # as written, never re-rounded


def test_unstated_facts_are_shown_as_not_stated(built_site: Path) -> None:
    text = page_text(_html(built_site, "devices/rtx-4090"))
    pub = text[text.index("stated by its source"):text.index("This device")]  # the published setups' cards
    assert "KV types (K/V) not stated" in pub and "f16" not in pub
    assert "date not stated" in pub
    assert "MoE" in pub and "dense" not in pub
    # a measured run names its llama.cpp build, never b0-unknown
    assert "llama.cpp b11434" in text and "b0" not in text
    dev = page_text(_html(built_site, "devices/2x-rtx-3060"))
    assert "VRAM 12GB (as stated)" in dev and "date 2026-02-14 (as stated)" in dev


def test_speed_figures_carry_n_and_spread_and_noise_is_not_a_ranking(built_site: Path) -> None:
    dev = _html(built_site, "devices/cpu-test-xeon-cpu-2-20ghz")
    text = page_text(dev)
    # the configuration measured twice is one row of n=6 (two runs of three); the noisy one is apart, marked
    assert "median of n=6" in text and "2 runs" in text
    assert "noisy" in text and "other processes used 48% of the CPU" in dev
    cards = dev[dev.index('<div class="qa-cards">'):]
    first = page_text(cards[:cards.index('<div class="qa-card ', 30)])  # the first answer card of the model
    assert "40" not in first.split("Prompt (pp)")[0] and "noisy" not in first
    # two configurations that differ only in batch size get different labels
    start = dev.index('id="every-configuration"')
    table = dev[start:dev.index("</table>", start)]
    labels = re.findall(r'<td><a href="[^"]*runs/[^"]*">([^<]*)</a><span class="qa-n">', table)
    assert len(labels) == len(set(labels)) and any("batch 256" in x for x in labels), labels


def test_context_pick_says_how_full_its_context_was(built_site: Path) -> None:
    text = page_text(_html(built_site, "devices/rtx-4090"))
    # compared only at the same filled depth: at 4,096 filled 32768 keeps 110 of 115 t/s (never 130, a depth-0 speed)
    assert "(32,768 tokens) among the configurations measured with 4,096 tokens filled that keep at least 80% of the " \
           "fastest of them: 110.0 t/s (95.7 % of 115.0 t/s)" in text
    assert "With 16,384 tokens filled it runs 90.0 t/s" in text
    assert "Only 8,192 of its 65,536 tokens were filled" in text  # the MoE model's pick
    # a model measured at depth 0 only: its context was only allocated, so nothing is recommended
    assert "No largest-context pick: only the allocation was measured" in text and "Only 0 of" not in text
    dev = _html(built_site, "devices/rtx-4090")
    assert "charts/devices/rtx-4090-depth-light.svg" in dev and "charts/devices/rtx-4090-depth-pp-dark.svg" in dev
    pub = page_text(_html(built_site, "devices/2x-rtx-3060"))
    assert "No largest-context pick: only the allocation was measured" in pub


def test_hostile_strings_show_as_text_everywhere(built_site: Path) -> None:
    for page in built_site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script>alert(1)" not in text, page
        assert "<strong>bold</strong>" not in text, page
        assert "\u202e" not in text and "\x00" not in text, page
    run = _html(built_site, "runs/01FIXTURE00000000000000016")
    assert HOSTILE in page_text(run) and "<strong>" not in run  # the text, as text
    # the bidi override is shown, not obeyed, inside the copyable command
    assert any("\\u202e" in c for c in page_commands(_html(built_site, "devices/rtx-4090")))


def test_svgs_parse_and_chart_labels_are_unique(built_site: Path) -> None:
    svgs = list((built_site / "charts").rglob("*.svg"))
    assert len(svgs) >= 10
    for path in svgs:
        root = ET.parse(path).getroot()  # a NUL or a stray '<' would make this raise
        ticks = [" ".join(w for t in g.iter(f"{SVG}text") for w in " ".join(t.itertext()).split())
                 for g in root.iter(f"{SVG}g") if re.fullmatch(r"[xy]tick_\d+", g.get("id") or "")]
        labels = [t for t in ticks if t and not re.fullmatch(r"[\d.,−-]+%?", t)]
        dup = [t for t, c in Counter(labels).items() if c > 1]
        assert not dup, f"{path.name}: tick labels repeat: {dup}"


def test_downloads_are_safe_for_spreadsheets(built_site: Path) -> None:
    text = (built_site / "data" / "records.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == len(load_records(FIXTURE_DATA)) + 1
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
            assert not (cell.startswith("-") and not re.fullmatch(r"-[\d.]+", cell)), cell
    assert "'=HYPERLINK" in text


def test_home_is_like_with_like_and_has_no_placeholder(built_site: Path) -> None:
    home = _html(built_site, "")
    assert HOME_PLACEHOLDER not in home and "quant-atlas:home" not in home
    assert "<strong>5</strong> devices" in home
    latest = page_text(home)[page_text(home).index("Latest measured runs"):]
    assert "Coder REAP Test" not in latest  # imported figures are not runs of ours, whatever their date


def test_failed_run_page_shows_error(built_site: Path) -> None:
    page = _html(built_site, "runs/01FIXTURE00000000000000006")
    assert "This run failed" in page and "failed to load model: not enough memory" in page
    assert "CUDA out of memory" in page
    assert "null" not in page_text(page)


def test_invalid_records_fail_the_strict_build_and_are_never_published(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE_DATA, data)
    one = next(p for p in sorted(data.rglob("*.yaml")) if "01FIXTURE00000000000000001" in p.name)
    text = one.read_text(encoding="utf-8")
    bad = {"binary.yaml": b"\xff\xfe\x00\x01garbage\n",
           "truncated.yaml": text[: text.index("\nplan:")].encode() + b"\n",
           "inf.yaml": re.sub(r"id: \S+", "id: 01BADINF", text, count=1).replace("median: ", "median: .inf #",
                                                                                1).encode(),
           "dup.yaml": text.encode()}  # the same id as the file it copies
    for name, body in bad.items():
        (one.parent / name).write_bytes(body)
    proc = subprocess.run([sys.executable, "-m", "collector.cli", "validate", str(data)], capture_output=True,
                          text=True)
    assert proc.returncode != 0
    for name in bad:
        assert name in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    out = tmp_path / "site"
    built = mkdocs_build(data, out)
    assert built.returncode != 0
    for name in bad:
        assert f"invalid record, not published: {one.parent / name}" in built.stderr, built.stderr[-2000:]
    quiet = mkdocs_build(data, tmp_path / "quiet", "-q", "--strict")  # -q dropped the warnings strict counted
    said = quiet.stdout + quiet.stderr
    assert quiet.returncode != 0 and "invalid record file(s)" in said and "Traceback" not in said, said


def test_hostile_files_and_values_never_stop_validate_or_the_build(tmp_path: Path) -> None:
    """Every file and value of the hostile review (issue 25, 2-5) is refused with one line by validate and left
    out of the site: the build of the rest succeeds (strict: fails naming them), nothing hangs or crashes."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE_DATA, data)
    files = sorted(data.rglob("*.yaml"))
    speed_text = next(p for p in files if "01FIXTURE00000000000000001" in p.name).read_text(encoding="utf-8")
    kld_text = next(p for p in files if "-kld-" in p.name).read_text(encoding="utf-8")
    folder = files[0].parent
    n = iter(range(100))

    def variant(text: str, line: str, new: str) -> bytes:
        """The record with a new id and the first line matching `line` (a regex) replaced by `new`."""
        text = re.sub(r"(?m)^id: \S+", f"id: 01HOSTILE{next(n):017d}", text, count=1)
        text, count = re.subn(f"(?m)^{line}$", lambda _: new, text, count=1)
        assert count == 1, line
        return text.encode()

    bad = {
        "naive-time.yaml": variant(speed_text, "created_at: .*", 'created_at: "2026-11-27T10:00:00"'),
        "size-2-64.yaml": variant(speed_text, "  size_bytes: .*", "  size_bytes: 18446744073709551616"),
        "ctx-401.yaml": variant(speed_text, "  ctx_size: .*", "  ctx_size: " + "9" * 401),
        "surrogate.yaml": variant(speed_text, "  name: .*", '  name: "\\uD800"'),
        "kld-negative.yaml": variant(kld_text, "  kld_mean: .*", "  kld_mean: -5.5"),
        "utf-16.yaml": variant(speed_text, "status: ok", "status: ok").decode().encode("utf-16"),
        "nel.yaml": variant(speed_text, "status: ok", "status: ok").replace(b"\nstatus:", "\u0085status:".encode()),
    }
    for name, body in bad.items():
        (folder / name).write_bytes(body)
    (folder / "dangling.yaml").symlink_to(folder / "nowhere")
    (folder / "zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.yaml")
    with open(os.fsencode(folder) + b"/\xff\xfe.yaml", "wb") as fh:
        fh.write(variant(speed_text, "status: ok", "status: ok"))
    for rid in ("r-qa-x", "qa x"):
        (folder / f"slug-{rid.replace(' ', '_')}.yaml").write_bytes(
            re.sub(r"(?m)^id: \S+", f"id: {rid}", speed_text, count=1).encode())
    refused = len(bad) + 6
    proc = subprocess.run([sys.executable, "-m", "collector.cli", "validate", str(data)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    invalid = [ln for ln in proc.stderr.splitlines() if ln.startswith("invalid ")]
    assert len(invalid) == refused, "\n".join(invalid)
    assert f"error: {refused} of " in proc.stderr
    strict = mkdocs_build(data, tmp_path / "strict")
    assert strict.returncode != 0 and "Traceback" not in strict.stderr, strict.stderr[-3000:]
    assert strict.stderr.count("invalid record, not published") == refused
    lenient = mkdocs_build(data, tmp_path / "site", "--quiet")
    assert lenient.returncode == 0 and "Traceback" not in lenient.stderr, lenient.stderr[-3000:]
    runs = tmp_path / "site" / "runs"
    assert runs.is_dir() and not list(runs.glob("*HOSTILE*")) and not (runs / "r-qa-x").exists()


def test_generated_files_stay_under_reserved_prefixes() -> None:
    files = render_site(FIXTURE_DATA)
    assert all(f.src_uri.startswith(RESERVED_PREFIXES) for f in files)
    handwritten = [p.relative_to(REPO / "site").as_posix() for p in (REPO / "site").rglob("*") if p.is_file()]
    assert not [p for p in handwritten if p.startswith(RESERVED_PREFIXES)]
    assert HOME_PLACEHOLDER in (REPO / "site" / "index.md").read_text(encoding="utf-8")


def test_charts_are_byte_identical_across_renders(monkeypatch) -> None:
    monkeypatch.setenv("QUANT_ATLAS_CACHE", "0")  # really draw twice
    recs = load_records(FIXTURE_DATA)
    first = {f.src_uri: f.content for f in build_site(recs).files}
    second = {f.src_uri: f.content for f in build_site(recs).files}
    svgs = [k for k in first if k.endswith(".svg")]
    assert len(svgs) >= 10
    assert first == second
    light, dark = first["charts/devices/rtx-4090-tg-light.svg"], first["charts/devices/rtx-4090-tg-dark.svg"]
    assert light != dark and b"<dc:date>" not in light and b"Matplotlib v" not in light


def test_parallel_build_gives_the_same_bytes(monkeypatch) -> None:
    import collector.records.index as index_mod
    from collector.publish.site.build import build_from

    monkeypatch.setenv("QUANT_ATLAS_CACHE", "0")
    monkeypatch.setenv("QUANT_ATLAS_JOBS", "1")
    serial = [(f.src_uri, f.content) for f in build_from(FIXTURE_DATA).files]
    monkeypatch.setenv("QUANT_ATLAS_JOBS", "2")
    monkeypatch.setattr(index_mod, "PARALLEL_FROM", 1)  # records parsed in worker processes even for the fixtures
    assert [(f.src_uri, f.content) for f in build_from(FIXTURE_DATA).files] == serial


def _tree(root: Path) -> dict[str, bytes]:
    """Every file of a built site, but the cache's bookkeeping of which run pages a rebuild may keep."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def test_warm_builds_give_the_bytes_of_an_uncached_build(tmp_path: Path, monkeypatch) -> None:
    """The caches (records, run pages, the whole build) and the deferred blocks change nothing a reader gets,
    and no placeholder is left in any page."""
    from collector.base.cache import cache_dir

    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path / "cache"))  # this test's caches only
    monkeypatch.setenv("QUANT_ATLAS_CACHE", "0")
    assert mkdocs_build(FIXTURE_DATA, tmp_path / "plain").returncode == 0
    monkeypatch.setenv("QUANT_ATLAS_CACHE", "1")
    monkeypatch.setenv("PYTHONHASHSEED", "1")  # and the warm build another: no key may follow a process's seed
    assert mkdocs_build(FIXTURE_DATA, tmp_path / "cold").returncode == 0
    [memo] = cache_dir("site").glob("build-*.pickle")
    written = memo.stat().st_mtime_ns
    monkeypatch.setenv("PYTHONHASHSEED", "2")
    warm = mkdocs_build(FIXTURE_DATA, tmp_path / "warm", "--strict", "--verbose")
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert memo.stat().st_mtime_ns == written  # the warm build was the memo's: nothing built, nothing written
    # neither MkDocs nor its search plugin read a page, and no page template was rendered (page_memo.HtmlMemo)
    for what in ("Markdown conversion", "search entries", "theme rendering"):
        done = re.findall(rf"{what} of (\d+) pages done again, (\d+) kept from the last build", warm.stderr)
        assert len(done) == 1 and done[0][0] == "0" and int(done[0][1]) > 30, (what, done)
    plain = _tree(tmp_path / "plain")
    for name in ("cold", "warm"):  # the search index too: the warm one from the kept entries (page_memo.SearchMemo)
        assert _tree(tmp_path / name) == plain, name
    pages = [v for k, v in plain.items() if k.endswith(".html")]
    assert len(pages) > 30 and not [p for p in pages if b"qa-deferred" in p]
    device = (tmp_path / "warm" / "devices" / "rtx-4090" / "index.html").read_text(encoding="utf-8")
    assert device.count("<table") >= 2 and page_commands(device)  # the deferred tables and commands are back


def test_a_build_after_one_more_record_renders_only_the_pages_it_changes(tmp_path: Path, monkeypatch) -> None:
    """One record added: MkDocs converts and renders with the theme only the pages whose inputs changed (the kept
    ones are the rest), and the site is byte for byte an uncached build's."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE_DATA, data)
    record = data / "records" / "rtx-4090" / "llama-test-8b" / "2026-11-01-speed-01FIXTURE00000000000000011.yaml"
    # (a second run of its configuration: no page comes or goes with it)
    text = record.read_bytes()
    record.unlink()
    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QUANT_ATLAS_CACHE", "1")
    assert mkdocs_build(data, tmp_path / "site").returncode == 0
    record.write_bytes(text)
    again = mkdocs_build(data, tmp_path / "site", "--strict", "--verbose")
    assert again.returncode == 0, again.stderr[-3000:]
    for what in ("Markdown conversion", "theme rendering"):
        [(done, kept)] = re.findall(rf"{what} of (\d+) pages done again, (\d+) kept from the last build", again.stderr)
        assert 0 < int(done) < int(kept), (what, done, kept)
    monkeypatch.setenv("QUANT_ATLAS_CACHE", "0")
    assert mkdocs_build(data, tmp_path / "plain").returncode == 0
    assert _tree(tmp_path / "site") == _tree(tmp_path / "plain")


def test_run_pages_of_unchanged_records_come_from_the_cache(tmp_path: Path, monkeypatch) -> None:
    import collector.publish.site.run_pages as site_mod
    from collector.publish.site.build import SHELL_MARK, SiteBuild, run_ref
    from collector.publish.site.run_pages import write_run_pages

    recs = load_records(FIXTURE_DATA)
    rendered: list[str] = []
    real = site_mod.run_html

    def counting(rec, *args):
        rendered.append(rec.id)
        return real(rec, *args)

    monkeypatch.setattr(site_mod, "run_html", counting)
    monkeypatch.setattr(site_mod, "RUNS_PARALLEL_FROM", 10 ** 9)  # in this process, where the count is kept

    def build(out: Path, versions: dict[str, str]) -> dict[str, bytes]:
        (out / "runs" / "_shell").mkdir(parents=True)
        (out / "runs" / "_shell" / "index.html").write_text(
            f"<html><title>Run</title><h1>Run</h1>{SHELL_MARK}</html>", encoding="utf-8")
        build = SiteBuild([], "", records=recs, runs=[run_ref(r) for r in recs], versions=versions,
                          site_key=str(FIXTURE_DATA))
        assert write_run_pages(build, out) == len(recs)
        return _tree(out)

    versions = {r.id: f"{r.id}|1" for r in recs}
    first = build(tmp_path / "a", versions)
    assert sorted(rendered) == sorted(r.id for r in recs)
    rendered.clear()
    assert build(tmp_path / "b", versions) == first and rendered == []
    changed = recs[3].id
    assert build(tmp_path / "c", {**versions, changed: f"{changed}|2"}) == first and rendered == [changed]


def test_run_pages_rendered_by_workers_are_the_serial_bytes_and_all_cached(tmp_path: Path, monkeypatch) -> None:
    """Workers render run pages a few at a time and the bodies are cached as they come (never all held at once):
    the pages are those of a serial build, and every body reached the cache."""
    import collector.publish.site.run_pages as site_mod
    from collector.publish.site.build import SHELL_MARK, SiteBuild, run_ref
    from collector.publish.site.run_pages import write_run_pages

    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path / "cache"))
    recs = load_records(FIXTURE_DATA)
    assert len(recs) > 4 * 3  # several chunks, and several cache transactions

    def build(out: Path, jobs: str, cache: str) -> dict[str, bytes]:
        monkeypatch.setenv("QUANT_ATLAS_JOBS", jobs)
        monkeypatch.setenv("QUANT_ATLAS_CACHE", cache)
        (out / "runs" / "_shell").mkdir(parents=True)
        (out / "runs" / "_shell" / "index.html").write_text(
            f"<html><title>Run</title><h1>Run</h1>{SHELL_MARK}</html>", encoding="utf-8")
        build = SiteBuild([], "", records=recs, runs=[run_ref(r) for r in recs],
                          versions={r.id: f"{r.id}|1" for r in recs}, site_key=str(FIXTURE_DATA))
        assert write_run_pages(build, out) == len(recs)
        return _tree(out)

    serial = build(tmp_path / "serial", "1", "0")
    monkeypatch.setattr(site_mod, "RUNS_PARALLEL_FROM", 1)
    monkeypatch.setattr(site_mod, "RUNS_CHUNK", 3)
    assert build(tmp_path / "workers", "2", "1") == serial
    rendered: list[str] = []
    real = site_mod.run_html
    monkeypatch.setattr(site_mod, "run_html", lambda rec, *args: rendered.append(rec.id) or real(rec, *args))
    assert build(tmp_path / "again", "1", "1") == serial and rendered == []


def test_an_unchanged_data_set_is_built_from_the_memo(tmp_path: Path, monkeypatch) -> None:
    """A second build of the same record files parses and renders nothing and gives the same build; any change of
    a file's bytes, a new file or a corrupt memo builds again; run pages from a memo read their records when they
    must be rendered."""
    import collector.publish.site.build as site_mod
    import collector.publish.site.run_pages as run_pages
    from collector.base.cache import cache_dir
    from collector.publish.site.build import SHELL_MARK
    from collector.publish.site.run_pages import write_run_pages

    data = tmp_path / "data"
    shutil.copytree(FIXTURE_DATA, data)
    loads: list[Path] = []
    real = site_mod.load_index
    counted = lambda d, *a, **k: loads.append(d) or real(d, *a, **k)  # noqa: E731
    monkeypatch.setattr(site_mod, "load_index", counted)
    monkeypatch.setattr(run_pages, "load_index", counted)
    first = site_mod.build_from(data)
    assert len(loads) == 1 and first.records
    memo = site_mod.build_from(data)
    assert len(loads) == 1 and memo.records == []
    assert (memo.whole(), memo.runs, memo.versions, memo.invalid, memo.home) == (
        first.whole(), first.runs, first.versions, first.invalid, first.home)
    record = sorted(data.rglob("*.yaml"))[0]
    record.write_text(record.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert site_mod.build_from(data).records and len(loads) == 2
    assert site_mod.build_from(data).records == [] and len(loads) == 2
    (record.parent / "broken.yaml").write_text("kind: [\n", encoding="utf-8")
    assert record.parent / "broken.yaml" in site_mod.build_from(data).invalid and len(loads) == 3
    for path in cache_dir("site").glob("build-*.pickle"):
        path.write_bytes(path.read_bytes()[:200] + b"garbage")
    again = site_mod.build_from(data)
    assert len(loads) == 4 and again.records
    memo = site_mod.build_from(data)
    assert memo.records == [] and len(loads) == 4
    out = tmp_path / "out"
    (out / "runs" / "_shell").mkdir(parents=True)
    (out / "runs" / "_shell" / "index.html").write_text(f"<html><title>Run</title><h1>Run</h1>{SHELL_MARK}</html>",
                                                        encoding="utf-8")
    monkeypatch.setenv("QUANT_ATLAS_CACHE", "0")  # no page kept and no body cached: every page is rendered
    assert write_run_pages(memo, out) == len(memo.runs) == len(list((out / "runs").glob("*/index.html")))
    assert len(loads) == 5  # the records, read again for the pages


def test_history_pages_for_configurations_measured_by_two_builds(built_site: Path) -> None:
    cpu = _html(built_site, "devices/cpu-test-xeon-cpu-2-20ghz")
    [link] = re.findall(r'href="(history/[^"]+/)"', cpu)
    text = page_text(cpu)
    assert "History across llama.cpp builds" in text and "(b11401, b11434)" in text
    assert "speedup of 16.0 % from b11401 to b11434" in text  # the fixture's CPU Q4_1: 80.98 -> 93.95 t/s
    page = _html(built_site, f"devices/cpu-test-xeon-cpu-2-20ghz/{link}")
    body = page_text(page)
    assert "git bisect start b11434 b11401" in body
    assert "median of n=3" in body and "median of n=6" in body  # per build, with n and spread
    assert "prompt processing (pp): no change beyond noise across 2 builds" in body
    for variant in ("light", "dark"):
        [svg] = re.findall(rf'src="([^"]+-history-[^"]+-{variant}\.svg)#only-{variant}"', page)
        assert (built_site / f"devices/cpu-test-xeon-cpu-2-20ghz/{link}" / svg).resolve().is_file()
    gpu = page_text(_html(built_site, "devices/rtx-4090"))
    hist = gpu[gpu.index("History across llama.cpp builds"):]
    assert "generation (tg): no change beyond noise across 2 builds" in hist
    # the recommendation names the build it was measured with
    fastest = _section(_html(built_site, "devices/cpu-test-xeon-cpu-2-20ghz"), "Fastest", "run page")
    assert "llama.cpp b11434 · 2 run(s) pooled" in fastest


def test_a_rebuild_keeps_unchanged_run_pages_and_equals_a_fresh_build(tmp_path: Path, monkeypatch) -> None:
    """Building into the same folder again leaves the pages of unchanged records in place (no rewrite), rewrites a
    changed record's page, removes a gone record's page, and gives exactly the site a clean uncached build gives."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE_DATA, data)
    out = tmp_path / "out"
    assert mkdocs_build(data, out).returncode == 0
    records = data / "records" / "2x-rtx-3060" / "coder-reap-test"
    changed, gone = records / "2026-11-01-speed-01FIXTURE00000000000000020.yaml", \
        records / "2026-11-01-speed-01FIXTURE00000000000000019.yaml"
    kept = out / "runs" / "01FIXTURE00000000000000010" / "index.html"
    inode, old = kept.stat().st_ino, (out / "runs" / "01FIXTURE00000000000000020" / "index.html").read_text()
    edited = changed.read_text().replace("no KV cache type is stated", "no KV cache type is stated, re-edited")
    changed.write_text(edited)
    gone.unlink()
    assert mkdocs_build(data, out).returncode == 0
    assert kept.stat().st_ino == inode  # left in place, not written again
    new = (out / "runs" / "01FIXTURE00000000000000020" / "index.html").read_text()
    assert new != old and "re-edited" in new and not (out / "runs" / "01FIXTURE00000000000000019").exists()
    assert not list(tmp_path.glob(".*qa-runs-kept"))
    monkeypatch.setenv("QUANT_ATLAS_CACHE", "0")
    assert mkdocs_build(data, tmp_path / "fresh").returncode == 0
    fresh = {k: v for k, v in _tree(tmp_path / "fresh").items() if not k.startswith("search/")}
    again = {k: v for k, v in _tree(out).items() if not k.startswith("search/")}
    assert again == fresh


def test_kept_run_pages_go_back_with_one_rename_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    """The kept folder becomes runs/ again with MkDocs' own files moved into it, the changed and gone records'
    pages deleted; when a step fails, MkDocs' files are back in runs/ and no page counts as kept."""
    import collector.publish.site.run_pages as rp
    from collector.publish.site.build import RunRef

    def setup() -> tuple[Path, Path]:
        runs, kept = tmp_path / "site" / "runs", tmp_path / ".site.kept"
        shutil.rmtree(tmp_path / "site", ignore_errors=True)
        runs.mkdir(parents=True)
        (runs / "index.html").write_text("new list")
        for page in ("a", "b", "c"):
            (kept / page).mkdir(parents=True)
            (kept / page / "index.html").write_text(page)
        (kept / "index.html").write_text("old list")
        (kept / rp.MANIFEST).write_text(json.dumps({"shell": "S", "pages": {
            i: [i, rp._vhash(f"v{i}")] for i in ("a", "b", "c")}}))
        return runs, kept

    refs = [RunRef(i, i, i) for i in ("a", "b", "d")]
    vers = {"a": "va", "b": "vb2", "d": "vd"}  # b changed, c gone, d new
    runs, kept = setup()
    assert rp._reuse_kept(runs, kept, "S", refs, vers) == {"a"}
    assert sorted(os.listdir(runs)) == ["a", "index.html"] and not kept.exists()
    assert (runs / "index.html").read_text() == "new list" and (runs / "a" / "index.html").read_text() == "a"
    runs, kept = setup()

    real = os.rmdir

    def fail(path: object, *args: object, **kwargs: object) -> None:
        if path == runs:
            raise OSError("injected")
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rp.os, "rmdir", fail)
    assert rp._reuse_kept(runs, kept, "S", refs, vers) == set()
    assert os.listdir(runs) == ["index.html"] and (runs / "index.html").read_text() == "new list"
    assert not kept.exists()


def test_a_gpu_page_joins_kld_from_other_sources_to_its_imported_speed(built_site: Path) -> None:
    """The RTX 4090's published UD-Q4_K_XL and UD-Q5_K_M figures get the KLD of other sources: a table naming the
    uploader (joined by model + quant + uploader) and the R9700 post (model + quant: neither names one); the page
    says where each was measured and sets them side by side with the three picks."""
    text = page_text(_html(built_site, "devices/rtx-4090"))
    start = text.index("Coder Next Test: published figures")
    answer = text[start:text.index("What fits on this device", start)]
    assert "Fastest: UD-Q4_K_XL · ~94 t/s" in answer and "mean KLD 0.0412" in answer
    assert "Most faithful: UD-Q5_K_M · 41.0 t/s" in answer and "mean KLD 0.0217" in answer
    assert ("measured on a device the source does not state, imported from 005_fixture.txt: KLD of the Coder Next "
            "Test quants (fixture); joined by model + quant + uploader (unsloth/Coder-Next-Test-GGUF)") in answer
    assert ("measured on 3x AMD Radeon AI PRO R9700, imported from 004_fixture.txt: Three R9700 cards, KLD of a big "
            "MoE (fixture); joined by model + quant (the uploader is not stated on both sides)") in answer
    pub = text[text.index("stated by its source"):text.index("This device")]  # the published setups' cards
    assert "0.0412 (against a base not stated; corpus wikitext-2 (as stated); joined by model + quant + uploader" in pub
    # the file larger than the card's memory is said to spill into system RAM; the download is the named repository
    assert "The file (55.2 GB, as stated) is larger than the GPU memory (25.8 GB, measured)" in pub
    assert "DownloadHugging Face: unsloth/Coder-Next-Test-GGUF" in pub
