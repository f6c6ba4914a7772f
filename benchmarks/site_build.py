"""Time the real site build, `mkdocs build --strict`, over N synthetic valid records.

Usage: python benchmarks/site_build.py [N ...] [--keep DIR] [--json FILE] [--jobs J] [--data DIR] [--max-pss-gib G]
                                      [--cold-only]
(default sizes: 1000 10000)

For each N: N synthetic record files are written into a temporary data directory (~90% speed runs with raw
samples, ~10% measured KLD runs; sqrt(N)-growing sets of devices and models, every configuration measured three
times, one run in 50 failed), all valid for the strict schema (they are pydantic records built the way the
collector builds them, commands from the flag registry). Then, as a subprocess exactly as a contributor or CI
runs it, with QUANT_ATLAS_DATA pointing at that directory and COLLECTOR_CACHE_DIR at a fresh cache:

    python -m mkdocs build --strict -f mkdocs.yml -d OUT

three times: `cold` (empty cache, no output), `warm` (same cache, output kept: what CI with a kept cache or a
second local build does) and `+1 record` (one new record file written, warm again). Then `serve +1` and
`serve +2`: `mkdocs serve` over the same data and cache and, once it serves, one more record written and then
another, as `collector run` writes them while a contributor previews (the first 10 s after serve serves, the second
1 s after the first rebuild); serve rebuilds in its own process, keeping the records in memory (wall: from the write
to serve's "Documentation built" line, its watcher's delay included; CPU: the serve process tree over that span).

Columns: wall seconds; CPU seconds (user+system) of the whole process tree (getrusage(RUSAGE_CHILDREN) delta,
which includes the build's worker processes); peak RSS of the process tree (/proc sampled every 0.1 s, RSS of
the build and every descendant summed: forked workers' shared pages count once per process, so this is an
upper bound) and peak PSS (the same tree, shared pages split: what the tree really holds; read at most 2% of
the time, since reading it costs ~0.1 s per 5 GiB); pages = index.html files under OUT; pages/s = pages /
wall; load1 = the host's 1-minute load average when the build ended (wall times are only comparable at a load
below the core count; CPU seconds much less depend on it).

Targets (issue 10, 2 cores): 10,000 records <= 15 s warm, <= 30 s cold; 100,000 records <= 2 min, <= 2 GiB.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from collector.measure.speed_run import summarize
from collector.records.flags import LlamaConfig, server_args
from collector.records.schema import (
    Conditions,
    Corpus,
    CpuInfo,
    ErrorInfo,
    GpuInfo,
    Host,
    KldRecord,
    KldResults,
    KldTiming,
    LlamaCpp,
    Memory,
    Method,
    ModelInfo,
    Placement,
    PlanRef,
    Sample,
    Source,
    SpeedRecord,
    Summary,
)
from collector.records.store import AnyRecord, load_record, record_relpath, record_to_dict

ROOT = Path(__file__).resolve().parent.parent
GPUS = [("NVIDIA GeForce RTX 4090", 24564, 1008.0), ("NVIDIA GeForce RTX 3090", 24576, 936.0),
        ("NVIDIA GeForce RTX 3060", 12288, 360.0), ("NVIDIA GeForce RTX 5090", 32607, 1792.0),
        ("NVIDIA A100 80GB PCIe", 81920, 1935.0), ("NVIDIA H100 PCIe", 81559, 2039.0),
        ("AMD Radeon RX 7900 XTX", 24560, 960.0), ("AMD Radeon AI PRO R9700", 32624, 640.0),
        ("NVIDIA L40S", 46068, 864.0), ("NVIDIA RTX A6000", 49140, 768.0)]
QUANTS = [("Q2_K", 0.33), ("Q3_K_M", 0.43), ("Q4_K_M", 0.58), ("Q5_K_M", 0.69), ("Q6_K", 0.82), ("Q8_0", 1.0)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
MEASURED = Source(type="measured", collector_version="0.1.0")
CORPUS = Corpus(name="builtin", sha256="c0ffee" * 10 + "abcd", tokens=8192, ctx_size=512, chunks=16)
REPEAT = 3  # consecutive records share one configuration: re-measurements, pooled by the site
FAIL_EVERY = 50


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def n_devices(n: int) -> int:
    return max(4, round(math.sqrt(n) / 2.5))  # 1k: 13, 10k: 40, 100k: 126


def n_models(n: int) -> int:
    return max(3, round(math.sqrt(n) / 5))  # 1k: 6, 10k: 20, 100k: 63 (times 6 quants each)


def host(i: int) -> Host:
    """Device i: one to four GPUs of one kind, every seventh a CPU-only host."""
    cpu = CpuInfo(model=f"Bench CPU {i % 9} @ 3.{i % 10}0GHz", cores=16, threads=32)
    if i % 7 == 6:
        return Host(cpu=CpuInfo(model=f"Bench Xeon {i} @ 2.20GHz", cores=32, threads=64), ram_total_mib=262144,
                    os="Linux")
    name, vram, bw = GPUS[i % len(GPUS)]
    count = 1 + (i // len(GPUS)) % 4
    gen = f" Gen{i // (4 * len(GPUS))}" if i >= 4 * len(GPUS) else ""  # more kinds than GPUS x 4 counts
    gpus = [GpuInfo(name=name + gen, index=k, vram_total_mib=float(vram), mem_bandwidth_gbps=bw, driver="580.1",
                    cuda="13.0", backend="CUDA") for k in range(count)]
    return Host(cpu=cpu, ram_total_mib=131072, os="Linux", gpus=gpus)


def model(j: int, quant: str, frac: float) -> ModelInfo:
    params = 1_000_000_000 * (1 + 3 * (j % 12))
    moe = j % 5 == 4
    size = int(params * frac)
    name = f"Bench Model {j} {params // 10**9}B" + (" A3B" if moe else "")
    return ModelInfo(name=name, quant=quant, file_name=f"{name.replace(' ', '-')}-{quant}.gguf", size_bytes=size,
                     sha256=sha(f"{name}/{quant}"), bytes_per_token=size // (8 if moe else 1),
                     bits_per_weight=round(16 * frac, 2), params_total=params,
                     params_active=params // 8 if moe else params, n_experts=128 if moe else None,
                     n_experts_used=8 if moe else None, moe=moe, n_layers=48)


def record(i: int, n: int, seed: int = 1) -> AnyRecord:
    """Record i of a data set of n: deterministic in (i, n, seed)."""
    group = i // REPEAT
    g = random.Random(seed * 1_000_003 + group)  # what the repetitions of one configuration share
    r = random.Random(seed * 7_000_001 + i)  # this run's own numbers
    dev = g.randrange(n_devices(n))
    h = host(dev)
    j = g.randrange(n_models(n))
    quant, frac = g.choice(QUANTS)
    m = model(j, quant, frac)
    rid = f"01BENCH{seed % 100:02d}{i:017d}"
    when = T0 + timedelta(minutes=i)
    build = LlamaCpp(version=f"b{8000 + group % 40}", build_number=8000 + group % 40,
                     backend="CUDA" if h.gpus else "CPU", binary_sha256=sha(f"build{group % 40}"))
    if group % 10 == 0:  # ~10%: a measured KLD run (the quant against the F16 base)
        base = model(j, "F16", 2.0)
        flags: dict[str, Any] = {"cache_type_k": "q8_0", "cache_type_v": "q8_0", "flash_attn": "on"} \
            if group % 20 == 0 else {}
        config = LlamaConfig(ctx_size=512, **flags)
        mean = 0.3 * (1 - frac) + 0.002 * r.random()
        res = KldResults(kld_mean=mean, kld_mean_unc=mean / 50, kld_p99_9=mean * 20, kld_max=mean * 60,
                         same_top_p=100 - mean * 100, same_top_p_unc=0.3, ppl_ratio=1 + mean / 2, ppl_q=10 + mean)
        return KldRecord(id=rid, created_at=when, status="ok", source=MEASURED, host=h, llama_cpp=build, model=m,
                         base_model=base, corpus=CORPUS, config=config, tags=["kv-cache"] if flags else [],
                         command=["llama-perplexity", "-m", "{model}", "--kl-divergence-base", "{base_logits}",
                                  "--kl-divergence", "-c", "512"],
                         base_command=["llama-perplexity", "-m", "{base}", "--kl-divergence-base", "{base_logits}"],
                         results=res, timing=KldTiming(seconds=round(20 + 10 * r.random(), 2), base_cached=True))
    ctx = g.choice([4096, 8192, 32768, 131072])
    kv = g.choice([None, None, "q8_0", "q4_0"])
    flags = {"ctx_size": ctx, "n_gpu_layers": 99 if h.gpus else 0, "parallel": 1}
    if kv:
        flags.update(cache_type_k=kv, cache_type_v=kv, flash_attn="on")
    if m.moe and h.gpus and g.random() < 0.5:
        flags["n_cpu_moe"] = g.randrange(4, 24)
    if not h.gpus:
        flags["threads"] = 16
    config = LlamaConfig(**flags)
    failed = i % FAIL_EVERY == FAIL_EVERY - 1
    tg0 = 2000 / max(0.3, (m.bytes_per_token or 1) / 1e9) * (1 if h.gpus else 0.05) * g.uniform(0.5, 1.0)
    depths = [d for d in (0, 4096, 16384, 65536) if d < ctx]
    samples = []
    for d in depths:
        for cat in ("code", "chat"):
            tg = tg0 * (1 - d / 3e5)
            samples.append(Sample(category=cat, depth_tokens=d, prompt_tokens=d + 40, gen_tokens=128,
                                  tg_tps=[round(tg * r.uniform(0.97, 1.03), 2) for _ in range(3)],
                                  pp_tps=[round(tg * 25 * r.uniform(0.97, 1.03), 2) for _ in range(3)],
                                  ttft_ms=[round(80 + d / 50 * r.uniform(0.97, 1.03), 1) for _ in range(3)]))
    vram = [round((m.size_bytes or 0) / 2**20 / max(1, len(h.gpus)) + ctx / 16, 1) for _ in h.gpus] or None
    ok = not failed

    return SpeedRecord(
        id=rid, created_at=when, status="ok" if ok else "failed",
        error=None if ok else ErrorInfo(stage="load", message="failed to load model: out of memory",
                                        log_tail=["llama_model_load: error", "CUDA out of memory"]),
        source=MEASURED, host=h, llama_cpp=build, model=m,
        command=["llama-server", "-m", "{model}", *server_args(config)],
        plan=PlanRef(name="bench", settings={"n_predict": 128, "repetitions": 3}), config=config,
        placement=Placement(kv_type_k=config.cache_type_k or "f16", kv_type_v=config.cache_type_v or "f16"),
        memory_mib=Memory(vram_peak=vram if ok else None), load_seconds=round(r.uniform(1, 20), 2),
        method=Method(endpoint="/completion", n_predict=128, repetitions=3, depths=depths),
        samples=samples if ok else [],
        summary=summarize(samples, []) if ok else Summary(),  # as the collector summarizes: the headline too
        conditions=Conditions(cpu_other_pct=round(r.uniform(0, 3), 1), tg_spread_pct=6.0, noisy=False))


_T = "tag:yaml.org,2002:"


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter fed with nodes built here: PyYAML's Python representer takes ~6 ms a record, these nodes
    ~3 (ruamel would take ~20). Every string value is double-quoted: PyYAML resolves by YAML 1.1 rules, so a hex
    digest like `0e12...` would go out plain and read back as a YAML 1.2 float."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return _resolve(value, tuple(implicit))
        return _T + ("map" if kind is MappingNode else "seq")


_BASE = _Dumper.__mro__[1](io.StringIO())


@functools.lru_cache(maxsize=1 << 16)
def _resolve(value: str, implicit: tuple[bool, bool]) -> str:  # keys and nulls repeat: most calls are cache hits
    return str(_Dumper.__mro__[1].resolve(_BASE, ScalarNode, value, implicit))


def _float(v: float) -> str:
    text = repr(v)  # shortest round-trip form; YAML 1.1 wants a dot in "1e-05"
    return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text


def _node(v: Any) -> Any:
    if isinstance(v, str):
        return ScalarNode(_T + "str", v, style='"')
    if isinstance(v, bool):
        return ScalarNode(_T + "bool", "true" if v else "false")
    if isinstance(v, int):
        return ScalarNode(_T + "int", str(v))
    if isinstance(v, float):
        return ScalarNode(_T + "float", _float(v))
    if v is None:
        return ScalarNode(_T + "null", "null")
    if isinstance(v, dict):
        return MappingNode(_T + "map", [(ScalarNode(_T + "str", k), _node(x)) for k, x in v.items()], flow_style=not v)
    if isinstance(v, list):
        return SequenceNode(_T + "seq", [_node(x) for x in v], flow_style=not v)
    raise TypeError(f"not a JSON value: {v!r}")


def write_one(rec: AnyRecord, data_dir: Path) -> Path:
    path = data_dir / record_relpath(rec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.serialize(_node(record_to_dict(rec)), Dumper=_Dumper, width=4096), encoding="utf-8")
    return path


def _write_range(job: tuple[int, int, int, str]) -> int:
    lo, hi, n, data = job
    for i in range(lo, hi):
        write_one(record(i, n), Path(data))
    return hi - lo


def generate(n: int, data_dir: Path, jobs: int) -> float:
    """Write records 0..n-1 under data_dir (in `jobs` processes); returns the seconds it took."""
    t0 = time.perf_counter()
    step = max(1, min(2000, n // (4 * jobs) or 1))
    work = [(lo, min(n, lo + step), n, str(data_dir)) for lo in range(0, n, step)]
    if jobs > 1 and n >= 2000:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            done = sum(pool.imap_unordered(_write_range, work))
    else:
        done = sum(map(_write_range, work))
    assert done == n
    # the files must be what the strict reader accepts (the build --strict would fail on any other anyway)
    for path in sorted((data_dir / "records").rglob("*.yaml"))[:: max(1, n // 7)][:8]:
        load_record(path)
    return time.perf_counter() - t0


# ---- measuring a process tree ----

PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(root: int) -> list[int]:
    kids: dict[int, list[int]] = defaultdict(list)
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    kids[int(fh.read().rsplit(b")", 1)[1].split()[1])].append(int(name))
            except (OSError, IndexError, ValueError):
                continue
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack += kids.get(pid, [])
    return out


def _rss(pid: int) -> int:
    """Resident bytes of one process (0 when it is gone): /proc/PID/statm, O(1) for the kernel."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid: int) -> int:
    """Proportional set size of one process: smaps_rollup walks every page table (~0.1 s for 5 GiB)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            return next((int(line.split()[1]) * 1024 for line in fh if line.startswith(b"Pss:")), 0)
    except OSError:
        return 0


class TreeSampler(threading.Thread):
    """Peak summed RSS (every `interval` s) and PSS of a process and its descendants. PSS is read at most 2% of
    the time (its cost grows with the process's memory; sampled at 10 Hz it would take a core and skew the build),
    so its peak may be missed by up to the interval between two PSS reads."""

    def __init__(self, pid: int, interval: float = 0.1, max_pss: float = math.inf):
        super().__init__(daemon=True)
        self.pid, self.interval, self.max_pss = pid, interval, max_pss
        self.peak_rss = self.peak_pss = 0
        self.killed = False
        self.stop = threading.Event()

    def run(self) -> None:
        next_pss = 0.0
        while not self.stop.is_set():
            pids = _tree(self.pid)
            self.peak_rss = max(self.peak_rss, sum(_rss(p) for p in pids))
            now = time.perf_counter()
            if now >= next_pss:
                self.peak_pss = max(self.peak_pss, sum(_pss(p) for p in pids))
                took = time.perf_counter() - now
                next_pss = now + max(self.interval, 50 * took)
            if self.peak_pss > self.max_pss and not self.killed:  # before the kernel's OOM killer picks a victim
                self.killed = True
                os.killpg(self.pid, signal.SIGKILL)  # the build's own session: it and its workers only
            self.stop.wait(self.interval)


def build(data_dir: Path, out: Path, cache: Path, log: Path, max_pss_gib: float = math.inf) -> dict[str, Any]:
    env = {**os.environ, "QUANT_ATLAS_DATA": str(data_dir), "NO_MKDOCS_2_WARNING": "1",
           "COLLECTOR_CACHE_DIR": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                                 "-d", str(out)], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        sampler = TreeSampler(proc.pid, max_pss=max_pss_gib * 2**30)
        sampler.start()
        rc = proc.wait()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if sampler.killed:
        sys.exit(f"mkdocs build stopped after {wall:.0f} s: the process tree held more than {max_pss_gib} GiB (PSS)")
    if rc:
        sys.exit(f"mkdocs build failed (exit {rc}); its log:\n" + log.read_text(errors="replace")[-4000:])
    pages = sum(1 for _ in out.rglob("index.html"))
    mib = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mib": round(sampler.peak_rss / 2**20),
            "peak_pss_mib": round(sampler.peak_pss / 2**20), "pages": pages, "pages_per_s": round(pages / wall),
            "out_mib": round(mib), "load1": round(os.getloadavg()[0], 1)}


def _cpu(pid: int) -> float:
    """CPU seconds (user+system, its reaped children's included) of a process and its live descendants."""
    ticks = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                ticks += sum(int(x) for x in fh.read().rsplit(b")", 1)[1].split()[11:15])
        except (OSError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def _wait_for(log: Path, text: str, count: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count(text) < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"mkdocs serve: no {text!r} ({'exited' if proc.poll() is not None else 'timed out'}); its log:\n"
                     + log.read_text(errors="replace")[-4000:])
        time.sleep(0.02)


def serve_rebuilds(n: int, data_dir: Path, cache: Path, log: Path, times: int = 2) -> list[dict[str, Any]]:
    """`mkdocs serve` over the same data and cache: once it serves, one more record is written, `times` times one
    after another (the first rebuild reads every record; later ones keep them in memory); for each, wall seconds
    from the write to serve's "Documentation built" line (its file watcher's delay included), the CPU seconds of
    the serve process tree over the same span, and the rebuild's own seconds as serve logs them."""
    with socket.socket() as s:  # a free port on 127.0.0.1
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "QUANT_ATLAS_DATA": str(data_dir), "NO_MKDOCS_2_WARNING": "1",
           "COLLECTOR_CACHE_DIR": str(cache)}
    built, reloaded = "Documentation built in ", "Reloading browsers"
    written: list[Path] = []
    out = []
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "mkdocs", "serve", "-f", str(ROOT / "mkdocs.yml"), "-a",
                                 f"127.0.0.1:{port}", "--livereload"], cwd=ROOT, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(log, "Serving on", 1, proc, 1800)
        for k in range(times):
            # the watcher settles; before the first record, serve reads the records in the background (a record
            # arrives minutes after serve starts: a `collector run` loads a model and measures first)
            time.sleep(1.0 if k else 10.0)
            cpu0, t0 = _cpu(proc.pid), time.perf_counter()
            written.append(write_one(record(n, n + 2 + k, seed=3 + k), data_dir))
            # the end of a rebuild: serve's "Reloading browsers" (MkDocs drops a log line it logged before, so a
            # rebuild that takes as long as an earlier one says no "Documentation built in" line)
            _wait_for(log, reloaded, 1 + k, proc, 600)
            wall, cpu = time.perf_counter() - t0, _cpu(proc.pid) - cpu0
            rebuild = log.read_text(errors="replace").split(reloaded)[k].rsplit("Detected file changes", 1)[-1]
            said = rebuild.split(built)[1].split()[0] if built in rebuild else None
            out.append({"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "serve_s": said and float(said),
                        "load1": round(os.getloadavg()[0], 1)})
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        for path in written:
            path.unlink(missing_ok=True)
    return out


HEAD = (f"{'records':>7}  {'build':<9} {'wall_s':>7} {'cpu_s':>7} {'rss_mib':>8} {'pss_mib':>8} {'pages':>7} "
        f"{'pages/s':>8} {'out_mib':>8} {'load1':>6}")


def _line(n: int, what: str, r: dict[str, Any]) -> str:
    return (f"{n:>7}  {what:<9} {r['wall_s']:>7} {r['cpu_s']:>7} {r['peak_rss_mib']:>8} {r['peak_pss_mib']:>8} "
            f"{r['pages']:>7} {r['pages_per_s']:>8} {r['out_mib']:>8} {r['load1']:>6}")


def measure(n: int, jobs: int, keep: Path | None, max_pss_gib: float,
            reuse: Path | None = None, cold_only: bool = False) -> list[dict[str, Any]]:
    """Cold, warm and +1-record builds over n records; each line is printed as soon as its build ends."""
    tmp = Path(tempfile.mkdtemp(prefix=f"qa-bench-{n}-", dir=keep))
    extra: Path | None = None
    rows: list[dict[str, Any]] = []

    def run(what: str) -> None:
        r = build(data, out, cache, tmp / f"{what.replace(' ', '').replace('+', 'plus')}.log", max_pss_gib)
        print(_line(n, what, r), flush=True)
        rows.append({"records": n, "build": what, **r})

    try:
        data, cache, out = reuse or tmp / "data", tmp / "cache", tmp / "out"
        if reuse:
            print(f"{n:>7} records: reusing {reuse}", flush=True)
        else:
            gen_s = generate(n, data, jobs)
            print(f"{n:>7} records generated in {gen_s:.1f} s ({n_devices(n)} devices, {n_models(n)} models x "
                  f"{len(QUANTS)} quants)", flush=True)
        print(HEAD, flush=True)
        run("cold")
        if cold_only:
            return rows
        run("warm")
        extra = write_one(record(n, n + 1, seed=2), data)  # a new record, as `collector run` writes it
        run("+1 record")
        for k, r in enumerate(serve_rebuilds(n, data, cache, tmp / "serve.log")):
            what = f"serve +{k + 1}"
            said = f"{r['serve_s']} s" if r["serve_s"] is not None else "as an earlier rebuild's"
            print(f"{n:>7}  {what:<9} {r['wall_s']:>7} {r['cpu_s']:>7}  (serve's own figure: {said}; "
                  f"load1 {r['load1']})", flush=True)
            rows.append({"records": n, "build": f"serve, record {k + 1} written", **r})
        return rows
    finally:
        if extra:  # a reused data set as it was; a kept one of n records, so `--data` can reuse it
            extra.unlink(missing_ok=True)
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="processes writing records")
    ap.add_argument("--keep", type=Path, help="make the temporary data/cache/output folders here and keep them")
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    ap.add_argument("--data", type=Path, help="use the N records already in this data dir (one size only; e.g. "
                    "the data/ of an earlier --keep run) instead of generating them")
    ap.add_argument("--max-pss-gib", type=float, default=12.0,
                    help="stop a build whose process tree holds more than this (protects the host from the OOM killer)")
    ap.add_argument("--cold-only", action="store_true", help="the cold build only (at 100,000 records: ~7 minutes "
                    "where all of them take ~20)")
    args = ap.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    print(f"cores available: {len(os.sched_getaffinity(0))}; python -m mkdocs build --strict (subprocess)")
    if args.data and len(args.sizes) != 1:
        ap.error("--data goes with exactly one size")
    results: list[dict[str, Any]] = []
    for n in args.sizes:
        results += measure(n, args.jobs, args.keep, args.max_pss_gib, args.data, args.cold_only)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
