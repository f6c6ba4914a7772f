"""Public result sets imported into data/: LocalScore's crowd results and XiongjieDai's llama-bench notebooks.

Figures are checked against the kept source files under imports/ (read here independently of the importers), the
committed records against a fresh import, and a re-import against the data it already holds.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import random
import re
import shutil
from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.importers import localscore, xiongjiedai
from collector.records import index, store
from collector.records.store import AnyRecord

REPO = Path(__file__).resolve().parents[2]
LOCALSCORE = REPO / "imports" / "localscore"
XIONGJIEDAI = REPO / "imports" / "xiongjiedai"


@functools.lru_cache(maxsize=1)
def _data() -> tuple[AnyRecord, ...]:
    """data/'s records, parsed once for the module (a cold parse of ~2,100 files takes seconds)."""
    return tuple(index.load_index(REPO / "data", cache=False).records.values())


def _imported(prefix: str) -> list[AnyRecord]:
    return [r for r in _data() if (r.source.figure or "").startswith(prefix)]


def _tsv_row(line: int) -> dict[str, str]:
    lines = (LOCALSCORE / "localscore_results.tsv").read_text(encoding="utf-8").splitlines()
    return dict(zip(lines[0].split("\t"), lines[line - 1].split("\t"), strict=True))


def _kept_row(path: Path, line: int) -> tuple[dict[str, str], int]:
    """A table row of a kept notebook file, split here, and the notebook cell it sits in."""
    lines = path.read_text(encoding="utf-8").splitlines()
    head = line - 1
    while not lines[head].startswith("| model"):
        head -= 1
    cells = [c.strip() for c in lines[line - 1].strip().strip("|").split("|")]
    header = [c.strip() for c in lines[head].strip().strip("|").split("|")]
    cell = next(int(m.group(1)) for ln in reversed(lines[:line]) if (m := re.match(r"^## cell (\d+)$", ln)))
    return dict(zip(header, cells, strict=True)), cell


def _check_localscore(rec: AnyRecord) -> None:
    assert rec.source.raw is not None and rec.source.url is not None
    line = int(rec.source.url.rsplit("#L", 1)[1])
    row = _tsv_row(line)
    assert rec.source.figure == f"localscore#test-{row['test_num']}" and f"line {line}" in (rec.source.citation or "")
    s = rec.summary
    assert (s.tg_tps.text if s.tg_tps else "") == row["gen_tps"] and (s.pp_tps.text if s.pp_tps else "") == \
        row["prompt_tps"]
    assert s.ttft_ms is not None and s.ttft_ms.text == row["ttft"] and row["ttft_unit"] == "ms"
    assert s.tg_tps is not None and s.tg_tps.stated == float(row["gen_tps"]) and s.tg_tps.n is None
    assert rec.model.name == row["model_name"] and rec.model.file_type == row["model_quant"]
    assert rec.model.params_stated == f"{row['model_params']} {row['model_params_unit']}"
    if row["accel_type"] == "GPU":
        assert [(g.name, g.vram_stated) for g in rec.host.gpus] == [(row["accel_name"],
                                                                      f"{row['accel_ram']} {row['accel_ram_unit']}")]
    else:
        assert rec.host.gpus == [] and rec.host.cpu.model == row["accel_name"]
    assert rec.host.cpu.model == row["system_cpu"] and rec.host.os == row["system_os"]
    assert rec.source.runtime == "llamafile (LocalScore)"
    assert rec.llama_cpp.version is None and rec.command == [] and not rec.config.model_dump(exclude_defaults=True)


def _check_xiongjiedai(rec: AnyRecord) -> None:
    assert rec.source.raw is not None
    kept = re.search(r"imports/xiongjiedai/(notebooks/\S+\.md) line", rec.source.note or "")
    assert kept, rec.source.note
    row, cell = _kept_row(XIONGJIEDAI / kept.group(1), rec.source.raw["line"])
    assert f"cell {cell}," in (rec.source.citation or "")
    stat = rec.summary.pp_tps or rec.summary.tg_tps
    assert stat is not None and stat.text == row["t/s"]
    mean, _, sd = row["t/s"].partition(" ± ")
    assert (stat.mean, stat.stddev) == (float(mean), float(sd))
    assert rec.samples[0].category == row["test"] and rec.model.size_stated == row["size"]
    assert rec.model.file_type == row["model"].split(" ", 2)[2] and rec.llama_cpp.backend == row["backend"]
    assert rec.source.runtime == "llama.cpp (llama-bench)"


def test_twenty_random_figures_equal_their_source_rows() -> None:
    records = _imported("localscore#") + _imported("xiongjiedai/")
    assert len(records) >= 2000
    rng = random.Random(21)
    picked = rng.sample(sorted(records, key=lambda r: r.source.figure or ""), 20)
    assert {(r.source.figure or "").split("#")[0].split("/")[0] for r in picked} == {"localscore", "xiongjiedai"}
    for rec in picked:
        (_check_localscore if (rec.source.figure or "").startswith("localscore") else _check_xiongjiedai)(rec)


def test_kept_sources_are_the_pinned_files() -> None:
    meta = (LOCALSCORE / "source.yaml").read_text(encoding="utf-8")
    digest = hashlib.sha256((LOCALSCORE / "localscore_results.tsv").read_bytes()).hexdigest()
    assert f"sha256: {digest}" in meta and "commit: a4f81747b3e6f0841f48c7bea6496d4f0e4a464c" in meta
    with (LOCALSCORE / "localscore_results.tsv").open(encoding="utf-8", newline="") as f:
        assert sum(1 for _ in csv.reader(f, delimiter="\t")) == 1219  # 1218 results and the header
    readme = (XIONGJIEDAI / "README.md").read_text(encoding="utf-8")
    for path in sorted((XIONGJIEDAI / "notebooks").glob("*.md")):
        assert f"kept_sha256: {hashlib.sha256(path.read_bytes()).hexdigest()}" in \
            (XIONGJIEDAI / "source.yaml").read_text(encoding="utf-8"), path.name
    for gpu in re.findall(r"^ *readme_gpu: (.+)$", (XIONGJIEDAI / "source.yaml").read_text(encoding="utf-8"),
                              re.M):
        assert f"| {gpu.strip()} " in readme  # the README's own GPU cell, verbatim


def test_every_source_row_is_in_data_once() -> None:
    figures: dict[str, int] = {}
    for rec in _imported("localscore#") + _imported("xiongjiedai/"):
        figures[rec.source.figure or ""] = figures.get(rec.source.figure or "", 0) + 1
    assert set(figures.values()) == {1}
    assert len([f for f in figures if f.startswith("localscore#")]) == 1218
    rows = sum(len(t.rows) for _, t in xiongjiedai.tables_of(XIONGJIEDAI))
    assert len([f for f in figures if f.startswith("xiongjiedai/")]) == rows == 823


@pytest.mark.parametrize("root, module", [(LOCALSCORE, localscore), (XIONGJIEDAI, xiongjiedai)], ids=["localscore",
                                                                                                  "xiongjiedai"])
def test_committed_records_match_a_fresh_import(root: Path, module: object) -> None:
    """data/ is what the importer makes of the kept files (id and created_at are the import's own)."""
    fresh = {r.source.figure: r for r in module.load_records(root)}  # type: ignore[attr-defined]
    committed = {r.source.figure: r for r in _imported("localscore#" if module is localscore else "xiongjiedai/")}
    assert set(fresh) == set(committed)
    for key, rec in fresh.items():
        a, b = store.record_to_dict(rec), store.record_to_dict(committed[key])
        for k in ("id", "created_at"):
            a.pop(k), b.pop(k)
        assert a == b, f"{key}: data/ is stale; re-import with --force"


def _small_localscore(tmp_path: Path, rows: int) -> Path:
    root = tmp_path / "localscore"
    root.mkdir()
    lines = (LOCALSCORE / "localscore_results.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    (root / "localscore_results.tsv").write_text("".join(lines[: rows + 1]), encoding="utf-8")
    digest = hashlib.sha256((root / "localscore_results.tsv").read_bytes()).hexdigest()
    meta = re.sub(r"sha256: [0-9a-f]+", f"sha256: {digest}", (LOCALSCORE / "source.yaml").read_text(encoding="utf-8"))
    (root / "source.yaml").write_text(meta, encoding="utf-8")
    return root


def test_reimport_adds_nothing_and_a_changed_copy_is_refused(tmp_path: Path) -> None:
    root = _small_localscore(tmp_path, 12)
    data = tmp_path / "data"
    written, skipped = localscore.import_localscore(root, data)
    assert len(written) == 12 and not skipped
    before = sorted(index.record_files(data))
    again, skipped = localscore.import_localscore(root, data)
    assert again == [] and len(skipped) == 12 and sorted(index.record_files(data)) == before
    tsv = root / "localscore_results.tsv"
    tsv.write_text(tsv.read_text(encoding="utf-8").replace("103.0", "130.0"), encoding="utf-8")
    with pytest.raises(CollectorError, match=r"localscore_results\.tsv: its sha256 is not"):
        localscore.load_records(root)


def test_xiongjiedai_reimport_adds_nothing(tmp_path: Path) -> None:
    root = tmp_path / "xiongjiedai"
    (root / "notebooks").mkdir(parents=True)
    meta = (XIONGJIEDAI / "source.yaml").read_text(encoding="utf-8")
    head, _, entries = meta.partition("notebooks:\n")
    keep = [e for e in re.split(r"(?m)^(?=- path: )", entries) if "4090_v3.ipynb" in e or "M1max_64GB" in e]
    assert len(keep) == 2
    (root / "source.yaml").write_text(head + "notebooks:\n" + "".join(keep), encoding="utf-8")
    for name in ("4090_v3.md", "M1max_64GB.md"):
        shutil.copy(XIONGJIEDAI / "notebooks" / name, root / "notebooks" / name)
    data = tmp_path / "data"
    written, _ = xiongjiedai.import_xiongjiedai(root, data)
    again, skipped = xiongjiedai.import_xiongjiedai(root, data)
    assert len(written) == 16 + 30 and again == [] and len(skipped) == len(written)
    kept = root / "notebooks" / "4090_v3.md"
    kept.write_text(kept.read_text(encoding="utf-8").replace("130.58", "131.58"), encoding="utf-8")
    with pytest.raises(CollectorError, match=r"4090_v3\.md: its sha256 is not the one"):
        xiongjiedai.load_records(root)


def test_nothing_a_source_does_not_state_is_filled_in() -> None:
    for rec in _imported("localscore#")[:50]:
        assert rec.llama_cpp.model_dump(exclude_none=True) == {} and rec.method.n_predict is None
        assert rec.method.repetitions is None and not rec.samples
    xd = _imported("xiongjiedai/")
    mac = [r for r in xd if r.llama_cpp.backend == "Metal"]
    assert mac and all(r.host.gpus[0].name in ("M1 7‑Core GPU", "M1 Max 32‑Core GPU", "M2 Ultra 76-Core GPU",
                                               "M3 Max 40‑Core GPU") for r in mac)  # the README's words
    cuda = [r for r in xd if r.llama_cpp.backend == "CUDA"]
    assert all(r.source.raw and r.source.raw.get("device_lines") for r in cuda)  # llama.cpp's own device lines
    assert all(r.config.cache_type_k is None and r.config.flash_attn is None for r in xd)
    assert {r.source.date for r in xd} == {None}  # the README says "May 2024", no day


def test_the_8b_comparison_has_what_it_needs() -> None:
    from collector import catalog

    runs = [r for r in _imported("localscore#") if r.model.name == "Meta Llama 3.1 8B Instruct"
            and r.model.quant == "Q4_K_M" and r.host.gpus]
    devices = {catalog.resolve(r.host.gpus[0].name) for r in runs}
    assert None not in devices and len(devices) >= 60
    assert all(r.model.params_stated == "8000 M" and r.summary.tg_tps and r.summary.pp_tps for r in runs)
