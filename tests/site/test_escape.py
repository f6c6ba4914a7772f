"""Escaping helpers: record strings reach pages as text."""

from __future__ import annotations

import html
import re

import markdown
import pytest

from collector.publish.words.escape import code_block, csv_cell, h, inline_command, neutralize, shell_command

EXTENSIONS = ["tables", "attr_list", "admonition", "toc", "pymdownx.superfences", "pymdownx.details"]


def _render(text: str) -> str:
    return markdown.markdown(text, extensions=EXTENSIONS)


HOSTILE = ["<script>alert(1)</script> **bold** [x](http://e) | pipe `code` _i_ __u__\nnext",
           "![x](x){: onerror=alert(document.domain) }", "[x](javascript:alert(1))", "*e*{: onmouseover=alert(3) }",
           "_e_{: style=position:fixed;top:0;left:0 }", "x\n\n# injected heading\n\n- list", "C# and F#",
           "[Download the fixed build](https://fake.example/)", "<https://fake.example/auto>", "\\*not em\\*",
           "a\r# cr heading", "!!! note \"x\"", "x {: #id .cls }"]


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("context", ["| {} | 2 |", "## {}", "## <a href=\"x\">{}</a> tail", "<p>{}</p>", "{}",
                                     "<div class=\"qa-table-wrap\"><table><tr><td>{}</td></tr></table></div>"])
def test_h_text_is_text_in_markdown_and_in_html(hostile: str, context: str) -> None:
    """The one rule: `h` of a record string gives the same characters, and no markup, wherever it is put: a
    Markdown table cell, a heading (with or without an inline link), raw HTML (issue 25, 1)."""
    table = context.startswith("|")
    page = _render(("| a | b |\n|---|---|\n" if table else "") + context.format(h(hostile)))
    tags = re.findall(r"<[^>]*>", page)
    assert not [t for t in tags if re.match(r"</?(script|strong|em|img|code|li|ul|h1|blockquote|div class=.admon)", t)
                and t not in context], page
    assert not [t for t in tags if re.search(r"\bon\w+=|style=|javascript:|fake\.example|id=.id.|class=.cls", t)
                and t not in context], page
    assert page.count("<a ") == context.count("<a ")
    assert page.count("<h2") == context.count("##")
    if table:
        assert page.count("<td>") == 2  # the pipe stayed inside its cell
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert " ".join(neutralize(hostile).split()) in " ".join(text.replace("¶", "").split())


def test_csv_cells_that_a_spreadsheet_would_run_are_prefixed() -> None:
    for cell in ("=1+1", "+1", "-1+2", "@SUM(A1)", " =1+1", "\t=1", "\u3000=1+1", "＝1+1", "＋1", "﹦1", "\u00a0@x"):
        assert str(csv_cell(cell)).startswith("'"), cell
    assert csv_cell("Q4_K_M") == "Q4_K_M" and csv_cell(12.5) == 12.5


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
    assert h('"q" & <t>') == "&#34;q&#34; &amp; &lt;t&gt;"


def test_h_is_one_rule_on_every_path() -> None:
    """`h` skips the invisible-character pass for printable ASCII and the entity pass for text with none of its
    characters: the result is the rule's (neutralise, entities, lone underscores) for every character."""
    import random

    from collector.publish.words import escape

    def rule(text: str) -> str:
        out = neutralize(text).translate(escape._REFS)
        return escape._UNDERSCORE.sub("&#95;", out)

    rng = random.Random(7)
    pool = [chr(c) for c in range(0x80)] + list("\u00ad\u200b\u202e\u2028\ufeff\U000e0041é漢\ud800")
    texts = [chr(c) for c in range(0x80)] + ["".join(rng.choices(pool, k=rng.randint(1, 12))) for _ in range(5000)]
    texts += ["NVIDIA GeForce RTX 4090", "Q4_K_M", "_x_", "llama-server -m a.gguf -ngl 99"]
    assert [h(t) for t in texts] == [rule(t) for t in texts]
    assert h(None) == "" and h(12.5) == "12.5"
