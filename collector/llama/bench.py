"""llama-bench beside the server: the same model and flags measured by the engine alone (ref/llama-cpp.md §5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collector.base.errors import CollectorError
from collector.base.lock import host_lock
from collector.llama.tools import ToolError, run_tool
from collector.records.flags import LlamaConfig, bench_args
from collector.records.schema import EngineBench, Stat


def bench_argv(bench: Path, model: Path, config: LlamaConfig, *, n_prompt: int, n_gen: int,
               reps: int) -> tuple[list[str], list[str]]:
    """(llama-bench argv for the config's model and flags, the settings llama-bench cannot take)."""
    flags, omitted = bench_args(config)
    return [str(bench), "-m", str(model), "-p", str(n_prompt), "-n", str(n_gen), "-r", str(reps), "-o", "json",
            *flags], omitted


def run_llama_bench(bench: Path, model: Path, config: LlamaConfig, *, n_prompt: int, n_gen: int, reps: int,
                    timeout_s: float) -> EngineBench:
    """Run llama-bench once (a pp and a tg test) and keep its per-repetition rates (tokens/s).

    `omitted` in the result names the settings llama-bench has no flag for (e.g. server slots, extra_args),
    so a reader sees exactly where the two measurements differ."""
    argv, omitted = bench_argv(bench, model, config, n_prompt=n_prompt, n_gen=n_gen, reps=reps)
    try:
        with host_lock("llama-bench"):  # held already inside a run: a no-op there
            res = run_tool(argv, "llama-bench", timeout_s, merge=False)
        rows: list[dict[str, Any]] = json.loads(res.text)
    except ToolError as exc:
        raise CollectorError(f"llama-bench failed: {exc} ({(exc.log_tail or ['-'])[-1].strip()})") from None
    except ValueError as exc:
        raise CollectorError(f"llama-bench printed no JSON ({exc})") from None
    pp = [float(x) for r in rows if r.get("n_prompt") and not r.get("n_gen") for x in r.get("samples_ts", [])]
    tg = [float(x) for r in rows if r.get("n_gen") and not r.get("n_prompt") for x in r.get("samples_ts", [])]
    cmd = ["llama-bench", "-m", "{model}", *argv[3:]]
    return EngineBench(n_prompt=n_prompt, n_gen=n_gen, pp_tps=Stat.of(pp, digits=3), tg_tps=Stat.of(tg, digits=3),
                       command=cmd, omitted=omitted)
