"""XiongjieDai/GPU-Benchmarks-on-LLM-Inference: the llama-bench runs of its LLaMA 3 notebooks, as records.

The repository's README summarises the runs; its notebooks hold llama-bench's own output (tables, build lines,
llama.cpp's CUDA device lines), so the records come from the notebooks. What is kept under
`imports/xiongjiedai/` (so an import repeats offline):

- `source.yaml`: the repository, the commit, and per notebook its path, the sha256 of the notebook file, the cells
  used and the README's GPU cell for it, verbatim (`"4090 24GB * 2"`, `"M1 Max 32‑Core GPU 64GB"`);
- `notebooks/<stem>.md`: the command and stdout of every cell that runs llama-bench, verbatim (`extract`).

Each table row is one record (`llama_bench_md`), cited as repository, notebook, commit, cell and row. The GPUs are
llama.cpp's device lines of that cell; the Apple notebooks print none, so there the README's GPU cell names the
device. GPU memory is the README's ("24GB" per GPU). The model is the README's name ("LLaMA 3") and size with the
file named in the cell's command; the quant is llama.cpp's own description in the table.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from collector.base.errors import CollectorError
from collector.base.yamlcheck import Section, load_yaml_file
from collector.importers.bench_markdown import BenchTable, find_tables
from collector.importers.intake import read_kept, write_records
from collector.importers.llama_bench_md import Context, figure_key, row_record
from collector.records.schema import SpeedRecord

REPO = "XiongjieDai/GPU-Benchmarks-on-LLM-Inference"
_CELL = re.compile(r"^## cell (\d+)$")
_MODEL = re.compile(r"-m \./models/(?P<size>\d+B)-v3/(?P<file>\S+\.gguf)")
_GPU = re.compile(r"^(?P<name>.+?) (?P<mem>\d{1,4}GB)(?: \* (?P<count>\d{1,2}))?$")  # at most 99 GPUs


def extract(notebook: bytes, header: str) -> str:
    """The command and stdout of each code cell that runs llama-bench, verbatim, under `## cell N` headings."""
    nb = json.loads(notebook)
    parts = [header]
    for n, cell in enumerate(nb.get("cells", [])):
        source = "".join(cell.get("source", []))
        if cell.get("cell_type") != "code" or "llama-bench" not in source:
            continue
        out = "".join("".join(o.get("text", [])) for o in cell.get("outputs", []) if o.get("name") == "stdout")
        parts.append(f"## cell {n}\n\n```\n$ {source}\n{out}```\n")
    return "\n".join(parts)


def _cell_of(lines: list[str], starts: list[int], line: int) -> tuple[int, str]:
    """The cell a line of a kept notebook file belongs to, and that cell's command (`starts`: the indexes of the
    file's `## cell N` lines, in order; found by bisection, so a file of many tables is read once)."""
    k = bisect.bisect_right(starts, line - 1) - 1
    if k < 0:
        raise CollectorError(f"line {line} is outside any '## cell N' section; regenerate the file with extract")
    i = starts[k]
    m = _CELL.match(lines[i])
    assert m is not None
    # its command: the first lines of the cell (not the whole cell again for each of its tables)
    return int(m.group(1)), "\n".join(lines[i:min(line, i + 40)])


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_records(root: Path) -> list[SpeedRecord]:
    """Every llama-bench row of the kept notebooks under `root` (imports/xiongjiedai) as a record."""
    meta_path = root / "source.yaml"
    top = Section(load_yaml_file(meta_path), meta_path, "")
    commit = top.get("commit", str)
    records: list[SpeedRecord] = []
    for i, raw in enumerate(top.seq("notebooks")):
        nb = Section(raw, meta_path, f"notebooks[{i}]")
        path = nb.get("path", str)
        kept, text = read_kept(root, meta_path, f"notebooks[{i}].kept", nb.get("kept", str))
        readme_gpu = nb.get("readme_gpu", str)
        if _sha256(text.encode("utf-8")) != nb.get("kept_sha256", str):
            raise CollectorError(f"{kept}: its sha256 is not the one {meta_path} records; the kept copy changed: "
                                 "restore it or regenerate it from the pinned commit")
        m = _GPU.match(readme_gpu)
        if not m:
            raise nb.fail("readme_gpu", f"{readme_gpu!r} is not '<GPU> <N>GB' or '<GPU> <N>GB * <count>'")
        seen: dict[str, int] = {}
        lines = text.splitlines()
        starts = [j for j, line in enumerate(lines) if _CELL.match(line)]
        for table in find_tables(text, str(kept)):
            cell, command = _cell_of(lines, starts, table.line)
            model = _MODEL.search(command)
            if not model:
                raise CollectorError(f"{kept}:{table.line}: cell {cell}'s command names no ./models/<size>-v3 file")
            for row_no, row in enumerate(table.rows, 1):
                url = f"https://github.com/{REPO}/blob/{commit}/{path.replace(' ', '%20')}"
                ctx = Context(
                    citation=f"{REPO}, {path} at commit {commit[:8]}, cell {cell}, table row {row_no} "
                             "(llama-bench output)",
                    url=url, gpus=[] if table.devices else [m["name"]] * int(m["count"] or 1),
                    model_name=f"LLaMA 3 {model['size']}", vram_stated=m["mem"],
                    note=(f"kept copy {kept.name} line {row.line}; the README's GPU cell for this notebook: "
                          f"{readme_gpu!r}; the README dates the runs 'snapshots in May 2024'"))
                rec = row_record(table, row, ctx, f"imports/{root.name}/{kept.relative_to(root).as_posix()}",
                                 figure_key(f"xiongjiedai/{Path(path).stem}", table, row, seen))
                rec.model.file_name = model["file"]
                records.append(rec)
    return records


def import_xiongjiedai(root: Path, data_dir: Path, force: bool = False) -> tuple[list[Path], list[str]]:
    records = load_records(root)
    if not records:
        raise CollectorError(f"{root}: no llama-bench rows in the kept notebooks")
    return write_records(records, data_dir, force=force)


def refresh(git_dir: Path, root: Path, commit: str) -> list[dict[str, Any]]:
    """Re-extract every notebook of source.yaml from a clone of the repository at `commit` and record the sha256
    of each notebook and kept copy in source.yaml (the maintainer's step; an import only reads what this wrote).
    Returns the updated notebook entries."""
    import subprocess

    from ruamel.yaml import YAML

    meta_path = root / "source.yaml"
    meta = load_yaml_file(meta_path)
    out = []
    for entry in meta["notebooks"]:
        blob = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{commit}:{entry['path']}"],
                              check=True, capture_output=True).stdout
        header = (f"<!-- Kept copy: the llama-bench cells of {REPO}/{entry['path']} at commit {commit}\n"
                  f"(notebook sha256 {_sha256(blob)}): each cell's command and stdout, verbatim. -->\n")
        kept = root / entry["kept"]
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(extract(blob, header), encoding="utf-8")
        entry["notebook_sha256"], entry["kept_sha256"] = _sha256(blob), _sha256(kept.read_bytes())
        out.append(dict(entry))
    meta["commit"] = commit
    yaml = YAML()
    yaml.width = 4096
    with meta_path.open("w", encoding="utf-8") as f:
        yaml.dump(meta, f)
    return out


def tables_of(root: Path) -> list[tuple[Path, BenchTable]]:
    """(kept file, table) for every table of the kept notebooks: what the figure test compares against."""
    return [(p, t) for p in sorted((root / "notebooks").glob("*.md"))
            for t in find_tables(p.read_text(encoding="utf-8"), str(p))]


if __name__ == "__main__":  # python -m collector.importers.xiongjiedai GIT_DIR imports/xiongjiedai COMMIT
    for e in refresh(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]):
        print(e["kept"], e["kept_sha256"])
