"""One speed run against a ready llama-server: warmup, then depths x categories x repetitions.

Method (DESIGN.md): greedy, fixed seed, ignore_eos, fixed n_predict, cache_prompt false, every sampling
parameter sent. A depth-d sample first feeds exactly d real tokens of filler (counted with /tokenize),
then the prompt, as one token array; the server's timings.prompt_n is recorded as prompt_tokens.
Rates are tokens/s, times ms, energy J.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from collector.errors import CollectorError
from collector.llama.binaries import clean_env
from collector.llama.client import CompletionResult, LlamaClient, ServerRequestError
from collector.records.schema import EngineBench, Method, PromptSuiteRef, Sample, SpeedConfig, Stat, Summary

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
FILLER = PROMPTS_DIR / "filler-v1.txt"
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class PromptSuite:
    name: str
    sha256: str
    prompts: dict[str, str]  # category -> prompt text, in file order


def load_suite(name_or_path: str, categories: tuple[str, ...] = ()) -> PromptSuite:
    """A built-in suite by name (collector/prompts/NAME.yaml) or a YAML file path; checks categories."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPTS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml")))
        raise CollectorError(f"speed.prompt_suite: no prompt suite {name_or_path!r}; use one of: {known}, "
                             "or a path to a suite YAML file")
    raw = path.read_bytes()
    data = YAML(typ="safe").load(raw)
    prompts = {str(k): str(v["text"]) for k, v in (data.get("prompts") or {}).items()}
    unknown = [c for c in categories if c not in prompts]
    if unknown:
        raise CollectorError(f"speed.categories: {', '.join(unknown)} not in prompt suite {data.get('name')} "
                             f"({path}); choose from: {', '.join(prompts)}")
    if categories:
        prompts = {c: prompts[c] for c in categories}
    return PromptSuite(str(data.get("name", path.stem)), hashlib.sha256(raw).hexdigest(), prompts)


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


def measure(client: LlamaClient, suite: PromptSuite, *, depths: tuple[int, ...], n_predict: int, repetitions: int,
            warmup: int, seed: int, n_ctx_slot: int | None = None) -> SpeedResult:
    """Run warmup + all samples; raises ServerRequestError (a failed run) or CollectorError (bad settings)."""
    cats = list(suite.prompts)
    filler = filler_token_ids(client) if any(depths) else []
    prompts = {(d, c): build_prompt(client, suite.prompts[c], d, filler) for d in depths for c in cats}
    if n_ctx_slot:
        for (d, c), toks in prompts.items():
            if len(toks) + n_predict > n_ctx_slot:
                raise CollectorError(f"depth {d} + prompt {c} ({len(toks)} tokens) + n_predict {n_predict} exceeds "
                                     f"the per-slot context of {n_ctx_slot}; raise ctx_size or lower speed.depths")
    res = SpeedResult(Method(endpoint="/completion", n_predict=n_predict, temperature=0.0, seed=seed, top_k=1,
                             repetitions=repetitions, warmup=warmup, depths=list(depths),
                             prompt_suite=PromptSuiteRef(name=suite.name, sha256=suite.sha256),
                             note="greedy, ignore_eos, cache_prompt false; depth = real filler tokens fed first"),
                      [], Summary())
    for _ in range(warmup):
        _run(client, res, prompts[(depths[0], cats[0])], n_predict, seed)
    for d in depths:
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
    allv = lambda key: [v for s in res.samples for v in getattr(s, key)]  # noqa: E731
    res.summary = Summary(**{k: Stat.of(allv(k), digits=3) for k in ("tg_tps", "pp_tps", "ttft_ms", "tg_tps_client")})
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


_BENCH_FLAGS = {"n_gpu_layers": "-ngl", "n_cpu_moe": "-ncmoe", "cache_type_k": "-ctk", "cache_type_v": "-ctv",
                "flash_attn": "-fa", "batch_size": "-b", "ubatch_size": "-ub", "threads": "-t"}


def bench_args(bench: Path, model: Path, config: SpeedConfig, *, n_prompt: int, n_gen: int, reps: int) -> list[str]:
    """llama-bench argv for the same model and flags (ngl auto/all -> 99; bench has no auto-fit)."""
    argv = [str(bench), "-m", str(model), "-p", str(n_prompt), "-n", str(n_gen), "-r", str(reps), "-o", "json"]
    for key, flag in _BENCH_FLAGS.items():
        v = getattr(config, key)
        if v is None:
            continue
        argv += [flag, "99" if v in ("auto", "all") else str(v)]
    return argv


def run_llama_bench(bench: Path, model: Path, config: SpeedConfig, *, n_prompt: int, n_gen: int, reps: int,
                    timeout_s: float) -> EngineBench:
    """Run llama-bench once (pp and tg tests) and keep its per-repetition rates (tokens/s)."""
    argv = bench_args(bench, model, config, n_prompt=n_prompt, n_gen=n_gen, reps=reps)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=clean_env(),
                             stdin=subprocess.DEVNULL, start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        raise CollectorError(f"llama-bench did not finish within {timeout_s:g} s") from exc
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or [""]
        raise CollectorError(f"llama-bench exited with {out.returncode}: {tail[0]}")
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    pp = [float(x) for r in rows if r.get("n_prompt") and not r.get("n_gen") for x in r.get("samples_ts", [])]
    tg = [float(x) for r in rows if r.get("n_gen") and not r.get("n_prompt") for x in r.get("samples_ts", [])]
    cmd = ["llama-bench", "-m", "{model}", *argv[3:]]
    return EngineBench(n_prompt=n_prompt, n_gen=n_gen, pp_tps=Stat.of(pp, digits=3), tg_tps=Stat.of(tg, digits=3),
                       command=cmd)
