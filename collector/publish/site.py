"""The whole site from a data directory: records -> rows -> pages, charts and downloads (run pages:
collector.publish.run_pages; raw blocks kept from Markdown: collector.publish.deferred).

A build is a pure function of the record files and this code, so the whole SiteBuild is kept (a memo, through
collector.cache.Blob) under the record index's fingerprint: when no record file changed, nothing is parsed,
validated or rendered again.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from importlib import metadata, resources
from pathlib import Path
from typing import NamedTuple

from collector.cache import Blob, code_stamp, package_files, scope
from collector.estimate.answer import Estimator
from collector.publish.common import GeneratedFile, device_src
from collector.publish.deferred import defer_tables, restore_tables
from collector.publish.device_index import devices_index
from collector.publish.device_page import device_page
from collector.publish.estimates import catalog_pages, device_of, device_section, methodology_section
from collector.publish.frame import build_frames, run_page_id
from collector.publish.index_pages import (
    compare_page,
    data_files,
    glossary_page,
    home_markdown,
    models_index,
    runs_index,
)
from collector.publish.model_page import model_page
from collector.publish.run_page import run_title, trial_names_of
from collector.publish.sitedevice import device_key
from collector.records.index import RecordIndex, fingerprint, load_index
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord, model_display_name, model_slug

# Generated files live only under these prefixes; site/ holds none of them (tests check both ways)
RESERVED_PREFIXES = ("devices/", "models/", "runs/", "compare/", "data/", "charts/", "assets/quant-atlas/",
                     "glossary.md")
HOME_PLACEHOLDER = "<!-- quant-atlas:home -->"
ESTIMATES_PLACEHOLDER = "<!-- quant-atlas:estimates -->"  # site/methodology.md: the held-out report
ASSETS = ("sortable.js", "quant-atlas.css")
SHELL_SRC = "runs/_shell.md"  # one run page MkDocs builds: its header, nav and scripts wrap every run page
SHELL_MARK = "<!-- quant-atlas:run -->"


class RunRef(NamedTuple):
    """What a run page needs of its record when the page itself is not rendered again (write_run_pages)."""

    id: str
    page: str  # run_page_id: the folder under runs/
    title: str


def run_ref(rec: AnyRecord) -> RunRef:
    return RunRef(rec.id, run_page_id(rec), run_title(rec))


@dataclass
class SiteBuild:
    files: list[GeneratedFile]
    home: str  # Markdown that replaces HOME_PLACEHOLDER in site/index.md
    methodology: str = ""  # Markdown that replaces ESTIMATES_PLACEHOLDER in site/methodology.md
    records: list[AnyRecord] = field(default_factory=list)  # one run page each; empty when the build is a memo
    runs: list[RunRef] = field(default_factory=list)  # the same records, as their pages need them
    invalid: dict[Path, str] = field(default_factory=dict)  # refused record files, with the reason
    deferred: dict[str, list[str]] = field(default_factory=dict)  # src_uri -> its tables (see defer_tables)
    versions: dict[str, str] | None = None  # record id -> file stamp: run pages of unchanged records are cached
    site_key: str = ""  # the data directory: one run-page cache per data directory
    trial_names: dict[str, dict[str, str]] = field(default_factory=dict)  # tune id -> its trials in words

    def whole(self) -> list[GeneratedFile]:
        """The files with every page whole (its deferred blocks back in place), as a reader gets them."""
        return [GeneratedFile(g.src_uri, restore_tables(g.content, self.deferred[g.src_uri]))
                if isinstance(g.content, str) and g.src_uri in self.deferred else g for g in self.files]


def _assets() -> list[GeneratedFile]:
    root = resources.files("collector.publish") / "assets"
    return [GeneratedFile(f"assets/quant-atlas/{name}", (root / name).read_text(encoding="utf-8")) for name in ASSETS]


def build_site(records: list[AnyRecord]) -> SiteBuild:
    """Every generated file for these records (run pages aside), and the home page's live section."""
    f = build_frames(records)
    files: list[GeneratedFile] = [*_assets()]
    recs_by_device: dict[str, list[AnyRecord]] = defaultdict(list)
    names: dict[str, str] = {}
    for rec in f.records.values():
        recs_by_device[device_key(rec.host)].append(rec)
        names.setdefault(model_slug(rec), model_display_name(rec.model))
    rows_by_device, rows_by_model = defaultdict(list), defaultdict(list)
    for row in f.rows:
        rows_by_device[row.device].append(row)
        rows_by_model[row.model].append(row)
    klds_by_device, klds_by_model = defaultdict(list), defaultdict(list)
    for k in f.klds:
        klds_by_device[k["device"]].append(k)
        klds_by_model[k["model"]].append(k)
    est = Estimator.of(list(f.records.values()))
    record_pages: dict[str, str] = {}
    for device, recs in sorted(recs_by_device.items()):
        host = max(recs, key=lambda r: isinstance(r, SpeedRecord)).host
        files += device_page(device, rows_by_device[device], klds_by_device[device], recs,
                             estimates=device_section(est, host, device_src(device)), all_klds=f.klds)
        dev, n, _ = device_of(host)
        if dev is not None and n == 1:
            record_pages.setdefault(dev.name, device_src(device))
    files += catalog_pages(est, record_pages)
    methodology, method_files = methodology_section(est, list(f.records.values()))
    files += method_files
    for model in sorted(names):
        files += model_page(model, rows_by_model[model], klds_by_model[model], names[model])
    files += [devices_index(f), models_index(f), runs_index(f), *compare_page(f), *data_files(f), glossary_page(),
              GeneratedFile(SHELL_SRC, f"---\ntitle: Run\nsearch:\n  exclude: true\n---\n\n{SHELL_MARK}\n")]
    home, home_files = home_markdown(f)
    files += home_files
    bad = [g.src_uri for g in files if not g.src_uri.startswith(RESERVED_PREFIXES)]
    if bad:
        raise AssertionError(f"generated files outside the reserved prefixes: {bad[:3]}")
    twice = [uri for uri, n in Counter(g.src_uri for g in files).items() if n > 1]
    if twice:  # paths are unique by construction (store.page_slug, crossgpu.group_srcs): a second page never hides one
        raise AssertionError(f"two generated files have the path {twice[:3]}")
    deferred: dict[str, list[str]] = {}
    pages: list[GeneratedFile] = []
    for g in files:
        if g.src_uri.endswith(".md") and isinstance(g.content, str):
            text, deferred[g.src_uri] = defer_tables(g.content)
            g = GeneratedFile(g.src_uri, text)
        pages.append(g)
    home, deferred["index.md"] = defer_tables(home)
    methodology, deferred["methodology.md"] = defer_tables(methodology)
    recs = list(f.records.values())
    return SiteBuild(files=pages, home=home, methodology=methodology, records=recs, deferred=deferred,
                     runs=[run_ref(r) for r in recs], trial_names=trial_names_of(f.records))


def build_from(data_dir: Path) -> SiteBuild:
    """The site of the records under data_dir; the files the validator refuses are left out and listed.

    A build is a pure function of the record files and this code, so the whole SiteBuild (pages, charts,
    downloads, what the run pages need) is kept (`_memo`) under the index's fingerprint: when no record file
    changed, nothing is parsed, validated or rendered again; one changed file and everything is built again."""
    data_dir = Path(data_dir)
    memo = Blob("site", f"build-{scope(data_dir)}.pickle")
    if memo.exists():  # no memo yet (a first build): nothing to fingerprint for
        hit = memo.get(_memo_key(fingerprint(data_dir)))
        if isinstance(hit, SiteBuild):
            return hit
    index: RecordIndex = load_index(data_dir)
    build = build_site(index.valid)
    build.invalid = dict(index.errors)
    build.versions, build.site_key = index.versions(), str(data_dir.resolve())
    memo.put(_memo_key(index.fingerprint()), replace(build, records=[]))
    return build


# What else a build's bytes depend on: this package's code and assets, and the libraries that template and write
# the files and place the charts' ticks and text (matplotlib's locators and font metrics)
_LIBS = ("matplotlib", "jinja2", "markupsafe", "pydantic", "pandas", "pyarrow")


def _memo_key(index_fingerprint: str) -> str:
    libs = []
    for name in _LIBS:
        try:
            libs.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            libs.append(f"{name}=-")
    # .yaml too: the device catalog and collector/estimate/models.yaml are inputs of the pages, like the code
    code = code_stamp(package_files((".py", ".j2", ".txt", ".css", ".js", ".yaml")))
    return f"{code} {' '.join(libs)} {index_fingerprint}"


def render_site(data_dir: Path) -> list[GeneratedFile]:
    """Every generated page, chart, asset and download for the valid records under `data_dir` (no run pages),
    pages whole (their deferred blocks in place)."""
    return build_from(data_dir).whole()


