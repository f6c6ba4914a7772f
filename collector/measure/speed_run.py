"""One speed run against a ready llama-server: warmup, then depths x categories x repetitions.

Method (DESIGN.md): greedy, fixed seed, ignore_eos, fixed n_predict, cache_prompt false, every sampling
parameter sent. A depth-d sample first feeds exactly d real tokens of filler (counted with /tokenize),
then the prompt, as one token array; the server's timings.prompt_n is recorded as prompt_tokens.
Rates are tokens/s, times ms, energy J. Several clients at once: collector.measure.concurrent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from collector.base.errors import CollectorError
from collector.base.stats import percentile, spread_pct
from collector.llama.client import CompletionResult, LlamaClient, ServerRequestError
from collector.prompts import FILLER, PromptSuite
from collector.records.figures import headline
from collector.records.schema import Batch, Conditions, Method, PromptSuiteRef, Sample, Stat, Summary

SEPARATOR = "\n\n"
# A request waited for a slot when its slot started on the prompt no earlier than this before another stream of
# its batch had received its last token: it got the slot that stream released (docs/collector.md, "Concurrent clients").
SLOT_WAIT_TOLERANCE_S = 0.05


@dataclass
class SpeedResult:
    method: Method
    samples: list[Sample]
    summary: Summary
    request_seconds: float = 0.0  # sum of wall time spent in requests (warmup included)
    gen_tokens: int = 0  # generated tokens over warmup + samples (the energy window)
    results: list[CompletionResult] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    batch_results: list[list[CompletionResult]] = field(default_factory=list)  # the requests of each batch


def build_prompt(client: LlamaClient, text: str, depth: int, filler_tokens: list[int] | None = None,
                 offset: int = 0) -> list[int]:
    """Token array: exactly `depth` real filler tokens (BOS first), then the prompt's tokens. `offset` > 0 starts
    the filler that many tokens into the text (after BOS): concurrent streams get fillers with no common prefix."""
    if depth == 0:
        return client.tokenize(text, add_special=True)
    filler = filler_tokens if filler_tokens is not None else filler_token_ids(client)
    if offset:
        body = filler[1:]
        off = offset % len(body)
        filler = filler[:1] + body[off:] + body[:off]
    reps = -(-depth // len(filler))
    head = (filler * reps)[:depth]
    return head + client.tokenize(SEPARATOR + text, add_special=False)


def filler_token_ids(client: LlamaClient) -> list[int]:
    """The filler text's tokens (BOS first); repeated by build_prompt to reach any depth."""
    return client.tokenize(FILLER.read_text(), add_special=True)


def resolve_depths(asked: tuple[int | str, ...], n_ctx_slot: int | None, longest_prompt: int,
                   n_predict: int) -> tuple[tuple[int, ...], list[str]]:
    """Depths in tokens: "50%" is that share of the per-slot context, lowered where needed so that the prompt and
    the generated tokens still fit; returns the depths (in the order asked, without repeats) and what was done."""
    out: list[int] = []
    notes: list[str] = []
    for d in asked:
        if isinstance(d, str):
            if not n_ctx_slot:
                raise CollectorError(f"speed.depths {d}: the server did not report its context size; give depths "
                                     "in tokens")
            share = float(d.strip()[:-1]) / 100
            tokens = int(share * n_ctx_slot)
            room = n_ctx_slot - longest_prompt - n_predict
            if tokens > room:
                notes.append(f"{d} of {n_ctx_slot} = {tokens} lowered to {max(room, 0)} to leave room for the "
                             f"prompt and {n_predict} generated tokens")
                tokens = max(room, 0)
            else:
                notes.append(f"{d} of {n_ctx_slot} = {tokens} tokens")
            d = tokens
        if d not in out:
            out.append(d)
    return tuple(out), notes


def depth_tokens(client: LlamaClient, suite: PromptSuite, depths: tuple[int | str, ...], n_predict: int,
                 n_ctx_slot: int | None, extra_tokens: int = 0) -> tuple[tuple[int, ...], list[str]]:
    """The depths in tokens (shares resolved against the per-slot context, see resolve_depths) and the notes;
    `extra_tokens`: more prompt tokens some requests carry (a concurrent stream's own first line)."""
    if not any(isinstance(d, str) for d in depths):
        return tuple(int(d) for d in depths), []
    longest = (max(len(build_prompt(client, text, 0)) for text in suite.prompts.values()) + len(SEPARATOR) + 2
               + extra_tokens)
    resolved, shares = resolve_depths(depths, n_ctx_slot, longest, n_predict)
    return tuple(int(d) for d in resolved), shares


def check_fits(toks: list[int], depth: int, category: str, n_predict: int, n_ctx_slot: int | None) -> None:
    if n_ctx_slot and len(toks) + n_predict > n_ctx_slot:
        raise CollectorError(f"depth {depth} + prompt {category} ({len(toks)} tokens) + n_predict {n_predict} exceeds "
                             f"the per-slot context of {n_ctx_slot}; raise ctx_size or lower speed.depths")


def method_of(suite: PromptSuite, tokens: tuple[int, ...], shares: list[str], *, n_predict: int, repetitions: int,
              warmup: int, seed: int, concurrency: int = 1, shared_prefix: bool | None = None,
              note: str = "") -> Method:
    return Method(endpoint="/completion", n_predict=n_predict, temperature=0.0, seed=seed, top_k=1,
                  repetitions=repetitions, warmup=warmup, depths=list(tokens),
                  prompt_suite=PromptSuiteRef(name=suite.name, sha256=suite.sha256),
                  note="greedy, ignore_eos, cache_prompt false; depth = real filler tokens fed first"
                       + ("; depths asked as shares of the context: " + "; ".join(shares) if shares else "") + note,
                  concurrency=concurrency, shared_prefix=shared_prefix)


def measure(client: LlamaClient, suite: PromptSuite, *, depths: tuple[int | str, ...], n_predict: int,
            repetitions: int, warmup: int, seed: int, n_ctx_slot: int | None = None) -> SpeedResult:
    """Run warmup + all samples; raises ServerRequestError (a failed run) or CollectorError (bad settings).
    A depth may be a share of the per-slot context ("50%"): see resolve_depths."""
    cats = list(suite.prompts)
    tokens, shares = depth_tokens(client, suite, depths, n_predict, n_ctx_slot)
    filler = filler_token_ids(client) if any(tokens) else []
    prompts = {(d, c): build_prompt(client, suite.prompts[c], d, filler) for d in tokens for c in cats}
    for (d, c), toks in prompts.items():
        check_fits(toks, d, c, n_predict, n_ctx_slot)
    res = SpeedResult(method_of(suite, tokens, shares, n_predict=n_predict, repetitions=repetitions, warmup=warmup,
                                seed=seed), [], Summary())
    for _ in range(warmup):
        _run(client, res, prompts[(tokens[0], cats[0])], n_predict, seed)
    for d in tokens:
        for c in cats:
            toks = prompts[(d, c)]
            s = Sample(category=c, depth_tokens=d)
            for _ in range(repetitions):
                r = _run(client, res, toks, n_predict, seed)
                add_to_sample(s, r, len(toks))
                res.results.append(r)
                res.batches.append(batch_of([r], d))
                res.batch_results.append([r])
            res.samples.append(s)
    res.summary = summarize(res.samples, res.batches)
    return res


def add_to_sample(s: Sample, r: CompletionResult, n_sent: int) -> None:
    """One request's figures into the sample of its prompt and depth; the whole prompt must have been evaluated."""
    prompt_n = int(r.timings.get("prompt_n", 0))
    if prompt_n < n_sent:
        raise ServerRequestError(f"server evaluated {prompt_n} prompt tokens of {n_sent} sent "
                                 f"(depth {s.depth_tokens}, {s.category}); the prompt was cut or cached")
    s.prompt_tokens, s.gen_tokens = prompt_n, int(r.timings.get("predicted_n", 0))
    s.pp_tps.append(round(r.timings["prompt_per_second"], 3))
    s.tg_tps.append(round(r.timings["predicted_per_second"], 3))
    if r.tg_tps_client is not None:
        s.tg_tps_client.append(round(r.tg_tps_client, 3))
    if r.ttft_ms is not None:
        s.ttft_ms.append(round(r.ttft_ms, 2))
    if r.queue_ms is not None:
        s.queue_ms.append(round(r.queue_ms, 2))


def waited_for_slot(results: list[CompletionResult]) -> list[bool]:
    """Per request of one batch: did its slot start on the prompt only once another stream had finished?

    The slot's start is the client's first-token time less the server's prompt time; a request that found no
    free slot starts when another stream's slot is released, right after that stream's last token."""
    out = []
    for i, r in enumerate(results):
        ends = [e for j, o in enumerate(results) if j != i and (e := o.last_token_at) is not None]
        if r.ttft_ms is None or "prompt_ms" not in r.timings or not ends:
            out.append(False)
            continue
        start = r.started_at + (r.ttft_ms - r.timings["prompt_ms"]) / 1000
        out.append(start >= min(ends) - SLOT_WAIT_TOLERANCE_S)
    return out


def batch_of(results: list[CompletionResult], depth: int) -> Batch:
    """The batch's figures: every stream's generated tokens over first request sent -> last token received."""
    ends = [e for r in results if (e := r.last_token_at) is not None]
    if not ends:
        raise ServerRequestError("no stream of the batch received a token; the server generated nothing")
    wall_ms = round((max(ends) - min(r.started_at for r in results)) * 1000, 3)
    if wall_ms <= 0:
        raise ServerRequestError("a batch took no measurable time; the clock did not advance")
    gen = sum(int(r.timings.get("predicted_n", r.n_tokens)) for r in results)
    return Batch(depth_tokens=depth, streams=len(results), gen_tokens=gen, wall_ms=wall_ms,
                 throughput_tps=round(gen / (wall_ms / 1000), 3), waited=sum(waited_for_slot(results)))


def summarize(samples: list[Sample], batches: list[Batch]) -> Summary:
    """The headline (collector.records.figures), statistics over every sample, and the batches' aggregate
    throughput and slot waits."""
    def allv(key: str) -> list[float]:
        return [v for s in samples for v in getattr(s, key)]

    p95 = percentile(allv("ttft_ms"), 95)
    return Summary(headline=headline(samples, digits=3), tg_tps=Stat.of(allv("tg_tps"), digits=3),
                   pp_tps=Stat.of(allv("pp_tps"), digits=3),
                   ttft_ms=Stat.of(allv("ttft_ms"), digits=3),
                   tg_tps_client=Stat.of(allv("tg_tps_client"), digits=3),
                   throughput_tps=Stat.of([b.throughput_tps for b in batches], digits=3),
                   ttft_ms_p95=round(p95, 3) if p95 is not None else None,
                   requests=sum(b.streams for b in batches), slot_waits=sum(b.waited for b in batches))


def _run(client: LlamaClient, res: SpeedResult, prompt: list[int], n_predict: int, seed: int) -> CompletionResult:
    t0 = time.perf_counter()
    r = client.completion_stream(prompt, n_predict=n_predict, seed=seed)
    res.request_seconds += time.perf_counter() - t0
    res.gen_tokens += int(r.timings.get("predicted_n", r.n_tokens))
    return r


def add_energy(summary: Summary, energy_j: float | None, power_w_mean: float | None, gen_tokens: int,
               energy_method: str | None = None) -> None:
    """Joules per generated token over the measurement window, when the GPU energy is known."""
    summary.power_w_mean = round(power_w_mean, 2) if power_w_mean is not None else None
    summary.energy_j = round(energy_j, 2) if energy_j is not None else None
    summary.energy_method = energy_method if energy_j is not None else None
    if energy_j is not None and gen_tokens > 0:
        summary.energy_j_per_token = round(energy_j / gen_tokens, 4)


# Noisy runs (docs/collector.md, "Noisy runs"): a run is marked, shown as such and never recommended when
NOISY_CPU_PCT = 10.0  # other processes used more than this share of all cores on average while it measured,
NOISY_SPREAD_PCT = 25.0  # or tg over one prompt at one depth scattered more than this, (max - min) / median,
# or another process computed on its GPUs. Quiet, this 2-core host measures 0-3 % other CPU and 1-6 % spread.


def tg_spread_pct(samples: list[Sample]) -> float | None:
    """Largest (max - min) / median of tg over the repetitions of one prompt at one depth, in percent; with one
    repetition per prompt, over the prompts of one depth instead."""
    groups = [s.tg_tps for s in samples if len(s.tg_tps) > 1]
    if not groups:
        by_depth: dict[int, list[float]] = {}
        for s in samples:
            by_depth.setdefault(s.depth_tokens, []).extend(s.tg_tps)
        groups = [v for v in by_depth.values() if len(v) > 1]
    return _largest_spread(groups)


def throughput_spread_pct(batches: list[Batch]) -> float | None:
    """Largest (max - min) / median of the batches' aggregate throughput at one depth, in percent."""
    by_depth: dict[int, list[float]] = {}
    for b in batches:
        by_depth.setdefault(b.depth_tokens, []).append(b.throughput_tps)
    return _largest_spread(list(by_depth.values()))


def _largest_spread(groups: list[list[float]]) -> float | None:
    spreads = [x for g in groups if (x := spread_pct(g)) is not None]
    return round(max(spreads), 1) if spreads else None


def judge_conditions(samples: list[Sample], sampled: Any, batches: list[Batch] | None = None,
                     concurrency: int = 1) -> Conditions:
    """What the host did while the run measured, and whether that makes the run noisy.

    With several clients, one stream's tg depends on whether the others' prompts were computed in the same
    step as its own or while it was generating (that is how llama.cpp serves them, not noise): the spread that
    judges such a run is the one of the batches' aggregate throughput; the tg spread is kept for information."""
    c = Conditions(cpu_other_pct=getattr(sampled, "cpu_other_pct", None),
                   cpu_other_pct_max=getattr(sampled, "cpu_other_pct_max", None),
                   gpu_other_processes=getattr(sampled, "gpu_other_processes", None),
                   tg_spread_pct=tg_spread_pct(samples))
    if c.cpu_other_pct is not None and c.cpu_other_pct > NOISY_CPU_PCT:
        c.reasons.append(f"other processes used {c.cpu_other_pct:g} % of the CPU (limit {NOISY_CPU_PCT:g} %)")
    if c.gpu_other_processes:
        c.reasons.append(f"{c.gpu_other_processes} other process(es) computed on the GPU")
    if concurrency > 1:
        c.throughput_spread_pct = throughput_spread_pct(batches or [])
        if c.throughput_spread_pct is not None and c.throughput_spread_pct > NOISY_SPREAD_PCT:
            c.reasons.append(f"the batches' throughput scatters {c.throughput_spread_pct:g} % "
                             f"(limit {NOISY_SPREAD_PCT:g} %)")
    elif c.tg_spread_pct is not None and c.tg_spread_pct > NOISY_SPREAD_PCT:
        c.reasons.append(f"tg samples scatter {c.tg_spread_pct:g} % (limit {NOISY_SPREAD_PCT:g} %)")
    c.noisy = bool(c.reasons)
    return c
