"""Concurrent clients without a server: batch figures, slot waits, prompt layout, and the record's checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from collector.base.stats import percentile
from collector.llama.client import CompletionResult
from collector.measure.concurrent import batch_layout, stream_text
from collector.measure.speed_run import SLOT_WAIT_TOLERANCE_S, batch_of, summarize, waited_for_slot
from collector.records.schema import Batch


def stream(start: float, ttft_s: float, prompt_s: float, last_s: float, n: int = 4) -> CompletionResult:
    """A finished stream: sent at `start`, first token after `ttft_s`, last after `last_s` (seconds)."""
    step = (last_s - ttft_s) / (n - 1)
    return CompletionResult(timings={"prompt_ms": prompt_s * 1000, "predicted_n": n, "prompt_n": 10,
                                     "predicted_per_second": 1 / step, "prompt_per_second": 10 / prompt_s},
                            n_tokens=n, ttft_ms=ttft_s * 1000, token_times_s=[ttft_s + i * step for i in range(n)],
                            started_at=start)


def test_batch_throughput_is_all_tokens_over_first_send_to_last_token() -> None:
    a = stream(100.0, 0.5, 0.45, 2.0, n=16)
    b = stream(100.002, 0.6, 0.55, 2.5, n=16)
    batch = batch_of([a, b], depth=0)
    assert batch.streams == 2 and batch.gen_tokens == 32 and batch.waited == 0
    assert batch.wall_ms == pytest.approx(2502.0, abs=0.01)  # 100.0 -> 102.502
    assert batch.throughput_tps == pytest.approx(32 / 2.502, abs=1e-3)


def test_a_request_that_got_a_released_slot_waited() -> None:
    first = stream(0.0, 0.5, 0.45, 2.0)
    # its slot started on the prompt at 2.6 - 0.5 = 2.1 s: after `first` had its last token (2.0 s)
    queued = stream(0.001, 2.6, 0.5, 4.0)
    assert waited_for_slot([first, queued]) == [False, True]
    assert batch_of([first, queued], depth=0).waited == 1
    # a slow prompt of another stream delays the first token, but the slot started long before anyone finished
    delayed = stream(0.001, 2.6, 2.5, 4.0)
    assert waited_for_slot([first, delayed]) == [False, False]
    # right at the tolerance: starting within it of another stream's end counts as having waited for it
    edge = stream(0.0, 2.0 - SLOT_WAIT_TOLERANCE_S / 2 + 0.5, 0.5, 3.0)
    assert waited_for_slot([first, edge]) == [False, True]
    assert waited_for_slot([first]) == [False]  # one client never waits for another


def test_a_batch_without_tokens_is_an_error() -> None:
    from collector.llama.client import ServerRequestError

    empty = CompletionResult(timings={"predicted_n": 0}, n_tokens=0, ttft_ms=None, started_at=1.0)
    with pytest.raises(ServerRequestError, match="no stream of the batch received a token"):
        batch_of([empty], depth=0)


def test_layout_spreads_every_prompt_and_marks_repeats() -> None:
    cats = ["a", "b", "c", "d", "e", "f"]
    assert batch_layout(cats, 1) == [[(c, 0)] for c in cats]
    assert batch_layout(cats, 4) == [[("a", 0), ("b", 0), ("c", 0), ("d", 0)],
                                     [("e", 0), ("f", 0), ("a", 0), ("b", 0)]]
    assert batch_layout(["a", "b"], 5) == [[("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]]
    assert stream_text("x", 0) == "x" and stream_text("x", 2).startswith("Client 3 ") and stream_text("x", 2) != "x"


def test_summary_over_batches() -> None:
    from collector.records.schema import Sample

    s = Sample(category="a", depth_tokens=0, tg_tps=[10.0, 12.0], ttft_ms=[float(v) for v in range(1, 21)])
    batches = [Batch(streams=2, gen_tokens=20, wall_ms=1000.0, throughput_tps=20.0, waited=1),
               Batch(streams=2, gen_tokens=20, wall_ms=2000.0, throughput_tps=10.0)]
    summary = summarize([s], batches)
    assert summary.throughput_tps is not None and summary.throughput_tps.n == 2
    assert (summary.throughput_tps.min, summary.throughput_tps.max) == (10.0, 20.0)
    assert summary.requests == 4 and summary.slot_waits == 1
    assert summary.ttft_ms_p95 == pytest.approx(19.05) and percentile([3.0], 95) == 3.0 and percentile([], 95) is None


def test_batch_block_is_strict() -> None:
    Batch(streams=2, gen_tokens=10, wall_ms=500.0, throughput_tps=20.0)
    with pytest.raises(ValidationError, match="not gen_tokens / wall time"):
        Batch(streams=2, gen_tokens=10, wall_ms=500.0, throughput_tps=25.0)
    with pytest.raises(ValidationError, match="waited 3 is more than the batch's 2 streams"):
        Batch(streams=2, gen_tokens=10, wall_ms=500.0, throughput_tps=20.0, waited=3)
    with pytest.raises(ValidationError):
        Batch(streams=0, gen_tokens=10, wall_ms=500.0, throughput_tps=20.0)
    with pytest.raises(ValidationError):
        Batch(streams=2, gen_tokens=10, wall_ms=0.0, throughput_tps=20.0)


def test_several_clients_are_judged_by_the_batches_throughput() -> None:
    from collector.measure.speed_run import judge_conditions
    from collector.records.schema import Sample

    # one stream waited on the other's prompt: its tg is a sixth of the other's, as llama.cpp serves them
    samples = [Sample(category="a", depth_tokens=0, tg_tps=[35.6, 5.8, 34.9, 6.1])]
    steady = [Batch(streams=2, gen_tokens=32, wall_ms=5000.0, throughput_tps=6.4),
              Batch(streams=2, gen_tokens=32, wall_ms=5200.0, throughput_tps=6.154)]
    quiet = judge_conditions(samples, None, steady, concurrency=2)
    assert not quiet.noisy and quiet.tg_spread_pct and quiet.tg_spread_pct > 100
    assert quiet.throughput_spread_pct == 3.9
    scattered = steady + [Batch(streams=2, gen_tokens=32, wall_ms=10000.0, throughput_tps=3.2)]
    noisy = judge_conditions(samples, None, scattered, concurrency=2)
    assert noisy.noisy and noisy.reasons == ["the batches' throughput scatters 52 % (limit 25 %)"]
    # one client: the tg spread judges, as before
    assert judge_conditions(samples, None, steady).noisy
