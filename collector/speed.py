"""One speed run against a ready llama-server: warmup, then depths x categories x repetitions.

Method (DESIGN.md): greedy, fixed seed, ignore_eos, fixed n_predict, cache_prompt false, every sampling
parameter sent. A depth-d sample first feeds exactly d real tokens of filler (counted with /tokenize),
then the prompt, as one token array; the server's timings.prompt_n is recorded as prompt_tokens.
Rates are tokens/s, times ms, energy J.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from collector.errors import CollectorError
from collector.llama.client import CompletionResult, LlamaClient, ServerRequestError
from collector.prompts import FILLER, PromptSuite
from collector.records.schema import Conditions, Method, PromptSuiteRef, Sample, Stat, Summary

SEPARATOR = "\n\n"


@dataclass
class SpeedResult:
    method: Method
    samples: list[Sample]
    summary: Summary
    request_seconds: float = 0.0  # sum of wall time spent in requests (warmup included)
    gen_tokens: int = 0  # generated tokens over warmup + samples (the energy window)
    results: list[CompletionResult] = field(default_factory=list)


def build_prompt(client: LlamaClient, text: str, depth: int, filler_tokens: list[int] | None = None) -> list[int]:
    """Token array: exactly `depth` real filler tokens (BOS first), then the prompt's tokens."""
    if depth == 0:
        return client.tokenize(text, add_special=True)
    filler = filler_tokens if filler_tokens is not None else filler_token_ids(client)
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


def measure(client: LlamaClient, suite: PromptSuite, *, depths: tuple[int | str, ...], n_predict: int,
            repetitions: int, warmup: int, seed: int, n_ctx_slot: int | None = None) -> SpeedResult:
    """Run warmup + all samples; raises ServerRequestError (a failed run) or CollectorError (bad settings).
    A depth may be a share of the per-slot context ("50%"): see resolve_depths."""
    cats = list(suite.prompts)
    shares: list[str] = []
    if any(isinstance(d, str) for d in depths):
        longest = max(len(build_prompt(client, suite.prompts[c], 0)) for c in cats) + len(SEPARATOR) + 2
        depths, shares = resolve_depths(depths, n_ctx_slot, longest, n_predict)
    tokens: tuple[int, ...] = tuple(int(d) for d in depths)
    filler = filler_token_ids(client) if any(tokens) else []
    prompts = {(d, c): build_prompt(client, suite.prompts[c], d, filler) for d in tokens for c in cats}
    if n_ctx_slot:
        for (d, c), toks in prompts.items():
            if len(toks) + n_predict > n_ctx_slot:
                raise CollectorError(f"depth {d} + prompt {c} ({len(toks)} tokens) + n_predict {n_predict} exceeds "
                                     f"the per-slot context of {n_ctx_slot}; raise ctx_size or lower speed.depths")
    res = SpeedResult(Method(endpoint="/completion", n_predict=n_predict, temperature=0.0, seed=seed, top_k=1,
                             repetitions=repetitions, warmup=warmup, depths=list(tokens),
                             prompt_suite=PromptSuiteRef(name=suite.name, sha256=suite.sha256),
                             note="greedy, ignore_eos, cache_prompt false; depth = real filler tokens fed first"
                                  + ("; depths asked as shares of the context: " + "; ".join(shares)
                                     if shares else "")),
                      [], Summary())
    for _ in range(warmup):
        _run(client, res, prompts[(tokens[0], cats[0])], n_predict, seed)
    for d in tokens:
        for c in cats:
            toks = prompts[(d, c)]
            s = Sample(category=c, depth_tokens=d)
            for _ in range(repetitions):
                r = _run(client, res, toks, n_predict, seed)
                prompt_n = int(r.timings.get("prompt_n", 0))
                if prompt_n < len(toks):
                    raise ServerRequestError(f"server evaluated {prompt_n} prompt tokens of {len(toks)} sent "
                                             f"(depth {d}, {c}); the prompt was cut or cached")
                s.prompt_tokens, s.gen_tokens = prompt_n, int(r.timings.get("predicted_n", 0))
                s.pp_tps.append(round(r.timings["prompt_per_second"], 3))
                s.tg_tps.append(round(r.timings["predicted_per_second"], 3))
                if r.tg_tps_client is not None:
                    s.tg_tps_client.append(round(r.tg_tps_client, 3))
                if r.ttft_ms is not None:
                    s.ttft_ms.append(round(r.ttft_ms, 2))
                res.results.append(r)
            res.samples.append(s)
    def allv(key: str) -> list[float]:
        return [v for s in res.samples for v in getattr(s, key)]

    res.summary = Summary(tg_tps=Stat.of(allv("tg_tps"), digits=3), pp_tps=Stat.of(allv("pp_tps"), digits=3),
                          ttft_ms=Stat.of(allv("ttft_ms"), digits=3),
                          tg_tps_client=Stat.of(allv("tg_tps_client"), digits=3))
    return res


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


# Noisy runs (README, "Noisy runs"): a run is marked, shown as such and never recommended when
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
    spreads = [(max(g) - min(g)) / statistics.median(g) * 100 for g in groups if statistics.median(g) > 0]
    return round(max(spreads), 1) if spreads else None


def judge_conditions(samples: list[Sample], sampled: Any) -> Conditions:
    """What the host did while the run measured, and whether that makes the run noisy."""
    c = Conditions(cpu_other_pct=getattr(sampled, "cpu_other_pct", None),
                   cpu_other_pct_max=getattr(sampled, "cpu_other_pct_max", None),
                   gpu_other_processes=getattr(sampled, "gpu_other_processes", None),
                   tg_spread_pct=tg_spread_pct(samples))
    if c.cpu_other_pct is not None and c.cpu_other_pct > NOISY_CPU_PCT:
        c.reasons.append(f"other processes used {c.cpu_other_pct:g} % of the CPU (limit {NOISY_CPU_PCT:g} %)")
    if c.gpu_other_processes:
        c.reasons.append(f"{c.gpu_other_processes} other process(es) computed on the GPU")
    if c.tg_spread_pct is not None and c.tg_spread_pct > NOISY_SPREAD_PCT:
        c.reasons.append(f"tg samples scatter {c.tg_spread_pct:g} % (limit {NOISY_SPREAD_PCT:g} %)")
    c.noisy = bool(c.reasons)
    return c
