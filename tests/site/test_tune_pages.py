"""Tune records on the site: the tune's own page, the device page's "Tuned for this device", the downloads.

tests/fixtures/tune/data holds two real `collector tune` runs made on a 2-core CPU with the real llama-server and
SmolLM2-135M Q4_1, with every speed trial they wrote: 01M8CDQN1J7YH8P2M0078DA9AR (ok: the default is over the
250 MiB budget, the chosen command fits, the gain is within noise) and 01M8CDGVXANHMSTNH1B0JQFC3N (stopped at its
time budget: failed, no answer)."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest

from collector.publish import build_site
from collector.publish.pages.run import run_html
from collector.records.index import load_records
from collector.records.schema import ErrorInfo, SpeedRecord, TuneRecord
from fixtures.records.factory import HOSTILE
from sitebuild import REPO, build_clean, page_commands, page_text

pytestmark = pytest.mark.site
TUNE_DATA = REPO / "tests" / "fixtures" / "tune" / "data"
OK, FAILED = "01M8CDQN1J7YH8P2M0078DA9AR", "01M8CDGVXANHMSTNH1B0JQFC3N"
CHOSEN = "llama-server -m SmolLM2-135M-Instruct.Q4_1.gguf -c 8192 -ctk q8_0 -ctv q8_0"


@pytest.fixture(scope="module")
def tune_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_clean(TUNE_DATA, tmp_path_factory.mktemp("tune-site") / "html")


def test_tune_page_states_question_answer_gain_steps_probes_and_trials(tune_site: Path) -> None:
    page = (tune_site / "runs" / OK / "index.html").read_text(encoding="utf-8")
    text = page_text(page)
    assert "SmolLM2-135M-Instruct Q4_1 on CPU: AMD EPYC — Tune" in text
    assert ("with the largest context that fits the budget, ranked by generation speed (tg) at 256 filled tokens"
            in text) and "in host (CPU) memory within 250 MiB (budget from --memory-budget)" in text
    assert "in order of preference: f16, q8_0" in text and "the search took 197 s and finished its search" in text
    assert page_commands(page) == [CHOSEN]
    # default against chosen: memory and fit, medians with n and range, the 95 % band, as recorded
    assert "294.7 MiB over the 250 MiB budget" in text and "210.4 MiB fits the 250 MiB budget" in text
    # one formatter for a figure and its range, everywhere: the decimals of the figure (40.9: one) for both ends
    assert "44.5 median of n=4 · 39.3–49.9" in text and "40.9 median of n=4 · 5.4–44.9" in text
    assert "110.1 median of n=4 · 105.1–116.5" in text and "39.3–49.9 t/s" in text and "5.4–44.9 t/s" in text
    # the gain: within noise, said so, with its range; and why a slower command is the answer
    assert ("No measurable gain: -8.2 % generation speed (tg) against the default, but the two medians' 95 % "
            "intervals allow -89.2 % to +14.1 %") in text
    assert "The default does not fit the budget (294.7 MiB of 250 MiB)" in text
    steps = re.search(r'<ol class="qa-steps">(.*?)</ol>', page, re.S)
    assert steps and steps.group(1).count("<li>") == 21
    assert "trial (confirm the default): defaults: tg 46.3 t/s (n=2), 294.7 MiB" in text
    probes = page[page.index('id="probes"'):page.index('id="trials"')]
    assert probes.count("<tr>") == 1 + 9 and "-c 6400" in page_text(probes) and "over the budget" in probes
    # every trial links to its own run page, which exists and links back to the tune
    trials = re.findall(r'<ol class="qa-trials">(.*?)</ol>', page, re.S)[0]
    hrefs = re.findall(r'href="\.\./([^"/]+)/"', trials)
    assert len(hrefs) == 7 and "(default)" in trials and "(chosen)" in trials
    for trial in hrefs:
        run = (tune_site / "runs" / trial / "index.html").read_text(encoding="utf-8")
        assert f'href="../{OK}/"' in run and "A speed trial of a tune" in page_text(run)


def test_failed_tune_shows_error_and_steps_never_a_recommendation(tune_site: Path) -> None:
    page = (tune_site / "runs" / FAILED / "index.html").read_text(encoding="utf-8")
    text = page_text(page)
    assert "This tune gave no answer" in text and "Stage search: the search ended before the best" in text
    assert "stopped at its time budget" in text
    assert "stopped at the time budget: 197 s of 240 s spent" in text
    assert page_commands(page) == [] and 'id="answer"' not in page and "Gain" not in text
    device = (tune_site / "devices" / "cpu-amd-epyc" / "index.html").read_text(encoding="utf-8")
    assert FAILED not in device


def test_device_page_shows_the_newest_ok_tune_with_its_chart(tune_site: Path) -> None:
    page = (tune_site / "devices" / "cpu-amd-epyc" / "index.html").read_text(encoding="utf-8")
    text = page_text(page)
    section = text[text.index("Tuned for this device"):text.index("What fits on this device")]
    assert section.count("Tuned: SmolLM2-135M-Instruct") == 1
    assert ("largest context that fits · tg at depth 256 · host memory budget 250 MiB · KV f16, q8_0" in section)
    assert CHOSEN in section and "210.4 MiB, fits the 250 MiB budget" in section
    assert "No measurable gain: -8.2 %" in section and "(median of n=4 · 39.3–49.9)" in section
    assert f'href="../../runs/{OK}/"' in page and CHOSEN in page_commands(page)
    for variant in ("light", "dark"):
        svg = tune_site / "charts" / "devices" / f"cpu-amd-epyc-tune-{OK}-{variant}.svg"
        assert f"cpu-amd-epyc-tune-{OK}-{variant}.svg" in page
        root = ET.parse(svg).getroot()
        words = " ".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
        for label in ("memory budget 250 MiB", "default command", "chosen command", "probe: load only",
                      "tg t/s at depth 256"):
            assert label in words, (variant, label)


def test_tune_records_are_in_the_json_never_in_the_tables(tune_site: Path) -> None:
    records = load_records(TUNE_DATA)
    tunes = {r.id for r in records if isinstance(r, TuneRecord)}
    assert tunes == {OK, FAILED}
    rows = list(csv.DictReader(io.StringIO((tune_site / "data" / "records.csv").read_text(encoding="utf-8"))))
    assert len(rows) == len(records) - 2 and {r["kind"] for r in rows} == {"speed"}
    trial_of = {r.id: next(t.split(":", 1)[1] for t in r.tags if t.startswith("tune:")) for r in records
                if isinstance(r, SpeedRecord)}
    assert {r["id"]: r["tune"] for r in rows} == trial_of
    data = json.loads((tune_site / "data" / "records.json").read_text(encoding="utf-8"))
    assert sorted(d["id"] for d in data if d["kind"] == "tune") == sorted(tunes)
    assert "in records.json only (2 of them)" in page_text((tune_site / "data" / "index.html").read_text("utf-8"))
    runs = (tune_site / "runs" / "index.html").read_text(encoding="utf-8")
    assert runs.count('<span class="qa-n">tune</span>') == 1 and runs.count("tune · <strong>failed</strong>") == 1
    # the device's tables have the trials as speed runs, never the tune
    device = (tune_site / "devices" / "cpu-amd-epyc" / "index.html").read_text(encoding="utf-8")
    table = device[device.index('id="every-configuration"'):]
    assert OK not in table and FAILED not in table


def test_hostile_tune_is_text_and_an_over_budget_trial_is_not_a_crash() -> None:
    records = load_records(TUNE_DATA)
    ok = next(r for r in records if r.id == OK)
    assert isinstance(ok, TuneRecord)
    # derived from the real records: a newer tune whose strings are hostile, and a trial stopped over the budget
    hostile = ok.model_copy(update={
        "id": "01M8CDQN1J7YH8P2M0078DA9ZZ", "created_at": ok.created_at + timedelta(minutes=1),
        "steps": [*ok.steps, HOSTILE], "trials": [*ok.trials, "01M8CDQN1J7YH8P2M0078DA9YY"],
        "question": ok.question.model_copy(update={"budget_source": HOSTILE}),
        "probes": [ok.probes[0].model_copy(update={"why": HOSTILE, "error": HOSTILE, "fits": None})],
        "model": ok.model.model_copy(update={"file_name": HOSTILE + ".gguf"})})
    trial = next(r for r in records if isinstance(r, SpeedRecord) and r.id in ok.trials and r.status == "ok")
    over = trial.model_copy(update={
        "id": "01M8CDQN1J7YH8P2M0078DA9YY", "status": "failed", "samples": [],
        "config": trial.config.model_copy(update={"ubatch_size": 4096}),
        "error": ErrorInfo(stage="budget", message="llama.cpp's buffers need 400 MiB of host memory, over the "
                                                   "tune's budget of 250 MiB; not measured")})
    body = run_html(hostile)
    assert "<script>" not in body and "<strong>bold" not in body and HOSTILE in html.unescape(body)  # as text
    unwrapped = re.sub(r'</?span( class="qa-w")?>', "", body)  # flags are kept whole by a span each
    assert f"-m '{HOSTILE}.gguf' -c 8192" in html.unescape(unwrapped)  # quoted for the shell, then escaped
    build = build_site([*records, hostile, over])
    device = next(g for g in build.whole() if g.src_uri == "devices/cpu-amd-epyc.md")
    assert isinstance(device.content, str)
    assert "<script>" not in device.content and "Tuned: " in device.content
    assert HOSTILE in html.unescape(device.content) and "<strong>bold" not in device.content
    shown = html.unescape(device.content)
    assert "not measured: over a tune's memory budget" in shown and "failed: budget" not in shown
    chart = next(g.content for g in build.files if g.src_uri == "charts/devices/cpu-amd-epyc-tune-"
                 "01M8CDQN1J7YH8P2M0078DA9ZZ-light.svg")
    assert isinstance(chart, bytes) and b"trial over the budget:" in chart and b"script" not in chart
    page = run_html(over)
    assert "Not measured: over the tune's memory budget" in page and "This run failed" not in page
