"""MkDocs' Markdown conversion of each page, kept across builds: a page whose Markdown did not change is not
converted again (at 10,000 records Python-Markdown was ~40 % of a warm build).

A page's entry is keyed by everything its HTML is a function of: its Markdown (as the plugin hands it on, the
deferred blocks out), its path, the path of every file of the site (where its relative links point, and whether
they exist), the Markdown configuration and the versions of the libraries that convert it, and this package's code.
It holds what MkDocs' `Page.render` sets: the HTML, the table of contents, the title found in it, the anchors it
has and the links to other pages' anchors (so MkDocs still checks those against the pages as they are now).

A conversion that logged a warning (a link to a missing page, say) is never kept, so a strict build warns about it
again. On a hit MkDocs converts nothing (the page's `render` is replaced for that build: building a Python-Markdown
instance costs ~2.5 ms even for an empty page) and the kept conversion is put back in on_page_content.

The search plugin's entries of a page (mkdocs-material's, which parses every page's HTML: ~20 % of a warm build)
are kept the same way (SearchMemo), keyed by the search configuration and everything of the page it reads: its
URL, HTML, table of contents, title and front matter.

The theme's rendering of a page (mkdocs-material's Jinja templates: ~3.5 ms a page) is kept the same way
(HtmlMemo), keyed by everything the template reads: the page's URL, title, HTML, table of contents, front matter,
neighbours and edit/canonical URLs, the navigation (every section and page title and URL), the site's configuration
(mkdocs.yml's values as loaded, the plugins' configs) and the theme's and Jinja's versions; not the list of files
(a page's links are in its HTML, and pages outside the navigation are not in any page's).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page
from mkdocs.structure.toc import AnchorLink, get_toc

from collector.base.cache import KeyValueCache, digest, lib_versions, pages_stamp, scope

log = logging.getLogger("mkdocs.plugins.quant_atlas")
LIBS = ("mkdocs", "markdown", "pymdown-extensions", "pygments", "mkdocs-material")


def _stable(value: Any) -> Any:
    """JSON for what json cannot write, the same in every process (a set's order follows the hash seed)."""
    if isinstance(value, (set, frozenset)):
        return sorted(map(repr, value))
    if isinstance(value, Mapping):  # the theme
        return [type(value).__name__, {str(k): v for k, v in value.items()}]
    return repr(value)


def _json(value: Any) -> str:
    """A key's text for configuration, front matter, a table of contents: the same in every process."""
    return json.dumps(value, sort_keys=True, default=_stable)


def _tokens(items: list[AnchorLink]) -> list[dict[str, Any]]:
    """A table of contents as the toc extension's tokens (what mkdocs.structure.toc.get_toc reads)."""
    return [{"level": a.level, "id": a.id, "name": a.title, "children": _tokens(a.children)} for a in items]


class _Warnings(logging.Handler):
    """Counts the warnings logged while a page converts."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class Kept:
    """One build's use of one kind of kept entries: `site/<kind>-<data dir>.sqlite`, tied to this package's code."""

    what = ""  # for the log line: "<what> of N pages ..."

    def __init__(self, kind: str, site_key: Path, use: bool | None = None) -> None:
        self.kv = KeyValueCache("site", f"{kind}-{scope(site_key)}", pages_stamp(), use)
        self.used: set[str] = set()  # this build's keys
        self.new: list[tuple[str, str]] = []
        self.reused = 0

    def close(self, keep: bool = True) -> None:
        """Keep this build's new entries and drop those no page of it used (keep: the build ended)."""
        log.debug("%s of %d pages done again, %d kept from the last build", self.what, len(self.used) - self.reused,
                  self.reused)
        if keep:
            self.kv.update(self.new, drop=[k for k in self.kv.stored_keys() if k not in self.used])
        self.kv.close()


def _no_conversion(page: Page, config: MkDocsConfig, files: Files) -> None:
    """Page.render for a page whose kept conversion is used: MarkdownMemo.after sets what render would have."""
    page.content = ""


class MarkdownMemo(Kept):
    """The kept conversions for one build (open in on_files, close in on_post_build)."""

    what = "Markdown conversion"

    def __init__(self, config: MkDocsConfig, files: Files, site_key: Path, use: bool) -> None:
        super().__init__("markdown", site_key, use)
        self.context = digest(lib_versions(LIBS), _json(config["markdown_extensions"]),
                              _json(config["mdx_configs"]),
                              str(config["use_directory_urls"]), *sorted(f.src_uri for f in files))
        self.keys: dict[str, str] = {}  # src_uri -> this build's key
        self.hits: dict[str, dict[str, Any]] = {}
        self.warned: dict[str, int] = {}  # src_uri -> the warning count when its conversion began
        self.warnings = _Warnings()
        logging.getLogger().addHandler(self.warnings)

    def before(self, markdown: str, page: Page) -> str:
        """on_page_markdown, last: the Markdown MkDocs is to convert (empty where the kept HTML will be used)."""
        src = page.file.src_uri
        key = self.keys[src] = digest(self.context, src, markdown)
        self.used.add(key)
        got = self.kv.get(key)
        if got is not None:
            try:
                self.hits[src] = json.loads(got)
            except ValueError:
                pass  # converted again
            else:  # MkDocs' render builds a Python-Markdown instance even for an empty page (~2.5 ms): skipped
                vars(page)["render"] = partial(_no_conversion, page)
                return ""
        self.warned[src] = self.warnings.count
        return markdown

    def after(self, html: str, page: Page, files: Files) -> str:
        """on_page_content, first: the page's HTML (the kept one on a hit, with what render would have set)."""
        src = page.file.src_uri
        hit = self.hits.pop(src, None)
        if hit is None:
            if self.warned.pop(src, None) == self.warnings.count:  # converted here, and nothing warned meanwhile
                links = page.links_to_anchors
                self.new.append((self.keys[src], json.dumps({
                    "html": html, "toc": _tokens(list(page.toc)), "title": page._title_from_render,
                    "anchors": sorted(page.present_anchor_ids or ()),
                    "links": None if links is None else {f.src_uri: d for f, d in links.items()}})))
            return html
        self.reused += 1
        page.toc = get_toc(hit["toc"])
        page._title_from_render = hit["title"]
        page.present_anchor_ids = set(hit["anchors"])
        if hit["links"] is not None:
            targets = {f: d for uri, d in hit["links"].items() if (f := files.get_file_from_path(uri)) is not None}
            page.links_to_anchors = targets
        return str(hit["html"])

    def close(self, keep: bool = True) -> None:
        logging.getLogger().removeHandler(self.warnings)
        super().close(keep)


class SearchMemo(Kept):
    """Wraps the search plugin's `add_entry_from_context` for one build: a page whose inputs are unchanged gets its
    kept entries instead of a parse of its HTML. Where the plugin is not mkdocs-material's search as known (no
    search_index with entries), nothing is wrapped."""

    what = "search entries"

    def __init__(self, config: MkDocsConfig, site_key: Path, use: bool) -> None:
        plugin = config.plugins.get("material/search") or config.plugins.get("search")
        index = getattr(plugin, "search_index", None)
        original = getattr(index, "add_entry_from_context", None)
        if index is None or original is None or not isinstance(getattr(index, "entries", None), list):
            super().__init__("search", site_key, False)  # not the plugin as known: nothing kept, nothing wrapped
            return
        super().__init__("search", site_key, use)
        context = digest(lib_versions(LIBS), _json(getattr(index, "config", {})))

        def add_entry_from_context(page: Page) -> None:
            key = digest(context, page.url, page.content or "", _json(_tokens(list(page.toc))),
                         _json(page.meta), str(page.title))
            self.used.add(key)
            got = self.kv.get(key)
            if got is not None:
                index.entries.extend(json.loads(got))
                self.reused += 1
                return
            before = len(index.entries)
            original(page)
            self.new.append((key, json.dumps(index.entries[before:])))

        index.add_entry_from_context = add_entry_from_context


# config no page template shows (plugins: objects, given by their configs instead; mkdocs.yml's path: `mkdocs serve`
# gives it as typed for its first build, absolute for its rebuilds)
_NOT_RENDERED = frozenset({"plugins", "site_dir", "dev_addr", "strict", "watch", "config_file_path"})


def _config_text(config: MkDocsConfig) -> str:
    plugins = {name: dict(plugin.config) for name, plugin in config.plugins.items()}
    values = {k: v for k, v in config.items() if k not in _NOT_RENDERED}
    return _json([values, plugins])


def _nav_text(items: list[Any]) -> list[Any]:
    return [[type(i).__name__, str(i.title), getattr(i, "url", None), _nav_text(getattr(i, "children", None) or [])]
            for i in items]


def _link(page: Any) -> list[str] | None:
    return None if page is None else [str(page.title), str(page.url)]


class HtmlMemo(Kept):
    """The theme's rendering of each page for one build (on_env to on_post_build): a page template whose inputs are
    unchanged is not rendered again. Templates other than a page's (404.html, sitemap.xml) always render."""

    what = "theme rendering"

    def __init__(self, config: MkDocsConfig, site_key: Path, use: bool) -> None:
        super().__init__("html", site_key, use)
        self.context = digest(lib_versions((*LIBS, "jinja2")), _config_text(config))
        self.nav: str | None = None  # the navigation's digest, taken at the first page (its titles are set by then)

    def key(self, template: str, context: dict[str, Any]) -> str:
        page = context["page"]
        if self.nav is None:
            self.nav = digest(json.dumps(_nav_text(list(context["nav"] or []))))
        return digest(self.context, self.nav, template, str(page.url), str(page.title), page.content or "",
                      _json(_tokens(list(page.toc))), _json(page.meta),
                      json.dumps([_link(page.previous_page), _link(page.next_page), page.edit_url,
                                  page.canonical_url, page.abs_url, page.is_homepage]))

    def wrap(self, env: Any) -> None:
        """Templates this environment loads from now on render through the memo when given a page."""
        memo = self
        base = env.template_class

        class KeptTemplate(base):  # type: ignore[misc, valid-type]  # Jinja's includes and extends never call render
            def render(self, *args: Any, **kwargs: Any) -> str:
                context = dict(*args, **kwargs)
                if context.get("page") is None or memo.kv.db is None:
                    return str(super().render(context))
                key = memo.key(str(self.name), context)
                memo.used.add(key)
                got = memo.kv.get(key)
                if got is not None:
                    memo.reused += 1
                    return got
                html = str(super().render(context))
                memo.new.append((key, html))
                return html

        env.template_class = KeptTemplate
