"""The Data page's downloads for the fixture records: CSV safe for spreadsheets, Parquet typed and equal to it."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from collector.publish.pages.sections import CSV_COLS, DOWNLOADS_VERSION, column_doc, column_type, data_files
from collector.publish.rows.frame import build_frames
from collector.publish.words.escape import csv_cell
from collector.records.index import load_records
from collector.records.store import record_to_dict

pq = pytest.importorskip("pyarrow.parquet")

FIXTURE_DATA = Path(__file__).resolve().parents[1] / "fixtures" / "records" / "data"


@pytest.fixture(scope="module")
def downloads() -> dict[str, str | bytes]:
    records = load_records(FIXTURE_DATA)
    assert records
    return {g.src_uri: g.content for g in data_files(build_frames(records))}


def _csv_rows(downloads: dict[str, str | bytes]) -> list[list[str]]:
    text = downloads["data/records.csv"]
    assert isinstance(text, str)
    return list(csv.reader(io.StringIO(text)))


def test_parquet_has_the_csv_rows_and_columns(downloads: dict[str, str | bytes]) -> None:
    rows = _csv_rows(downloads)
    header, body = rows[0], rows[1:]
    data = downloads["data/records.parquet"]
    assert isinstance(data, bytes)
    pq_frame = pd.read_parquet(io.BytesIO(data))
    csv_frame = pd.read_csv(io.StringIO(str(downloads["data/records.csv"])), dtype=str, keep_default_na=False)
    assert list(pq_frame.columns) == header == CSV_COLS
    assert len(pq_frame) == len(body) == len(json.loads(str(downloads["data/records.json"])))
    assert list(pq_frame["id"]) == list(csv_frame["id"])
    for col in CSV_COLS:
        for i, (typed, text) in enumerate(zip(pq_frame[col], csv_frame[col])):
            where = f"{col} row {i}"
            if typed is None or typed is pd.NA or (isinstance(typed, float) and math.isnan(typed)):
                assert text == "", where
            elif column_type(col) == "double":
                assert float(text) == pytest.approx(float(typed), rel=1e-12), where
            elif column_type(col) == "int64":
                assert text == str(int(typed)), where  # 2048, never 2048.0
            elif column_type(col) == "bool":
                assert text == str(bool(typed)), where
            elif column_type(col).startswith("timestamp"):
                assert pd.Timestamp(text) == typed, where
            else:  # text: the CSV holds the same value, quoted for spreadsheets where it would be a formula
                assert csv_cell(typed) == text, where


def test_parquet_schema_is_typed_documented_and_versioned(downloads: dict[str, str | bytes]) -> None:
    data = downloads["data/records.parquet"]
    assert isinstance(data, bytes)
    schema = pq.read_schema(io.BytesIO(data))
    assert schema.names == CSV_COLS
    assert schema.metadata[b"quant_atlas_downloads_version"] == DOWNLOADS_VERSION.encode()
    types = {f.name: str(f.type) for f in schema}
    assert types["created_at"] == "timestamp[us, tz=UTC]"
    assert types["tg_tps_median"] == types["kld_mean"] == "double"
    assert types["size_bytes"] == types["tg_tps_n"] == types["config_ctx_size"] == "int64"
    assert types["noisy"] == "bool" and types["id"] == "string"
    assert types["config_n_gpu_layers"] == "string"  # a number, "auto" or "all"
    for field in schema:
        assert field.metadata and field.metadata[b"description"].decode() == column_doc(field.name) != "", field.name
    page = str(downloads["data/index.md"])
    assert "records.parquet" in page
    for col in CSV_COLS:
        assert f"<code>{col}</code>" in page, col


def test_parquet_keeps_values_raw(downloads: dict[str, str | bytes]) -> None:
    frame = pd.read_parquet(io.BytesIO(downloads["data/records.parquet"]))  # type: ignore[arg-type]
    assert any(str(v).startswith("=HYPERLINK") for v in frame["file_name"].dropna())  # no spreadsheet quote
    assert "~94" in set(frame["tg_tps_stated"].dropna())


def test_no_csv_cell_is_a_spreadsheet_formula(downloads: dict[str, str | bytes]) -> None:
    rows = _csv_rows(downloads)
    assert len(rows) == len(load_records(FIXTURE_DATA)) + 1
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
            assert not (cell.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?(e[-+]?\d+)?", cell)), cell
    assert "'=HYPERLINK" in str(downloads["data/records.csv"])


def test_json_holds_every_record_in_full(downloads: dict[str, str | bytes]) -> None:
    records = sorted(load_records(FIXTURE_DATA), key=lambda r: (r.created_at, r.id))
    data = json.loads(str(downloads["data/records.json"]))
    assert data == [record_to_dict(r) for r in records]
    assert all(list(d)[:3] == ["schema_version", "kind", "id"] for d in data)  # what the file is, first
    assert "\\u202e" not in str(downloads["data/records.json"])  # non-ASCII as is, like the record files
