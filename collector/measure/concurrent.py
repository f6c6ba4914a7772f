"""Several clients at once: N streaming requests in flight together against llama-server's N slots (-np N).

A run with concurrency N sends its requests in batches of N. A barrier releases the N client threads together
(each on its own connection), so the batch's requests are sent within a millisecond of each other. For every
depth and repetition the suite's K prompts are spread over ceil(K / N) batches (stream j of batch b gets prompt
(b*N + j) mod K), so every prompt is measured at every depth, as with one client.

Prompts of one batch never share a prefix unless `shared_prefix`: each stream's filler starts at its own offset
in the filler text, and a prompt that appears twice in one batch (N > K) starts with a line of its own. With
`cache_prompt: false` no slot reuses another's tokens either way; `shared_prefix` only makes the texts alike.

Per stream: the server's tg and pp, the client's TTFT and queue time (sample lists, as with one client). Per
batch (`Batch`): every stream's generated tokens over the wall time from the first request sent to the last token
received, and how many requests waited for a slot (speed.waited_for_slot).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from collector.llama.client import CompletionResult, LlamaClient, ServerRequestError
from collector.measure.speed_run import (
    SpeedResult,
    add_to_sample,
    batch_of,
    build_prompt,
    check_fits,
    depth_tokens,
    filler_token_ids,
    method_of,
    summarize,
)
from collector.prompts import PromptSuite
from collector.records.schema import Sample, Summary

BARRIER_TIMEOUT_S = 60.0  # every client thread reaches the start line within this, or the batch is abandoned


def stream_text(text: str, copy: int) -> str:
    """The prompt of a stream whose prompt another stream of the same batch already has: its own first line."""
    return text if copy == 0 else f"Client {copy + 1} of this batch asks the same.\n\n{text}"


def batch_layout(categories: list[str], n: int) -> list[list[tuple[str, int]]]:
    """(category, copy) per stream of each batch of one depth and repetition; copy > 0: that category is already
    in the batch (only when n exceeds the number of prompts)."""
    k = len(categories)
    out = []
    for b in range(-(-k // n)):
        seen: dict[str, int] = {}
        streams = []
        for j in range(n):
            cat = categories[(b * n + j) % k]
            streams.append((cat, seen.get(cat, 0)))
            seen[cat] = seen.get(cat, 0) + 1
        out.append(streams)
    return out


def measure_concurrent(clients: list[LlamaClient], suite: PromptSuite, *, depths: tuple[int | str, ...],
                       n_predict: int, repetitions: int, warmup: int, seed: int, n_ctx_slot: int | None = None,
                       shared_prefix: bool = False) -> SpeedResult:
    """Warmup batches, then every depth x repetition x batch with len(clients) streams at once.

    Raises ServerRequestError (a failed run) or CollectorError (settings that cannot fit). `n_ctx_slot` is the
    context of one slot (ctx_size / N): depths given as shares resolve against it."""
    n = len(clients)
    first = clients[0]
    cats = list(suite.prompts)
    header = len(first.tokenize(stream_text("", n), add_special=False)) if n > len(cats) else 0
    tokens, shares = depth_tokens(first, suite, depths, n_predict, n_ctx_slot, extra_tokens=header)
    filler = filler_token_ids(first) if any(tokens) else []
    layout = batch_layout(cats, n)
    stride = max(1, (len(filler) - 1) // n) if filler else 0
    prompts: dict[tuple[int, int, str, int], list[int]] = {}
    for d in tokens:
        for streams in layout:
            for j, (cat, copy) in enumerate(streams):
                key = (d, 0 if shared_prefix else j, cat, copy)
                if key not in prompts:
                    prompts[key] = build_prompt(first, stream_text(suite.prompts[cat], copy), d, filler,
                                                offset=key[1] * stride)
                    check_fits(prompts[key], d, cat, n_predict, n_ctx_slot)
    note = (f"; {n} clients at once, in batches of {n} streams sent together; "
            + ("every stream fed the same filler" if shared_prefix else "no two streams of a batch share a prefix"))
    res = SpeedResult(method_of(suite, tokens, shares, n_predict=n_predict, repetitions=repetitions, warmup=warmup,
                                seed=seed, concurrency=n, shared_prefix=shared_prefix, note=note), [], Summary())

    def batch_prompts(d: int, streams: list[tuple[str, int]]) -> list[list[int]]:
        return [prompts[(d, 0 if shared_prefix else j, cat, copy)] for j, (cat, copy) in enumerate(streams)]

    samples: dict[tuple[int, str], Sample] = {(d, c): Sample(category=c, depth_tokens=d) for d in tokens for c in cats}
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="qa-client")
    try:
        for _ in range(warmup):
            run_batch(pool, clients, batch_prompts(tokens[0], layout[0]), n_predict, seed, res)
        for d in tokens:
            for _ in range(repetitions):
                for streams in layout:
                    sent = batch_prompts(d, streams)
                    results = run_batch(pool, clients, sent, n_predict, seed, res)
                    for (cat, _copy), toks, r in zip(streams, sent, results):
                        add_to_sample(samples[(d, cat)], r, len(toks))
                    res.results += results
                    res.batches.append(batch_of(results, d))
                    res.batch_results.append(results)
    finally:
        # never wait here for streams still in flight: the caller stops the server, which ends them
        pool.shutdown(wait=False, cancel_futures=True)
    res.samples = [s for s in samples.values() if s.tg_tps]
    res.summary = summarize(res.samples, res.batches)
    return res


def run_batch(pool: ThreadPoolExecutor, clients: list[LlamaClient], prompts: list[list[int]], n_predict: int,
              seed: int, res: SpeedResult) -> list[CompletionResult]:
    """One streamed /completion per prompt, all released at once; the results in prompt order."""
    barrier = threading.Barrier(len(prompts))

    def one(client: LlamaClient, toks: list[int]) -> CompletionResult:
        try:
            barrier.wait(BARRIER_TIMEOUT_S)
        except threading.BrokenBarrierError:
            raise ServerRequestError(f"the {len(prompts)} client threads did not all start within "
                                     f"{BARRIER_TIMEOUT_S:g} s; the host is overloaded") from None
        return client.completion_stream(toks, n_predict=n_predict, seed=seed)

    t0 = time.perf_counter()
    futures: list[Future[CompletionResult]] = [pool.submit(one, c, t) for c, t in zip(clients, prompts)]
    results = [f.result() for f in futures]  # the first failure is raised: the run fails
    res.request_seconds += time.perf_counter() - t0
    res.gen_tokens += sum(int(r.timings.get("predicted_n", r.n_tokens)) for r in results)
    return results
