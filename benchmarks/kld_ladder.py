"""Benchmark: the demo KLD section end to end (ladder build + base logits + every quant + KV caches).

Runs in a fresh cache and data dir (the source model is resolved from the normal cache first, so
nothing is downloaded twice) and prints where the time went and mean KLD next to file size:

    .venv/bin/python benchmarks/kld_ladder.py [PLAN]      # default: the embedded demo-cpu plan
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import collector.llama.perplexity as perplexity
import collector.quality.quantize as quantize
from collector.llama.binaries import find_tools
from collector.measure.plan import default_plan_path, load_plan
from collector.quality.kld import run_kld_plan
from collector.records.schema import KldRecord
from collector.records.store import load_record

TOOL_SECONDS: dict[str, float] = defaultdict(float)
TOOL_CALLS: dict[str, int] = defaultdict(int)


def _timed(run_tool):  # type: ignore[no-untyped-def]
    """Wrap run_tool so every llama.cpp tool call is counted and timed by tool name."""
    def wrapper(argv: list[str], stage: str, timeout_s: float | None) -> tuple[str, float]:
        t0 = time.perf_counter()
        try:
            return run_tool(argv, stage, timeout_s)
        finally:
            TOOL_SECONDS[Path(argv[0]).name] += time.perf_counter() - t0
            TOOL_CALLS[Path(argv[0]).name] += 1
    return wrapper


def main() -> None:
    plan = load_plan(Path(sys.argv[1]) if len(sys.argv) > 1 else default_plan_path())
    kld = plan.kld
    if kld is None:
        sys.exit("the plan has no kld section")
    if kld.ladder is not None:  # resolve (fetch) the source in the normal cache, before switching caches
        ladder = dataclasses.replace(kld.ladder, source=str(kld.resolve(kld.ladder.source)))
        kld = dataclasses.replace(kld, ladder=ladder)
    elif kld.base is not None:
        kld = dataclasses.replace(kld, base=str(kld.resolve(kld.base)),
                                  quants=tuple(str(kld.resolve(q)) for q in kld.quants))
    tools = find_tools()
    wrapped = _timed(perplexity.run_tool)
    perplexity.run_tool = wrapped
    quantize.run_tool = wrapped
    with tempfile.TemporaryDirectory(prefix="kld-bench-") as tmp:
        os.environ["COLLECTOR_CACHE_DIR"] = str(Path(tmp) / "cache")
        t0 = time.perf_counter()
        paths = run_kld_plan(kld, tools=tools, data_dir=Path(tmp) / "data")
        total = time.perf_counter() - t0
        recs = [load_record(p) for p in paths]
    tool_total = sum(TOOL_SECONDS.values())
    n_scored = sum(1 for r in recs if r.status == "ok")
    print(f"plan {plan.name}: ctx_size {kld.ctx_size}, {kld.chunks} chunks, corpus {kld.corpus_name}, "
          f"threads {kld.threads}, {os.cpu_count()} CPUs")
    print(f"total                 {total:8.1f} s")
    for tool in sorted(TOOL_SECONDS):
        share = 100 * TOOL_SECONDS[tool] / total
        print(f"{tool:21} {TOOL_SECONDS[tool]:8.1f} s  ({TOOL_CALLS[tool]} runs, {share:.1f} %)")
    print(f"collector overhead    {total - tool_total:8.1f} s  ({100 * (total - tool_total) / total:.1f} %: "
          "hashing, GGUF facts, llama-tokenize, records)")
    passes = TOOL_CALLS["llama-perplexity"]
    print(f"llama-perplexity passes: {passes} for {len(recs)} records (N+1 = {len(recs) + 1})"
          + ("" if passes == len(recs) + 1 else "  <-- NOT N+1"))
    print()
    print(f"| {'model':<22} | {'size MiB':>8} | {'bpw':>5} | {'mean KLD ± unc':>21} | {'99.9% KLD':>9} | "
          f"{'same top p %':>14} | {'PPL(Q)/PPL(base)':>16} |")
    print("|" + "|".join("-" * w for w in (24, 10, 7, 23, 11, 16, 18)) + "|")
    for r in recs:
        assert isinstance(r, KldRecord)
        label = r.model.quant or "?"
        if "kv-cache" in r.tags:
            label = f"{label} KV {r.config.cache_type_k}/{r.config.cache_type_v}"
        if r.status != "ok":
            print(f"| {label:<22} | failed: {r.error.message if r.error else ''}")
            continue
        res, m = r.results, r.model
        print(f"| {label:<22} | {m.size_bytes / 2**20:8.1f} | {m.bits_per_weight or 0:5.2f} | "
              f"{res.kld_mean:9.6f} ± {res.kld_mean_unc:9.6f} | {res.kld_p99_9:9.4f} | "
              f"{res.same_top_p:6.2f} ± {res.same_top_p_unc:5.2f} | {res.ppl_ratio:16.4f} |")
    print(f"\n{n_scored} of {len(recs)} records ok")


if __name__ == "__main__":
    main()
