"""The whole site from a data directory: records -> rows -> pages, charts, downloads and run pages.

MkDocs renders the few section, device and model pages (Markdown through the theme); the run pages, one per
record, are rendered from one jinja2 template and written by `write_run_pages` inside the site's own page
shell, outside MkDocs' per-page pipeline (README, "The site": how it scales).
"""

from __future__ import annotations

import gzip
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from collector.parallel import pmap
from collector.publish.charts import Deferred
from collector.publish.common import GeneratedFile, Output, PendingChart
from collector.publish.device_page import device_page
from collector.publish.escape import h
from collector.publish.frame import build_frames, run_page_id
from collector.publish.index_pages import (
    compare_page,
    data_files,
    devices_index,
    glossary_page,
    home_markdown,
    models_index,
    runs_index,
)
from collector.publish.model_page import model_page
from collector.publish.run_page import run_html, run_title
from collector.records.index import RecordIndex, load_index
from collector.records.store import AnyRecord, device_slug, model_display_name, model_slug

# Generated files live only under these prefixes; site/ holds none of them (tests check both ways)
RESERVED_PREFIXES = ("devices/", "models/", "runs/", "compare/", "data/", "charts/", "assets/quant-atlas/",
                     "glossary.md")
HOME_PLACEHOLDER = "<!-- quant-atlas:home -->"
ASSETS = ("sortable.js", "quant-atlas.css")
SHELL_SRC = "runs/_shell.md"  # one run page MkDocs builds: its header, nav and scripts wrap every run page
SHELL_MARK = "<!-- quant-atlas:run -->"
CHARTS_PARALLEL_FROM = 12  # charts; fewer are drawn in this process
RUNS_PARALLEL_FROM = 400  # run pages; fewer are written in this process


@dataclass
class SiteBuild:
    files: list[GeneratedFile]
    home: str  # Markdown that replaces HOME_PLACEHOLDER in site/index.md
    records: list[AnyRecord] = field(default_factory=list)  # one run page each (write_run_pages)
    invalid: dict[Path, str] = field(default_factory=dict)  # refused record files, with the reason


def _assets() -> list[GeneratedFile]:
    root = resources.files("collector.publish") / "assets"
    return [GeneratedFile(f"assets/quant-atlas/{name}", (root / name).read_text(encoding="utf-8")) for name in ASSETS]


def _draw(chart: Deferred) -> dict[str, bytes]:
    return chart.render_cached()


def _draw_charts(items: list[Output]) -> list[GeneratedFile]:
    """Replace every pending chart by its SVG files, in place and in order; cache hits are read here,
    only the charts that must really be drawn go to worker processes."""
    pending = [x for x in items if isinstance(x, PendingChart)]
    svgs: list[dict[str, bytes] | None] = [p.chart.cached() for p in pending]
    misses = [i for i, v in enumerate(svgs) if v is None]
    for i, drawn in zip(misses, pmap(_draw, [pending[i].chart for i in misses], CHARTS_PARALLEL_FROM)):
        svgs[i] = drawn
    by_id = {id(p): v for p, v in zip(pending, svgs)}
    out: list[GeneratedFile] = []
    for x in items:
        if isinstance(x, PendingChart):
            drawn = by_id[id(x)] or {}
            out += [GeneratedFile(f"{x.src_base}-{variant}.svg", data) for variant, data in drawn.items()]
        else:
            out.append(x)
    return out


def build_site(records: list[AnyRecord]) -> SiteBuild:
    """Every generated file for these records (run pages aside), and the home page's live section."""
    f = build_frames(records)
    files: list[Output] = [*_assets()]
    recs_by_device: dict[str, list[AnyRecord]] = defaultdict(list)
    names: dict[str, str] = {}
    for rec in f.records.values():
        recs_by_device[device_slug(rec.host)].append(rec)
        names.setdefault(model_slug(rec), model_display_name(rec.model))
    rows_by_device, rows_by_model = defaultdict(list), defaultdict(list)
    for row in f.rows:
        rows_by_device[row.device].append(row)
        rows_by_model[row.model].append(row)
    klds_by_device, klds_by_model = defaultdict(list), defaultdict(list)
    for k in f.klds:
        klds_by_device[k["device"]].append(k)
        klds_by_model[k["model"]].append(k)
    for device, recs in sorted(recs_by_device.items()):
        files += device_page(device, rows_by_device[device], klds_by_device[device], recs)
    for model in sorted(names):
        files += model_page(model, rows_by_model[model], klds_by_model[model], names[model])
    files += [devices_index(f), models_index(f), runs_index(f), compare_page(f), *data_files(f), glossary_page(),
              GeneratedFile(SHELL_SRC, f"---\ntitle: Run\nsearch:\n  exclude: true\n---\n\n{SHELL_MARK}\n")]
    home, home_files = home_markdown(f)
    files += home_files
    drawn = _draw_charts(files)
    bad = [g.src_uri for g in drawn if not g.src_uri.startswith(RESERVED_PREFIXES)]
    if bad:
        raise AssertionError(f"generated files outside the reserved prefixes: {bad[:3]}")
    return SiteBuild(files=drawn, home=home, records=list(f.records.values()))


def build_from(data_dir: Path) -> SiteBuild:
    """The site of the records under data_dir; the files the validator refuses are left out and listed."""
    index: RecordIndex = load_index(Path(data_dir))
    build = build_site(index.valid)
    build.invalid = dict(index.errors)
    return build


def render_site(data_dir: Path) -> list[GeneratedFile]:
    """Every generated page, chart, asset and download for the valid records under `data_dir` (no run pages)."""
    return build_from(data_dir).files


# ---- run pages: one template, the site's own shell ----

_TITLE = re.compile(r"<title>.*?</title>", re.S)
_H1 = re.compile(r"<h1[^>]*>Run</h1>")


def split_shell(shell_html: str) -> tuple[str, str]:
    """The built shell page cut around its content marker: (head, tail)."""
    head, sep, tail = shell_html.partition(SHELL_MARK)
    if not sep:
        raise AssertionError("the run-page shell lost its marker (theme changed?)")
    return _H1.sub("", head, count=1), tail


_SHELL: dict[str, str] = {}


def _write_chunk(chunk: tuple[int, int]) -> int:
    head, tail, out_dir, records = _SHELL["head"], _SHELL["tail"], Path(_SHELL["out"]), _RECORDS
    for rec in records[chunk[0]:chunk[1]]:
        folder = out_dir / "runs" / run_page_id(rec)
        folder.mkdir(parents=True, exist_ok=True)
        title = f"<title>{h(run_title(rec))} - Quant Atlas</title>"
        page = _TITLE.sub(lambda _: title, head, count=1) + run_html(rec) + tail  # noqa: B023 (used at once)
        (folder / "index.html").write_text(page, encoding="utf-8")
    return chunk[1] - chunk[0]


_RECORDS: list[AnyRecord] = []


def write_run_pages(records: list[AnyRecord], site_dir: Path) -> int:
    """Write runs/<id>/index.html for every record, wrapped in the built shell page; removes the shell page."""
    global _RECORDS
    shell_dir = Path(site_dir) / "runs" / "_shell"
    head, tail = split_shell((shell_dir / "index.html").read_text(encoding="utf-8"))
    _SHELL.update(head=head, tail=tail, out=str(site_dir))
    _RECORDS = records
    size = max(50, len(records) // (4 * (os.cpu_count() or 1)))
    chunks = [(i, min(i + size, len(records))) for i in range(0, len(records), size)]
    written = sum(pmap(_write_chunk, chunks, RUNS_PARALLEL_FROM // size + 1))
    for p in shell_dir.iterdir():
        p.unlink()
    shell_dir.rmdir()
    _RECORDS = []
    _drop_shell_from_sitemap(Path(site_dir))
    return written


def _drop_shell_from_sitemap(site_dir: Path) -> None:
    """The shell page is not a page: remove its entry from sitemap.xml (and the .gz beside it)."""
    sitemap = site_dir / "sitemap.xml"
    if not sitemap.is_file():
        return
    text = re.sub(r"\s*<url>\s*<loc>[^<]*/runs/_shell/</loc>.*?</url>", "", sitemap.read_text(encoding="utf-8"),
                  flags=re.S)
    sitemap.write_text(text, encoding="utf-8")
    gz = site_dir / "sitemap.xml.gz"
    if gz.is_file():
        with gzip.GzipFile(gz, "wb", mtime=0) as fh:
            fh.write(text.encode("utf-8"))
