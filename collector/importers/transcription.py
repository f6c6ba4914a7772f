"""Turn a reviewed transcription of a published source (imports/sources/*.yaml) into records.

A transcription holds the source's own numbers, verbatim quotes that back them, and record fields per figure;
this module adds nothing but identity and provenance (id, created_at, status, source). Format:

    source_file: 000_....txt          # the file under shared/sources/ the figures come from
    title: the author's own title     # citation = "<source_file>: <title>"
    author: null                      # as the source names its author; null: not stated
    url: null                         # where the source was published, when it says; null: no link given
    date: "2026-02-14"                # the source's stated date (ISO, a day or a full time), or null: not stated
    note: provenance shared by every figure
    defaults: {host: ..., llama_cpp: ...}   # record fields merged under each figure's own
    figures:
      - id: iq2-xs-168k               # stable: the re-import key is "<file stem>#<id>"
        kind: speed | kld
        quotes: [verbatim excerpts of the source that hold the numbers]
        note: how the figure was read (ranges, what is left null and why)
        date: optional per-figure stated date
        reconstruct_command: true     # the source prints no command but states the flags: build it from config
        record: {model: ..., config: ..., samples: ..., summary: ..., command: [...]}

A summary figure is written as the source writes it, as a string: `tg_tps: {stated: "~94"}` keeps the tilde
(approx) and the digits ("22.00"); `{mean: "21.78", n: 5}` is a stated average of 5 runs.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from collector.base.errors import CollectorError, short_repr
from collector.base.yamlcheck import Section, load_yaml_file
from collector.importers.intake import one_line, write_records
from collector.records import store
from collector.records.flags import LlamaConfig, server_args
from collector.records.store import AnyRecord

TOP_KEYS = ("source_file", "title", "author", "url", "date", "note", "defaults", "figures")
FIGURE_KEYS = ("id", "kind", "quotes", "caveats", "note", "date", "reconstruct_command", "record")
_STATED = re.compile(r"^(?P<approx>~)?\s*(?P<num>\d+(?:\.\d+)?)$")
_RESERVED = ("schema_version", "kind", "id", "created_at", "status", "source", "error")


def _plain(value: Any) -> Any:
    """ruamel's commented containers and scalars as plain JSON types."""
    return json.loads(json.dumps(value, default=str))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _date(section: Section, key: str) -> str | None:
    """The stated date as written (ISO: a day, or a day and a time); checked, never completed."""
    text = section.get(key, str, None)
    if text is None:
        return None
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise section.fail(key, f"{short_repr(text)} is not an ISO date such as 2026-02-14 or 2026-02-14T02:17:00Z") \
            from None
    return text


def _figures_as_written(body: dict[str, Any], where: str) -> None:
    """summary.*: a figure written as text ("~94", "22.00") becomes the number, `approx` and its `text`."""
    for name, stat in (body.get("summary") or {}).items():
        if not isinstance(stat, dict):
            continue
        for key in ("stated", "mean", "median"):
            value = stat.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):  # 22.40 would be read as 22.4
                raise CollectorError(f"{where}: summary.{name}.{key}: write the figure as the source does, in "
                                     f"quotes (\"{value}\"), so its digits are kept")
            if not isinstance(value, str):
                continue
            m = _STATED.match(value.strip())
            if not m:
                raise CollectorError(f"{where}: summary.{name}.{key}: {short_repr(value)} is not a figure such as "
                                     "\"94\", \"~94\" or \"21.78\"")
            stat[key] = float(m["num"])
            stat["text"] = value.strip()
            stat["approx"] = bool(m["approx"])


def load_transcription(path: Path) -> list[AnyRecord]:
    """Every figure of the transcription as a validated record (nothing is written)."""
    top = Section(load_yaml_file(path), Path(path), "", what="transcription")
    top.check_keys(TOP_KEYS)
    source_file = top.get("source_file", str)
    title = top.get("title", str, check=lambda s: None if s.strip() else "must name the source's title")
    author = top.get("author", str, None)
    url = top.get("url", str, None)
    top_date = _date(top, "date")
    shared_note = top.get("note", str, "")
    defaults = _plain(top.section("defaults").data)
    stem = Path(source_file).stem
    records: list[AnyRecord] = []
    seen: set[str] = set()
    figures = top.seq("figures")
    for index, raw in enumerate(figures):
        fig = Section(raw, Path(path), f"figures[{index}]", _line(top.data.get("figures"), index), "transcription")
        fig.check_keys(FIGURE_KEYS)
        fid = fig.get("id", str)
        if fid in seen:
            raise fig.fail("id", f"{fid!r} is used twice; figure ids must be unique in a transcription")
        seen.add(fid)
        kind = fig.get("kind", str, check=lambda k: None if k in ("speed", "kld") else "must be speed or kld")
        fig.seq("quotes")  # a figure without the source's own words cannot be reviewed
        body = _plain(fig.section("record").data)
        clash = [k for k in _RESERVED if k in body]
        if clash:
            raise fig.fail("record", f"{', '.join(clash)} is set by the importer; remove it")
        stated = _date(fig, "date") or top_date
        parts = (fig.get("note", str, ""), shared_note)
        note = " ".join(p.strip() if p.strip().endswith((".", ")")) else p.strip() + "." for p in parts if p.strip())
        data = _merge(defaults, body)
        _figures_as_written(data, fig.where("record"))
        command_origin = "printed" if data.get("command") else None
        if fig.get("reconstruct_command", bool, False):
            if data.get("command"):
                raise fig.fail("reconstruct_command", "the figure has a printed command; keep one of the two")
            try:
                config = LlamaConfig(**data.get("config", {}))
            except (TypeError, ValueError) as exc:
                raise fig.fail("record", f"config: {one_line(exc)}") from None
            data["command"] = ["llama-server", "-m", "{model}", *server_args(config)]
            command_origin = "reconstructed"
        data.update(schema_version=1, kind=kind, id=store.new_id(), created_at=store.utc_now().isoformat(),
                    status="ok",
                    source={"type": "imported", "citation": f"{source_file}: {title}", "title": title,
                            "author": author, "url": url, "date": stated, "note": note,
                            "quotes": [str(q) for q in fig.seq("quotes")],
                            "caveats": [str(q) for q in fig.seq("caveats", [])], "command": command_origin,
                            "figure": f"{stem}#{fid}"})
        records.append(store.parse_record(data, f"{fig.where()}: figure {fid}"))
    return records


def _line(seq: Any, index: int) -> int | None:
    try:
        return int(seq.lc.item(index)[0])
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def import_transcription(path: Path, data_dir: Path, force: bool = False) -> tuple[list[Path], list[str]]:
    """Write the transcription's records under data_dir; figures already imported are skipped unless `force`."""
    records = load_transcription(path)
    if not records:
        raise CollectorError(f"{path}: no figures; add at least one under figures:")
    return write_records(records, data_dir, force=force)
