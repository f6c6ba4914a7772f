"""The whole site from a data directory: records -> frames -> pages, charts and downloads (no MkDocs needed)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from collector.publish.charts import Deferred
from collector.publish.common import GeneratedFile, PendingChart
from collector.parallel import pmap
from collector.publish.device_page import device_page
from collector.publish.frame import build_frames
from collector.publish.index_pages import (compare_page, data_files, devices_index, home_markdown, models_index,
                                           runs_index)
from collector.publish.model_page import model_page
from collector.publish.run_page import run_page
from collector.records.index import load_records
from collector.records.store import AnyRecord, device_slug, model_slug

# Generated files live only under these prefixes; site/ holds none of them (tests check both ways)
RESERVED_PREFIXES = ("devices/", "models/", "runs/", "compare/", "data/", "charts/", "assets/quant-atlas/")
HOME_PLACEHOLDER = "<!-- quant-atlas:home -->"
ASSETS = ("sortable.js", "quant-atlas.css")


@dataclass(frozen=True)
class SiteBuild:
    files: list[GeneratedFile]
    home: str  # Markdown that replaces HOME_PLACEHOLDER in site/index.md


def _assets() -> list[GeneratedFile]:
    root = resources.files("collector.publish") / "assets"
    return [GeneratedFile(f"assets/quant-atlas/{name}", (root / name).read_text(encoding="utf-8")) for name in ASSETS]


CHARTS_PARALLEL_FROM = 12  # charts; fewer are drawn in this process


def _draw(chart: Deferred) -> dict[str, bytes]:
    return chart.render_cached()


def _draw_charts(items: list[GeneratedFile | PendingChart]) -> list[GeneratedFile]:
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
            out += [GeneratedFile(f"{x.src_base}-{variant}.svg", data) for variant, data in by_id[id(x)].items()]
        else:
            out.append(x)
    return out


def build_site(records: list[AnyRecord]) -> SiteBuild:
    """Every generated file for these records, and the home page's live section."""
    f = build_frames(records)
    files: list[GeneratedFile | PendingChart] = [*_assets()]
    by_device: dict[str, list[AnyRecord]] = {}
    by_model: set[str] = set()
    for rec in f.records.values():
        by_device.setdefault(device_slug(rec.host), []).append(rec)
        by_model.add(model_slug(rec))
    speed_groups = dict(iter(f.speed.groupby("device"))) if not f.speed.empty else {}
    # pages are written in this process: measured at 10,000 records, sending them to forked workers
    # (pickling, copy-on-write of the large heap) cost more than it saved; only drawing charts gains
    for device, recs in sorted(by_device.items()):
        files += device_page(device, speed_groups.get(device, f.speed.iloc[0:0]), f.depth, f.records, recs)
    sp_by_model = dict(iter(f.speed.groupby("model"))) if not f.speed.empty else {}
    kl_by_model = dict(iter(f.kld.groupby("model"))) if not f.kld.empty else {}
    for model in sorted(by_model):
        files += model_page(model, sp_by_model.get(model, f.speed.iloc[0:0]), kl_by_model.get(model, f.kld.iloc[0:0]))
    files += [run_page(rec) for rec in f.records.values()]
    files += [devices_index(f), models_index(f), runs_index(f), compare_page(f), *data_files(f)]
    home, home_files = home_markdown(f)
    files += home_files
    files = _draw_charts(files)
    bad = [g.src_uri for g in files if not g.src_uri.startswith(RESERVED_PREFIXES)]
    if bad:
        raise AssertionError(f"generated files outside the reserved prefixes: {bad[:3]}")
    return SiteBuild(files=files, home=home)


def render_site(data_dir: Path) -> list[GeneratedFile]:
    """Every generated page, chart, asset and download for the records under `data_dir`.

    Invalid record files are skipped here; `collector validate` reports them (CI runs it before building).
    """
    return build_site(load_records(Path(data_dir))).files
