"""The whole site from a data directory: records -> frames -> pages, charts and downloads (no MkDocs needed)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from collector.publish.common import GeneratedFile, PendingChart
from collector.publish.parallel import pmap
from collector.publish.device_page import device_page
from collector.publish.frame import build_frames
from collector.publish.index_pages import (compare_page, data_files, devices_index, home_markdown, models_index,
                                           runs_index)
from collector.publish.model_page import model_page
from collector.publish.run_page import run_page
from collector.publish.load import load_site_records
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
RUN_PAGES_PARALLEL_FROM = 500  # run pages; fewer are written in this process
DEVICE_PAGES_PARALLEL_FROM = 8  # device pages


def _device_job(job: tuple[Any, ...]) -> list[GeneratedFile | PendingChart]:
    return device_page(*job)


def _draw(p: PendingChart) -> list[GeneratedFile]:
    return p.files()


def _draw_charts(items: list[GeneratedFile | PendingChart]) -> list[GeneratedFile]:
    """Replace every pending chart by its SVG files, in place and in order."""
    pending = [x for x in items if isinstance(x, PendingChart)]
    drawn = iter(pmap(_draw, pending, CHARTS_PARALLEL_FROM))
    out: list[GeneratedFile] = []
    for x in items:
        out.extend(next(drawn) if isinstance(x, PendingChart) else [x])
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
    jobs = []
    for device, recs in sorted(by_device.items()):
        sp = speed_groups.get(device, f.speed.iloc[0:0])
        ids = set(sp["page_id"]) if not sp.empty else set()
        # only this device's rows and records travel to a worker process
        jobs.append((device, sp, f.depth[f.depth["page_id"].isin(ids)], {i: f.records[i] for i in ids}, recs))
    for out in pmap(_device_job, jobs, DEVICE_PAGES_PARALLEL_FROM):
        files += out
    sp_by_model = dict(iter(f.speed.groupby("model"))) if not f.speed.empty else {}
    kl_by_model = dict(iter(f.kld.groupby("model"))) if not f.kld.empty else {}
    for model in sorted(by_model):
        files += model_page(model, sp_by_model.get(model, f.speed.iloc[0:0]), kl_by_model.get(model, f.kld.iloc[0:0]))
    files += pmap(run_page, list(f.records.values()), RUN_PAGES_PARALLEL_FROM)
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
    return build_site(load_site_records(Path(data_dir))).files
