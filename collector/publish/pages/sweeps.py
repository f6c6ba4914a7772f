"""Figures across one setting: speed against concurrent clients, and KV-cache KLD against context size.

A concurrency series is one configuration (the same model file, flags except the slot count, build and device)
measured with several numbers of clients at once (`method.concurrency`, each on as many slots). Its points are
taken at the shallowest depth every run of the series measured, so they compare like with like: the aggregate
throughput (all streams' tokens over each batch's wall time), the per-stream generation speed and the TTFT, each
a median with n and the range, plus how many requests waited for a slot.

A KV-cache series is the base model scored with one quantized KV cache at several context sizes, on one corpus.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from collector.base.stats import percentile
from collector.publish import charts
from collector.publish.pages.files import GeneratedFile, chart_files
from collector.publish.rows.frame import KldRow, Row
from collector.publish.rows.keys import ConfigKey, SeriesKey, kv_series_key, series_key
from collector.publish.words.labels import labels
from collector.publish.words.links import run_src
from collector.publish.words.render import figure_text, num
from collector.records.figures import stat_of
from collector.records.schema import SpeedRecord, Stat


def clients_of(rec: SpeedRecord) -> int:
    """Clients at once (records from before concurrency was measured had one)."""
    return rec.method.concurrency or 1


@dataclass
class ClientsPoint:
    """One configuration at one number of clients, at the series' depth."""

    row: Row
    clients: int
    depth: int
    throughput: Stat | None
    tg: Stat | None
    ttft: Stat | None
    ttft_p95: float | None
    requests: int
    waited: int


@dataclass
class ClientsSeries:
    label: str
    depth: int
    points: list[ClientsPoint]  # by clients


def _point(row: Row, depth: int) -> ClientsPoint:
    ok = [r for r in row.records if r.status == "ok"]
    batches = [b for r in ok for b in r.batches if b.depth_tokens == depth]
    ttft = [v for r in ok for s in r.samples if s.depth_tokens == depth for v in s.ttft_ms]
    p95 = percentile(ttft, 95)
    figs = row.depths.get(depth, {})
    return ClientsPoint(row, clients_of(row.rec), depth, stat_of([b.throughput_tps for b in batches]),
                        figs.get("tg"), figs.get("ttft"), p95, sum(b.streams for b in batches),
                        sum(b.waited for b in batches))


def clients_series(rows: list[Row], names: dict[ConfigKey, str] | None = None) -> list[ClientsSeries]:
    """Configurations measured with at least two numbers of clients (measured, ok rows; noisy ones apart).

    `names` (row key -> the label the page's other tables use): a series is named like its configuration there,
    without the number of clients; else by what separates it from the other series."""
    groups: dict[SeriesKey, list[Row]] = defaultdict(list)
    for r in rows:
        if not r.imported and r.status == "ok" and r.depths:
            groups[series_key(r.rec, r.noisy)].append(r)
    picked: list[list[Row]] = []
    for group in groups.values():
        by_clients = {clients_of(r.rec): r for r in sorted(group, key=lambda r: r.rec.created_at)}
        if len(by_clients) > 1:
            picked.append([by_clients[n] for n in sorted(by_clients)])
    if not picked:
        return []
    # the legend names each configuration by what separates it from the others, the slot count left out
    views = [Row(key=g[0].key, records=[g[0].rec.model_copy(update={"config": g[0].rec.config.model_copy(
        update={"parallel": None})})], noisy=g[0].noisy) for g in picked]
    out = []
    for label, group in zip(labels(views), picked):
        if names and group[0].key in names:
            label = re.sub(r"^\d+ clients · ", "", names[group[0].key])
        common = set.intersection(*(set(r.depths) for r in group))
        if not common:
            continue
        depth = min(common)
        out.append(ClientsSeries(label, depth, [_point(r, depth) for r in group]))
    return sorted(out, key=lambda s: s.label)[:charts.MAX_LINES]


def _band(figs: list[Stat]) -> tuple[list[float], list[float], list[float]]:
    return ([f.value for f in figs], [f.min if f.min is not None else f.value for f in figs],
            [f.max if f.max is not None else f.value for f in figs])


def clients_chart(device: str, series: list[ClientsSeries]) -> tuple[list[dict[str, Any]], list[GeneratedFile]]:
    """The chart of aggregate throughput and per-stream tg against clients, with its text and alt text."""
    panels: list[tuple[str, list[charts.Series]]] = []
    for what, title in (("throughput", "aggregate throughput (t/s)"), ("tg", "per-stream generation (t/s)")):
        lines: list[charts.Series] = []
        for s in series:
            pts = [p for p in s.points if getattr(p, what) is not None]
            if len(pts) > 1:
                ys, lo, hi = _band([getattr(p, what) for p in pts])
                lines.append((s.label, [p.clients for p in pts], ys, lo, hi))
        panels.append((title, lines))
    if not all(lines for _, lines in panels):
        return [], []
    ticks = sorted({p.clients for s in series for p in s.points})
    base = f"charts/devices/{device}-clients"
    files = chart_files(base, charts.panel_lines_chart(panels, "clients at once (slots)",
                                                       ticks, logx=max(ticks) / min(ticks) > 4))
    alt = "Line charts of aggregate throughput and per-stream generation speed against clients at once: " + "; ".join(
        f"{s.label} (depth {s.depth:,}): " + ", ".join(
            f"{p.clients} client(s) {figure_text(p.throughput, 't/s')} in all, {figure_text(p.tg, 't/s')} each"
            for p in s.points) for s in series)
    return [{"title": "Speed against concurrent clients",
             "text": "Each configuration served N clients at once on N server slots (-np N). Left: every stream's "
                     "generated tokens over the wall time of its batch (first request sent to last token), the "
                     "median over the batches; right: llama-server's generation speed of each stream. Bands span "
                     "the samples' range; n and the range are in the table above.", "base": base, "alt": alt}], files


def clients_table(src: str, series: list[ClientsSeries]) -> list[dict[str, Any]]:
    """One table row per configuration and number of clients."""
    return [{"label": s.label, "clients": p.clients, "depth": p.depth, "throughput": p.throughput, "tg": p.tg,
             "ttft": p.ttft, "ttft_p95": p.ttft_p95, "requests": p.requests, "waited": p.waited,
             "noisy": p.row.noisy, "run_href": run_src(p.row.page_id)}
            for s in series for p in s.points]


@dataclass
class KvSeries:
    label: str
    points: list[KldRow]  # by context size


def kv_context_series(klds: list[KldRow]) -> tuple[list[KvSeries], str | None, int]:
    """Quantized KV caches of one base scored at two or more context sizes, on the corpus most of them used:
    (series, corpus name, series left out because they used another corpus)."""
    groups: dict[tuple[Any, ...], dict[int, KldRow]] = defaultdict(dict)
    meta: dict[tuple[Any, ...], tuple[str, str, str]] = {}
    for k in sorted(klds, key=lambda k: k.created_at):
        if (k.status != "ok" or not k.kv_variant or k.kld_mean is None or not k.corpus_ctx
                or k.kld_mean <= 0):
            continue
        key = kv_series_key(k)
        groups[key][k.corpus_ctx] = k  # the newest measurement at each size
        meta[key] = (f"{k.model_name} {k.quant}", f"KV {k.ctk}/{k.ctv}", k.corpus_key)
    keys = [key for key, pts in groups.items() if len(pts) > 1]
    if not keys:
        return [], None, 0
    corpora = [meta[key][2] for key in keys]
    corpus = max(set(corpora), key=corpora.count)
    same = [key for key in keys if meta[key][2] == corpus]
    several_models = len({meta[key][0] for key in same}) > 1
    series = [KvSeries((meta[key][0] + " · " if several_models else "") + meta[key][1],
                       [groups[key][c] for c in sorted(groups[key])]) for key in same]
    name = next(iter(groups[same[0]].values())).corpus
    return sorted(series, key=lambda s: s.label)[:charts.MAX_LINES], name, len(keys) - len(same)


def kv_context_chart(device: str, klds: list[KldRow]) -> tuple[list[dict[str, Any]], list[GeneratedFile]]:
    series, corpus, left = kv_context_series(klds)
    if not series:
        return [], []
    lines: list[charts.Series] = []
    for s in series:
        xs = [float(p.corpus_ctx or 0) for p in s.points]  # kv_context_series keeps only rows with both
        ys = [float(p.kld_mean or 0.0) for p in s.points]
        unc = [float(p.kld_mean_unc or 0.0) for p in s.points]
        lines.append((s.label, xs, ys, [max(y - u, y / 10) for y, u in zip(ys, unc)], [y + u for y, u in zip(ys, unc)]))
    ticks = sorted({p.corpus_ctx or 0 for s in series for p in s.points})
    ys_all = [y for _, _, ys, _, _ in lines for y in ys]
    base = f"charts/devices/{device}-kv-context"
    files = chart_files(base, charts.panel_lines_chart([("mean KLD (nats)", lines)], "context size (tokens)", ticks,
        logx=max(ticks) / min(ticks) > 4, logy=max(ys_all) / min(ys_all) > 20))
    alt = "Line chart of mean KLD against context size per KV-cache type: " + "; ".join(
        f"{s.label}: " + ", ".join(f"{num(p.kld_mean, 3)} at {p.corpus_ctx:,}" for p in s.points)
        for s in series)
    return [{"title": "KV-cache quality against context size",
             "text": "Mean KLD (lower is more faithful) of the base model with each quantized KV cache against its "
                     f"own f16-cache logits, scored in chunks of each context size on corpus {corpus}; the band is ± "
                     "the uncertainty "
                     "llama-perplexity states." + (f" {left} series on another corpus are left out." if left else ""),
             "base": base, "alt": alt}], files
