"""The whole site from a data directory: records -> rows -> pages, charts and downloads (run pages:
collector.publish.site.run_pages; raw blocks kept from Markdown: collector.publish.site.deferred).

A build is a pure function of the record files and this code, so the whole SiteBuild is kept (a memo, through
collector.base.cache.Blob) under the record index's fingerprint: when no record file changed, nothing is parsed,
validated or rendered again.
"""

from __future__ import annotations

import gc
import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from collector.base.cache import Blob, pages_stamp, scope
from collector.catalog import CatalogDevice
from collector.estimate.estimator import Estimator
from collector.judge import Summaries, beside, judge_records, load_summaries_from
from collector.publish.pages.answer_cards import answer_files
from collector.publish.pages.device import device_page
from collector.publish.pages.device_index import devices_index
from collector.publish.pages.estimates import (
    answer_estimates,
    catalog_pages,
    device_of,
    device_section,
    methodology_section,
)
from collector.publish.pages.files import GeneratedFile
from collector.publish.pages.flagged import flagged_page, flagged_rows
from collector.publish.pages.model import model_page
from collector.publish.pages.run import run_title, trial_names_of
from collector.publish.pages.sections import (
    compare_page,
    data_files,
    derive_downloads,
    glossary_page,
    home_markdown,
    models_index,
    runs_index,
)
from collector.publish.rows.devices import device_key
from collector.publish.rows.frame import Frames, build_frames, run_page_id
from collector.publish.rows.names import group_label, slug_of
from collector.publish.site.deferred import defer_all, restore_tables
from collector.publish.site.kept_pages import KeptPages
from collector.publish.words.escape import h
from collector.publish.words.links import device_src
from collector.records.index import RecordIndex, fingerprint, load_index, scan_digests
from collector.records.schema import SpeedRecord
from collector.records.store import AnyRecord

# Generated files live only under these prefixes; site/ holds none of them (tests check both ways)
RESERVED_PREFIXES = ("devices/", "models/", "runs/", "compare/", "data/", "charts/", "assets/quant-atlas/",
                     "glossary.md", "flagged.md", "answers/")
HOME_PLACEHOLDER = "<!-- quant-atlas:home -->"
ESTIMATES_PLACEHOLDER = "<!-- quant-atlas:estimates -->"  # site/methodology.md: the held-out report
ASSETS = ("sortable.js", "answer.js", "quant-atlas.css")
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
    held: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # record id -> (figure, as stated,
    # why the judge holds it back): said on its run page

    def whole(self) -> list[GeneratedFile]:
        """The files with every page whole (its deferred blocks back in place), as a reader gets them."""
        return [GeneratedFile(g.src_uri, restore_tables(g.content, self.deferred[g.src_uri]))
                if isinstance(g.content, str) and g.src_uri in self.deferred else g for g in self.files]


def _assets() -> list[GeneratedFile]:
    root = resources.files("collector.publish") / "assets"
    return [GeneratedFile(f"assets/quant-atlas/{name}", (root / name).read_text(encoding="utf-8")) for name in ASSETS]


def build_site(records: list[AnyRecord], sums: Summaries | None = None, kept: KeptPages | None = None) -> SiteBuild:
    """Every generated file for these records (run pages aside), and the home page's live section; `sums`: the kept
    sources' own summary tables, against which the judge checks their figures; `kept`: device and model pages whose
    inputs did not change come from the last build (collector.publish.site.kept_pages)."""
    call = kept.call if kept is not None else _call
    f = build_frames(records, judge_records(records, sums=sums))
    files: list[GeneratedFile] = [*_assets()]
    recs_by_device: dict[str, list[AnyRecord]] = defaultdict(list)
    by_model: dict[str, list[AnyRecord]] = defaultdict(list)
    for rec in f.records.values():
        recs_by_device[device_key(rec.host)].append(rec)
        by_model[slug_of(rec)].append(rec)
    rows_by_device, rows_by_model = defaultdict(list), defaultdict(list)
    for row in f.rows:
        rows_by_device[row.device].append(row)
        rows_by_model[row.model].append(row)
    klds_by_device, klds_by_model = defaultdict(list), defaultdict(list)
    for k in f.klds:
        klds_by_device[k.device].append(k)
        klds_by_model[k.model].append(k)
    est = Estimator.of(list(f.records.values()), held=f.judgement.held_keys())
    record_pages: dict[str, str] = {}
    sets: dict[str, tuple[CatalogDevice, int]] = {}  # pages of several GPUs of one catalog device
    for device, recs in sorted(recs_by_device.items()):
        host = max(recs, key=lambda r: isinstance(r, SpeedRecord)).host
        models = sorted({r.model for r in rows_by_device[device]})  # what the page says of other devices' KLD
        files += call(device_page, device, rows_by_device[device], klds_by_device[device], recs,
                      estimates=partial(device_section, est, host, device_src(device)),
                      all_klds=[k for m in models for k in klds_by_model[m]])
        dev, n, _ = device_of(host)
        if dev is not None and n == 1:
            record_pages.setdefault(dev.name, device_src(device))
        elif dev is not None:
            sets[device] = (dev, n)
    files += catalog_pages(est, record_pages)
    methodology, method_files = methodology_section(est, list(f.records.values()))
    methodology = judged_summary(f) + methodology
    files += method_files
    names = {model: group_label(recs) for model, recs in by_model.items()}
    for model in sorted(by_model):
        files += call(model_page, model, rows_by_model[model], klds_by_model[model], names[model], names)
    files += [devices_index(f), models_index(f), runs_index(f), *compare_page(f), *data_files(f), glossary_page(),
              *call(flagged_page, flagged_rows(f)), *answer_files(f, answer_estimates(est, sets)),
              GeneratedFile(SHELL_SRC, f"---\ntitle: Run\nsearch:\n  exclude: true\n---\n\n{SHELL_MARK}\n")]
    home, home_files = home_markdown(f)
    files += home_files
    bad = [g.src_uri for g in files if not g.src_uri.startswith(RESERVED_PREFIXES)]
    if bad:
        raise AssertionError(f"generated files outside the reserved prefixes: {bad[:3]}")
    twice = [uri for uri, n in Counter(g.src_uri for g in files).items() if n > 1]
    if twice:  # paths are unique by construction (store.page_slug, compare.group_srcs): a second page never hides one
        raise AssertionError(f"two generated files have the path {twice[:3]}")
    texts = {g.src_uri: g.content for g in files if g.src_uri.endswith(".md") and isinstance(g.content, str)}
    done = defer_all({**texts, "index.md": home, "methodology.md": methodology})
    deferred = {uri: blocks for uri, (_, blocks) in done.items()}
    pages = [GeneratedFile(g.src_uri, done[g.src_uri][0]) if g.src_uri in done else g for g in files]
    home, methodology = done["index.md"][0], done["methodology.md"][0]
    recs = list(f.records.values())
    return SiteBuild(files=pages, home=home, methodology=methodology, records=recs, deferred=deferred,
                     runs=[run_ref(r) for r in recs], trial_names=trial_names_of(f.records), held=held_of(f))


def _call(fn: Callable[..., list[GeneratedFile]], *args: Any, **kwargs: Any) -> list[GeneratedFile]:
    return fn(*args, **kwargs)


def judged_summary(f: Frames) -> str:
    """The count of held figures, by rule, for the Methodology page (before the estimates report)."""
    flagged = f.judgement.flagged()
    rules: dict[str, int] = defaultdict(int)
    for fv in flagged:
        for v in fv.verdicts:
            rules[v.rule] += 1
    parts = ", ".join(f"{n} by {rule}" for rule, n in sorted(rules.items()))
    return (f'<p class="qa-judged"><strong>{len(flagged)}</strong> figure(s) of the {len(f.records)} records are held '
            f"back now ({h(parts) or 'none'}): listed on the <a href=\"flagged/\">Flagged figures</a> page.</p>\n\n")


def held_of(f: Frames) -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for fv in f.judgement.flagged():
        out[fv.record_id].append((fv.figure, fv.text, fv.reason))
    return dict(out)


def derive_ahead(data_dir: Path) -> None:
    """Read the records under data_dir into this process and derive what is kept per record object (collector.
    records.derived): verdicts, rows, names, download lines. mkdocs serve does this in the background once it
    serves, so its first rebuild after a record arrives costs what the later ones do. Pure: nothing is written but
    the record cache."""
    records = load_index(data_dir, live=True).valid
    build_frames(records, judge_records(records, sums=load_summaries_from(beside(data_dir))))
    derive_downloads(records)


def build_from(data_dir: Path) -> SiteBuild:
    """The site of the records under data_dir; the files the validator refuses are left out and listed.

    A build is a pure function of the record files and this code, so the whole SiteBuild (pages, charts,
    downloads, what the run pages need) is kept (`_memo`) under the index's fingerprint: when no record file
    changed, nothing is parsed, validated or rendered again; one changed file and everything is built again, but
    the device and model pages whose inputs did not change (collector.publish.site.kept_pages).

    The objects alive during the build (the records above all; in `mkdocs serve`, those kept from the last build)
    are left out of the garbage collector's full passes (gc.freeze): they live through the whole build, and scanning
    them again at each full collection was 1-3 s of a 10,000-record build. Refcounting still frees what is dropped;
    the freeze ends with the build."""
    gc.freeze()
    try:
        return _build_from(Path(data_dir))
    finally:
        gc.unfreeze()


def _build_from(data_dir: Path) -> SiteBuild:
    memo = Blob("site", f"build-{scope(data_dir)}.pickle")
    scanned = None
    if memo.exists():  # no memo yet (a first build): nothing to fingerprint for
        scanned = scan_digests(data_dir)  # read and hashed once, for the memo's key and the index
        hit = memo.get(_memo_key(fingerprint(scanned)))
        if isinstance(hit, SiteBuild):
            return hit
    # mkdocs serve: unchanged records stay in memory between rebuilds
    index: RecordIndex = load_index(data_dir, live=True, scanned=scanned)
    gc.freeze()  # the records just read, too
    versions = index.versions()  # ids are unique in an index
    kept = KeptPages(data_dir, {id(rec): versions[rec.id] for rec in index.valid})
    build = build_site(index.valid, load_summaries_from(beside(data_dir)), kept)
    kept.close()
    build.invalid = dict(index.errors)
    build.versions, build.site_key = versions, str(data_dir.resolve())
    for rid, held in build.held.items():  # a run page says its verdicts: a new verdict is a new page
        if rid in build.versions:
            build.versions[rid] += "+held:" + hashlib.sha256(repr(held).encode()).hexdigest()[:12]
    memo.put(_memo_key(index.fingerprint()), replace(build, records=[]))
    return build


def _memo_key(index_fingerprint: str) -> str:
    return f"{pages_stamp()} {index_fingerprint}"


def render_site(data_dir: Path) -> list[GeneratedFile]:
    """Every generated page, chart, asset and download for the valid records under `data_dir` (no run pages),
    pages whole (their deferred blocks in place)."""
    return build_from(data_dir).whole()


