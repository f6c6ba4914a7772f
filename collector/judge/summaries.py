"""A figure against its own source's summary: the source's table of results, and a post's own average.

- XiongjieDai's README (kept byte for byte as `imports/xiongjiedai/README.md`, pinned in that folder's
  source.yaml by `readme_sha256`) summarises the notebooks' llama-bench runs in tables of GPU x model x test. The
  importer takes its records from the notebooks (llama-bench's own output) and reads the README only for each
  notebook's GPU cell (`readme_gpu` in source.yaml); here its tables are the source's own summary. A notebook row
  whose README cell says OOM (the test did not run) or a figure differing by more than SUMMARY_MARGIN is held,
  the README's words and line cited. (Of the 793 notebook rows the README tabulates, 781 equal it to the digit,
  10 differ by at most 4.0 %: a rerun or a typo, not a contradiction; two it says OOM for. Its tables spell tests
  "tg 512", some notebooks "tg512": names.normalise_test makes them one.)
- A transcribed post whose stated average is over the per-test figures it also states: the average of those
  figures must equal the stated one within the digits both are written to ("AVERAGE 88.5 t/s" over six tests).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from collector.base.errors import CollectorError
from collector.base.yamlcheck import Section, load_yaml_file
from collector.judge.names import normalise_test
from collector.judge.verdict import AGAINST_SOURCE, Verdict
from collector.records.schema import SpeedRecord

SUMMARY_MARGIN = 1.10  # a README figure and its notebook row differ by more than 10 %: not the same result
XIONGJIEDAI = "xiongjiedai"
_CELL_NUMBER = re.compile(r"^\*{0,2}(\d+(?:\.\d+)?)\*{0,2}$")
_CELL_OOM = re.compile(r"^\*{0,2}OOM\*{0,2}$")


@dataclass(frozen=True)
class Claim:
    """One cell of a source's summary table, as written ("OOM", "9.72"), and where it is."""

    text: str
    file: str  # path under the repository: imports/xiongjiedai/README.md
    line: int
    row: str  # the table's words for it: "M1 7‑Core GPU 8GB, 8B Q4_K_M, tg 8192"

    @property
    def number(self) -> float | None:
        m = _CELL_NUMBER.match(self.text)
        return float(m.group(1)) if m else None

    @property
    def oom(self) -> bool:
        return bool(_CELL_OOM.match(self.text))


@dataclass
class Summaries:
    """The kept sources' summary tables: (source, the notebook's GPU cell, model, test) -> Claim."""

    claims: dict[tuple[str, str, str, str], Claim] = field(default_factory=dict)
    gpu_cells: dict[str, str] = field(default_factory=dict)  # notebook stem -> the README's GPU cell
    loaded: tuple[str, ...] = ()  # the summary files read (for what validate says it checked)

    def claim_for(self, rec: SpeedRecord) -> Claim | None:
        """The README cell that summarises this notebook row (None: it summarises no such row)."""
        fig = rec.source.figure or ""
        if not fig.startswith(f"{XIONGJIEDAI}/") or not rec.samples:
            return None
        gpu = self.gpu_cells.get(fig.split("/", 1)[1].split("#", 1)[0])
        model = f"{rec.model.size_label} {rec.model.quant}"
        test = normalise_test(rec.samples[0].category)
        return self.claims.get((XIONGJIEDAI, gpu or "", model, test or ""))


def parse_readme_tables(text: str, file: str) -> dict[tuple[str, str, str], Claim]:
    """Every cell of the README's per-test tables (header `| GPU | Model | tg 512 | ...`): (GPU cell, model cell,
    test) -> Claim. A row with an empty GPU cell continues the GPU above it."""
    out: dict[tuple[str, str, str], Claim] = {}
    header: list[str] | None = None
    gpu = ""
    for n, line in enumerate(text.splitlines(), start=1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            header = None
            continue
        if cells[:2] == ["GPU", "Model"]:
            header, gpu = cells, ""
            continue
        if header is None or set(line.replace("|", "").strip()) <= set("-: "):
            continue
        if len(cells) != len(header):
            raise CollectorError(f"{file}:{n}: {len(cells)} cells under a header of {len(header)}; restore the "
                                 "kept README")
        gpu = cells[0] or gpu
        for test, cell in zip(header[2:], cells[2:]):
            out[(gpu, cells[1], normalise_test(test) or test)] = Claim(cell, file, n, f"{gpu}, {cells[1]}, {test}")
    return out


def load_summaries(imports: Path) -> Summaries:
    """The summary tables of the kept sources under `imports` (the repository's imports/ folder). A kept README
    whose sha256 is not the pinned one is refused (an import and a judgement repeat from the same bytes)."""
    root = Path(imports) / XIONGJIEDAI
    meta_path = root / "source.yaml"
    top = Section(load_yaml_file(meta_path), meta_path, "")
    readme = root / top.get("readme", str)
    data = readme.read_bytes()
    pinned = top.get("readme_sha256", str)
    if hashlib.sha256(data).hexdigest() != pinned:
        raise CollectorError(f"{readme}: its sha256 is not {pinned} ({meta_path}); the kept README changed: restore "
                             "the file of the pinned commit")
    where = f"imports/{XIONGJIEDAI}/{readme.name}"
    out = Summaries(loaded=(where,))
    for (gpu, model, test), claim in parse_readme_tables(data.decode("utf-8"), where).items():
        out.claims[(XIONGJIEDAI, gpu, model, test)] = claim
    for i, raw in enumerate(top.seq("notebooks")):
        nb = Section(raw, meta_path, f"notebooks[{i}]")
        out.gpu_cells[Path(nb.get("kept", str)).stem] = nb.get("readme_gpu", str)
    return out


def against_summary(rec: SpeedRecord, summaries: Summaries, value: float) -> Verdict | None:
    """AGAINST_SOURCE when the source's own summary says OOM for this row, or a figure more than SUMMARY_MARGIN
    apart; None when it agrees or summarises no such row."""
    claim = summaries.claim_for(rec)
    if claim is None:
        return None
    numbers: dict[str, float | str] = {"summary": claim.text, "summary_file": claim.file, "summary_line": claim.line}
    if claim.oom:
        return Verdict(AGAINST_SOURCE, "source summary", f"source README says OOM ({claim.file} line {claim.line}: "
                                                         f"{claim.row})", numbers)
    stated = claim.number
    if stated is None or stated <= 0 or value <= 0:
        return None
    ratio = value / stated
    if max(ratio, 1 / ratio) <= SUMMARY_MARGIN:
        return None
    numbers["ratio"] = round(ratio, 3)
    return Verdict(AGAINST_SOURCE, "source summary", f"source README says {claim.text} ({claim.file} line "
                                                     f"{claim.line}: {claim.row}), {ratio:.3g}x this figure's", numbers)


def _unit(x: float) -> float:
    """Half a unit in the last digit a figure is written to (22.4 -> 0.05)."""
    text = repr(float(x))
    digits = len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 0
    return 0.5 * 10 ** -digits


def against_own_average(rec: SpeedRecord) -> Verdict | None:
    """AGAINST_SOURCE when a post's stated average of its per-test figures is not their average (within the digits
    both are written to). Only where the record's samples are exactly what was averaged: one figure per test and
    no other count stated."""
    stat = rec.summary.tg_tps
    if stat is None or stat.kind != "mean" or not rec.source.quotes:
        return None
    values = [s.tg_tps[0] for s in rec.samples if len(s.tg_tps) == 1]
    if len(values) < 2 or len(values) != len(rec.samples) or (stat.n is not None and stat.n != len(values)):
        return None
    mean = sum(values) / len(values)
    stated = stat.mean or 0.0
    tolerance = (0.5 * 10 ** -len(stat.text.split(".")[1]) if stat.text and "." in stat.text else _unit(stated)) + \
        max(_unit(v) for v in values)
    if abs(mean - stated) <= tolerance + 1e-9:
        return None
    return Verdict(AGAINST_SOURCE, "post's own average",
                   f"the source states an average of {stat.text or stated:}; its {len(values)} per-test figures "
                   f"average {mean:.3g}", {"stated_mean": stated, "computed_mean": round(mean, 4), "n": len(values)})
