"""The kept Markdown conversions give exactly what MkDocs' own conversion gives, and never hide a warning."""

from __future__ import annotations

from pathlib import Path

import markdown
from mkdocs.config import load_config
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from collector.publish.site.page_memo import MarkdownMemo

REPO = Path(__file__).resolve().parents[2]

GOOD = "# Title of it\n\nSee [the other](other.md#part) and [below](#two).\n\n## One\n\ntext\n\n### Two\n\nmore\n"
BROKEN = "# Broken\n\nA link to [nowhere](missing.md).\n"


def _site(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in (("page.md", GOOD), ("other.md", "# Other\n\n## Part\n"), ("broken.md", BROKEN)):
        (docs / name).write_text(text, encoding="utf-8")
    config = load_config(str(REPO / "mkdocs.yml"), docs_dir=str(docs), site_dir=str(tmp_path / "out"))
    files = Files([File(n, str(docs), str(tmp_path / "out"), True) for n in ("page.md", "other.md", "broken.md")])
    return config, files


def _convert(memo: MarkdownMemo | None, config, files: Files, name: str, text: str) -> Page:
    page = Page(None, files.get_file_from_path(name), config)
    page.markdown = memo.before(text, page) if memo else text
    page.render(config, files)
    page.content = memo.after(page.content or "", page, files) if memo else page.content
    return page


def _seen(page: Page) -> tuple:
    links = {f.src_uri: d for f, d in (page.links_to_anchors or {}).items()}
    return (page.content, str(page.toc), [a.level for a in page.toc], page.title, page.present_anchor_ids, links)


def test_a_kept_conversion_is_mkdocs_own_and_a_warned_one_is_not_kept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path / "cache"))
    config, files = _site(tmp_path)
    plain = _convert(None, config, files, "page.md", GOOD)
    assert plain.title == "Title of it" and "two" in (plain.present_anchor_ids or set())
    first = MarkdownMemo(config, files, tmp_path, use=True)
    assert _seen(_convert(first, config, files, "page.md", GOOD)) == _seen(plain)
    _convert(first, config, files, "broken.md", BROKEN)  # MkDocs warns: missing.md is not a file of the site
    first.close()
    assert (first.reused, len(first.new)) == (0, 1)  # only the clean page is kept

    built: list[int] = []  # Python-Markdown instances MkDocs makes
    real = markdown.Markdown
    monkeypatch.setattr(markdown, "Markdown", lambda *a, **k: built.append(1) or real(*a, **k))
    second = MarkdownMemo(config, files, tmp_path, use=True)
    again = _convert(second, config, files, "page.md", GOOD)
    assert second.reused == 1 and again.markdown == "" and not built  # MkDocs converted nothing for it
    assert _seen(again) == _seen(plain)
    _convert(second, config, files, "broken.md", BROKEN)
    assert second.reused == 1 and built == [1]  # converted again, so its warning is logged again
    changed = _convert(second, config, files, "page.md", GOOD.replace("more", "else"))
    assert second.reused == 1 and "else" in (changed.content or "")
    second.close()
