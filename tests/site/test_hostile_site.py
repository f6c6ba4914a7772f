"""Any record that validates builds the site, in bounded time, one page per path (issue 35, 2-5).

The cases the hostile review found, each against the code that failed on it, then a property test: the site built
from records whose strings are random (control characters, ANSI, digits, markup, long runs; up to the record
size limit), read through the record index as `mkdocs build` reads them, in bounded time and with no exception.
Seeded: QA_FUZZ_SEED reproduces a failure.
"""

from __future__ import annotations

import copy
import csv
import io
import os
import random
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hostile import hostile_text, lengths
from pydantic import TypeAdapter, ValidationError

from collector.estimate.estimator import Estimator
from collector.publish.pages.run import run_html
from collector.publish.site.build import build_from, build_site
from collector.publish.words.render import whole
from collector.records import store
from collector.records.index import load_index
from collector.records.schema import GpuInfo, Record, Sample, Source, SpeedRecord, Stat, Summary
from fixtures.records.factory import cpu_host, fixture_records, gpu, model, speed

pytestmark = pytest.mark.site
SEED = int(os.environ.get("QA_FUZZ_SEED", "20261206"))
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Record)


def _pages(records: list[Any]) -> dict[str, Any]:
    build = build_site(records)
    uris = [g.src_uri for g in build.files]
    assert len(uris) == len(set(uris)), "two generated files share a path"
    return {g.src_uri: g.content for g in build.whole()}


# --- 2: numbers in record strings -----------------------------------------------------------------------------

def _bench(name: str, gpu_name: str, size: str, vram: str) -> SpeedRecord:
    """An imported llama-bench figure the speed estimate is fitted on (a catalog GPU, a model of models.yaml)."""
    return SpeedRecord(
        id=store.new_id(), created_at=store.utc_now(), status="ok",
        source=Source(type="imported", tool="llama-bench", runtime="llama.cpp (llama-bench)", citation="a post"),
        host=cpu_host("x").model_copy(update={"gpus": [GpuInfo(name=gpu_name, vram_stated=vram)]}),
        model=model(name, "Q4_K_M", 1).model_copy(update={"sha256": None, "size_bytes": None,
                                                           "size_stated": size}),
        samples=[Sample(category="tg128", gen_tokens=128)],
        summary=Summary(tg_tps=Stat(mean=100.0, text="100.00 ± 1.00")))


@pytest.mark.parametrize("size, vram", [("1.2.3 GB", "12 GB"), ("4.58 GiB", "1.2.3 GB"), (".", "."),
                                        ("9" * 400 + " GB", "9" * 400 + "GB"), ("4.58 GiB", "~" + " " * 50_000 + "x")])
def test_a_stated_size_of_an_unexpected_shape_is_not_a_size(size: str, vram: str) -> None:
    """size_stated / vram_stated are text as a source wrote it: "1.2.3 GB" raised ValueError in the estimate's fit
    (and with it the whole build); now it is no size, and the build goes on."""
    recs = [*fixture_records(), _bench("LLaMA 3 8B", "RTX 3060", size, vram), _bench("LLaMA 3 8B", "RTX 3060",
                                                                                      "4.58 GiB", "12 GB")]
    start = time.process_time()
    Estimator.of(recs)
    _pages(recs)
    assert time.process_time() - start < 60


def test_fit_lines_with_absurd_numbers_are_shown_as_they_are() -> None:
    """placement.fit holds llama.cpp's lines verbatim: a 5000-digit count raised ValueError on the run page."""
    rec = fixture_records()[0]
    digits = "9" * 5000
    rec.placement.fit = [f"common_params_fit_impl: projected to use {digits} MiB of host memory vs. 1 MiB of total "
                         "host memory", f"common_params_fit_impl: context size set by user to {digits} -> no change"]
    page = run_html(store.parse_record(store.record_to_dict(rec), "x"))
    assert digits[:100] in page


# --- 3: patterns that backtracked ------------------------------------------------------------------------------

def test_the_quant_tail_and_the_whole_filter_take_linear_time() -> None:
    """model.file_name "_Q1_Q1_..._Q1-.gguf" (store._QUANT_TAIL) and config.extra_args "1.1.1...." (render._WHOLE):
    200 KB held the build for minutes."""
    m = model("x", "Q4_0", 1).model_copy(update={"file_name": "_Q1" * 70_000 + "-.gguf"})
    start = time.process_time()
    assert store.model_display_name(m) == "_Q1" * 70_000 + "-"
    assert store.model_display_name(m.model_copy(update={"file_name": "m" + "_Q1" * 70_000 + ".gguf"})) == "m"
    assert "qa-nw" not in whole("1." * 100_000)
    assert whole("a 84.2–103.0 b").count("qa-nw") == 1
    assert time.process_time() - start < 2


def test_a_build_with_such_strings_ends_in_seconds() -> None:
    recs = fixture_records()
    recs[0].model.file_name = "_Q1" * 70_000 + "-.gguf"
    recs[1].config.extra_args = ["1." * 100_000]
    recs[1].command = [*recs[1].command, "1." * 100_000]
    start = time.process_time()
    _pages([store.parse_record(store.record_to_dict(r), "x") for r in recs])
    for r in recs[:2]:
        run_html(r)
    assert time.process_time() - start < 60


# --- 4: CSV ----------------------------------------------------------------------------------------------------

def test_a_carriage_return_cannot_start_a_row_of_the_csv() -> None:
    recs = fixture_records()
    for rec, text in zip(recs, ["\r=1+1", "x\n=2+2", "\r\n@SUM(A1)", "-1+2\r", "a\rb\nc\r\nd", '"\r=1"'],
                         strict=False):
        rec.host.cpu.model = text
    pages = _pages(recs)
    rows = list(csv.reader(io.StringIO(pages["data/records.csv"], newline="")))
    table = pq.read_table(io.BytesIO(pages["data/records.parquet"]))
    assert len(rows) == table.num_rows + 1  # one row per record, read back by Python's csv
    width = len(rows[0])
    for row in rows:
        assert len(row) == width
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r", "\n")), row
            assert "\r" not in cell and "\n" not in cell, cell
    text = pages["data/records.csv"]
    assert "\r" not in text and text.count("\n") == len(rows)
    models = set(table.column("cpu_model").to_pylist()) if "cpu_model" in table.column_names else set()
    assert not models or "\r=1+1" in models  # Parquet keeps the value as recorded (no row delimiter to break)


# --- 5: one page per path --------------------------------------------------------------------------------------

def _named(name: str, quant: str, host: Any, tg: float) -> SpeedRecord:
    """A measured record of a file whose name is not known: the model as its general.name states it."""
    rec = speed(host, model(name, quant, 4_000_000_000), {0: tg})
    rec.model = rec.model.model_copy(update={"file_name": None})
    return rec


def test_model_and_quant_cannot_take_another_compare_page() -> None:
    """Model "Meta Llama 3.1 8B Instruct Q4", quant "K_M" took the Compare page of "Meta Llama 3.1 8B Instruct"
    Q4_K_M (the real comparison disappeared, the strict build passed)."""
    a, b = cpu_host("CPU Alpha"), cpu_host("CPU Beta")
    real = [_named("Meta Llama 3.1 8B Instruct", "Q4_K_M", h, 51.5) for h in (a, b)]
    fake = [_named("Meta Llama 3.1 8B Instruct Q4", "K_M", h, 999.5) for h in (a, b)]
    alike = [_named("Meta Llama 3.1 8B Instruct", "q4-k-m", h, 777.5) for h in (a, b)]  # slugs alike
    pages = _pages([*real, *fake, *alike])
    compare = {uri: text for uri, text in pages.items() if uri.startswith("compare/") and uri != "compare/index.md"}
    assert len(compare) == 3, sorted(compare)
    assert sum("51.5" in t and "999.5" not in t and "777.5" not in t for t in compare.values()) == 1
    assert sum("999.5" in t and "51.5" not in t for t in compare.values()) == 1
    assert sum("777.5" in t and "51.5" not in t for t in compare.values()) == 1


def test_reserved_names_take_no_page_of_the_site() -> None:
    """A GPU named `index` got devices/index.md (the Devices index), a model named `index` the Models index, a
    record id `index` or `_shell` a page of runs/ the site has."""
    recs = fixture_records()
    recs[0].model = model("index", "Q4_0", 1).model_copy(update={"sha256": None, "file_name": None})
    recs[9].host = recs[9].host.model_copy(update={"gpus": [gpu("index")]})
    recs[11].host = recs[11].host.model_copy(update={"gpus": [gpu("Catalog")]})
    recs[1].id, recs[2].id = "index", "_shell"
    pages = _pages(recs)
    for uri, title in (("devices/index.md", "# Devices\n"), ("models/index.md", "# Models\n"),
                       ("runs/index.md", "# Runs\n"), ("devices/catalog.md", "# Device catalog\n")):
        assert str(pages[uri]).lstrip("-\n").split("---\n")[-1].startswith(title) or title in str(pages[uri])[:120], (
            uri, str(pages[uri])[:120])
    assert "devices/index_page.md" in pages and "devices/catalog_page.md" in pages
    assert "models/index_page.md" in pages
    assert {store.page_id_of("index"), store.page_id_of("_shell")} == {"r-index", "r-shell"}


# --- 2: the property test --------------------------------------------------------------------------------------

def _strings(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _strings(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _strings(v, (*path, i))]
    return []


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


def _poisoned(rng: random.Random, rec: Any, fields: int, size: int, exact: bool = False) -> tuple[Any, int]:
    """The record with `fields` of its strings (the kind and id aside) replaced by hostile text of up to `size`
    characters (`exact`: of `size`), as long as the record stays valid; (record, characters placed)."""
    data = store.record_to_dict(rec)
    paths = [p for p in _strings(data) if p not in (("kind",), ("id",))]
    placed = 0
    for path in rng.sample(paths, min(fields, len(paths))):
        parent, key = _at(data, path), path[-1]
        old = copy.deepcopy(parent[key])
        parent[key] = hostile_text(rng, size if exact else rng.choice(lengths(rng, size, 8)))
        try:
            _ADAPTER.validate_python(data)
            placed += len(parent[key])
        except ValidationError:
            parent[key] = old
    return _ADAPTER.validate_python(data), placed


def _near_the_limit(rng: random.Random, rec: Any, data: Path, scratch: Path) -> int:
    """Save the record with one of its strings as long as fits in a record file (RECORD_MAX_BYTES of YAML, where a
    control character takes four bytes); returns the characters placed."""
    size = store.RECORD_MAX_BYTES
    while True:
        got, n = _poisoned(random.Random(rng.random()), rec, 1, size, exact=True)
        if n < size // 2:  # the string picked was shorter, or one that cannot be that long (a hash): another try
            size = size * 9 // 10
            continue
        path = store.save_record(got, scratch)
        if path.stat().st_size <= store.RECORD_MAX_BYTES:
            path.unlink()
            store.save_record(got, data)
            return n
        path.unlink()
        size = size * 3 // 4


def test_records_with_random_strings_build_the_site_in_bounded_time(tmp_path: Path) -> None:
    """Every fixture record with up to 12 of its strings random (up to 4 KiB each); then a few with one string as
    long as the record size limit allows. Written as record files, read by the index, built and every run page
    rendered, with no exception and in bounded time."""
    rng = random.Random(SEED)
    data = tmp_path / "data"
    placed = 0
    for i, rec in enumerate(fixture_records()):
        got, n = _poisoned(rng, rec, 12, 4096)
        store.save_record(got, data)
        placed += n
        if i % 9 == 0:  # and a record with one string as long as the size limit allows
            placed += _near_the_limit(rng, rec.model_copy(update={"id": f"{rec.id}BIG"}), data, tmp_path / "try")
    assert placed > 6_000_000
    start = time.process_time()  # the work of the build (in this process), whatever else the host runs
    build = build_from(data)
    assert not build.invalid, list(build.invalid.items())[:2]
    pages = {g.src_uri: g.content for g in build.whole()}
    assert "devices/index.md" in pages
    limit = csv.field_size_limit(1 << 30)  # Python's reader stops at 128 KiB cells (\\uXXXX lengthens text)
    try:
        rows = list(csv.reader(io.StringIO(pages["data/records.csv"], newline="")))  # read back as a reader would
    finally:
        csv.field_size_limit(limit)
    table = pq.read_table(io.BytesIO(pages["data/records.parquet"]))
    assert len(rows) == table.num_rows + 1 == len(build.records) + 1 - sum(r.kind == "tune" for r in build.records)
    assert all(len(r) == len(rows[0]) and not any(c.startswith(("=", "+", "@", "\r", "\n")) for c in r)
               for r in rows)
    for rec in load_index(data, cache=False).valid:
        run_html(rec)
    assert time.process_time() - start < 120
