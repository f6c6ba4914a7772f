"""The answer to "my GPU, this model": one card per file (quant) that ran there, as decisions over rows.

For one device and one model: per file, the configuration that stands for it (the fastest quiet configuration the
judge lets through, measured and stated apart: a measured one first), its speed at its headline depth, the context
it ran with (as stated where a source states it), how the reader launches it (the command measured, printed by the
source, rebuilt from the flags it states, or derived from llama-bench's settings: that starts no server, so a
llama-server command is given from the same settings, said so), its KLD and against what, and whether it fit (the
placement llama.cpp logged or the source states). Figures the judge holds back never stand for a file.

Models on a device are ordered by what a reader of that page most likely came for: the models of its own measured
runs first, then the setups a source states with a command or flags (the posts), then llama-bench tables, then crowd
results (LocalScore), which state no command: those are listed compactly, not as cards.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from collector.base.stats import separate
from collector.publish.answers.picks import usable
from collector.publish.rows.frame import Row, quant_of
from collector.records.flags import server_args
from collector.records.schema import SpeedRecord, Stat

# what kind of evidence a model's figures on a device are, most wanted first
MEASURED, STATED, BENCH, CROWD = "measured", "stated", "llama-bench", "crowd"
TIERS = (MEASURED, STATED, BENCH, CROWD)


@dataclass(frozen=True)
class Launch:
    """How to launch the file: `argv` (llama-server, {model} for the file) and where it comes from."""

    argv: tuple[str, ...]
    origin: str  # measured | printed | reconstructed | from-bench | none
    why_none: str | None = None


@dataclass
class Card:
    """One file (quant) of one model on one device."""

    row: Row  # the configuration that stands for the file
    tier: str
    tg: Stat | None
    pp: Stat | None
    depth: int | None  # the filled depth of tg/pp (None: not stated)
    test: str | None  # llama-bench's test of the figure ("tg 512"), where the figure is one
    ctx: int | None
    ctx_stated: bool  # the context is as a source states it
    ctx_words: str | None  # a context a source words without a size ("128K")
    launch: Launch
    others: int = 0  # further configurations of this file on the device (the tables have them)
    also: list[Stat] = field(default_factory=list)  # the source's other figures of the same configuration
    siblings: list[Row] = field(default_factory=list)  # the file's other usable configurations on the device
    held: list[str] = field(default_factory=list)  # figures of this file the judge holds back, with why
    pp_row: Row | None = None  # where pp comes from when not the row's own: the same run's pp test (its record)


@dataclass
class ModelAnswer:
    model: str  # slug
    tier: str
    cards: list[Card]
    rows: list[Row]  # every row of the model on the device


def tier_of(row: Row) -> str:
    if not row.imported:
        return MEASURED
    src = row.rec.source
    if src.tool == "LocalScore" or src.runtime == "llamafile (LocalScore)":
        return CROWD
    if src.tool == "llama-bench" or (src.raw or {}).get("cells"):
        return BENCH
    return STATED


def launch_of(row: Row) -> Launch:
    rec: SpeedRecord = row.rec
    argv = list(rec.command)
    if argv and argv[0].rsplit("/", 1)[-1] == "llama-server":
        origin = "measured" if not row.imported else (rec.source.command or "printed")
        return Launch(tuple(argv), origin)
    if argv and argv[0].rsplit("/", 1)[-1] == "llama-bench":
        return Launch(("llama-server", "-m", "{model}", *server_args(rec.config)), "from-bench")
    if row.imported:
        return Launch((), "none", "the source prints no command and states no flags to rebuild one from")
    return Launch((), "none", "the record has no command")


def _test(row: Row) -> str | None:
    cells = (row.rec.source.raw or {}).get("cells")
    if isinstance(cells, dict) and cells.get("test"):
        return str(cells["test"])
    return None


# what differs between the tests of one llama-bench run in its JSON output (one object per test)
_PER_TEST = frozenset({"n_prompt", "n_gen", "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns",
                       "samples_ts"})


def _bench_run(row: Row) -> tuple[object, ...] | None:
    """The llama-bench run a row is one test of: in a markdown table, the same kept table (file and header line)
    and every cell but the test and its rate (model, size, backend, the settings columns); in JSON output, every
    field but the test's own (its prompt and generation sizes, time and rates). None: not a test of a run."""
    raw = row.rec.source.raw or {}
    cells, header = raw.get("cells"), raw.get("header_line")
    wrapped = raw.get("object")
    bench = wrapped.get("bench_raw") if isinstance(wrapped, dict) else raw if "avg_ts" in raw else None
    if isinstance(cells, dict) and header is not None:
        run = tuple(sorted((str(k), str(v)) for k, v in cells.items() if k not in ("test", "t/s")))
    elif isinstance(bench, dict):
        run = tuple(sorted((str(k), str(v)) for k, v in bench.items() if k not in _PER_TEST))
    else:
        return None
    figure = (row.rec.source.figure or "").split("#")[0].rsplit(":", 1)[0]
    return row.rec.source.url, figure, header, row.tg_depth, run


def _pp_of_run(best: Row, rows: list[Row]) -> Row | None:
    """For a table's tg row: the same run's pp test at the same depth (llama-bench prints each test on a row of its
    own, imported as a record of its own; a llama-sweep-bench row is one pp and one tg record of the same cells),
    pp512 (llama-bench's default) before the table's first other; None when the table has none or the judge holds
    it."""
    run = _bench_run(best)
    if run is None:
        return None
    found = [r for row in rows for r in (row, *row.also) if r.pp is not None and "pp" not in r.held
             and r.tg is None and _bench_run(r) == run]
    return min(found, key=lambda r: (test_of(r) not in ("pp512", "pp 512"), (r.rec.source.raw or {}).get("line", 0)),
               default=None)


def test_of(row: Row) -> str | None:
    """A tool's test of the row: the table's test cell, else the record's sample category ("pp512 @ d4096")."""
    return _test(row) or (row.rec.samples[0].category if row.rec.samples else None)


def _actionable(row: Row) -> tuple[bool, bool]:
    """Whether a reader can act on the row: it has a command, and a context (a size, or as a source words it)."""
    return bool(row.rec.command), row.rec.config.ctx_size is not None or row.rec.ctx_stated is not None


def _card(rows: list[Row]) -> Card:
    """The card of one file: its fastest usable configuration, measured before stated; among the configurations
    the data cannot tell from that fastest one (stats.separate), the one with a command and a stated context. A
    post's figures are of its own tests (one agentic task, a six-test average), which do not race each other: there
    the setup a reader can launch (a command, a stated context) stands for the file, the fastest of those."""
    ok = sorted(usable(rows), key=lambda r: r.imported)
    if ok and tier_of(ok[0]) == STATED:
        best = max(ok, key=lambda r: (_actionable(r), r.value() or 0.0))
    elif ok:
        fastest = ok[0]
        a = fastest.interval("tg")
        close = [r for r in ok if r.imported == fastest.imported and a is not None
                 and (b := r.interval("tg")) is not None and not separate(a, b).apart]
        best = max(close or [fastest], key=lambda r: (_actionable(r), r is fastest))
    else:
        best = max(rows, key=lambda r: (r.status == "ok", r.rec.created_at))
    pp_row = _pp_of_run(best, rows) if best.pp is None and best.tg is not None else None
    pp = pp_row.pp if pp_row is not None else best.pp if "pp" not in best.held else None
    return Card(best, tier_of(best), best.tg if "tg" not in best.held else None,
                pp, best.tg_depth, _test(best), best.rec.config.ctx_size,
                best.imported and best.rec.config.ctx_size is not None, best.rec.ctx_stated, launch_of(best),
                others=len(rows) - 1, also=[a.tg for a in best.also if a.tg is not None],
                siblings=[r for r in usable(rows) if r is not best],
                held=[f"{k}: {v.reason}" for r in rows for k, v in r.held.items()], pp_row=pp_row)


def model_answers(rows: list[Row]) -> list[ModelAnswer]:
    """One answer per model of these rows (one device), ordered by tier then by the model's best speed."""
    by_model: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_model[r.model].append(r)
    out = []
    for model, group in by_model.items():
        by_file: dict[str, list[Row]] = defaultdict(list)
        for r in group:
            by_file[r.rec.model.sha256 or f"{quant_of(r.rec)}|{r.rec.model.file_name}|{r.rec.model.repo}"].append(r)
        cards = sorted((_card(v) for v in by_file.values()),
                       key=lambda c: (TIERS.index(c.tier), -(c.tg.value if c.tg else -1.0), quant_of(c.row.rec)))
        tier = min((c.tier for c in cards), key=TIERS.index)
        out.append(ModelAnswer(model, tier, cards, group))
    return sorted(out, key=lambda a: (TIERS.index(a.tier), -len(a.cards), a.model))
