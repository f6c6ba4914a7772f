"""Issue 33's Done-when: the posts' own setups (imports/sources: an RTX 4090 with 64 GB DDR4-3200 and a Ryzen 9 5950X,
Qwen3-Coder-Next in three files) answered with placement, memory per device, a command and tg with its range; the
estimates beside what the posts state are in docs/estimates.md."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from collector.estimate.answer import Answer, ask, offload_terms
from collector.estimate.estimator import Estimator
from collector.judge import beside, judge_records, load_summaries_from
from collector.records.index import load_records

REPO = Path(__file__).resolve().parents[2]
RAM = "DDR4-3200 2ch"  # "64GB DDR4-3200" on a Ryzen 9 5950X (two channels)


@lru_cache(maxsize=1)
def _estimator() -> Estimator:
    records = load_records(REPO / "data")
    return Estimator.of(records, judge_records(records, sums=load_summaries_from(beside(REPO / "data"))).held_keys())


def _ask(model: str, **kw: object) -> Answer:
    return ask(_estimator(), "RTX 4090", model, ram=RAM, **kw)  # type: ignore[arg-type]


def _answered(a: Answer) -> None:
    p = a.placement
    assert p is not None and a.command is not None and p.devices and p.devices[0].total > 0
    d = p.devices[0]
    assert d.weights > 0 and d.kv > 0 and d.recurrent > 0 and d.compute > 0  # Qwen3-Next: delta-net state too
    assert a.command.text().startswith("llama-server -m MODEL.gguf -c ") and "not measured" in a.command.words
    assert a.tg.value and a.tg.low and a.tg.high and a.tg.low < a.tg.value < a.tg.high


def test_auto_fit_iq2_xs_at_168k_moves_experts_to_the_cpu() -> None:
    """The abliterated IQ2_XS at 168K, q8_0 KV, no -ngl: the posts state 7 (and later 11) layers overflowing to the
    CPU and 86-94 t/s. The table's IQ2_XS is 23.6 GB (the post says "21 GB"): llama.cpp's fit moves the experts of the
    last layers to system RAM, where the old answer was "everything fits, ~180 t/s"."""
    a = _ask("Qwen3-Coder-Next IQ2_XS", ctx=168000, kv="q8_0")
    _answered(a)
    p = a.placement
    assert p is not None and p.by == "llama.cpp's fit" and p.n_gpu_layers == 49 and 3 <= p.n_cpu_moe <= 11
    assert p.side == "back" and p.fits and a.tg.value is not None and 70 < a.tg.value < 150


def test_auto_fit_iq3_xxs_moves_more() -> None:
    at168 = _ask("Qwen3-Coder-Next IQ3_XXS", ctx=168000, kv="q8_0")
    at128 = _ask("Qwen3-Coder-Next IQ3_XXS", ctx=128000, kv="q8_0")
    _answered(at168)
    assert at168.placement and at128.placement
    assert at168.placement.n_cpu_moe >= at128.placement.n_cpu_moe >= 12  # the posts: 23 and 22 layers
    assert at168.tg.value and 30 < at168.tg.value < 70  # the post: 44.6 t/s (37.5 averaged)


@pytest.mark.parametrize(("quant", "ngl", "ncmoe", "stated"), [("UD-IQ2_XXS", 42, 10, 21.78),
                                                                 ("UD-IQ3_XXS", 34, 18, 11.79)])
def test_the_flags_the_posts_give(quant: str, ngl: int, ncmoe: int, stated: float) -> None:
    a = _ask(f"Qwen3-Coder-Next {quant}", ctx=200000, kv="q4_0", ngl=ngl, n_cpu_moe=ncmoe, ubatch=1024, batch=1024)
    _answered(a)
    p = a.placement
    assert p is not None and p.by == "the flags given" and p.fits  # the posts: it loads (21.1 / 20.7 GB on the GPU)
    assert p.cpu_expert_layers == tuple(range(ncmoe)) and p.n_gpu_layers == ngl
    assert f"-ngl {ngl} --n-cpu-moe {ncmoe}" in a.command.text()  # type: ignore[union-attr]
    assert a.tg.value and a.tg.low and a.tg.high and a.tg.low <= stated <= a.tg.high


def test_the_sites_terms_give_the_clis_answer() -> None:
    """The site evaluates tg at its reader's RAM from a placement's terms (pages/estimates.py, the picker's
    answer.js): at the posts' RAM they give what `collector estimate --ram` answers, range included."""
    a = _ask("Qwen3-Coder-Next IQ2_XS", ctx=168000, kv="q8_0")
    assert a.placement is not None and a.ram_gbs and a.tg.value and a.tg.low and a.tg.high
    t = offload_terms(_estimator(), a.device, a.arch, a.placement.config, a.memory_gb)
    assert t is not None
    v = t.tg(a.ram_gbs)
    assert (v, v * t.low, v * t.high) == pytest.approx((a.tg.value, a.tg.low, a.tg.high), rel=1e-9)
    assert t.tg(2 * a.ram_gbs) > v  # faster RAM, faster tokens
