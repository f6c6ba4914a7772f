"""The MkDocs plugin (`plugins: [search, quant-atlas]` in mkdocs.yml): adds the generated files, fills the home
page and the Methodology page's estimates report, puts the deferred tables back into the finished pages, keeps each
page's Markdown conversion, search entries and theme rendering for the next build (page_memo), writes the run
pages, reports refused records. A thin adapter: all logic lives in collector.publish.

Config (typed, checked by MkDocs): `data_dir`, the data directory (default: data/ next to mkdocs.yml; $QUANT_ATLAS_DATA
overrides both). The build lives on the plugin instance for that build's events (`mkdocs serve` makes a new instance
for each rebuild, in the same process: the records it read stay in memory, see load_index's `live`).

A record file that `collector validate` refuses is never published: each is reported as one warning line naming the
file and the reason (escaped for the terminal), and a strict build fails on it whatever the log level: `-q` drops
warnings before MkDocs' strict counter sees them, so the plugin aborts the strict build itself.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment
from mkdocs.config import base
from mkdocs.config import config_options as c
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import Abort
from mkdocs.livereload import LiveReloadServer
from mkdocs.plugins import BasePlugin
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from collector.base import settings
from collector.base.cache import enabled
from collector.base.errors import printable
from collector.publish.site.build import ESTIMATES_PLACEHOLDER, HOME_PLACEHOLDER, SiteBuild, build_from, derive_ahead
from collector.publish.site.deferred import restore_tables
from collector.publish.site.page_memo import HtmlMemo, MarkdownMemo, SearchMemo
from collector.publish.site.run_pages import keep_run_pages, write_run_pages
from collector.publish.site.watch import watched_path
from collector.publish.words.render import TemplateCache
from collector.records.derived import forget_unless_kept, keep_between_builds

log = logging.getLogger("mkdocs.plugins.quant_atlas")


def _read_records(data_dir: Path) -> None:
    try:
        derive_ahead(data_dir)
    except Exception as exc:  # only the first rebuild's head start is lost; the rebuild reads and says the same
        log.debug("reading the records ahead of a rebuild failed: %s", printable(str(exc)))


class QuantAtlasConfig(base.Config):
    data_dir = c.Optional(c.Type(str))  # the data directory, relative to mkdocs.yml


class QuantAtlasPlugin(BasePlugin[QuantAtlasConfig]):
    def __init__(self) -> None:
        self.build: SiteBuild | None = None
        self.memo: MarkdownMemo | None = None
        self.search_memo: SearchMemo | None = None
        self.html_memo: HtmlMemo | None = None

    def data_dir(self, config: MkDocsConfig) -> Path:
        """$QUANT_ATLAS_DATA, else the plugin's `data_dir`, else data/ next to mkdocs.yml."""
        env = settings.site_data()
        if env:
            return Path(env)
        root = Path(config.config_file_path).parent
        return root / (self.config.data_dir or "data")

    def _build(self) -> SiteBuild:
        assert self.build is not None, "on_files runs before the page events"
        return self.build

    def on_serve(self, server: LiveReloadServer, *, config: MkDocsConfig, builder: Callable[..., Any]
                 ) -> LiveReloadServer:
        """`mkdocs serve` rebuilds when a record is written to the data directory in use ($QUANT_ATLAS_DATA too,
        which mkdocs.yml's `watch:` cannot name), told by the OS rather than by polling it (site.watch). The records
        are read into memory in the background meanwhile, with what is kept per record derived (build.derive_ahead):
        a first build from the whole-build memo read none, and the first rebuild would read and derive them all."""
        keep_between_builds()
        data = self.data_dir(config)
        if not data.is_dir():
            return server
        server.watch(str(watched_path(data)))
        if enabled():  # with the caches off, no record is kept between builds anyway
            threading.Thread(target=_read_records, args=(data,), name="quant-atlas-records", daemon=True).start()
        return server

    def on_pre_build(self, *, config: MkDocsConfig) -> None:
        keep_run_pages(Path(config.site_dir))  # before MkDocs cleans site_dir

    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files:
        data = self.data_dir(config)
        build = build_from(data)
        for _path, why in sorted(build.invalid.items()):
            log.warning("invalid record, not published: %s", printable(why))
        for g in build.files:
            files.append(File.generated(config, g.src_uri, content=g.content))
        self.build = build
        forget_unless_kept()  # what a rebuild would reuse, not needed by `mkdocs build` past this point
        gc.freeze()  # to on_post_build: what the build holds is left out of the collector's full passes (build_from)
        self.memo = MarkdownMemo(config, files, data, enabled())
        self.search_memo = SearchMemo(config, data, enabled())
        self.html_memo = HtmlMemo(config, data, enabled())
        return files

    def on_env(self, env: Environment, *, config: MkDocsConfig, files: Files) -> Environment:
        if env.bytecode_cache is None:  # the theme's templates, compiled once (words.render.TemplateCache)
            env.bytecode_cache = TemplateCache(env)
        if self.html_memo is not None:
            self.html_memo.wrap(env)
        return env

    def on_page_markdown(self, markdown: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
        if page.file.src_uri == "index.md":
            markdown = markdown.replace(HOME_PLACEHOLDER, self._build().home)
        elif page.file.src_uri == "methodology.md":
            markdown = markdown.replace(ESTIMATES_PLACEHOLDER, self._build().methodology)
        return self.memo.before(markdown, page) if self.memo else markdown

    def on_page_content(self, html: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
        return self.memo.after(html, page, files) if self.memo else html

    def on_post_page(self, output: str, *, page: Page, config: MkDocsConfig) -> str:
        return restore_tables(output, self._build().deferred.get(page.file.src_uri, []))

    def _close_memos(self, keep: bool) -> None:
        for memo in (self.memo, self.search_memo, self.html_memo):
            if memo is not None:
                memo.close(keep)
        self.memo = self.search_memo = self.html_memo = None

    def on_build_error(self, *, error: Exception) -> None:
        self._close_memos(keep=False)
        gc.unfreeze()

    def on_post_build(self, *, config: MkDocsConfig) -> None:
        build = self._build()
        self._close_memos(keep=True)
        try:
            write_run_pages(build, Path(config.site_dir))
        finally:
            gc.unfreeze()
        if build.invalid and config.strict:
            first = printable(next(iter(sorted(build.invalid.items())))[1])
            raise Abort(f"Aborted: {len(build.invalid)} invalid record file(s) under "
                        f"{printable(str(self.data_dir(config)))} in strict mode (first: {first}); "
                        "`collector validate` lists them")


__all__: list[Any] = ["QuantAtlasConfig", "QuantAtlasPlugin"]
