"""The device page's concurrency and KV-cache-at-context figures, from hand-made valid records (no mkdocs)."""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime, timedelta

from collector.publish.pages.device import device_page
from collector.publish.pages.sweeps import clients_series, kv_context_series
from collector.publish.rows.frame import build_frames
from collector.publish.words.labels import labels
from collector.records.flags import LlamaConfig, server_args
from collector.records.schema import (
    Batch,
    Conditions,
    Corpus,
    CpuInfo,
    Host,
    KldRecord,
    KldResults,
    KldTiming,
    LlamaCpp,
    Method,
    ModelInfo,
    Sample,
    Source,
    SpeedRecord,
    Stat,
    Summary,
)
from collector.records.store import device_slug

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
HOST = Host(cpu=CpuInfo(model="Test CPU", cores=2))
BUILD = LlamaCpp(version="b11434", binary_sha256="b1" * 32, backend="CPU")
MEASURED = Source(type="measured", collector_version="0.1.0")
SVG = "{http://www.w3.org/2000/svg}"


def _model(quant: str) -> ModelInfo:
    return ModelInfo(name="SmolLM2 135M", quant=quant, file_name=f"smol.{quant}.gguf",
                     sha256=hashlib.sha256(quant.encode()).hexdigest(), n_vocab=49152)


def speed(i: int, clients: int, tg: float, throughput: list[float], **flags: object) -> SpeedRecord:
    config = LlamaConfig(threads=2, ctx_size=4096, flash_attn="on", parallel=clients, **flags)  # type: ignore[arg-type]
    per = [round(tg * f, 3) for f in (0.97, 1.0, 1.03)]
    samples = [Sample(category="code", depth_tokens=0, prompt_tokens=300, gen_tokens=64, tg_tps=per,
                      pp_tps=[200.0, 201.0, 202.0], ttft_ms=[1500.0 * clients, 1510.0 * clients, 1600.0 * clients])]
    walls = [round(64 * clients / t * 1000, 3) for t in throughput]
    batches = [Batch(depth_tokens=0, streams=clients, gen_tokens=64 * clients, wall_ms=w,
                     throughput_tps=round(64 * clients / w * 1000, 3)) for w in walls]
    return SpeedRecord(id=f"01SWEEP{i:019d}", created_at=T0 + timedelta(minutes=i), status="ok", source=MEASURED,
                       host=HOST, llama_cpp=BUILD, model=_model("Q4_1"), config=config,
                       command=["llama-server", "-m", "{model}", *server_args(config)],
                       method=Method(endpoint="/completion", n_predict=64, depths=[0], concurrency=clients),
                       samples=samples, batches=batches,
                       summary=Summary(tg_tps=Stat.of(per), throughput_tps=Stat.of([b.throughput_tps for b in batches]),
                                       pp_tps=Stat.of(samples[0].pp_tps), ttft_ms=Stat.of(samples[0].ttft_ms),
                                       requests=len(batches) * clients, slot_waits=0),
                       conditions=Conditions(noisy=False))


def kld(i: int, kv: str, ctx: int, mean: float) -> KldRecord:
    base = _model("F16")
    return KldRecord(id=f"01SWEEPKLD{i:016d}", created_at=T0 + timedelta(minutes=i), status="ok", source=MEASURED,
                     host=HOST, llama_cpp=BUILD, model=base, base_model=base,
                     corpus=Corpus(name="builtin", sha256="c0" * 32, ctx_size=ctx, chunks=4, tokens=4 * ctx),
                     config=LlamaConfig(ctx_size=ctx, cache_type_k=kv, cache_type_v=kv, flash_attn="on"),
                     tags=["kv-cache"], command=["llama-perplexity", "-m", "{model}", "-c", str(ctx)],
                     results=KldResults(kld_mean=mean, kld_mean_unc=mean / 20, same_top_p=90.0),
                     timing=KldTiming(seconds=10.0, base_cached=True))


def records() -> list[SpeedRecord | KldRecord]:
    return [speed(1, 1, 60.0, [20.0, 21.0, 22.0]), speed(2, 2, 45.0, [30.0, 32.0]), speed(3, 4, 30.0, [44.0, 47.0]),
            speed(4, 1, 58.0, [19.0], batch_size=256),  # one client only: no series
            kld(5, "q8_0", 512, 0.0003), kld(6, "q8_0", 1024, 0.0006), kld(7, "q4_0", 512, 0.05),
            kld(8, "q4_0", 1024, 0.08)]


def _ticks(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    return [" ".join(w for t in g.iter(f"{SVG}text") for w in " ".join(t.itertext()).split())
            for g in root.iter(f"{SVG}g") if re.fullmatch(r"xtick_\d+", g.get("id") or "")]


def test_series_and_labels() -> None:
    frames = build_frames(records())
    rows = frames.rows
    assert len(rows) == 4  # each number of clients is its own configuration
    [series] = clients_series(rows)
    assert [p.clients for p in series.points] == [1, 2, 4] and series.depth == 0
    thr = [p.throughput for p in series.points]
    assert [(f.value, f.n, f.min, f.max) for f in thr if f] == [(21.0, 3, 20.0, 22.0), (31.0, 2, 30.0, 32.0),
                                                              (45.5, 2, 44.0, 47.0)]
    assert [p.tg.value for p in series.points if p.tg] == [60.0, 45.0, 30.0]
    assert [p.requests for p in series.points] == [3, 4, 8] and series.points[2].ttft_p95 is not None
    assert "slots" not in series.label  # the slot count follows the clients: it does not name the series
    text = labels(rows)
    assert len(set(text)) == 4 and sum("4 clients" in t for t in text) == 1 and sum("clients" in t for t in text) == 2
    # on the page, the series is named like its configuration in the page's tables, the clients left out
    names = {r.key: f"{r.rec.method.concurrency or 1} clients · ctx {r.rec.config.ctx_size}" for r in rows}
    [named] = clients_series(rows, names)
    assert named.label == f"ctx {series.points[0].row.rec.config.ctx_size}"
    kv, corpus, left = kv_context_series(frames.klds)
    assert [s.label for s in kv] == ["KV q4_0/q4_0", "KV q8_0/q8_0"] and corpus == "builtin" and left == 0
    assert [[p.corpus_ctx for p in s.points] for s in kv] == [[512, 1024], [512, 1024]]


def test_device_page_shows_throughput_per_stream_speed_and_kv_at_context() -> None:
    recs = records()
    frames = build_frames(recs)
    device = device_slug(HOST)
    out = device_page(device, frames.rows, frames.klds, recs)
    page = next(f for f in out if f.src_uri.endswith(".md"))
    text = str(page.content)
    assert "## Concurrent clients" in text and "Speed against concurrent clients" in text
    assert "KV-cache quality against context size" in text
    # every speed figure of the table carries n and the range
    table = text[text.index("## Concurrent clients"):text.index("## Charts")]
    assert table.count("median of n=") == 3 * 3 and "45.5" in table and "44.0–47.0" in table and "0 of 8" in table
    charts: dict[str, dict[str, bytes]] = {}
    for f in out:
        if f.src_uri.endswith(".svg") and isinstance(f.content, bytes):
            base, _, variant = f.src_uri[:-4].rpartition("-")
            charts.setdefault(base, {})[variant] = f.content
    clients = charts[f"charts/devices/{device}-clients"]["light"]
    assert _ticks(clients) == ["1", "2", "4"] * 2  # two panels, each tick once per panel
    kv = charts[f"charts/devices/{device}-kv-context"]["light"]
    assert _ticks(kv) == ["512", "1,024"]
    for svgs in charts.values():  # within each panel, no tick label repeats (e.g. rounded to the same text)
        for svg in svgs.values():
            panels = [g for g in ET.fromstring(svg).iter(f"{SVG}g") if re.fullmatch(r"axes_\d+", g.get("id") or "")]
            assert panels
            for ax in panels:
                for axis in ("x", "y"):
                    ticks = [" ".join(w for t in g.iter(f"{SVG}text") for w in " ".join(t.itertext()).split())
                             for g in ax.iter(f"{SVG}g") if re.fullmatch(rf"{axis}tick_\d+", g.get("id") or "")]
                    assert len(ticks) >= 2 and not [t for t, c in Counter(ticks).items() if c > 1], ticks
    # the KLD table names each context size
    assert "<td data-sort=\"1024.0\">1024</td>" in text and "<td data-sort=\"512.0\">512</td>" in text


def test_picks_compare_one_client_with_one_client() -> None:
    from collector.publish.answers.picks import recommend

    # a per-stream figure under load is not a single client's speed, even when it is the larger number
    rows = build_frames([speed(1, 1, 60.0, [20.0]), speed(2, 2, 95.0, [80.0])]).rows
    picks, _ = recommend(rows)
    assert picks and all((p.row.rec.method.concurrency or 1) == 1 for p in picks)
    assert next(p for p in picks if p.kind == "fastest").row.tg.value == 60.0  # type: ignore[union-attr]
