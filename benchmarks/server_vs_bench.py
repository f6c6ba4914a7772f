"""llama-server's generation rate against llama-bench's, same model, same threads and flags.

    .venv/bin/python benchmarks/server_vs_bench.py [--threads 2] [--n-gen 64] [--reps 3] [MODEL.gguf]

Both measure generation at (nearly) empty context: the server with one short prompt via streamed
/completion (server timings), llama-bench with `-p <same prompt tokens> -n <n-gen>`. Prints both medians
and the gap in percent.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from collector.llama.bench import run_llama_bench
from collector.llama.binaries import find_tools
from collector.llama.client import LlamaClient
from collector.llama.server import ServerProcess
from collector.measure.speed_run import measure
from collector.models.ref import DEMO_MODEL, resolve_model
from collector.prompts import load_suite
from collector.records.flags import LlamaConfig, server_args


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    model = Path(a.model) if a.model else resolve_model(DEMO_MODEL)
    tools = find_tools()
    config = LlamaConfig(ctx_size=2048, threads=a.threads, parallel=1, flash_attn="off", n_gpu_layers=0)
    suite = load_suite("coding-v1", ("sql",))
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp, \
            ServerProcess(tools.path("llama-server"), model, server_args(config), log_dir=Path(tmp)) as srv, \
            LlamaClient(srv.base_url) as client:
        res = measure(client, suite, depths=(0,), n_predict=a.n_gen, repetitions=a.reps, warmup=1, seed=42)
    server_tg = res.summary.tg_tps
    prompt_tokens = res.samples[0].prompt_tokens or 1
    bench = run_llama_bench(tools.path("llama-bench"), model, config, n_prompt=prompt_tokens, n_gen=a.n_gen,
                            reps=a.reps, timeout_s=600)
    assert server_tg and server_tg.median and bench.tg_tps and bench.tg_tps.median
    print(f"model {model.name}, threads {a.threads}, n_gen {a.n_gen}, reps {a.reps}, prompt {prompt_tokens} tokens")
    print(f"llama-server tg  median {server_tg.median:8.2f} t/s  (min {server_tg.min:.2f}, max {server_tg.max:.2f})")
    print(f"llama-bench  tg  median {bench.tg_tps.median:8.2f} t/s  (min {bench.tg_tps.min:.2f}, "
          f"max {bench.tg_tps.max:.2f})")
    if bench.pp_tps and res.summary.pp_tps:
        print(f"pp: server {res.summary.pp_tps.median:.2f} t/s, llama-bench {bench.pp_tps.median:.2f} t/s")
    gap = 100 * (server_tg.median - bench.tg_tps.median) / bench.tg_tps.median
    print(f"gap (server vs bench): {gap:+.2f}%")
    print("bench command:", " ".join(bench.command))


if __name__ == "__main__":
    main()
