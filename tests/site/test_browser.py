"""A real headless Chromium, driven over the DevTools protocol, opens the built site from a local server."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.site
try:
    from cdp import CDP, chromium, serve
except ImportError:  # pragma: no cover - websocket-client missing: reported by _chromium()
    CDP = chromium = serve = None  # type: ignore[assignment,misc]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    missing = None if path else "chromium is not installed (apt-get install -y chromium)"
    if CDP is None:
        missing = "websocket-client is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("QA_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"the browser test must run here (QA_REQUIRE_CHROMIUM=1): {missing}")
        pytest.skip(missing)
    assert path is not None
    return path


@pytest.fixture(scope="module")
def server(built_site: Path) -> Iterator[str]:
    with serve(built_site) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[CDP]:
    with chromium(_chromium()) as cdp:
        yield cdp


# every configuration: the first table after its heading (collapsed behind a summary)
CONFIGS = "document.querySelector('h2#every-configuration ~ details .qa-table-wrap table.qa-sortable')"


def _column(cdp: CDP, idx: int) -> list[float | None]:
    return cdp.js(f"""Array.from({CONFIGS}.tBodies[0].rows).map(r => {{
        const v = r.cells[{idx}].getAttribute('data-sort'); return v === '' ? null : parseFloat(v); }})""")


def test_table_sorts_numerically_after_instant_navigation(browser: CDP, server: str) -> None:
    browser.open(f"{server}/devices/")
    # material's instant navigation swaps the page without a load event: the script must re-initialise
    browser.click("document.querySelector('a[href$=\"rtx-4090/\"]')")
    browser.poll("location.pathname.endsWith('/devices/rtx-4090/') && "
                 "!!document.querySelector('table.qa-sortable[data-qa-ready]')", timeout=30)
    browser.js("document.querySelector('h2#every-configuration ~ details').open = true")
    # a sortable header keeps its column-header role (no role=button) for screen readers
    assert browser.js("document.querySelectorAll('table.qa-sortable th[role]').length") == 0
    idx = browser.js(f"Array.from({CONFIGS}.tHead.rows[0].cells).findIndex(c => c.textContent.trim() === 'tg t/s?')")
    assert idx >= 0
    before = _column(browser, idx)
    header = f"{CONFIGS}.tHead.rows[0].cells[{idx}]"
    browser.click(header)  # the header's text, not its small glossary link
    browser.poll(f"{header}.getAttribute('aria-sort') === 'ascending'")
    asc = _column(browser, idx)
    known = [v for v in asc if v is not None]
    assert known == sorted(known) and asc[len(known):] == [None] * (len(asc) - len(known))
    assert asc != before and len(known) >= 4
    assert known[0] == 41.0  # numeric, not text order ("120" < "41" as text)
    browser.click(header)
    browser.poll(f"{header}.getAttribute('aria-sort') === 'descending'")
    desc = [v for v in _column(browser, idx) if v is not None]
    assert desc == sorted(known, reverse=True)
    assert browser.js(f"{header}.getAttribute('aria-sort')") == "descending"


def test_text_columns_sort_in_natural_order(browser: CDP, server: str) -> None:
    """"Q10_0" sorts after "Q2_K" (text comparison put it first)."""
    browser.open(f"{server}/devices/")
    browser.poll("!!document.querySelector('table.qa-sortable[data-qa-ready]')", timeout=30)
    names = ["Q10_0", "q2_K", "IQ4_XS", "Q4_K_M", "IQ3_M", "BF16"]
    rows = "".join(f"<tr><td>{n}</td></tr>" for n in names)
    browser.js(f"""document.querySelector('article').insertAdjacentHTML('beforeend',
        '<table class="qa-sortable" id="qa-natural"><thead><tr><th>quant</th></tr></thead><tbody>{rows}</tbody>'
        + '</table>');
        fetch(document.querySelector('script[src*="sortable.js"]').src).then(r => r.text()).then(eval)""")
    browser.poll("!!document.querySelector('#qa-natural[data-qa-ready]')")  # the script set the new table up
    browser.click("document.querySelector('#qa-natural th')")
    got = browser.js("Array.from(document.querySelectorAll('#qa-natural td')).map(c => c.textContent)")
    assert got == ["BF16", "IQ3_M", "IQ4_XS", "q2_K", "Q4_K_M", "Q10_0"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_device_page_charts_load_without_errors(browser: CDP, server: str, scheme: str) -> None:
    browser.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": scheme}])
    # material remembers the last palette per origin; forget it so the (emulated) system preference decides
    browser.js("localStorage.clear(), sessionStorage.clear()")
    browser.events.clear()
    browser.open(f"{server}/devices/rtx-4090/")
    images = browser.poll("""(() => { const imgs = Array.from(document.images).filter(i => i.src.includes('/charts/'));
        return imgs.length && imgs.every(i => i.complete) ? imgs.map(i => [i.src, i.naturalWidth]) : null; })()""")
    assert len(images) >= 6, images
    assert all(w > 0 for _, w in images), images
    expected = "slate" if scheme == "dark" else "default"
    scheme_is = f"document.body.getAttribute('data-md-color-scheme') === '{expected}'"
    if not browser.js(scheme_is):
        # the reader's toggle in the header (material may have kept the palette of an earlier page)
        browser.click("Array.from(document.querySelectorAll('form[data-md-component=palette] label'))"
                      ".find(l => l.offsetWidth > 0)")
    assert browser.poll(scheme_is, timeout=5)
    visible = browser.js("Array.from(document.images).filter(i => i.src.includes('/charts/') && i.offsetWidth > 0)"
                         ".map(i => i.src)")
    assert visible and all(src.endswith(f"-{scheme}.svg#only-{scheme}") or f"-{scheme}.svg" in src for src in visible)
    # every image and stylesheet loaded (or failed): their errors are in the log before it is read
    assert browser.poll("document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)")
    browser.call("Runtime.evaluate", expression="0")
    assert browser.errors() == []
    shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
    out = Path(os.environ.get("QA_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="qa-screens-"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"device-rtx-4090-{scheme}.png"
    path.write_bytes(base64.b64decode(shot))
    assert path.stat().st_size > 10_000


@pytest.mark.parametrize("width", [1400, 390])
def test_commands_are_readable_and_not_under_the_copy_button(browser: CDP, server: str, width: int) -> None:
    """Every recommended command is wholly visible: wrapped, not clipped, no character under the copy button."""
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1,
                 mobile=width < 600)
    try:
        for page in ("devices/2x-rtx-3060/", "devices/rtx-4090/"):
            browser.open(f"{server}/{page}")
            report = browser.poll("""(() => {
                const blocks = Array.from(document.querySelectorAll('.md-typeset div.highlight pre'));
                const button = b => b.querySelector('.md-clipboard, .md-code__button');  // material 9.7 / 9.8
                if (!blocks.length || !blocks.every(pre => button(pre.closest('.highlight')))) return null;
                return blocks.map(pre => {
                    const code = pre.querySelector('code'), btn = button(pre.closest('.highlight'));
                    const b = btn.getBoundingClientRect(), range = document.createRange();
                    range.selectNodeContents(code);
                    const under = Array.from(range.getClientRects()).filter(r => r.width > 0 &&
                        r.right > b.left && r.left < b.right && r.bottom > b.top && r.top < b.bottom).length;
                    const c = code.getBoundingClientRect(), p = pre.getBoundingClientRect();
                    return {text: code.textContent.trim(), under: under,
                            clipped: code.scrollWidth > code.clientWidth + 1 || c.right > p.right + 1};
                }); })()""")
            assert report, page
            for block in report:
                assert block["text"].startswith("llama-server"), block
                assert block["under"] == 0, f"{page} at {width}px: text under the copy button: {block}"
                assert not block["clipped"], f"{page} at {width}px: command cut off: {block}"
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


PHONE_PAGES = ["", "devices/", "devices/rtx-4090/", "devices/cpu-test-xeon-cpu-2-20ghz/", "devices/2x-rtx-3060/",
               "devices/3x-ai-pro-r9700/", "models/llama-test-8b/", "models/coder-next-test/", "compare/", "runs/",
               "runs/01FIXTURE00000000000000001/", "data/"]


def test_at_390_px_every_table_shows_its_key_figures_and_every_chart_fits(browser: CDP, server: str) -> None:
    """On a phone every table keeps its first column and its key figure column on screen, even scrolled to its far
    end (both are pinned), and every chart is drawn inside the viewport at the page's width."""
    browser.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=1, mobile=True)
    try:
        for page in PHONE_PAGES:
            browser.open(f"{server}/{page}")
            browser.poll("document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)")
            report = browser.js("""(() => {
                const vw = document.documentElement.clientWidth, out = {tables: [], charts: [], untagged: []};
                const seen = c => { const r = c.getBoundingClientRect();
                    return r.width > 0 && r.height > 0 && r.left >= -1 && r.right <= vw + 1; };
                for (const t of document.querySelectorAll('.md-typeset .qa-table-wrap table')) {
                    const key = Array.from(t.classList).find(c => /^qa-key-\\d+$/.test(c));
                    if (!key) { out.untagged.push(t.tHead ? t.tHead.textContent.trim().slice(0, 60) : '?'); continue; }
                    const n = parseInt(key.slice(7), 10), wrap = t.closest('.qa-table-wrap');
                    const rows = Array.from(t.tBodies[0].rows).filter(r => r.cells.length >= n).slice(0, 6);
                    for (const end of [0, 1]) {  // as the page opens, then scrolled to the table's far right
                        wrap.scrollLeft = end ? wrap.scrollWidth : 0;
                        for (const r of rows) {
                            wrap.scrollIntoView ? r.scrollIntoView({block: 'center'}) : 0;
                            out.tables.push({head: t.tHead.rows[0].cells[n - 1].textContent.trim(),
                                             text: r.cells[n - 1].textContent.trim(), end: end,
                                             key: seen(r.cells[n - 1]), first: seen(r.cells[0])});
                        }
                    }
                    wrap.scrollLeft = 0;
                }
                for (const img of document.querySelectorAll('figure.qa-chart img')) {
                    if (!img.offsetWidth) continue;  // the other palette's variant
                    img.scrollIntoView({block: 'center'});
                    out.charts.push({src: img.src, ok: seen(img) && img.naturalWidth > 0,
                                     width: img.getBoundingClientRect().width});
                }
                return out; })()""")
            assert not report["untagged"], f"{page}: tables without a key figure column: {report['untagged']}"
            bad = [t for t in report["tables"] if not (t["key"] and t["first"] and t["text"])]
            assert not bad, f"{page} at 390 px: key figure or first column off screen: {bad[:3]}"
            assert all(c["ok"] for c in report["charts"]), f"{page} at 390 px: chart not inside the page: {report}"
            assert all(c["width"] > 300 for c in report["charts"]), report["charts"]  # drawn at the page's width
        # the pages with tables and charts were seen
        browser.open(f"{server}/devices/rtx-4090/")
        assert browser.js("document.querySelectorAll('figure.qa-chart img').length") >= 6
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")
