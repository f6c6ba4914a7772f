"""Published KLD tables imported into data/ (issue 34): every figure of every record is checked against the kept
source's own line, read here independently of the importer; the kept copies against their pinned sha256; data/
against a fresh import; and hostile sources give one line naming the file, with nothing written."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.base.errors import CollectorError
from collector.importers import kld_tables
from collector.records import index, store
from collector.records.schema import KldRecord

REPO = Path(__file__).resolve().parents[2]
KLD = REPO / "imports" / "kld"
SOURCES = sorted(p.name for p in KLD.iterdir() if (p / "source.yaml").is_file())
RESULTS = set(kld_tables.RESULTS)


def _spec(name: str) -> dict[str, Any]:
    return yaml.safe_load((KLD / name / "source.yaml").read_text(encoding="utf-8"))


def _kept_lines(name: str) -> list[str]:
    raw = (KLD / name / _spec(name)["kept"]).read_bytes().decode("utf-8")
    return [ln[:-1] if ln.endswith("\r") else ln for ln in raw.split("\n")]


@functools.lru_cache(maxsize=1)
def _data() -> tuple[KldRecord, ...]:
    recs = index.load_index(REPO / "data", cache=False).records.values()
    return tuple(r for r in recs if isinstance(r, KldRecord) and (r.source.figure or "").split("#")[0] in SOURCES)


def _norm(text: str) -> str:
    return " ".join(text.split())


def _row(line: str) -> list[str]:
    assert line.strip().startswith("|") and line.strip().endswith("|"), line
    return [c.strip() for c in line.strip()[1:-1].split("|")]


def _figure(text: str) -> tuple[float, float | None, bool] | None:
    """A cell's figure, read here without the importer: the first number, the one after ± or +/-, and a %."""
    body = re.sub(r"\s*`[^`]*`$", "", text.strip())
    if body in ("", "-", "n/a"):
        return None
    numbers = re.findall(r"-?\d+(?:\.\d+)?", body)
    unc = "±" in body or "+/-" in body
    assert len(numbers) == (2 if unc else 1), text
    return float(numbers[0]), float(numbers[1]) if unc else None, body.endswith("%")


def _check_cell(cell: dict[str, Any], table: dict[str, Any], lines: list[str]) -> None:
    """The cell's text stands on its line of the kept copy, under its label (and in its column)."""
    line = lines[cell["line"] - 1]
    if table["format"] == "lines":
        first, last = table["files"][cell["entry"]]["lines"]
        assert first <= cell["line"] <= last
        label, _, value = line.partition(":")
        assert _norm(label).endswith(cell["label"]) and value.strip() == cell["text"], (line, cell)
        return
    head, end = table["lines"]
    assert head + 2 <= cell["line"] <= end, cell
    header = [_norm(c) for c in _row(lines[head - 1])]
    cells = _row(line)
    if table["format"] == "rows":
        assert cells[header.index(cell["label"])] == cell["text"], (line, cell)
    else:
        assert _norm(cells[0]) == cell["label"] and cells[header.index(cell["entry"])] == cell["text"], (line, cell)


def _check_record(rec: KldRecord) -> None:
    name = (rec.source.figure or "").split("#")[0]
    spec, lines = _spec(name), _kept_lines(name)
    tables = {t["id"]: t for t in spec["tables"]}
    raw = rec.source.raw or {}
    assert raw["source"] == name and raw["kept"] == spec["kept"] and raw["first_line"] == spec.get("first_line", 1)
    expected: dict[str, float] = {}
    for cell in raw["cells"]:
        table = tables[cell["table"]]
        _check_cell(cell, table, lines)
        target = table["fields"][next(k for k in table["fields"] if _norm(k) == cell["label"])]
        text = cell["text"]
        if target in RESULTS and (fig := _figure(text)) is not None:
            value, unc, pct = fig
            assert pct == (target.startswith("dp_") or target in ("cor_ln_ppl", "same_top_p")), cell
            assert expected.setdefault(target, value) == value, cell  # a repeated figure states the same
            if unc is not None:
                expected[f"{target}_unc"] = unc
        elif target == "quant":
            assert rec.model.quant is not None and rec.model.quant.lower() == text.lower()
        elif target == "file":
            uploader, _, label = text.rpartition("/")
            assert (rec.model.uploader or "", rec.model.quant) == (uploader, label)
        elif target == "imatrix":
            assert rec.model.imatrix == text
        elif target == "size_stated":
            assert rec.model.size_stated == f"{text} {table['size_unit']}"
    got = {k: v for k, v in rec.results.model_dump().items() if v is not None}
    assert got == expected, (rec.source.figure, got, expected)
    offset = spec.get("first_line", 1) - 1
    m = re.search(r"lines? (\d+)(?:-(\d+))?", rec.source.citation or "")
    assert m is not None, rec.source.citation
    a, b = int(m[1]), int(m[2] or m[1])
    head = raw["cells"][0]
    part = [c["line"] + offset for c in raw["cells"] if (c["table"], c["entry"]) == (head["table"], head["entry"])]
    assert a <= min(part) and max(part) <= b and (rec.source.url or "").endswith(f"#L{a}" + (f"-L{b}" if b != a
                                                                                                else ""))
    assert (rec.source.url or "").startswith(spec["url"])
    text = "\n".join(lines)
    assert rec.source.quotes and all(q in text for q in rec.source.quotes)
    assert rec.source.type == "imported" and rec.corpus is not None and rec.results.kld_mean is not None


def test_kept_copies_match_their_pinned_sha256() -> None:
    assert SOURCES == ["ik-llama-discussion-357", "ik-llama-discussion-359", "llama-cpp-perplexity-readme"]
    for name in SOURCES:
        spec = _spec(name)
        assert hashlib.sha256((KLD / name / spec["kept"]).read_bytes()).hexdigest() == spec["sha256"], name


def test_every_imported_figure_is_its_kept_source_cell() -> None:
    recs = _data()
    assert len(recs) == 61
    for rec in recs:
        _check_record(rec)


def test_every_row_of_every_table_is_one_record() -> None:
    """Each table's rows (columns, blocks), read here from the kept copy, against the records' cells: none lost,
    none twice; the reference rows are the only ones left out."""
    seen: dict[tuple[str, str, str], int] = {}
    for rec in _data():
        for part in {(c["table"], c["entry"]) for c in (rec.source.raw or {})["cells"]}:
            key = ((rec.source.figure or "").split("#")[0], *part)
            seen[key] = seen.get(key, 0) + 1
    expected = set()
    for name in SOURCES:
        lines = _kept_lines(name)
        for table in _spec(name)["tables"]:
            if table["format"] == "lines":
                entries = list(table["files"])
            elif table["format"] == "columns":
                entries = [_norm(c) for c in _row(lines[table["lines"][0] - 1])[1:]]
            else:
                header = [_norm(c) for c in _row(lines[table["lines"][0] - 1])]
                rows = [_row(ln) for ln in lines[table["lines"][0] + 1:table["lines"][1]]]
                entries = ["-".join("-".join(r[header.index(k)].split()) for k in table["key"]) for r in rows]
            expected |= {(name, table["id"], e) for e in entries if e not in (table.get("skip") or {})}
    assert set(seen) == expected and set(seen.values()) == {1}
    per_table: dict[str, int] = {}
    for _, table, _entry in expected:
        per_table[table] = per_table.get(table, 0) + 1
    assert per_table == {"llama3-8b-scoreboard": 46, "llama2-vs-llama3": 8, "llama3-bf16-vs-fp16": 1,
                         "ubergarm-qwen3-30b-a3b": 7, "ubergarm-qwen3-235b-a22b": 3}


def test_what_makes_the_kld_comparable_is_kept() -> None:
    by_key = {r.source.figure: r for r in _data()}
    q2 = by_key["llama-cpp-perplexity-readme#llama3-8b-scoreboard/q2_K-None"]
    assert q2.base_model is not None and q2.base_model.quant == "F16" and q2.corpus is not None
    assert q2.corpus.name == "Wikitext-2 test set" and q2.corpus.ctx_size is None and q2.corpus.chunks is None
    assert q2.model.imatrix == "None" and q2.model.size_stated == "2.96 GiB" and q2.kld_method
    assert q2.results.same_top_p == 71.138 and q2.results.kld_mean == 0.445132  # the merged L2 vs L3 column
    assert "column \"L3 8b q2_K\"" in (q2.source.citation or "")
    assert [g.name for g in q2.host.gpus] == ["NVIDIA RTX 4090"] and q2.llama_cpp.commit == "f364eb6f"
    mix = by_key["ik-llama-discussion-359#ubergarm-qwen3-30b-a3b/ubergarm/mix-IQ4_K"]
    assert (mix.model.uploader, mix.model.repo, mix.model.file_name) == (
        "ubergarm", "ubergarm/Qwen3-30B-A3B-GGUF", "Qwen3-30B-A3B-mix-IQ4_K.gguf")
    assert mix.base_model is not None and mix.base_model.quant == "BF16" and mix.kld_method is None
    assert mix.source.author == "ubergarm" and mix.source.date == "2025-05-02T02:09:33"
    lm = by_key["ik-llama-discussion-357#ubergarm-qwen3-235b-a22b/lmstudio-community/Qwen_Qwen3-235B-A22B-GGUF"]
    assert lm.model.quant is None and lm.model.imatrix == "without imatrix" and lm.results.kld_max == 8.358958
    assert lm.base_model is not None and lm.base_model.quant == "Q8_0" and lm.base_model.size_stated == "233GiB"
    assert "lines 1264-1280" in (lm.source.citation or "")  # the excerpt's line 47 is the file's 1264


def test_data_holds_a_fresh_import(tmp_path: Path) -> None:
    fresh = kld_tables.load_records([KLD])

    def comparable(rec: KldRecord) -> dict[str, Any]:
        d = store.record_to_dict(rec)
        d.pop("id"), d.pop("created_at")
        return d

    assert sorted(map(repr, map(comparable, fresh))) == sorted(map(repr, map(comparable, _data())))
    written, skipped = kld_tables.import_kld_tables([KLD], tmp_path)
    assert len(written) == 61 and not skipped
    again, skipped = kld_tables.import_kld_tables([KLD], tmp_path)
    assert again == [] and sorted(skipped) == sorted(r.source.figure or "" for r in fresh)


# hostile sources: a copy of the README source, changed one way each


def _copy(tmp: Path, name: str = "llama-cpp-perplexity-readme") -> Path:
    dst = tmp / "kld" / name
    shutil.copytree(KLD / name, dst)
    return dst


def _edit_kept(src: Path, old: str, new: str) -> None:
    spec = (src / "source.yaml").read_text(encoding="utf-8")
    kept = src / yaml.safe_load(spec)["kept"]
    text = kept.read_text(encoding="utf-8")
    assert text.count(old) == 1
    kept.write_text(text.replace(old, new), encoding="utf-8")
    old_sha = yaml.safe_load(spec)["sha256"]
    (src / "source.yaml").write_text(spec.replace(old_sha, hashlib.sha256(kept.read_bytes()).hexdigest()),
                                     encoding="utf-8")


def _edit_spec(src: Path, old: str, new: str) -> None:
    spec = (src / "source.yaml").read_text(encoding="utf-8")
    assert spec.count(old) == 1, old
    (src / "source.yaml").write_text(spec.replace(old, new), encoding="utf-8")


HOSTILE = {
    "changed copy": (lambda s: (s / "README.md").write_text((s / "README.md").read_text().replace("0.445132",
                                                                                                 "0.445133", 1)),
                     r"README\.md: its sha256 is .* the kept copy changed"),
    "bad cell": (lambda s: _edit_kept(s, "| 0.445132 ±   0.001835 |", "| 0.44x132 ±   0.001835 |"),
                 r"README\.md:88: KLD: '0\.44x132 ±   0\.001835' is not a figure"),
    "row cut short": (lambda s: _edit_kept(s, "| -9.123 ± 0.051 %  | 21.421 ± 0.079 % |", "| -9.123 ± 0.051 %  |"),
                      r"README\.md:88: 7 cells, the header on line 49 has 8"),
    "percent lost": (lambda s: _edit_kept(s, "| -9.123 ± 0.051 %  | 21.421 ± 0.079 % |",
                                          "| -9.123 ± 0.051    | 21.421 ± 0.079 % |"),
                     r"README\.md:88: Mean Δp .* lacks the % of dp_mean"),
    "same run differs": (lambda s: _edit_kept(s, "| 0.108903 ± 0.000645 | 0.445132 ± 0.001835 |",
                                              "| 0.108903 ± 0.000645 | 0.445199 ± 0.001835 |"),
                         r"README\.md:115: Mean KLD .* differs from line 88 .* not the same run"),
    "unknown key": (lambda s: _edit_spec(s, "  size_unit: GiB", "  size_unit: GiB\n  sizes: GB"),
                    r"source\.yaml:\d+: tables\[0\]\.sizes: unknown key"),
    "unmapped column": (lambda s: _edit_spec(s, "    ΔPPL: ppl_diff\n", ""),
                        r"README\.md:51: 'ΔPPL' is not in the table's fields"),
    "quote not kept": (lambda s: _edit_spec(s, '  - "## LLaMA 3 8b Scoreboard"', '  - "## LLaMA 3 8B Scoreboard"'),
                       r"source\.yaml:\d+: tables\[0\]\.quotes\[0\] .* is not in .*README\.md"),
    "fact unquoted": (lambda s: _edit_spec(s, "host: {cpu: AMD Epyc 7742, gpus: [NVIDIA RTX 4090], backend: CUDA}\n"
                                              "  llama_cpp: {commit: f364eb6f, backend: CUDA}\n  kld_method: llama-"
                                              "perplexity full-vocab\n  size_unit",
                                           "host: {cpu: AMD Epyc 7763, gpus: [NVIDIA RTX 4090], backend: CUDA}\n"
                                           "  llama_cpp: {commit: f364eb6f, backend: CUDA}\n  kld_method: llama-"
                                           "perplexity full-vocab\n  size_unit"),
                      r"source\.yaml:\d+: tables\[0\]\.host: cpu 'AMD Epyc 7763' appears in none of the table's"),
    "same_as to nothing": (lambda s: _edit_spec(s, "same_as: llama3-8b-scoreboard/q2_K-None",
                                                "same_as: llama3-8b-scoreboard/q2_K-WT-1g"),
                           r"source\.yaml:\d+: .*same_as: 'llama3-8b-scoreboard/q2_K-WT-1g' names no run"),
    "file not in table": (lambda s: _edit_spec(s, "    f16-None:", "    f32-None:"),
                          r"source\.yaml:\d+: .*f32-None: no entry 'f32-None' in the table"),
    "lines beyond the copy": (lambda s: _edit_spec(s, "lines: [49, 96]", "lines: [49, 960]"),
                              r"source\.yaml:\d+: tables\[0\]\.lines: \[49, 960\] is not within the kept copy"),
    "key not a column": (lambda s: _edit_spec(s, "key: [Quantization, imatrix]", "key: [Quantization, 7]"),
                         r"source\.yaml:\d+: tables\[0\]\.key: '7' is not a column of the header on line 49"),
    "not yaml": (lambda s: (s / "source.yaml").write_text("tables: [\n"), r"source\.yaml:\d+: not valid YAML"),
    "no tables": (lambda s: (s / "source.yaml").write_text("title: x\nkept: README.md\nsha256: ab\nurl: x\n"),
                  r"sha256 is .*not ab"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_source_is_one_line_naming_the_file(tmp_path: Path, case: str) -> None:
    src = _copy(tmp_path)
    breaks, message = HOSTILE[case]
    breaks(src)
    with pytest.raises(CollectorError) as err:
        kld_tables.import_kld_tables([src.parent], tmp_path / "data")
    text = str(err.value)
    assert "\n" not in text and re.search(message, text), text
    assert not (tmp_path / "data").exists()


def test_the_command_refuses_a_hostile_source_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    good = _copy(tmp_path, "ik-llama-discussion-359")
    bad = _copy(tmp_path)
    _edit_kept(bad, "| 0.445132 ±   0.001835 |", "| ~0.445 |")
    r = subprocess.run([sys.executable, "-m", "collector.cli", "import", "kld-tables", str(good.parent),
                        "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "README.md:88: KLD" in lines[0] and "approximate" in lines[0], lines[0]
    assert not (tmp_path / "data").exists()  # the good source is not written half-way either
