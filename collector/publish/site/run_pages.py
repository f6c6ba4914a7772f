"""Run pages: one per record, rendered from one jinja2 template and written into the site's own page shell (a run
page MkDocs builds once), outside MkDocs' per-page pipeline (docs/site.md: how it scales).

Run pages are a pure function of their record and this package's code: their bodies are cached per data directory
(collector.base.cache.KeyValueCache), keyed by the record file's content (RecordIndex.versions), so a warm build or
`mkdocs serve` after one new record renders only the new pages; pages already in the output folder whose record
and page shell did not change are kept there (keep_run_pages).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from collector.base.cache import KeyValueCache, code_stamp, enabled, package_files, scope
from collector.base.files import atomic_write_text
from collector.base.parallel import pmap_iter
from collector.publish.pages.run import run_html
from collector.publish.site.build import SHELL_MARK, RunRef, SiteBuild
from collector.publish.words.escape import h
from collector.records.index import load_index
from collector.records.store import AnyRecord

RUNS_PARALLEL_FROM = 400  # run pages; fewer are written in this process
RUNS_CHUNK = 100  # run pages a worker renders (and sends back) at a time

_TITLE = re.compile(r"<title>.*?</title>", re.S)
_H1 = re.compile(r"<h1[^>]*>Run</h1>")


def split_shell(shell_html: str) -> tuple[str, str]:
    """The built shell page cut around its content marker: (head, tail)."""
    head, sep, tail = shell_html.partition(SHELL_MARK)
    if not sep:
        raise AssertionError("the run-page shell lost its marker (theme changed?)")
    return _H1.sub("", head, count=1), tail


_CODE_STAMP = code_stamp(package_files())
# What forked workers read (head, tail, output folder, the pages to render): inherited through the fork, where
# passing them would pickle every record once per chunk
_RUN: dict[str, Any] = {}


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
        bodies.append(run_html(rec, _RUN["trials"].get(rec.id), _RUN["held"].get(rec.id)))
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
    if enabled() and (site_dir / "runs" / MANIFEST).is_file():
        try:
            os.replace(site_dir / "runs", kept)
        except OSError:
            pass  # then every page is written again


def _vhash(version: str) -> str:
    return hashlib.sha256(version.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _reuse_kept(runs: Path, kept: Path, shell: str, refs: list[RunRef], vers: dict[str, str]) -> set[str]:
    """Put back the kept run pages that are still exactly right (same shell and code, same record version); returns
    their record ids. The pages of records changed or gone are deleted from the kept folder, MkDocs' own files under
    runs/ (the run list) move into it, and it becomes runs/ again: a few renames, not one per page (10,000 renames
    were ~1.5 s). Should any step fail, what MkDocs wrote is put back and every page is written again."""
    try:
        manifest = json.loads((kept / MANIFEST).read_text(encoding="utf-8"))
        pages = manifest["pages"] if isinstance(manifest, dict) and manifest.get("shell") == shell else {}
    except (OSError, ValueError, KeyError):
        pages = {}
    keep = {r.id: r.page for r in refs if r.id in vers and pages.get(r.id) == [r.page, _vhash(vers[r.id])]}
    moved: list[str] = []
    try:
        fresh = os.listdir(runs)
        pages_kept = set(keep.values()) - set(fresh)
        with os.scandir(kept) as entries:
            for entry in entries:
                if entry.name not in pages_kept:  # changed, gone, or MkDocs' own file of the last build
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
        for name in fresh:
            os.replace(runs / name, kept / name)
            moved.append(name)
        os.rmdir(runs)
        os.replace(kept, runs)
    except OSError:
        runs.mkdir(exist_ok=True)
        for name in moved:
            try:
                os.replace(kept / name, runs / name)
            except OSError:
                pass
        shutil.rmtree(kept, ignore_errors=True)
        return set()
    return {rid for rid, page in keep.items() if page in pages_kept}


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
    use = build.versions is not None and enabled()
    shell = hashlib.sha256(f"{_CODE_STAMP}\n{head}\n{tail}".encode()).hexdigest()
    kept = _kept(site_dir)
    left = _reuse_kept(runs, kept, shell, build.runs, vers) if use and kept.is_dir() else set()
    if not use:
        shutil.rmtree(kept, ignore_errors=True)
    pending = [r for r in build.runs if r.id not in left]
    kv = KeyValueCache("site", f"runs-{scope(Path(build.site_key))}", _CODE_STAMP, use)
    by_version = {vers[r.id]: r for r in pending if r.id in vers}
    current = set(vers.values())  # bodies of kept pages stay cached too
    done: set[str] = set()
    stale: list[str] = []
    _RUN.update(head=head, tail=tail, out=str(site_dir), trials=build.trial_names, held=build.held)
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
        # bodies are cached as they come, a chunk at a time: at 100,000 records (~7 KB a body) holding them all
        # until the last was rendered took ~0.7 GB, and a worker sent back an eighth of them in one message
        chunks = [(i, min(i + RUNS_CHUNK, len(todo))) for i in range(0, len(todo), RUNS_CHUNK)]
        parts = pmap_iter(_render_chunk, chunks, RUNS_PARALLEL_FROM // RUNS_CHUNK + 1, per_task=1)
        kv.update_in_batches(((vers[r.id], body) for (start, end), part in zip(chunks, parts)
                              for (r, _), body in zip(todo[start:end], part) if r.id in vers),
                             stale, 10 * RUNS_CHUNK)  # a transaction (an fsync) per ~1,000 pages
    finally:
        _RUN.clear()
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
