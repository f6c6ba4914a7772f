"""Record strings are text, never markup, on every page kind (issue 25, 1), checked in a real Chromium.

For each payload class of the hostile review, every free-text string of every fixture record (the site fixture
and the real tune runs: every template and page kind) gets the payload appended, the real `mkdocs build --strict`
builds the site, and headless Chromium opens every page with alert/confirm/prompt hooked. On no page may a script
run, an event-handler or style attribute appear, an element made of a payload's marker (an injected heading,
emphasis, code span, image, link, list, quote) exist, a link to the payload's URLs or javascript: be created, or
an invisible or direction-changing character reach the text raw.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cdp import CDP, serve
from pydantic import TypeAdapter, ValidationError
from test_browser import browser  # noqa: F401  (browser: the shared Chromium fixture)

from collector.records import store
from collector.records.index import load_index
from collector.records.schema import Record
from sitebuild import FIXTURE_DATA, REPO, build_clean

pytestmark = pytest.mark.site
TUNE_DATA = REPO / "tests" / "fixtures" / "tune" / "data"

# one build per class; each payload's markup wraps a marker that no page has otherwise
PAYLOADS = {
    "attr-list image": "![QAIMG](x){: onerror=alert(document.domain) #qa-id }",
    "javascript link": "[QALINK](javascript:alert(1))",
    "emphasis with a handler": "*QAEM*{: onmouseover=alert(3) .qa-class }",
    "style overlay": "_QAU_{: style=position:fixed;z-index:99999;top:0;left:0;width:100%;height:100% }",
    "newlines and blocks": "x\n\n# QAHEAD\n\n- QALIST\n\n> QAQUOTE\n\n    QAPRE\n\n!!! note \"QAADM\"\n\n| a |\n|---|",
    "fake links and HTML": ("[QALINK](https://qa-fake.example/fixed) <https://qa-fake.example/auto> <b>QAB</b> "
                            "<img src=x onerror=alert(6)> <script>alert(7)</script>"),
    "code, strong, entities": "`QACODE` **QASTRONG** __QAU__ \\*x\\* {{ 7*7 }} &#x3C;b&#x3E;QAB&#x3C;/b&#x3E;",
    "invisible characters": "a\u00adb\u180ec\u034fd\U000e0041\U000e0042\u202egguf.exe\u2066x\u2069\x00e\u200b",
}
MARKERS = ["QAIMG", "QALINK", "QAEM", "QAU", "QAHEAD", "QALIST", "QAQUOTE", "QAPRE", "QAADM", "QAB", "QACODE",
           "QASTRONG"]
INVISIBLE = "\u00ad\u180e\u034f\U000e0041\U000e0042\u202e\u2066\u2069\x00\u200b"
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Record)  # every error at once, to keep only the strings it allows


def _hostile(value: Any, payload: str, path: tuple[Any, ...] = ()) -> Any:
    """Every string (not dict keys: those are the schema's) with the payload appended; the record's kind and a
    command's program name stay (the kind picks the schema; a tune's chosen command must start with llama-server)."""
    if isinstance(value, str):
        keep = path == ("kind",) or (path and path[-1] == 0 and "command" in str(path[-2:-1]))  # the union's tag
        return value if keep else f"{value} {payload}"
    if isinstance(value, dict):
        return {k: _hostile(v, payload, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile(v, payload, (*path, i)) for i, v in enumerate(value)]
    return value


def _set(data: Any, loc: tuple[Any, ...], value: Any) -> None:
    for key in loc[:-1]:
        data = data[key]
    data[loc[-1]] = value


def _get(data: Any, loc: tuple[Any, ...]) -> Any:
    for key in loc:
        data = data[key]
    return data


def _poisoned(rec: store.AnyRecord, payload: str) -> store.AnyRecord:
    """The record with the payload in every string field the schema lets hold any text."""
    original = store.record_to_dict(rec)
    data = _hostile(copy.deepcopy(original), payload)
    for _ in range(20):
        try:
            return _ADAPTER.validate_python(data)
        except ValidationError as exc:
            reverted = 0
            for err in exc.errors():
                loc = tuple(p for p in err["loc"] if p not in ("speed", "kld", "tune"))
                while loc:  # the deepest part of the path that exists in both (a union's branch name aside)
                    try:
                        _set(data, loc, copy.deepcopy(_get(original, loc)))
                        reverted += 1
                        break
                    except (KeyError, IndexError, TypeError):
                        loc = loc[:-1]
            if not reverted:
                raise
    raise AssertionError(f"{rec.id}: could not keep the record valid")


@pytest.fixture(scope="module")
def records() -> list[store.AnyRecord]:
    recs = [*load_index(FIXTURE_DATA, cache=False).valid, *load_index(TUNE_DATA, cache=False).valid]
    assert {r.kind for r in recs} == {"speed", "kld", "tune"}
    return recs


HOOK = """window.__qa = [];
for (const f of ["alert", "confirm", "prompt", "print", "open"]) {
  window[f] = (...a) => { window.__qa.push(f + "(" + a.join(",") + ")"); };
}"""

# What the page holds that a payload could only have put there
CHECK = """(() => {
  const found = [...(window.__qa || [])];
  const markers = %s, invisible = %s;
  for (const el of document.querySelectorAll("*")) {
    for (const a of el.attributes) {
      if (/^on/i.test(a.name)) found.push("handler " + a.name + " on <" + el.tagName + ">");
      if (a.name === "style" && /99999|position:\\s*fixed/.test(a.value)) found.push("style " + a.value);
      if (a.name === "href" && /^\\s*javascript:|qa-fake\\.example/i.test(a.value)) found.push("link " + a.value);
      if (a.name === "src" && /(^|\\/)x$/.test(a.value)) found.push("image " + a.value);
      if (a.name === "id" && a.value === "qa-id" || a.name === "class" && /\\bqa-class\\b/.test(a.value))
        found.push("attribute " + a.name + "=" + a.value);
      if (a.name === "alt" && markers.includes(a.value)) found.push("image alt " + a.value);
    }
    const own = (el.textContent || "").trim();
    if (markers.includes(own) && el.tagName !== "TITLE") found.push("element <" + el.tagName + "> " + own);
  }
  const text = document.body.textContent;
  for (const ch of invisible) if (text.includes(ch)) found.push("raw U+" + ch.codePointAt(0).toString(16));
  return found;
})()"""


def _pages(site: Path) -> list[str]:
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("index.html"))
    assert len(pages) > 40, pages
    return pages


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_record_strings_are_inert_on_every_page(name: str, records: list[store.AnyRecord], tmp_path: Path,
                                                browser: CDP) -> None:  # noqa: F811
    payload = PAYLOADS[name]
    data = tmp_path / "data"
    poisoned = [_poisoned(r, payload) for r in records]
    for rec in poisoned:
        store.save_record(rec, data)
    strings = [s for r in poisoned for s in _strings(store.record_to_dict(r))]
    assert sum(s.endswith(payload) for s in strings) > len(strings) // 2  # most text carries it
    site = build_clean(data, tmp_path / "site")
    browser.call("Page.addScriptToEvaluateOnNewDocument", source=HOOK)
    seen: dict[str, list[str]] = {}
    with serve(site) as url:
        for page in _pages(site):
            browser.open(f"{url}/{page}")
            got = browser.js(CHECK % (json.dumps(MARKERS), json.dumps(INVISIBLE)))
            if got:
                seen[page] = got
        # the payload did reach the pages, as text: the test is not vacuous
        browser.open(f"{url}/devices/")
        text = browser.js("document.body.textContent")
    assert not seen, f"{name}: markup from a record on {len(seen)} page(s): {dict(list(seen.items())[:3])}"
    shown = payload.replace("\n", " ") if name != "invisible characters" else "gguf.exe"
    assert any(part in text for part in shown.split() if len(part) > 3), text[:2000]
    shutil.rmtree(tmp_path / "site", ignore_errors=True)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
