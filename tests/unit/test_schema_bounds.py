"""Every value the schema accepts can be published; the values it must refuse are refused (issue 25, 2).

The site is built in this process from the fixture records plus records at the edges of what the schema accepts
(the largest integers and numbers, the smallest positive one, far-off time zones, KLD at its rounding floor): no
exception, every page, chart, CSV and Parquet file made, and the figures shown as they are.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from collector.base.errors import CollectorError
from collector.publish.pages.run import run_html
from collector.publish.site.build import build_site
from collector.records import store
from collector.records.flags import MAX_COUNT, MAX_TOKENS
from collector.records.schema import MAX_INT, MAX_REAL, KldResults, Sample, Stat, Summary
from fixtures.records.factory import cpu_host, fixture_records, gpu, kld, model, speed


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _valid(rec: Any) -> Any:
    """The record as a file would hold it, read back through the schema (what the site gets)."""
    return store.parse_record(store.record_to_dict(rec), "edge")


def _edges() -> list[Any]:
    big = model("Edge Model", "Q4_0", MAX_INT)
    big.params_total = big.params_active = big.bytes_per_token = MAX_INT
    host = cpu_host("Edge CPU")
    host.gpus = [gpu("Edge GPU", vram=MAX_REAL, bw=MAX_REAL)]
    host.ram_total_mib = MAX_REAL
    out = []
    for i, (tg, zone) in enumerate([(MAX_REAL / 2, 14), (5e-324, -12), (1.0, 0)]):
        rec = speed(host, big, {0: tg, MAX_TOKENS - 1: tg}, pp=tg, ctx_size=MAX_TOKENS, threads=MAX_COUNT,
                    parallel=1, n_gpu_layers=MAX_COUNT)
        rec.id = f"01EDGE{i:020d}"
        rec.created_at = datetime(2026, 11, 27, 10, tzinfo=timezone(timedelta(hours=zone)))
        rec.samples[0].ttft_ms = [MAX_REAL, MAX_REAL, MAX_REAL]
        rec.summary = Summary(tg_tps=Stat.of([x for s in rec.samples for x in s.tg_tps]),
                              pp_tps=Stat.of([x for s in rec.samples for x in s.pp_tps]),
                              ttft_ms=Stat.of([x for s in rec.samples for x in s.ttft_ms]))
        rec.samples.append(Sample(category="tiny", depth_tokens=1, tg_tps=[], ttft_ms=[]))
        out.append(_valid(rec))
    base = model("Edge Model", "F16", MAX_INT)
    for i, (mean, top) in enumerate([(0.0, 100.0), (MAX_REAL, 0.0), (1e-3, 99.9)]):
        k = kld(cpu_host("Edge CPU"), model("Edge Model", f"Q{i}_K", MAX_INT), 0.01, base=base)
        k.id = f"01EDGEKLD{i:017d}"
        k.results = KldResults(kld_mean=mean, kld_mean_unc=0.0, kld_max=mean, kld_min=-1e-3, kld_p0_1=-1e-3,
                               same_top_p=top, dp_min=-100.0, dp_max=100.0, ppl_q=MAX_REAL, ppl_ratio=5e-324)
        out.append(_valid(k))
    return out


def test_every_value_the_schema_accepts_renders() -> None:
    edges = _edges()
    records = [*fixture_records(), *edges]
    build = build_site(records)
    pages = {g.src_uri: g.content for g in build.whole()}
    assert any(uri.startswith("devices/cpu-edge-cpu") or "edge" in uri for uri in pages)
    for rec in records:
        assert run_html(rec)  # every run page
    csv = pages["data/records.csv"]
    assert isinstance(csv, str) and "9007199254740992" in csv
    import io

    parquet = pages["data/records.parquet"]
    assert isinstance(parquet, bytes)
    table = pq.read_table(io.BytesIO(parquet)).to_pydict()
    assert MAX_INT in table["size_bytes"] and MAX_TOKENS in table["config_ctx_size"]
    # UTC on the pages, whatever zone the record was written in
    assert all(r.created_at.utcoffset() == timedelta(0) for r in edges)
    text = run_html(edges[0])
    assert "9,007,199,254,740,992" in text or "9007199254740992" in text


@pytest.mark.parametrize("path, value, fragment", [
    (("created_at",), "2026-11-27T10:00:00", "timezone"),
    (("model", "size_bytes"), 2**64, "less than or equal to 9007199254740992"),
    (("config", "ctx_size"), int("9" * 401), "less than or equal to 16777216"),
    (("load_seconds",), 1e300, "less than or equal to 1000000000000000"),
    (("model", "name"), "\ud800", "surrogate"),
    (("summary", "tg_tps", "n"), None, "median needs min, max and n"),
    (("conditions",), None, "conditions"),
    (("source", "raw"), {"a": _nested(40)}, "nested"),
    (("plan", "settings"), {"x": float("inf")}, "finite"),
])
def test_values_the_site_cannot_hold_are_refused(path: tuple[str, ...], value: object, fragment: str,
                                                 tmp_path: Path) -> None:
    rec = fixture_records()[0]
    data = store.record_to_dict(rec)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    if path == ("model", "name"):  # pydantic takes the surrogate: the YAML reader refuses it (test_index.py)
        with pytest.raises(CollectorError, match="model.name: text that is not Unicode"):
            store.save_record(store.parse_record(data, "edge"), tmp_path)
        assert not list(tmp_path.rglob("*.yaml"))
        return
    with pytest.raises(CollectorError, match=fragment):
        store.parse_record(data, "edge")


def test_kld_below_its_rounding_floor_is_refused() -> None:
    k = next(r for r in fixture_records() if r.kind == "kld" and r.status == "ok")
    data = store.record_to_dict(k)
    data["results"]["kld_mean"] = -5.5
    with pytest.raises(CollectorError, match="results.kld_mean: Input should be greater than or equal to -0.001"):
        store.parse_record(data, "edge")
