"""Every figure of every answer card (answers/d/*.json, what the picker and the device pages show) is the figure of
the record it names, as that record states or measured it: the card's run page is the record, its tg and pp are the
record's headline (collector.records.figures) as the site writes figures, its context is the record's own (a size,
or a context as the source words it), its command is the record's argv (or, for a llama-bench row, a llama-server
command from the same settings, said so), and its KLD is the joined KLD record's mean."""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path

from collector.publish.site.build import build_from
from collector.publish.words.render import figure_value
from collector.records.figures import headline, record_headline
from collector.records.flags import server_args
from collector.records.index import load_index
from collector.records.schema import KldRecord, SpeedRecord, Stat
from collector.records.store import AnyRecord, page_id_of

REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def _answers() -> dict[str, dict]:
    build = build_from(REPO / "data")
    return {g.src_uri: json.loads(g.content) for g in build.files if g.src_uri.startswith("answers/d/")
            and isinstance(g.content, str)}


@functools.lru_cache(maxsize=1)
def _by_page() -> dict[str, AnyRecord]:
    return {page_id_of(r.id): r for r in load_index(REPO / "data").valid}


def _record(href: str) -> AnyRecord:
    return _by_page()[href.strip("/").split("/")[-1]]


def test_every_card_figure_is_its_records_figure() -> None:
    answers = _answers()
    assert len(answers) > 100
    checked = 0
    for src, answer in answers.items():
        for model in answer["models"]:
            for card in model["cards"]:
                rec = _record(card["run_href"])
                assert isinstance(rec, SpeedRecord), (src, card)
                pooled = [_record(h) for h in card["runs"]]  # re-measurements of one configuration pool their samples
                head = record_headline(rec) if len(pooled) == 1 else headline(
                    [s for r in pooled if r.status == "ok" for s in r.samples], digits=3)
                for what, field in (("tg", "tg_tps"), ("pp", "pp_tps")):
                    stat = getattr(head, field) if head else None
                    if what == "pp" and card["pp_href"]:  # the same run's pp test: a record of its own
                        stat = _same_run_pp(rec, _record(card["pp_href"]))
                        pp_rec = _record(card["pp_href"])
                        test = (pp_rec.source.raw or {}).get("cells", {}).get("test") or pp_rec.samples[0].category
                        assert card["pp_test"] == f"{test} of the same run", (src, card)
                    if card[what] is not None:
                        assert card[what]["value"] == f"{figure_value(stat)} t/s", (src, card["run_href"], what)
                        checked += 1
                ctx = rec.config.ctx_size
                if ctx is not None:
                    assert card["ctx"].startswith(f"{ctx:,} tokens"), (src, card)
                elif rec.ctx_stated:
                    assert card["ctx"].startswith(rec.ctx_stated), (src, card)
                if card["command"]:
                    argv = shlex.split(card["command"])
                    if rec.command and rec.command[0].rsplit("/", 1)[-1] == "llama-server":
                        # llama-server from PATH; a printed command whose flags today's llama-server spells
                        # otherwise is respelled, and the card quotes it as printed
                        printed = card["command_origin"].partition("(as printed: ")[2].removesuffix(")")
                        said = shlex.split(printed) if printed else argv
                        assert argv[0] == "llama-server" and said[1:] == [
                            a.replace("{model}", rec.model.file_name or "MODEL.gguf") for a in rec.command[1:]], \
                            (src, card)
                        assert not printed or argv != said
                    else:  # a llama-bench row: llama-server from its settings, and the card says so
                        assert rec.command[0].rsplit("/", 1)[-1] == "llama-bench"
                        assert argv[3:] == server_args(rec.config) and "llama-bench" in card["command_origin"]
                if card["kld"]:
                    k = _record(card["kld"]["href"])
                    assert isinstance(k, KldRecord) and card["kld"]["value"].startswith(f"{k.results.kld_mean:.4g}")
    assert checked > 500


_PER_TEST = {"n_prompt", "n_gen", "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts"}


def _same_run_pp(tg: AnyRecord, pp: AnyRecord) -> Stat:
    """A card's pp taken from another record: a pp test of the same llama-bench run (a markdown table: the same
    kept file and header line, every cell but the test and its rate; JSON output: every field but the test's own);
    its figure as that record states it."""
    assert isinstance(tg, SpeedRecord) and isinstance(pp, SpeedRecord) and pp.summary.pp_tps is not None
    assert pp.summary.tg_tps is None and tg.source.url == pp.source.url and pp.samples[0].category.startswith("pp")
    a, b = tg.source.raw or {}, pp.source.raw or {}
    if "cells" in a:
        assert a["header_line"] == b["header_line"]
        a, b = a["cells"], b["cells"]
        drop = {"test", "t/s"}
    else:
        a, b = a.get("object", {}).get("bench_raw", a), b.get("object", {}).get("bench_raw", b)
        drop = _PER_TEST
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    return pp.summary.pp_tps


def test_a_llama_bench_card_takes_pp_from_its_own_runs_pp512_test() -> None:
    """llama-bench prints each test on a row (or JSON object) of its own, a record each: a tg card's pp is the same
    run's pp512 test, never another run's (another table, flash attention or ubatch)."""
    cards = [c for a in _answers().values() for m in a["models"] for c in m["cards"] if c["pp_href"]]
    assert len(cards) > 100
    a770 = {c["tg"]["value"]: c for m in _answers()["answers/d/arc-a770.json"]["models"] for c in m["cards"]}
    assert a770["50.90 + 0.06 t/s"]["pp"]["value"] == "903.49 + 3.16 t/s"  # fa 0, not the fa 1 run's 363.82
    assert a770["50.90 + 0.06 t/s"]["pp_test"] == "pp512 of the same run"


def test_a_cards_other_setups_say_what_sets_them_apart() -> None:
    """Each of a file's other setups names its test (a sweep-bench row's with its depth) and the backend and
    settings it states that the card's configuration does not; a crowd's submissions that state nothing apart are
    'another result'."""
    a770 = {c["tg"]["value"]: c for m in _answers()["answers/d/arc-a770.json"]["models"] for c in m["cards"]}
    assert a770["50.90 + 0.06 t/s"]["siblings"] == [  # the card: Vulkan, flash attention off, 100 layers
        "tg128 (flash attn on): 48.30 + 0.09 t/s", "tg128 (SYCL · GPU layers 99 · split mode none): 29.92 ± 0.21 t/s",
        "tg128 (SYCL · GPU layers 99 · split mode none): 29.90 ± 0.20 t/s"]
    sweep = [s for m in _answers()["answers/d/2x-rtx-3090.json"]["models"] for c in m["cards"]
             for s in c["siblings"] if "@ d" in s]
    assert "tg128 @ d4096: 11.54 t/s" in sweep
    every = [s for a in _answers().values() for m in a["models"] for c in m["cards"] for s in c["siblings"]]
    assert not any(s.startswith("ctx not stated:") for s in every)
    assert any(s.startswith("another result") for s in every)


def test_the_rtx_4090_answers_qwen3_coder_next_first_with_the_posts_contexts_and_commands() -> None:
    models = _answers()["answers/d/rtx-4090.json"]["models"]
    first = models[0]
    assert first["label"] == "Qwen3-Coder-Next" and first["tier"] == "stated"
    cards = {c["quant"]: c for c in first["cards"]}
    assert cards["IQ3_XXS"]["ctx"] == "168,000 tokens (as stated)" and cards["IQ3_XXS"]["command"]
    assert cards["UD-IQ2_XXS"]["ctx"] == "200,000 tokens (as stated)" and cards["UD-IQ2_XXS"]["command"]
    abliterated = next(m for m in models if "abliterated" in m["label"])
    assert all(c["ctx"] == "168,000 tokens (as stated)" for c in abliterated["cards"])
