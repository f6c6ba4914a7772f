"""Generated tables, command blocks, charts, raw HTML paragraphs and `qa-` lists kept out of MkDocs' Markdown
pipeline.

They are raw HTML that Markdown passes through unchanged. At 10,000 records they are most of the site's bytes, and
Python-Markdown's HTML-block scan plus the search plugin's HTML parse of them cost more than everything else: each
is swapped for a comment before MkDocs sees the page and put back into the finished HTML (the hook's
on_post_page). Search indexes the pages' headings and Markdown text, not these blocks. Record values inside are
escaped, so no closing tag occurs early.
"""

from __future__ import annotations

import re

_BLOCK = re.compile(r'<div class="qa-table-wrap">.*?</table>\s*</div>'
                    r'|<div class="language-bash highlight"><pre><code>.*?</code></pre></div>'
                    r'|<(p|ul) class="qa-[a-z-]+"[^>]*>.*?</\1>'  # no qa- list holds another list
                    r'|^<p>.*?</p>$|^<figure class="qa-chart">.*?</figure>$', re.S | re.M)  # raw paragraphs, charts
_PLACEHOLDER = re.compile(r"<!-- qa-deferred:(\d+) -->")


def defer_tables(markdown: str) -> tuple[str, list[str]]:
    """The page with each table and command block replaced by a placeholder comment, and the blocks in order."""
    blocks: list[str] = []

    def keep(m: re.Match[str]) -> str:
        blocks.append(m.group(0))
        return f"<!-- qa-deferred:{len(blocks) - 1} -->"

    return _BLOCK.sub(keep, markdown), blocks


_LAST: dict[str, tuple[str, tuple[str, list[str]]]] = {}  # the last defer_all: uri -> (its text, the result)


def defer_all(pages: dict[str, str]) -> dict[str, tuple[str, list[str]]]:
    """defer_tables of each page (uri -> text). A page whose text is the one it had in the last call is not scanned
    again: mkdocs serve rebuilds in one process, and most pages come unchanged from the kept pages."""
    global _LAST
    out = {}
    for uri, text in pages.items():
        hit = _LAST.get(uri)
        out[uri] = hit[1] if hit is not None and hit[0] == text else defer_tables(text)
    _LAST = {uri: (pages[uri], got) for uri, got in out.items()}
    return out


def restore_tables(html: str, blocks: list[str]) -> str:
    """The finished page with its blocks back in place of their placeholders."""
    return _PLACEHOLDER.sub(lambda m: blocks[int(m.group(1))], html) if blocks else html
