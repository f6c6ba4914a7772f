"""Escaping helpers: record strings reach pages as text."""

from __future__ import annotations

import markdown

from collector.publish.escape import code_fence, h, md, shell_command


def _render(text: str) -> str:
    return markdown.markdown(text, extensions=["tables", "pymdownx.superfences"])


def test_md_text_cannot_make_markup_or_break_a_table_row() -> None:
    hostile = "<script>alert(1)</script> **bold** [x](http://e) | pipe `code` _i_\nnext"
    cell = _render(f"| a | b |\n|---|---|\n| {md(hostile)} | 2 |")
    assert "<script>" not in cell and "<strong>" not in cell and "<a " not in cell and "<code>" not in cell
    assert cell.count("<td>") == 2  # the pipe stayed inside its cell
    assert "&lt;script&gt;alert(1)&lt;/script&gt; **bold** [x](http://e) | pipe `code` _i_ next" in cell


def test_code_fence_survives_backticks_and_shell_quoting() -> None:
    cmd = shell_command(["llama-server", "-m", "{model}", "--alias", "a b'c"], "x```y.gguf")
    assert cmd == "llama-server -m 'x```y.gguf' --alias 'a b'\"'\"'c'"
    html = _render(code_fence(cmd) + "\n\n**after**")
    assert "<strong>after</strong>" in html and html.count("<code") == 1
    assert h('"q" & <t>') == "&quot;q&quot; &amp; &lt;t&gt;"
