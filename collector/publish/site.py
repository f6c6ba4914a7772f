"""The whole site from a data directory: records -> rows -> pages, charts, downloads and run pages.

MkDocs renders the few section, device and model pages (Markdown through the theme); the run pages, one per
record, are rendered from one jinja2 template and written by `write_run_pages` inside the site's own page
shell, outside MkDocs' per-page pipeline (README, "The site": how it scales).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field, replace
from importlib import metadata, resources
from pathlib import Path
from typing import Any, NamedTuple

from collector.cache import cache_dir
from collector.files import atomic_open, atomic_write_text
from collector.kvcache import KeyValueCache
from collector.parallel import pmap
from collector.publish.common import GeneratedFile
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
from collector.records.index import RecordIndex, fingerprint, load_index
from collector.records.store import AnyRecord, device_slug, model_display_name, model_slug

# Generated files live only under these prefixes; site/ holds none of them (tests check both ways)
RESERVED_PREFIXES = ("devices/", "models/", "runs/", "compare/", "data/", "charts/", "assets/quant-atlas/",
                     "glossary.md")
HOME_PLACEHOLDER = "<!-- quant-atlas:home -->"
ASSETS = ("sortable.js", "quant-atlas.css")
SHELL_SRC = "runs/_shell.md"  # one run page MkDocs builds: its header, nav and scripts wrap every run page
SHELL_MARK = "<!-- quant-atlas:run -->"
RUNS_PARALLEL_FROM = 400  # run pages; fewer are written in this process


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
    records: list[AnyRecord] = field(default_factory=list)  # one run page each; empty when the build is a memo
    runs: list[RunRef] = field(default_factory=list)  # the same records, as their pages need them
    invalid: dict[Path, str] = field(default_factory=dict)  # refused record files, with the reason
    deferred: dict[str, list[str]] = field(default_factory=dict)  # src_uri -> its tables (see defer_tables)
    versions: dict[str, str] | None = None  # record id -> file stamp: run pages of unchanged records are cached
    site_key: str = ""  # the data directory: one run-page cache per data directory

    def whole(self) -> list[GeneratedFile]:
        """The files with every page whole (its deferred blocks back in place), as a reader gets them."""
        return [GeneratedFile(g.src_uri, restore_tables(g.content, self.deferred[g.src_uri]))
                if isinstance(g.content, str) and g.src_uri in self.deferred else g for g in self.files]


# Generated tables, command blocks and qa- paragraphs and lists are raw HTML that Markdown passes through
# unchanged. At 10,000 records they are most of the site's bytes, and Python-Markdown's HTML-block scan plus the
# search plugin's HTML parse of them cost more than everything else: each is swapped for a comment before MkDocs
# sees the page and put back into the finished HTML (on_post_page). Search indexes the pages' headings and
# Markdown text, not these blocks. Record values inside are escaped, so no closing tag occurs early.
_TABLE = re.compile(r'<div class="qa-table-wrap">.*?</table>\s*</div>'
                    r'|<div class="language-bash highlight"><pre><code>.*?</code></pre></div>'
                    r'|<(p|ul) class="qa-[a-z-]+">.*?</\1>', re.S)  # no qa- list holds another list
_DEFERRED = re.compile(r"<!-- qa-deferred:(\d+) -->")


def defer_tables(markdown: str) -> tuple[str, list[str]]:
    """The page with each table and command block replaced by a placeholder comment, and the blocks in order."""
    blocks: list[str] = []

    def keep(m: re.Match[str]) -> str:
        blocks.append(m.group(0))
        return f"<!-- qa-deferred:{len(blocks) - 1} -->"

    return _TABLE.sub(keep, markdown), blocks


def restore_tables(html: str, blocks: list[str]) -> str:
    """The finished page with its blocks back in place of their placeholders."""
    return _DEFERRED.sub(lambda m: blocks[int(m.group(1))], html) if blocks else html


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
    drawn = files
    bad = [g.src_uri for g in drawn if not g.src_uri.startswith(RESERVED_PREFIXES)]
    if bad:
        raise AssertionError(f"generated files outside the reserved prefixes: {bad[:3]}")
    deferred: dict[str, list[str]] = {}
    pages: list[GeneratedFile] = []
    for g in drawn:
        if g.src_uri.endswith(".md") and isinstance(g.content, str):
            text, deferred[g.src_uri] = defer_tables(g.content)
            g = GeneratedFile(g.src_uri, text)
        pages.append(g)
    home, deferred["index.md"] = defer_tables(home)
    recs = list(f.records.values())
    return SiteBuild(files=pages, home=home, records=recs, deferred=deferred, runs=[run_ref(r) for r in recs])


def build_from(data_dir: Path) -> SiteBuild:
    """The site of the records under data_dir; the files the validator refuses are left out and listed.

    A build is a pure function of the record files and this code, so the whole SiteBuild (pages, charts,
    downloads, what the run pages need) is kept (`_memo`) under the index's fingerprint: when no record file
    changed, nothing is parsed, validated or rendered again; one changed file and everything is built again."""
    data_dir = Path(data_dir)
    site_key = str(data_dir.resolve())
    memo = _memo(site_key)
    if memo is not None and memo.is_file():  # no memo yet (a first build): nothing to fingerprint for
        hit = _memo_get(memo, _memo_key(fingerprint(data_dir)))
        if hit is not None:
            return hit
    index: RecordIndex = load_index(data_dir)
    build = build_site(index.valid)
    build.invalid = dict(index.errors)
    build.versions, build.site_key = index.versions(), site_key
    if memo is not None:
        _memo_put(memo, _memo_key(index.fingerprint()), build)
    return build


# What else a build's bytes depend on: this package's code and assets, and the libraries that template and write
# the files and place the charts' ticks and text (matplotlib's locators and font metrics)
_LIBS = ("matplotlib", "jinja2", "markupsafe", "pydantic", "pandas", "pyarrow")


def _memo_key(index_fingerprint: str) -> bytes:
    libs = []
    for name in _LIBS:
        try:
            libs.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            libs.append(f"{name}=-")
    return f"{_CODE_STAMP} {' '.join(libs)} {index_fingerprint}".encode()


def _memo(site_key: str) -> Path | None:
    """The memo file of this data directory, or None when caches are off (QUANT_ATLAS_CACHE=0)."""
    if os.environ.get("QUANT_ATLAS_CACHE", "1") == "0":
        return None
    return cache_dir("site") / f"build-{hashlib.sha256(site_key.encode()).hexdigest()[:16]}.pickle"


def _memo_get(path: Path, key: bytes) -> SiteBuild | None:
    """The kept build when its key is this one; anything unreadable is a miss (the cache only saves time)."""
    try:
        with open(path, "rb") as fh:
            if fh.readline().rstrip(b"\n") != key:
                return None
            build = pickle.load(fh)
    except Exception:
        return None
    return build if isinstance(build, SiteBuild) else None


def _memo_put(path: Path, key: bytes, build: SiteBuild) -> None:
    """Streamed into the file (no second copy of the memo in memory), never left partial."""
    try:
        with atomic_open(path) as fh:
            fh.write(key + b"\n")
            pickle.dump(replace(build, records=[]), fh, pickle.HIGHEST_PROTOCOL)
    except (OSError, pickle.PickleError, RecursionError):
        pass  # a cache that cannot be written only costs time


def render_site(data_dir: Path) -> list[GeneratedFile]:
    """Every generated page, chart, asset and download for the valid records under `data_dir` (no run pages),
    pages whole (their deferred blocks in place)."""
    return build_from(data_dir).whole()


# ---- run pages: one template, the site's own shell ----

_TITLE = re.compile(r"<title>.*?</title>", re.S)
_H1 = re.compile(r"<h1[^>]*>Run</h1>")


def split_shell(shell_html: str) -> tuple[str, str]:
    """The built shell page cut around its content marker: (head, tail)."""
    head, sep, tail = shell_html.partition(SHELL_MARK)
    if not sep:
        raise AssertionError("the run-page shell lost its marker (theme changed?)")
    return _H1.sub("", head, count=1), tail


# Run pages are a pure function of their record and this package's code: their bodies are cached per data
# directory (collector.kvcache), keyed by the record file's content (RecordIndex.versions), so a warm build or
# `mkdocs serve` after one new record renders only the new pages; pages already in the output folder whose record
# and page shell did not change are kept there (keep_run_pages).
_PACKAGE = Path(__file__).resolve().parent.parent
_CODE_STAMP = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(_PACKAGE.rglob("*"))
                                      if p.suffix in (".py", ".j2", ".txt", ".css", ".js") and p.is_file())
                             ).hexdigest()[:16]
_RUN: dict[str, Any] = {}  # what forked workers read: head, tail, output folder, records


def _page(run: RunRef, body: str) -> str:
    title = f"<title>{h(run.title)} - Quant Atlas</title>"
    return _TITLE.sub(lambda _: title, _RUN["head"], count=1) + body + _RUN["tail"]


def _write(run: RunRef, body: str) -> None:
    folder = Path(_RUN["out"]) / "runs" / run.page
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(_page(run, body), encoding="utf-8")


def _render_chunk(chunk: tuple[int, int]) -> list[str]:
    """Render and write the pages of todo[chunk] (run, record); the bodies go back to be cached."""
    bodies = []
    for run, rec in _RUN["todo"][chunk[0]:chunk[1]]:
        bodies.append(run_html(rec))
        _write(run, bodies[-1])
    return bodies


KEPT = ".qa-runs-kept"  # site_dir's run pages, moved aside while MkDocs cleans site_dir (keep_run_pages)
MANIFEST = ".qa-runs.json"  # in runs/: the shell and each page's record version, to know what may be kept


def _kept(site_dir: Path) -> Path:
    return site_dir.parent / f".{site_dir.name}{KEPT}"


def keep_run_pages(site_dir: Path) -> None:
    """Before MkDocs cleans site_dir (on_pre_build): move the last build's run pages aside with one rename, so that
    write_run_pages keeps the unchanged ones instead of deleting and writing 10,000 files again."""
    site_dir = Path(site_dir)
    kept = _kept(site_dir)
    shutil.rmtree(kept, ignore_errors=True)  # left by an interrupted build
    if os.environ.get("QUANT_ATLAS_CACHE", "1") != "0" and (site_dir / "runs" / MANIFEST).is_file():
        try:
            os.replace(site_dir / "runs", kept)
        except OSError:
            pass  # then every page is written again


def _vhash(version: str) -> str:
    return hashlib.sha256(version.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _reuse_kept(runs: Path, kept: Path, shell: str, refs: list[RunRef], vers: dict[str, str]) -> set[str]:
    """Move back the kept run pages that are still exactly right (same shell and code, same record version);
    returns their record ids. The rest of the kept folder (pages of records changed or gone) is deleted."""
    try:
        manifest = json.loads((kept / MANIFEST).read_text(encoding="utf-8"))
        pages = manifest["pages"] if isinstance(manifest, dict) and manifest.get("shell") == shell else {}
    except (OSError, ValueError, KeyError):
        pages = {}
    keep: set[str] = set()
    for r in refs:
        if r.id in vers and pages.get(r.id) == [r.page, _vhash(vers[r.id])]:
            try:
                os.replace(kept / r.page, runs / r.page)  # a rename: no bytes copied
                keep.add(r.id)
            except OSError:
                pass  # written again below
    shutil.rmtree(kept, ignore_errors=True)
    return keep


def _records_of(build: SiteBuild, ids: set[str]) -> dict[str, AnyRecord]:
    """The records with these ids: the build's own, or (a build from the memo holds none) read again."""
    recs = build.records or (load_index(Path(build.site_key)).valid if ids else [])
    return {r.id: r for r in recs if r.id in ids}


def write_run_pages(build: SiteBuild, site_dir: Path) -> int:
    """Write runs/<id>/index.html for every record of the build, wrapped in the built shell page; removes the
    shell page.

    With the build's versions (record id -> content version) and the caches on: pages the last build left in
    site_dir (keep_run_pages) stay where neither the shell nor the record changed; the other bodies come from the
    body cache (streamed from SQLite) or are rendered (only then are records needed)."""
    site_dir = Path(site_dir)
    runs = site_dir / "runs"
    shell_dir = runs / "_shell"
    head, tail = split_shell((shell_dir / "index.html").read_text(encoding="utf-8"))
    shutil.rmtree(shell_dir)
    vers = build.versions or {}
    use = build.versions is not None and os.environ.get("QUANT_ATLAS_CACHE", "1") != "0"
    shell = hashlib.sha256(f"{_CODE_STAMP}\n{head}\n{tail}".encode()).hexdigest()
    kept = _kept(site_dir)
    left = _reuse_kept(runs, kept, shell, build.runs, vers) if use and kept.is_dir() else set()
    if not use:
        shutil.rmtree(kept, ignore_errors=True)
    pending = [r for r in build.runs if r.id not in left]
    kv = KeyValueCache("site", "runs-" + hashlib.sha256(build.site_key.encode()).hexdigest()[:16], _CODE_STAMP,
                       enabled=None if use else False)
    by_version = {vers[r.id]: r for r in pending if r.id in vers}
    current = set(vers.values())  # bodies of kept pages stay cached too
    done: set[str] = set()
    stale: list[str] = []
    _RUN.update(head=head, tail=tail, out=str(site_dir))
    try:
        for key, body in kv.items():
            ref = by_version.get(key)
            if ref is not None:
                _write(ref, body)
                done.add(ref.id)
            elif key not in current:
                stale.append(key)
        need = [r for r in pending if r.id not in done]
        recs = _records_of(build, {r.id for r in need})
        _RUN["todo"] = todo = [(r, recs[r.id]) for r in need]
        size = max(50, len(todo) // (4 * (os.cpu_count() or 1)))
        chunks = [(i, min(i + size, len(todo))) for i in range(0, len(todo), size)]
        bodies = [b for part in pmap(_render_chunk, chunks, RUNS_PARALLEL_FROM // size + 1) for b in part]
    finally:
        _RUN.clear()
    kv.update(((vers[r.id], b) for (r, _), b in zip(todo, bodies) if r.id in vers), drop=stale)
    kv.close()
    if use:
        runs.mkdir(parents=True, exist_ok=True)
        atomic_write_text(runs / MANIFEST, json.dumps({"shell": shell, "pages": {
            r.id: [r.page, _vhash(vers[r.id])] for r in build.runs if r.id in vers}}))
    _drop_shell_from_sitemap(site_dir)
    return len(build.runs)


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
