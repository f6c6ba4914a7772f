"""Where pages live and how they link: source paths, URLs, relative hrefs, and a page's front matter."""

from __future__ import annotations

import json
import posixpath

from collector.publish.words.escape import h


def front_matter(title: str, wide: bool = False, search: bool = True) -> str:
    """YAML front matter setting the page title: MkDocs puts page.title into <title> and the nav unescaped.
    `wide` hides the table of contents so wide tables get the room; `search` False keeps it out of the index."""
    hide = "hide: [toc]\n" if wide else ""
    excluded = "search:\n  exclude: true\n" if not search else ""
    return "---\ntitle: " + json.dumps(h(" ".join(title.split()))) + "\n" + hide + excluded + "---\n\n"


def page_url(src_uri: str) -> str:
    """The URL path (directory URLs) MkDocs gives a Markdown source."""
    stem = src_uri[:-3]
    if stem == "index" or stem.endswith("/index"):
        return stem[:-5]
    return stem + "/"


def href(from_src: str, to_src: str) -> str:
    """A relative href from one page to another, for raw HTML (MkDocs rewrites only Markdown links)."""
    base = page_url(from_src)
    target = page_url(to_src) if to_src.endswith(".md") else to_src
    rel = posixpath.relpath("/" + target, "/" + (base or "."))
    if target.endswith("/") and not rel.endswith("/"):
        rel += "/"
    return "./" if rel in (".", "./") else rel


def mdlink(from_src: str, to_src: str) -> str:
    """A relative Markdown link target between two sources (MkDocs validates these in --strict)."""
    return posixpath.relpath(to_src, posixpath.dirname(from_src) or ".")


def run_src(page_id: str) -> str:
    return f"runs/{page_id}.md"


def device_src(device: str) -> str:
    return f"devices/{device}.md"


def model_src(model: str) -> str:
    return f"models/{model}.md"
