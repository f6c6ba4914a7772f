"""defer_all: each page's tables swapped for placeholders exactly as defer_tables does, and a page whose text is the
last call's not scanned again (mkdocs serve's rebuilds)."""

from __future__ import annotations

import collector.publish.site.deferred as deferred
from collector.publish.site.deferred import defer_all, defer_tables, restore_tables

PAGE = ('# T\n\ntext\n\n<div class="qa-table-wrap"><table><tr><td>1</td></tr></table>\n</div>\n\n'
        '<p class="qa-n">note</p>\n\nmore\n')


def test_defer_all_is_defer_tables_and_keeps_unchanged_pages(monkeypatch) -> None:
    pages = {"a.md": PAGE, "b.md": PAGE.replace("1", "2"), "c.md": "no tables\n"}
    first = defer_all(pages)
    assert first == {uri: defer_tables(text) for uri, text in pages.items()}
    assert all(restore_tables(*first[uri]) == text for uri, text in pages.items())
    scanned: list[str] = []
    monkeypatch.setattr(deferred, "defer_tables", lambda text: scanned.append(text) or defer_tables(text))
    again = defer_all({**pages, "b.md": PAGE.replace("1", "3"), "d.md": PAGE})
    assert scanned == [PAGE.replace("1", "3"), PAGE]  # the changed page and the new one, nothing else
    assert again["a.md"] is first["a.md"] and again["b.md"] == defer_tables(PAGE.replace("1", "3"))
    scanned.clear()
    assert defer_all({"a.md": PAGE})["a.md"] is first["a.md"] and scanned == []
    assert set(deferred._LAST) == {"a.md"}  # only the last call's pages are kept
