"""TemplateCache: a template compiled in one environment is loaded compiled by the next (a fresh process, a serve
rebuild), recompiled when its source changes; unreadable bytes are a compile, never an error; nothing is kept with
the caches off, and environments whose settings change the compiled code never share entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jinja2 import DictLoader, Environment

from collector.base.cache import cache_dir
from collector.publish.words.render import TemplateCache

SOURCE = {"page.html": "{% for x in xs %}<b>{{ x }}</b>{% endfor %}\n"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR_CACHE_DIR", str(tmp_path / "cache"))  # this test's entries only


def _env(templates: dict[str, str], **settings: object) -> Environment:
    e = Environment(loader=DictLoader(templates), **settings)  # type: ignore[arg-type]
    e.bytecode_cache = TemplateCache(e)
    return e


def _entries() -> list[Path]:
    return sorted((cache_dir() / "templates").glob("*/*.jinja")) if (cache_dir() / "templates").is_dir() else []


def test_compiled_once_then_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _env(SOURCE).get_template("page.html").render(xs=[1, "<"]) == "<b>1</b><b><</b>"
    assert len(_entries()) == 1
    compiled: list[str] = []
    real = Environment.compile

    def counting(self: Environment, source: str, *args: Any, **kwargs: Any) -> Any:
        compiled.append(source)
        return real(self, source, *args, **kwargs)

    monkeypatch.setattr(Environment, "compile", counting)
    assert _env(SOURCE).get_template("page.html").render(xs=[2]) == "<b>2</b>"
    assert compiled == []  # a new environment (a new process, a serve rebuild) compiles nothing
    changed = {"page.html": "{% for x in xs %}<i>{{ x }}</i>{% endfor %}\n"}
    assert _env(changed).get_template("page.html").render(xs=[3]) == "<i>3</i>"
    assert compiled == [changed["page.html"]]  # the source changed: compiled again, never the old code
    assert _env(SOURCE, autoescape=True).get_template("page.html").render(xs=["<"]) == "<b>&lt;</b>"
    assert len({p.parent for p in _entries()}) == 2  # escaping compiles other code: another folder


@pytest.mark.parametrize("junk", [b"", b"\x00" * 40, b"j2" + b"\xff" * 200])
def test_unreadable_entry_is_a_compile(junk: bytes) -> None:
    _env(SOURCE).get_template("page.html")
    (entry,) = _entries()
    entry.write_bytes(junk)
    assert _env(SOURCE).get_template("page.html").render(xs=[4]) == "<b>4</b>"
    assert entry.read_bytes() != junk  # written again, whole


def test_nothing_kept_with_caches_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANT_ATLAS_CACHE", "0")
    assert _env(SOURCE).get_template("page.html").render(xs=[5]) == "<b>5</b>"
    monkeypatch.delenv("QUANT_ATLAS_CACHE")
    assert _entries() == []
