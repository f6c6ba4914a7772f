"""Build time and peak memory of the site generation (collector.publish.render_site) for synthetic records.

Usage: python benchmarks/site_build.py [N ...]   (default: 1000 10000)

Each size runs twice, each time in a fresh subprocess (so peak RSS is that build's alone), over a data
directory of N synthetic record files: ~90% speed runs with raw samples at three depths, ~10% KLD runs,
spread over sqrt-growing sets of devices and models (a real collection grows in both). "cold" starts with
an empty record cache; "warm" finds every record in it (as `mkdocs serve` or a CI job keeping the cache).
Times are wall seconds; cpu_s is the user+system CPU time of the build and its workers (on a shared
machine wall time depends on what else runs, CPU time much less); peak_rss_mib is the largest ru_maxrss
of the build process and its workers. Target: <= 15 s and <= 1.5 GiB for 10,000 records on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from collector.records.schema import (Corpus, CpuInfo, GpuInfo, Host, KldRecord, KldResults, LlamaCpp, Memory,
                                      ModelInfo, Sample, Source, SpeedConfig, SpeedRecord, Stat, Summary)
from collector.records.store import new_id, record_relpath, record_to_dict

GPUS = ["RTX 4090", "RTX 3090", "RTX 3060", "RTX 5090", "A100 80GB", "H100", "RX 7900 XTX", "R9700", "L40S", "A6000"]
QUANTS = [("Q2_K", 0.33), ("Q3_K_M", 0.43), ("Q4_K_M", 0.58), ("Q5_K_M", 0.69), ("Q6_K", 0.82), ("Q8_0", 1.0)]


def _hosts(n: int) -> list[Host]:
    out = []
    for i in range(n):
        name, count = GPUS[i % len(GPUS)], 1 + (i // len(GPUS)) % 4
        gpus = [GpuInfo(name=f"NVIDIA {name}", index=k, vram_total_mib=24576, mem_bandwidth_gbps=900.0 + 50 * i)
                for k in range(count)]
        out.append(Host(cpu=CpuInfo(model=f"CPU {i}"), gpus=gpus) if i % 7 else Host(cpu=CpuInfo(model=f"Xeon {i}")))
    return out


def synth(n: int, seed: int = 1) -> list[SpeedRecord | KldRecord]:
    rnd = random.Random(seed)
    hosts = _hosts(max(4, round(math.sqrt(n) / 2.5)))
    models = [(f"Synth Model {j} {8 * (j + 1)}B", 8e9 * (j + 1)) for j in range(max(3, round(math.sqrt(n) / 5)))]
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    out: list[SpeedRecord | KldRecord] = []
    for i in range(n):
        name, params = rnd.choice(models)
        quant, frac = rnd.choice(QUANTS)
        size = int(params * frac)
        m = ModelInfo(name=name, quant=quant, file_name=f"{name}-{quant}.gguf", size_bytes=size,
                      sha256=hashlib.sha256(f"{name}/{quant}".encode()).hexdigest(), bytes_per_token=size, bits_per_weight=16 * frac)
        when = t0 + timedelta(minutes=i)
        src = Source(type="measured")
        if i % 10 == 0:
            r = rnd.random()
            out.append(KldRecord(id=new_id(), created_at=when, status="ok", source=src, host=rnd.choice(hosts), model=m,
                                 corpus=Corpus(name="wiki", sha256="ab" * 32),
                                 results=KldResults(kld_mean=0.3 * (1 - frac) + 0.001 * r, kld_p99_9=2 * (1 - frac),
                                                    same_top_p=100 * frac, ppl_ratio=1 + (1 - frac) / 5)))
            continue
        tg = 2000 / (size / 1e9) * rnd.uniform(0.5, 1.0)
        ctx = rnd.choice([4096, 8192, 32768, 131072])
        ctk = rnd.choice([None, "q8_0", "q4_0"])
        samples = [Sample(category=c, depth_tokens=d, tg_tps=[tg * (1 - d / 2e5) * rnd.uniform(0.97, 1.03) for _ in range(3)],
                          pp_tps=[tg * 20] * 3, ttft_ms=[100.0 + d / 100] * 3)
                   for d in (0, 4096, 16384) for c in ("code", "chat")]
        out.append(SpeedRecord(
            id=new_id(), created_at=when, status="ok" if i % 50 else "failed",
            error=None if i % 50 else {"stage": "load", "message": "out of memory"}, source=src,
            host=rnd.choice(hosts), llama_cpp=LlamaCpp(version=f"b{8000 + i % 40}"), model=m,
            command=["llama-server", "-m", "{model}", "-c", str(ctx)], config=SpeedConfig(ctx_size=ctx, cache_type_k=ctk,
                                                                                          cache_type_v=ctk),
            memory_mib=Memory(vram_peak=[size / 2 ** 20 + ctx / 16]), samples=samples if i % 50 else [],
            summary=Summary(tg_tps=Stat(median=tg, n=3), pp_tps=Stat(median=tg * 20, n=3), ttft_ms=Stat(median=150.0))
            if i % 50 else Summary()))
    return out


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml (ruamel would take minutes for 10,000 files), every string double-quoted: PyYAML quotes by
    YAML 1.1 rules, so a hex digest like `0e12...` would go out plain and read back as a 1.2 float."""


_Dumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style='"'))


def write(records: list[SpeedRecord | KldRecord], data_dir: Path) -> None:
    for rec in records:
        path = data_dir / record_relpath(rec)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.dump(record_to_dict(rec), Dumper=_Dumper, sort_keys=False), encoding="utf-8")


CHILD = """
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from collector.publish.load import load_site_records
from collector.publish.site import build_site
t1 = time.perf_counter()
recs = load_site_records(Path(sys.argv[1]))
t2 = time.perf_counter()
files = build_site(recs).files
t3 = time.perf_counter()
print(json.dumps({"records": len(recs), "files": len(files), "svgs": sum(f.src_uri.endswith(".svg") for f in files),
                  "mib_out": round(sum(len(f.content) for f in files) / 2**20, 1), "import_s": round(t1 - t0, 2),
                  "load_s": round(t2 - t1, 2), "build_s": round(t3 - t2, 2), "total_s": round(t3 - t0, 2),
                  "peak_rss_mib": round(max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF,
                                                                                           resource.RUSAGE_CHILDREN)) / 1024),
                  "cpu_s": round(sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                                      resource.getrusage(resource.RUSAGE_CHILDREN))), 1)}))
"""


def measure(n: int) -> tuple[dict[str, float], dict[str, float]]:
    """(cold, warm): the first build parses every YAML file; the second finds them in the record cache."""
    with tempfile.TemporaryDirectory(prefix=f"qa-bench-{n}-") as tmp:
        data = Path(tmp) / "data"
        write(synth(n), data)
        env = {**os.environ, "COLLECTOR_CACHE_DIR": str(Path(tmp) / "cache")}
        runs = []
        for _ in range(2):
            proc = subprocess.run([sys.executable, "-c", CHILD, str(data)], capture_output=True, text=True, check=True,
                                  env=env)
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        return runs[0], runs[1]


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1000, 10000]
    print(f"cores available: {len(os.sched_getaffinity(0))}")
    prev = None
    for n in sizes:
        cold, warm = measure(n)
        grow = f"  (x{cold['total_s'] / prev['total_s']:.1f} wall, x{cold['cpu_s'] / prev['cpu_s']:.1f} CPU vs previous)" if prev else ""
        print(f"{n:>6} records, cold: {json.dumps(cold)}{grow}", flush=True)
        print(f"{n:>6} records, warm: {json.dumps(warm)}", flush=True)
        prev = cold


if __name__ == "__main__":
    main(sys.argv[1:])
