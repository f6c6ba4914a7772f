"""Collector overhead and client/server agreement for a plan (default: the embedded demo plan).

    .venv/bin/python benchmarks/collector_overhead.py [PLAN]

Prints the sweep's wall time against the sum of server load times and request times (target: at most
5% overhead), and how far the client-side generation rate is from the server's predicted_per_second
(target: within 3%). Records go to a temporary directory, not data/.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from collector.llama.binaries import find_tools
from collector.measure.plan import default_plan_path, load_plan
from collector.measure.runner import run_plan
from collector.records import store


def main() -> None:
    plan = load_plan(Path(sys.argv[1]) if len(sys.argv) > 1 else default_plan_path())
    tools = find_tools()
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        t0 = time.perf_counter()
        report = run_plan(plan, tools=tools, data_dir=Path(tmp), force=True, only="speed")
        wall = time.perf_counter() - t0
        recs = [store.load_record(p) for p in report.ok]
    load = sum(p[1] for p in report.phases)
    requests = sum(p[2] for p in report.phases)
    overhead = wall - load - requests
    print(f"plan {plan.name}: {report.summary_line()}")
    print(f"sweep wall time      {wall:8.2f} s")
    print(f"sum of server loads  {load:8.2f} s")
    print(f"sum of requests      {requests:8.2f} s")
    print(f"collector overhead   {overhead:8.2f} s = {100 * overhead / wall:.2f}% of wall (target <= 5%)")
    gaps = [100 * (c - s) / s for r in recs for smp in r.samples for s, c in zip(smp.tg_tps, smp.tg_tps_client)]
    if gaps:
        absg = [abs(g) for g in gaps]
        print(f"client vs server tg  median |gap| {statistics.median(absg):.2f}%, max |gap| {max(absg):.2f}%, "
              f"mean signed {statistics.fmean(gaps):+.2f}% over {len(gaps)} requests (target within 3%)")


if __name__ == "__main__":
    main()
