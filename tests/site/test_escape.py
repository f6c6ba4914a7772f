"""Escaping helpers: record strings reach pages as text."""

from __future__ import annotations

import markdown

from collector.publish.escape import code_block, h, md, shell_command


def _render(text: str) -> str:
    return markdown.markdown(text, extensions=["tables", "pymdownx.superfences"])


def test_md_text_cannot_make_markup_or_break_a_table_row() -> None:
    hostile = "<script>alert(1)</script> **bold** [x](http://e) | pipe `code` _i_\nnext"
    cell = _render(f"| a | b |\n|---|---|\n| {md(hostile)} | 2 |")
    assert "<script>" not in cell and "<strong>" not in cell and "<a " not in cell and "<code>" not in cell
    assert cell.count("<td>") == 2  # the pipe stayed inside its cell
    assert "&lt;script&gt;alert(1)&lt;/script&gt; **bold** [x](http://e) | pipe `code` _i_ next" in cell


def test_code_block_survives_backticks_markup_and_shell_quoting() -> None:
    cmd = shell_command(["llama-server", "-m", "{model}", "--alias", "a b'c", "</code></pre>"], "x```y.gguf")
    assert cmd == "llama-server -m 'x```y.gguf' --alias 'a b'\"'\"'c' '</code></pre>'"
    html = _render(code_block(cmd) + "\n\n**after**")
    assert "<strong>after</strong>" in html and html.count("<code") == 1 and html.count("</pre>") == 1
    assert f"<code>{h(cmd)}</code>" in html  # the whole command, escaped, in one block
    assert h('"q" & <t>') == "&quot;q&quot; &amp; &lt;t&gt;"
