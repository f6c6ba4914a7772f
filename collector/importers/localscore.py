"""LocalScore's crowd results (localscore.ai), as compiled by d893a/localscore-insights, one record per result.

The kept source is `imports/localscore/localscore_results.tsv`, the repository's file at the commit that
`imports/localscore/source.yaml` pins (with its sha256; the import refuses a changed copy). Each row is one
LocalScore test: its generation and prompt speed and time to first token, the model (name, llama.cpp's ftype
name, parameters), the accelerator (name, GPU or CPU, memory), the system's CPU, RAM and OS, and the date.
Every figure is kept as the TSV writes it (text and number); nothing it does not state is filled in: LocalScore
runs llamafile, not llama-server (`source.runtime`), and the TSV states no llama.cpp build, no flags, no prompt
or generation lengths and no repetitions, so those stay unknown. How the compiler wrote some cells
(`scripts/html_to_tsv.py` of that repository: gen_tps with one decimal, a TTFT given in seconds as whole
milliseconds, parameters "8B" as "8000" "M", dates as YYYY.MM.DD HH:MM:SS) is said in each record's note.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

from collector.base.errors import CollectorError, short_repr
from collector.base.yamlcheck import Section, load_yaml_file
from collector.importers.intake import one_line, read_kept, write_records
from collector.models.info import FILE_TYPES
from collector.records import store
from collector.records.schema import (
    CpuInfo,
    GpuInfo,
    Host,
    LlamaCpp,
    Method,
    ModelInfo,
    Source,
    SpeedRecord,
    Stat,
    Summary,
)

RUNTIME = "llamafile (LocalScore)"
COLUMNS = ("test_num", "test_date", "gen_tps", "ttft", "ttft_unit", "prompt_tps", "localscore", "model_name",
           "model_quant", "model_params", "model_params_unit", "accel_name", "accel_type", "accel_group", "accel_ram",
           "accel_ram_unit", "system_cpu", "system_ram", "system_ram_unit", "system_os")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_DATE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2}) (\d{2}:\d{2}:\d{2})$")
_SHORT_QUANT = {name: short for short, name in FILE_TYPES.values()}
NOTE = ("LocalScore result as compiled in localscore_results.tsv (its scripts/html_to_tsv.py: gen_tps written with "
        "one decimal, a TTFT given in seconds as whole milliseconds, parameters such as 8B as 8000 M, dates as "
        "YYYY.MM.DD HH:MM:SS, no time zone). Run by LocalScore's llamafile-based benchmark, not "
        "llama-server; no llama.cpp build, flags, prompt or generation length or repetition count is stated")


def _figure(text: str, where: str, column: str) -> Stat | None:
    if text == "":
        return None
    if not _NUMBER.match(text):
        raise CollectorError(f"{where}: {column} {short_repr(text)} is not a figure; restore the pinned file")
    return Stat(stated=float(text), text=text)


def _joined(value: str, unit: str) -> str | None:
    return f"{value} {unit}".strip() or None


def row_record(row: dict[str, str], line: int, meta: dict[str, str]) -> SpeedRecord:
    """One TSV row (`line`: its line in the file, the header being line 1) as a record; CollectorError naming the
    line for a cell a record cannot hold (a figure past 1e15, an accelerator without a name)."""
    try:
        return _row_record(row, line, meta)
    except (ValueError, TypeError, OverflowError) as exc:  # pydantic's ValidationError is a ValueError
        raise CollectorError(f"{meta['path']}:{line}: a cell it cannot take ({one_line(exc)}); restore the pinned "
                             "file") from None


def _row_record(row: dict[str, str], line: int, meta: dict[str, str]) -> SpeedRecord:
    where = f"{meta['path']}:{line}"
    tg, pp = _figure(row["gen_tps"], where, "gen_tps"), _figure(row["prompt_tps"], where, "prompt_tps")
    if tg is None and pp is None:
        raise CollectorError(f"{where}: neither gen_tps nor prompt_tps is stated")
    ttft = _figure(row["ttft"], where, "ttft") if row["ttft_unit"] == "ms" else None
    m = _DATE.match(row["test_date"])
    gpu = row["accel_type"] == "GPU"
    commit = meta["commit"]
    return SpeedRecord(
        id=store.new_id(), created_at=store.utc_now(), status="ok",
        source=Source(
            type="imported", tool="LocalScore", runtime=RUNTIME,
            citation=(f"{meta['repository']}, {meta['path']} at commit {commit[:8]}, line {line} (LocalScore test "
                      f"#{row['test_num']}, compiled from localscore.ai)"),
            title="LocalScore results (localscore-insights)",
            url=f"https://github.com/{meta['repository']}/blob/{commit}/{meta['path']}#L{line}",
            date=f"{m[1]}-{m[2]}-{m[3]}T{m[4]}" if m else None, note=NOTE + ".",
            raw={"row": dict(row), "line": line}, figure=f"localscore#test-{row['test_num']}"),
        host=Host(cpu=CpuInfo(model=row["system_cpu"] or None), ram_stated=_joined(row["system_ram"],
                  row["system_ram_unit"]), os=row["system_os"] or None,
                  gpus=[GpuInfo(name=row["accel_name"], vram_stated=_joined(row["accel_ram"], row["accel_ram_unit"]))]
                  if gpu else []),
        llama_cpp=LlamaCpp(),
        model=ModelInfo(name=row["model_name"] or None, file_type=row["model_quant"] or None,
                        quant=_SHORT_QUANT.get(row["model_quant"], row["model_quant"] or None),
                        params_stated=_joined(row["model_params"], row["model_params_unit"])),
        method=Method(endpoint="LocalScore", note="LocalScore's own benchmark run (llamafile); its test shape is not "
                                                  "in the TSV"),
        summary=Summary(tg_tps=tg, pp_tps=pp, ttft_ms=ttft))


def read_rows(root: Path) -> tuple[dict[str, str], list[tuple[int, dict[str, str]]]]:
    """(source.yaml's pins, [(line, row)]) of the kept TSV, after checking its sha256 and header."""
    meta_path = root / "source.yaml"
    top = Section(load_yaml_file(meta_path), meta_path, "")
    meta = {k: top.get(k, str) for k in ("repository", "commit", "path", "kept", "sha256")}
    path, text = read_kept(root, meta_path, "kept", meta["kept"])
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != meta["sha256"]:
        raise CollectorError(f"{path}: its sha256 is not {meta['sha256']} ({meta_path}); the kept "
                             "copy changed: restore the file of the pinned commit")
    lines = text.splitlines()
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter="\t")
    rows = []
    try:
        header = next(reader, [])
        if tuple(header) != COLUMNS:
            raise CollectorError(f"{path}:1: columns {short_repr(header)} are not LocalScore's "
                                 f"{len(COLUMNS)} columns")
        for n, cells in enumerate(reader, start=2):
            if len(cells) != len(COLUMNS):
                raise CollectorError(f"{path}:{n}: {len(cells)} cells, expected {len(COLUMNS)}")
            rows.append((n, dict(zip(COLUMNS, cells, strict=True))))
    except csv.Error as exc:  # a NUL, a cell past csv's field limit
        raise CollectorError(f"{path}:{reader.line_num}: {exc}; restore the file of the pinned commit") from None
    return meta, rows


def load_records(root: Path) -> list[SpeedRecord]:
    meta, rows = read_rows(root)
    return [row_record(row, line, meta) for line, row in rows]


def import_localscore(root: Path, data_dir: Path, force: bool = False) -> tuple[list[Path], list[str]]:
    return write_records(load_records(root), data_dir, force=force)
