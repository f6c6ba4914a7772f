"""Concurrent clients against the real llama-server (-np N) with SmolLM2: overlap, aggregate, slot waits, records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from collector.llama.binaries import LlamaTools
from collector.llama.client import LlamaClient
from collector.llama.server import ServerProcess
from collector.measure.concurrent import measure_concurrent
from collector.measure.plan import load_plan
from collector.measure.runner import run_plan
from collector.measure.speed_run import SpeedResult
from collector.prompts import load_suite
from collector.records import store
from collector.records.schema import SpeedRecord

pytestmark = pytest.mark.slow
N_PREDICT = 16


@contextmanager
def clients_of(tools: LlamaTools, model: Path, log_dir: Path, slots: int, clients: int,
               ctx: int = 1024) -> Iterator[tuple[list[LlamaClient], int]]:
    """A real llama-server with `slots` slots (one thread: this host is small and shared) and `clients` clients."""
    srv = ServerProcess(tools.path("llama-server"), model, ["-c", str(ctx), "-np", str(slots), "-t", "1", "-ngl", "0"],
                        log_dir=log_dir, load_timeout_s=120)
    with srv, ExitStack() as stack:
        cs = [stack.enter_context(LlamaClient(srv.base_url, timeout_s=300)) for _ in range(clients)]
        props = cs[0].props()
        assert props["total_slots"] == slots
        yield cs, props["default_generation_settings"]["n_ctx"]


def _measure(clients: list[LlamaClient], n_ctx_slot: int, depths: tuple[int | str, ...] = (0,)) -> SpeedResult:
    return measure_concurrent(clients, load_suite("coding-v1", ("sql", "debugging")), depths=depths,
                              n_predict=N_PREDICT, repetitions=2, warmup=0, seed=42, n_ctx_slot=n_ctx_slot)


def test_streams_on_their_own_slots_overlap_and_the_aggregate_is_tokens_over_wall_time(
        tmp_path: Path, llama_tools: LlamaTools, smollm2: Path) -> None:
    with clients_of(llama_tools, smollm2, tmp_path, slots=2, clients=2) as (clients, n_ctx_slot):
        assert n_ctx_slot == 512  # each slot holds ctx / N
        res = _measure(clients, n_ctx_slot, depths=(0, "25%"))
    assert res.method.concurrency == 2 and res.method.depths == [0, 128]
    assert len(res.batches) == len(res.batch_results) == 2 * 2  # 2 depths x 2 repetitions x 1 batch of 2 prompts
    for batch, results in zip(res.batches, res.batch_results):
        assert batch.streams == len(results) == 2 and batch.waited == 0
        assert {r.id_slot for r in results} == {0, 1}  # both served at once, each by its own slot
        first = [r.started_at + r.token_times_s[0] for r in results]
        last = [r.last_token_at for r in results]
        for i in range(2):
            assert all(first[i] < last[j] for j in range(2) if j != i), (first, last)  # really concurrent
        # the aggregate: every stream's generated tokens over first request sent -> last token received
        gen = sum(int(r.timings["predicted_n"]) for r in results)
        wall = max(last) - min(r.started_at for r in results)  # type: ignore[type-var]
        assert gen == batch.gen_tokens == 2 * N_PREDICT and all(r.n_tokens == N_PREDICT for r in results)
        assert batch.wall_ms == pytest.approx(wall * 1000, abs=0.002)
        # stored to 3 decimals: exactly the rounded quotient of what the batch recorded (a slow batch of ~4 t/s
        # is off the unrounded quotient by up to 1.2e-4 relative)
        assert batch.throughput_tps == round(gen / (batch.wall_ms / 1000), 3)
        # one stream's rate cannot exceed the batch's: the batch adds the other stream's tokens in the same time
        assert all(r.timings["predicted_n"] / (r.last_token_at - r.started_at) < batch.throughput_tps  # type: ignore
                   for r in results)
    # distinct prompts, and at depth 128 distinct fillers: no shared prefix beyond BOS
    by_depth = {s.depth_tokens: s for s in res.samples if s.category == "sql"}
    assert set(by_depth) == {0, 128} and by_depth[128].prompt_tokens >= by_depth[0].prompt_tokens + 128
    assert res.summary.throughput_tps and res.summary.throughput_tps.n == 4
    assert res.summary.requests == 8 and res.summary.slot_waits == 0 and res.summary.ttft_ms_p95


def test_more_clients_than_slots_wait_for_a_slot(tmp_path: Path, llama_tools: LlamaTools, smollm2: Path) -> None:
    with clients_of(llama_tools, smollm2, tmp_path, slots=1, clients=2) as (clients, n_ctx_slot):
        res = _measure(clients, n_ctx_slot)
    for batch, results in zip(res.batches, res.batch_results):
        done_first, queued = sorted(results, key=lambda r: r.last_token_at or 0.0)
        # one slot: the second request ran only after the first had finished, and that is what `waited` says
        assert queued.started_at + queued.token_times_s[0] > done_first.last_token_at  # type: ignore[operator]
        assert batch.waited == 1 and (queued.queue_ms or 0) > 0.5 * (done_first.ttft_ms or 0)
    assert res.summary.slot_waits == len(res.batches) == 2


PLAN = """
name: clients-test
models: ["{model}"]
server: {{threads: 1, ctx_size: 2048}}
speed:
  categories: [sql, debugging]
  depths: [0, "25%"]
  n_predict: 16
  repetitions: 1
  warmup: 1
  concurrency: [1, 2]
"""


def test_one_record_per_number_of_clients(tmp_path: Path, llama_tools: LlamaTools, smollm2: Path) -> None:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN.format(model=smollm2))
    data = tmp_path / "data"
    report = run_plan(load_plan(plan_file), tools=llama_tools, data_dir=data)
    assert len(report.ok) == 2 and not report.failed, report
    one, two = (store.load_record(p) for p in report.ok)  # re-read from disk: what a reader gets
    assert isinstance(one, SpeedRecord) and isinstance(two, SpeedRecord)
    assert (one.method.concurrency, one.config.parallel, two.method.concurrency, two.config.parallel) == (1, 1, 2, 2)
    assert two.command[two.command.index("-np") + 1] == "2"
    assert two.placement.n_slots == 2 and two.placement.n_ctx_seq == 1024  # what llama.cpp did, from its log
    # 25 % of each slot: 512 tokens with one slot of 2048, 256 with two slots of 1024
    assert one.method.depths == [0, 512] and two.method.depths == [0, 256]
    for rec, n in ((one, 1), (two, 2)):
        assert rec.summary.throughput_tps and rec.summary.throughput_tps.n == len(rec.batches) == 4 // n
        assert all(b.streams == n and b.gen_tokens == n * 16 and b.waited == 0 for b in rec.batches)
        assert rec.summary.requests == 4 and rec.summary.slot_waits == 0
        assert [(s.category, s.depth_tokens) for s in rec.samples] == [
            (c, d) for d in rec.method.depths for c in ("sql", "debugging")]
        assert all(len(s.tg_tps) == len(s.queue_ms) == len(s.ttft_ms) == 1 for s in rec.samples)
    assert "2 clients at once" in (two.method.note or "") and two.method.shared_prefix is False
    # the schema holds a record to its method: a 2-client record with a 1-stream batch is refused
    bad = two.model_dump(mode="json", by_alias=True)
    bad["batches"][0]["streams"] = 1
    with pytest.raises(ValueError, match="must have 2 streams"):
        SpeedRecord.model_validate(bad)

    # "already recorded" tells the numbers of clients apart: with 1, 2 and 4, only 4 is new (and noisy runs redo)
    plan_file.write_text(PLAN.format(model=smollm2).replace("[1, 2]", "[1, 2, 4]"))
    again = run_plan(load_plan(plan_file), tools=llama_tools, data_dir=data)
    quiet = sum(1 for r in (one, two) if not (r.conditions and r.conditions.noisy))
    assert len(again.skipped) == quiet and len(again.ok) == 3 - quiet, [r.conditions for r in (one, two)]
    four = store.load_record(again.ok[-1])
    assert four.method.concurrency == 4 and four.config.parallel == 4 and four.placement.n_ctx_seq == 512
    assert four.method.depths == [0, 128] and all(b.streams == 4 for b in four.batches)
    assert four.summary.requests == 2 * 4 and four.summary.slot_waits == 0  # 2 depths x one batch of 4
    # two prompts, four streams: the repeated prompts carry a first line of their own (more prompt tokens)
    sql0 = {r.method.concurrency: s.prompt_tokens for r in (one, four) for s in r.samples
            if (s.category, s.depth_tokens) == ("sql", 0)}
    assert len(next(s for s in four.samples if s.category == "sql").tg_tps) == 2 and sql0[4] > sql0[1]
