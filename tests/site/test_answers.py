"""The question-first answer on the built site of data/ (issue 31's "Done when"), in a real headless Chromium:
the picker on home answers "RTX 4090 + 64 GB RAM + Qwen3-Coder-Next" and "RX 7900 XTX + Llama 3.1 8B" at 1400 and
390 px; the cards show exactly what answers/*.json holds (tests/data/test_answer_cards.py traces those to the
records); the RTX 4090 page leads with Qwen3-Coder-Next and the commands and contexts the posts print; and every
kind of page keeps its height and phone budgets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitebuild import REPO, build_clean

pytestmark = pytest.mark.site
try:
    from cdp import CDP, chromium, serve
except ImportError:  # pragma: no cover - reported by test_browser's _chromium()
    CDP = chromium = serve = None  # type: ignore[assignment,misc]


@pytest.fixture(scope="module")
def data_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_clean(REPO / "data", tmp_path_factory.mktemp("data-site") / "html")


@pytest.fixture(scope="module")
def server(data_site: Path) -> Iterator[str]:
    with serve(data_site) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[CDP]:
    from test_browser import _chromium

    with chromium(_chromium()) as cdp:
        yield cdp


def _viewport(cdp: CDP, width: int) -> None:
    cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=width < 600)


CARDS = """Array.from(document.querySelectorAll('.qa-picker-out .qa-card')).map(c => ({
    quant: c.querySelector('.qa-card-quant').textContent,
    origin: Array.from(c.querySelectorAll('dt')).find(d => d.textContent === 'Source').nextElementSibling.textContent,
    facts: Object.fromEntries(Array.from(c.querySelectorAll('dt')).map(dt => [dt.textContent,
        dt.nextElementSibling.textContent])),
    command: c.querySelector('pre code') ? c.querySelector('pre code').textContent : null,
    copy: !!c.querySelector('button.qa-copy'),
    right: c.getBoundingClientRect().right, left: c.getBoundingClientRect().left}))"""


def _ask(cdp: CDP, server: str, gpu: str, ram: str, model: str, ram_type: str = "") -> list[dict]:
    cdp.open(f"{server}/")
    cdp.poll("document.querySelector('.qa-picker.qa-ready') !== null")
    cdp.js(f"""(() => {{ const b = document.querySelector('.qa-picker');
        b.querySelector('[name=gpu]').value = {json.dumps(gpu)};
        b.querySelector('[name=ram]').value = {json.dumps(ram)};
        for (const o of b.querySelector('[name=ramtype]').options) o.selected = o.textContent.startsWith(
            {json.dumps(ram_type or "not stated")});
        b.querySelector('[name=model]').value = {json.dumps(model)};
        b.querySelector('form').requestSubmit(); }})()""")
    cdp.poll("document.querySelector('.qa-picker-out').textContent.length > 0")
    cdp.poll("document.querySelector('.qa-picker-out .qa-card, .qa-picker-out .qa-missing') !== null")
    return cdp.js(CARDS)


def test_a_llama_bench_cards_pp_is_its_runs_pp512_test_linked_to_its_record(browser: CDP, server: str,
                                                                           data_site: Path) -> None:
    """The picker's card for a llama-bench row shows the same run's pp512 test (a record of its own), said so, with a
    link to that record's run page, as answers/d/<device>.json holds it."""
    cards = _ask(browser, server, "RTX 4090", "", "LLaMA 3 8B")
    answer = json.loads((data_site / "answers" / "d" / "rtx-4090.json").read_text())
    model = next(m for m in answer["models"] if m["label"] == "LLaMA 3 8B")
    data = next(c for c in model["cards"] if c["pp_href"])
    shown = next(c for c in cards if c["quant"] == data["quant"])
    assert shown["facts"]["Prompt (pp)"] == (f"{data['pp']['value']}{data['pp']['detail']} · {data['pp_test']} · "
                                             f"{data['depth']} · its run page")
    links = browser.js("Array.from(document.querySelectorAll('.qa-picker-out .qa-card dd a')).map(a => a.href)")
    assert f"{server}/{data['pp_href']}" in links and (data_site / data["pp_href"] / "index.html").is_file()


@pytest.mark.parametrize("width", [1400, 390])
def test_the_picker_answers_rtx_4090_qwen3_coder_next_with_a_command_and_its_stated_context(
        browser: CDP, server: str, data_site: Path, width: int) -> None:
    _viewport(browser, width)
    try:
        cards = _ask(browser, server, "RTX 4090", "64", "Qwen3-Coder-Next")
        assert cards, browser.js("document.querySelector('.qa-picker-out').textContent")
        with_cmd = [c for c in cards if c["command"]]
        assert with_cmd and all(c["copy"] for c in with_cmd)
        assert all(c["command"].lstrip("./").startswith("llama-server") for c in with_cmd)
        assert any("stated by" in c["origin"] for c in cards)  # the origin of every figure is said
        assert any("(as stated)" in c["facts"]["Context"] for c in with_cmd)  # the context the post states
        # exactly what answers/d/rtx-4090.json holds for the model, in its order
        answer = json.loads((data_site / "answers" / "d" / "rtx-4090.json").read_text())
        model = next(m for m in answer["models"] if m["label"] == "Qwen3-Coder-Next")
        assert [c["quant"] for c in cards[:len(model["cards"])]] == [c["quant"] for c in model["cards"]]
        for shown, data in zip(cards, model["cards"]):
            tg = shown["facts"]["Generation (tg)"]
            assert (data["tg"]["value"] in tg) if data["tg"] else tg == "not known"
            assert shown["facts"]["Context"] == data["ctx"] and shown["command"] == data["command"]
        if width == 390:  # every card inside the phone's width: nothing to scroll sideways to
            assert all(c["left"] >= 0 and c["right"] <= 391 for c in cards), cards
            assert browser.js("document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1")
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


@pytest.mark.parametrize("width", [1400, 390])
def test_rx_7900_xtx_and_llama_3_1_8b_get_an_answer_or_a_stated_reason(browser: CDP, server: str,
                                                                       width: int) -> None:
    _viewport(browser, width)
    try:
        cards = _ask(browser, server, "RX 7900 XTX", "32", "Llama 3.1 8B")
        text = browser.js("document.querySelector('.qa-picker-out').textContent")
        assert cards or ("No figure of" in text and "Models that have figures here" in text), text
        for c in cards:
            assert c["facts"]["Generation (tg)"] and c["origin"]
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


def test_the_rtx_4090_page_leads_with_qwen3_coder_next_and_the_posts_commands(browser: CDP, server: str) -> None:
    _viewport(browser, 1400)
    try:
        browser.open(f"{server}/devices/rtx-4090/")
        browser.poll("document.readyState === 'complete'")
        first = browser.js("""(() => { const h = document.querySelector('.md-content h3');
            const cards = h.nextElementSibling.querySelectorAll('.qa-card');
            return {heading: h.textContent, top: Math.round(h.getBoundingClientRect().top + scrollY),
                    cards: Array.from(cards).map(c => ({quant: c.querySelector('.qa-card-quant').textContent,
                        ctx: Array.from(c.querySelectorAll('dt')).find(d => d.textContent === 'Context')
                             .nextElementSibling.textContent,
                        cmd: c.querySelector('code') ? c.querySelector('code').textContent : null}))}; })()""")
        assert first["heading"].startswith("Qwen3-Coder-Next"), first
        assert first["top"] <= 1200, first
        base = {c["quant"]: c for c in first["cards"]}
        # the base model's IQ3_XXS: the setup the post prints a command for, at its stated 168K
        assert "168,000 tokens (as stated)" in base["IQ3_XXS"]["ctx"] and base["IQ3_XXS"]["cmd"], first
        assert all(c["cmd"] for q, c in base.items() if q.startswith("UD-")), first  # the 200K posts' commands
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


def test_a_gpu_set_page_prefills_its_gpu_and_count_and_answers_for_that_set(browser: CDP, server: str,
                                                                            data_site: Path) -> None:
    """The 2x RTX 3060 page's picker starts at "NVIDIA GeForce RTX 3060", How many 2 (what a reader would pick),
    not at the set's own name with one GPU; asked for a model of that page, it answers from the set's own cards."""
    _viewport(browser, 1400)
    try:
        browser.open(f"{server}/devices/2x-rtx-3060/")
        browser.poll("document.querySelector('.qa-picker.qa-ready') !== null")
        form = browser.js("""(() => { const b = document.querySelector('.qa-picker');
            return {gpu: b.querySelector('[name=gpu]').value, count: b.querySelector('[name=count]').value}; })()""")
        assert form == {"gpu": "NVIDIA GeForce RTX 3060", "count": "2"}, form
        answer = json.loads((data_site / "answers" / "d" / "2x-rtx-3060.json").read_text())
        model = answer["models"][0]["label"]
        browser.js(f"""(() => {{ const b = document.querySelector('.qa-picker');
            b.querySelector('[name=model]').value = {json.dumps(model)};
            b.querySelector('form').requestSubmit(); }})()""")
        browser.poll("document.querySelector('.qa-picker-out .qa-picker-head a') !== null")
        head = browser.js("""(() => { const a = document.querySelector('.qa-picker-out .qa-picker-head a');
            return {text: a.textContent, href: a.getAttribute('href')}; })()""")
        assert head["text"] == answer["label"] and head["href"].endswith("devices/2x-rtx-3060/"), head
        assert browser.js("document.querySelectorAll('.qa-picker-out .qa-card').length") > 0
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


ESTIMATE_CARDS = """Array.from(document.querySelectorAll('.qa-picker-out .qa-card')).map(c => ({
    estimate: c.classList.contains('qa-card-estimate'), quant: c.querySelector('.qa-card-quant').textContent,
    badge: c.querySelector('.qa-badge').textContent,
    tg: c.querySelector('dd .qa-v') ? c.querySelector('dd .qa-v').textContent : null,
    italic: c.querySelector('dd .qa-v') ? getComputedStyle(c.querySelector('dd .qa-v')).fontStyle : null,
    command: c.querySelector('pre code') ? c.querySelector('pre code').textContent : null}))"""


@pytest.mark.parametrize("width", [1400, 390])
@pytest.mark.parametrize(("gpu", "slug"), [("RX 7800 XT", "rx-7800-xt"), ("RTX 5080", "rtx-5080")])
def test_a_device_nobody_measured_a_model_on_gets_estimate_cards_apart_and_labelled(
        browser: CDP, server: str, data_site: Path, width: int, gpu: str, slug: str) -> None:
    """A GPU + Llama 3.1 8B that no record has: the picker answers with estimate cards, badged "estimate, not a
    measurement", in italics, after every measured or stated card (never ranked with them), each tg the figure the
    device page's estimate table prints for that quant, each with the command the memory model gives. Both classes'
    ranges hold (a figure, in italics: NVIDIA's since its HBM GPUs, which one source measured alone, are judged
    apart)."""
    _viewport(browser, width)
    try:
        _ask(browser, server, gpu, "", "Llama 3.1 8B")
        browser.poll("document.querySelector('.qa-picker-out .qa-card-estimate') !== null")
        cards = browser.js(ESTIMATE_CARDS)
        est = [c for c in cards if c["estimate"]]
        assert est and all(c["badge"] == "estimate, not a measurement" and c["italic"] == "italic" for c in est)
        first = next(i for i, c in enumerate(cards) if c["estimate"])
        assert all(c["estimate"] for c in cards[first:]), cards  # apart: below every measured or stated card
        answer = json.loads((data_site / "answers" / "d" / f"{slug}.json").read_text())
        (model,) = [m for m in answer["estimates"] if m["label"] == "Llama 3.1 8B"]
        assert [c["quant"] for c in est] == [c["quant"] for c in model["cards"]]
        page = (data_site / "devices" / slug / "index.html").read_text(encoding="utf-8")
        for shown in est:
            row = re.search(r'<tr><td>Llama 3\.1 8B<span class="qa-row-quant"> · ' + re.escape(shown["quant"])
                            + r"</span>.*?</tr>", page, re.S)
            assert shown["tg"].startswith("~")
            assert row and f'<em class="qa-est">{shown["tg"]}</em>' in row.group(0), shown
            assert shown["command"].startswith("llama-server -m MODEL.gguf -c ") and "-ngl 99" in shown["command"]
        if width == 390:
            assert browser.js("document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1")
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


def test_the_sources_case_a_moe_larger_than_the_card_gets_its_placement_and_a_ram_check(browser: CDP,
                                                                                         server: str) -> None:
    """RTX 4090 + 32 GB of system RAM + Qwen3-Coder-Next (the posts' question): below the posts' stated cards, an
    estimate card per quant with where llama.cpp's fit puts it (experts of N layers in system RAM), the command that
    pins it, a warning where those experts exceed 32 GB, and tg: at two common RAMs until the reader states its type,
    then at that RAM, the figure and range the device page's table prints for it."""
    est_js = """Array.from(document.querySelectorAll('.qa-picker-out .qa-card-estimate')).map(c => ({
            quant: c.querySelector('.qa-card-quant').textContent,
            facts: Object.fromEntries(Array.from(c.querySelectorAll('dt')).map(dt => [dt.textContent,
                dt.nextElementSibling.textContent])),
            warn: Array.from(c.querySelectorAll('.qa-card-warn')).map(w => w.textContent),
            command: c.querySelector('pre code').textContent}))"""
    _viewport(browser, 1400)
    try:
        _ask(browser, server, "RTX 4090", "32", "Qwen3-Coder-Next")
        browser.poll("document.querySelector('.qa-picker-out .qa-card-estimate') !== null")
        est = browser.js(est_js)
        by = {c["quant"]: c for c in est}
        assert set(by) == {"Q4_K_M", "Q8_0"}, est
        for c in est:
            assert re.match(r"the experts of \d+ of 48 layers in system RAM", c["facts"]["Placement"]), c
            assert "--n-cpu-moe" in c["command"]
            assert re.fullmatch(r"choose your system RAM's type above; DDR4-3200 2ch: ~[\d.]+ t/s \(stated range "
                                r"[\d.]+–[\d.]+ · 51.2 GB/s, \d+\+ CPU threads\); DDR5-6000 2ch: ~[\d.]+ t/s "
                                r"\(stated range [\d.]+–[\d.]+ · 96 GB/s, \d+\+ CPU threads\)",
                                c["facts"]["Speed"]), c["facts"]["Speed"]
        assert not by["Q4_K_M"]["warn"]  # ~25 GB of experts: within 32 GB
        assert any("more than the 32 GB of system RAM you entered" in w for w in by["Q8_0"]["warn"])
        at_ddr5 = re.search(r"DDR5-6000 2ch: (~[\d.]+ t/s) \(stated range ([\d.]+–[\d.]+)",
                            by["Q4_K_M"]["facts"]["Speed"])
        assert at_ddr5
        _ask(browser, server, "RTX 4090", "32", "Qwen3-Coder-Next", "DDR5-6000 2ch")
        browser.poll("document.querySelector('.qa-picker-out .qa-card-estimate') !== null")
        tg = {c["quant"]: c["facts"]["Generation (tg)"] for c in browser.js(est_js)}["Q4_K_M"]
        assert tg.startswith(f"{at_ddr5.group(1)}with DDR5-6000 2ch (96 GB/s): stated range {at_ddr5.group(2)} · "
                             "figures with weights in system RAM left out by source: median error "), tg
        assert re.search(r"your CPU's threads assumed to read at least that \(\d+ or more threads at the fitted "
                         r"[\d.]+ GB/s each\)$", tg), tg
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


# two pages of each template: measured, stated, crowd-only and catalog-only device pages, model and compare pages,
# home, index pages and run pages
BUDGET_PAGES = ["", "devices/", "devices/rtx-4090/", "devices/cpu-intel-xeon-processor/", "devices/2x-rtx-3060/",
                "devices/3x-ai-pro-r9700/", "devices/rx-7900-xtx/", "devices/gtx-1650-super/", "devices/catalog/",
                "devices/rtx-5080/", "models/", "models/llama-3-8b/", "models/qwen3-coder-next/", "compare/",
                "compare/llama-3-8b--q4-k-m/", "compare/meta-llama-3-1-8b-instruct--q4-k-m/", "runs/", "flagged/",
                "methodology/", "data/"]


def test_page_budgets_at_1400_and_nothing_to_scroll_sideways_at_390(browser: CDP, server: str,
                                                                    data_site: Path) -> None:
    runs = sorted(p.parent.name for p in (data_site / "runs").glob("*/index.html"))[:2]
    pages = BUDGET_PAGES + [f"runs/{r}/" for r in runs]
    tall, wide, late = [], [], []
    try:
        for width in (1400, 390):
            _viewport(browser, width)
            for page in pages:
                assert (data_site / page / "index.html").is_file(), page  # a renamed page is not skipped
                browser.open(f"{server}/{page}")
                browser.poll("document.readyState === 'complete'")
                got = browser.js("""({h: document.documentElement.scrollHeight,
                    over: document.documentElement.scrollWidth - document.documentElement.clientWidth,
                    card: (c => c ? c.getBoundingClientRect().top + scrollY : null)(document.querySelector(
                        '.md-content .qa-card'))})""")
                if width == 1400:
                    limit = 4000 if page == "" else 15000
                    if got["h"] > limit:
                        tall.append((page, got["h"]))
                    if page.startswith("devices/") and got["card"] is not None and got["card"] > 1200:
                        late.append((page, got["card"]))
                elif got["over"] > 1:
                    wide.append((page, got["over"]))
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")
    assert not tall, f"pages over their height budget at 1400 px: {tall}"
    assert not late, f"device pages whose first answer starts below 1200 px: {late}"
    assert not wide, f"pages that scroll sideways at 390 px: {wide}"
