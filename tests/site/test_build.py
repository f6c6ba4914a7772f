"""`mkdocs build --strict` on the fixture records, and what the generated pages must contain."""

from __future__ import annotations

import csv
import html
import re
import io
import json
from pathlib import Path

from collector.publish import build_site, render_site
from collector.publish.site import HOME_PLACEHOLDER, RESERVED_PREFIXES
from collector.records.store import load_records

REPO = Path(__file__).resolve().parents[2]
FIXTURE_DATA = REPO / "tests" / "fixtures" / "records" / "data"
HOSTILE = "<script>alert(1)</script> **bold** | pipe"


def _html(site: Path, url: str) -> str:
    return (site / url / "index.html").read_text(encoding="utf-8")


def _text(page: str) -> str:
    """What a reader sees: tags (e.g. syntax highlighting spans) removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_strict_build_has_every_page(built_site: Path) -> None:
    for url in ("", "devices", "models", "compare", "runs", "data", "methodology", "contributing",
                "devices/rtx-4090", "devices/2x-rtx-3060", "devices/3x-ai-pro-r9700", "devices/cpu-test-xeon-cpu-2-20ghz",
                "models/llama-test-8b", "models/qwen3-moe-test", "models/script-alert-1-script-bold-pipe"):
        assert (built_site / url / "index.html").is_file(), url
    n = len(load_records(FIXTURE_DATA))
    assert len(list((built_site / "runs").glob("*/index.html"))) == n
    data = json.loads((built_site / "data" / "records.json").read_text(encoding="utf-8"))
    assert len(data) == n
    rows = list(csv.DictReader(io.StringIO((built_site / "data" / "records.csv").read_text(encoding="utf-8"))))
    assert len(rows) == n and {r["source_type"] for r in rows} == {"measured", "imported"}


def test_home_has_live_numbers_and_no_placeholder(built_site: Path) -> None:
    home = _html(built_site, "")
    assert HOME_PLACEHOLDER not in home and "quant-atlas:home" not in home
    assert "<strong>4</strong> device(s)" in home and "<strong>22</strong> run(s)" in home
    assert "charts/home-tg-light.svg" in home and "Latest runs" in home


def test_hostile_strings_show_as_text_everywhere(built_site: Path) -> None:
    for page in built_site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script>alert(1)" not in text, page
        assert "<strong>bold</strong>" not in text, page
    dev = _html(built_site, "devices/rtx-4090")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; **bold** | pipe" in dev
    model = _html(built_site, "models/script-alert-1-script-bold-pipe")
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; **bold** | pipe - Quant Atlas</title>" in model
    # the backtick and pipe in the file name stay inside the copyable command
    assert "-m 'evil`name|x.gguf'" in _text(_html(built_site, "runs/01FIXTURE00000000000000015"))


def test_device_page_recommends_real_commands(built_site: Path) -> None:
    dev = _html(built_site, "devices/rtx-4090")
    for title in ("Fastest:", "Balanced:", "Most faithful:", "Largest context:"):
        assert title in dev
    assert "llama-server -m Llama-Test-8B.Q4_K_M.gguf -c 32768" in _text(dev)  # the largest-context pick
    assert 'class="qa-sortable"' in dev and 'data-sort="130.0"' in dev
    assert "charts/devices/rtx-4090-pareto-dark.svg" in dev and "charts/devices/rtx-4090-depth-light.svg" in dev
    assert "Generation speed and VRAM per configuration" in dev


def test_imported_figures_are_marked_and_ranked_apart(built_site: Path) -> None:
    dev = _html(built_site, "devices/3x-ai-pro-r9700")
    assert "Published figures only" in dev and "From published sources" in dev
    assert "003_fixture.txt: Three R9700 cards run a big MoE (fixture)" in dev
    assert "llama-server -m Coder-Next-Test-IQ2_XS.gguf -c 168000" in _text(dev)
    assert "(mean, as the source states)" in dev and "20.1 + 19.8 + 7 GB (as stated)" in dev
    assert "joined by model name + quant (no sha256)" in dev
    compare = _html(built_site, "compare")
    assert compare.count("qa-imported") == 2 and "qa-measured" in compare


def test_failed_run_page_shows_error(built_site: Path) -> None:
    page = _html(built_site, "runs/01FIXTURE00000000000000003")
    assert "This run failed" in page and "failed to load model: not enough memory" in page
    assert "CUDA out of memory" in page


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
    assert len(svgs) >= 20
    assert first == second
    light, dark = first["charts/devices/rtx-4090-tg-light.svg"], first["charts/devices/rtx-4090-tg-dark.svg"]
    assert light != dark and b"<dc:date>" not in light and b"Matplotlib v" not in light


def test_parallel_build_gives_the_same_bytes(monkeypatch) -> None:
    import collector.publish.site as site_mod

    recs = load_records(FIXTURE_DATA)
    monkeypatch.setenv("QUANT_ATLAS_CACHE", "0")
    monkeypatch.setenv("QUANT_ATLAS_JOBS", "1")
    serial = [(f.src_uri, f.content) for f in build_site(recs).files]
    monkeypatch.setenv("QUANT_ATLAS_JOBS", "2")
    monkeypatch.setattr(site_mod, "CHARTS_PARALLEL_FROM", 1)  # force worker processes even for the fixtures
    assert [(f.src_uri, f.content) for f in build_site(recs).files] == serial


def test_chart_cache_returns_the_drawn_bytes_and_keys_on_content(tmp_path: Path, monkeypatch) -> None:
    from collector.publish import charts

    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path))
    chart = charts.bar_chart("c", ["a", "b"], [("t/s", [1.0, 2.0])], [False, True])
    drawn = chart.render_cached()
    assert drawn == chart.render()
    cached = sorted((tmp_path / "site" / "charts").glob(f"{chart.key()}-*.svg"))
    assert [p.name.rsplit("-", 1)[1] for p in cached] == ["dark.svg", "light.svg"]
    cached[1].write_bytes(b"<svg>from the cache</svg>")  # proves the next call reads the cache
    assert chart.render_cached()["light"] == b"<svg>from the cache</svg>"
    other = charts.bar_chart("c", ["a", "b"], [("t/s", [1.0, 2.5])], [False, True])
    assert other.key() != chart.key() and other.render_cached()["light"].startswith(b"<?xml")
