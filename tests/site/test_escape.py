"""Escaping helpers: record strings reach pages as text."""

from __future__ import annotations

import re

import markdown

from collector.publish.escape import code_block, h, inline_command, md, shell_command


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
    text = re.sub(r"</?span[^>]*>", "", html.split("<code>", 1)[1].split("</code>", 1)[0])
    assert text == h(cmd)  # the whole command, escaped, in one block
    assert '<span class="qa-w">--alias</span>' in html and '<span class="qa-w">-m</span>' in html


def test_flags_are_kept_whole_in_one_line_commands_only() -> None:
    one = str(code_block("llama-server -m x-y.gguf -c 8192 -ctk q8_0 --n-cpu-moe 3 -fa on"))
    flags = re.findall(r'<span class="qa-w">([^<]*)</span>', one)
    assert flags == ["-m", "-c", "-ctk", "--n-cpu-moe", "-fa"]  # not x-y.gguf, not values
    log = str(code_block("line -one\nline -two"))
    assert "<span" not in log  # a log tail is shown as it is
    cell = str(inline_command("-c 768 -ctk q8_0 <b>"))  # the same in a table cell or a sentence
    assert cell == '<code><span class="qa-w">-c</span> 768 <span class="qa-w">-ctk</span> q8_0 &lt;b&gt;</code>'
    assert h('"q" & <t>') == "&quot;q&quot; &amp; &lt;t&gt;"
