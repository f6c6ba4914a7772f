"""What the pages show of a `collector tune` record: its question in words, the default against the chosen
command, the gain, and (device page) the newest answer per model and question with a chart of its trials.

A tune's speed trials are ordinary speed records (tagged `tune` and `tune:<id>`): they stay in the device's
tables. A trial stopped over the tune's memory budget (error stage `budget`) is a failure by design, shown as
"not measured", never as a crash. Only an ok tune gives a recommendation; a failed one shows its error and steps.
"""

from __future__ import annotations

import re
import shlex
import statistics
from collections.abc import Sequence
from typing import Any

from collector.publish import charts
from collector.publish.pages.files import GeneratedFile, chart_files
from collector.publish.rows.frame import run_page_id
from collector.publish.rows.names import label_of, slug_of
from collector.publish.words.escape import shell_command
from collector.publish.words.links import model_src, run_src
from collector.publish.words.render import DASH, figure_num, figure_text
from collector.records.flags import server_args
from collector.records.pool import all_noisy, quiet_or_all, values_at
from collector.records.schema import TUNE_TAG as TAG
from collector.records.schema import SpeedRecord, Stat, TuneChoice, TuneGain, TuneQuestion, TuneRecord
from collector.records.store import AnyRecord, page_id_of

OBJECTIVE = {"tg": "generation speed (tg)", "pp": "prompt processing speed (pp)"}
STOPPED = {"done": "finished its search", "time budget": "stopped at its time budget",
           "interrupted": "was interrupted"}


def over_budget(rec: AnyRecord) -> bool:
    """A tune's speed trial stopped after its load because it did not fit the tune's memory budget."""
    return (isinstance(rec, SpeedRecord) and rec.status == "failed" and rec.error is not None
            and rec.error.stage == "budget" and TAG in rec.tags)


def tune_of(rec: AnyRecord) -> str | None:
    """The id of the tune a speed trial belongs to (its `tune:<id>` tag)."""
    return next((t.split(":", 1)[1] for t in rec.tags if t.startswith(TAG + ":")), None) \
        if isinstance(rec, SpeedRecord) else None


def _mib(x: float | None) -> str:
    return "unknown" if x is None else f"{x:,.1f} MiB"


def question_text(q: TuneQuestion, file_name: str | None, device: str) -> str:
    """The question a tune answers, in words (plain text: escaped where it is shown)."""
    ctx = ("the largest context that fits the budget" if q.ctx == "max" else f"a context of {q.ctx:,} tokens")
    scope = "host (CPU) memory" if q.memory_scope == "host" else "GPU memory"
    kv = ", ".join(q.kv) if q.kv else "not stated"
    return (f"The fastest llama-server command for {file_name or 'the model'} on {device}, with {ctx}, ranked by "
            f"{OBJECTIVE[q.objective]} at {q.depth:,} filled tokens, with llama.cpp's buffers (model, KV cache, "
            f"compute) in {scope} within {q.memory_budget_mib:,g} MiB (budget from {q.budget_source}); KV cache "
            f"types allowed, in order of preference: {kv}.")


def question_short(q: TuneQuestion) -> str:
    ctx = "largest context that fits" if q.ctx == "max" else f"context {q.ctx:,}"
    return (f"{ctx} · {q.objective} at depth {q.depth:,} · {q.memory_scope} memory budget "
            f"{q.memory_budget_mib:,g} MiB · KV {', '.join(q.kv) or 'not stated'}")


def _fits(c: TuneChoice, budget: float) -> str:
    if c.fits is None:
        return "fit unknown"
    return f"fits the {budget:,g} MiB budget" if c.fits else f"over the {budget:,g} MiB budget"


def _objective(c: TuneChoice, metric: str) -> Stat | None:
    return c.tg_tps if metric == "tg" else c.pp_tps


def _choice(c: TuneChoice, q: TuneQuestion, file_name: str | None, src: str) -> dict[str, Any]:
    like = c.tg_tps.value if c.tg_tps else c.band_low  # the band in the decimals of the figure it is the band of
    band = (f"{figure_num(c.band_low, like)}–{figure_num(c.band_high, like)} t/s"
            if c.band_low is not None and c.band_high is not None else "unknown")
    return {"command": shell_command(c.command, file_name) if c.command else None,
            "flags": shlex.join(server_args(c.config)) or "none (llama.cpp's defaults)",
            "memory": _mib(c.memory_mib), "fits": _fits(c, q.memory_budget_mib), "fits_ok": c.fits, "noisy": c.noisy,
            "tg": c.tg_tps, "pp": c.pp_tps, "band": band,
            "records": [{"id": i, "href": run_src(page_id_of(i))} for i in c.records]}


def gain_text(gain: TuneGain, chosen: TuneChoice, default: TuneChoice, budget: float) -> str:
    """The gain in words: the ratio of medians, the range the 95 % intervals allow, n and spread of both."""
    what = OBJECTIVE[gain.metric]
    both = (f"chosen {figure_text(_objective(chosen, gain.metric), 't/s')}, default "
            f"{figure_text(_objective(default, gain.metric), 't/s')}")
    spread = f"the two medians' 95 % intervals allow {gain.low_pct:+.1f} % to {gain.high_pct:+.1f} %"
    over = (f" The default does not fit the budget ({_mib(default.memory_mib)} of {budget:,g} MiB): the chosen "
            "command is what the search kept within it." if default.fits is False else "")
    if chosen.command == default.command:
        return f"No setting tried beat the default command beyond noise: no change to make ({both})."
    if gain.beyond_noise:
        return f"{gain.pct:+.1f} % {what} against the default ({spread}; {both}): beyond noise.{over}"
    return (f"No measurable gain: {gain.pct:+.1f} % {what} against the default, but {spread}, so the difference is "
            f"within noise ({both}).{over}")


_ID = re.compile(r"(?<![0-9A-Za-z])[0-9A-HJKMNP-TV-Z]{26}(?![0-9A-Za-z])")


def _named(step: str, names: dict[str, str]) -> str:
    """A step of the search with each trial's record id replaced by the trial's configuration, as a reader knows
    it (the trial list links each to its run page)."""
    return _ID.sub(lambda m: f"({names[m.group(0)]})" if m.group(0) in names else "(a trial not in the data)",
                   step)


def tune_run_context(rec: TuneRecord, src: str, device: str,
                     trial_names: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything a tune's run page shows beyond the common facts; `trial_names`: each trial's configuration in
    words, by record id (a trial not in the data is said to be missing)."""
    q = rec.question
    fname = rec.model.file_name
    out: dict[str, Any] = {
        "question": question_text(q, fname, device),
        "time": (f"Time budget {q.time_budget_s:,g} s; the search took "
                 f"{'an unknown time' if rec.seconds is None else f'{rec.seconds:,.0f} s'} and "
                 f"{STOPPED[rec.stopped]}."),
        "steps": [_named(step, trial_names or {}) for step in rec.steps],
        "probes": [{"flags": shlex.join(server_args(p.config)) or "none (llama.cpp's defaults)",
                    "memory": _mib(p.memory_mib),
                    "fits": "load failed" if p.fits is None else ("fits" if p.fits else "over the budget"),
                    "fits_ok": p.fits, "why": p.why or DASH, "error": p.error} for p in rec.probes],
        "trials": [], "answer": None, "rows": [], "objective": q.objective,
    }
    roles: dict[str, list[str]] = {}
    for role, c in (("default", rec.default), ("chosen", rec.chosen)):
        for i in (c.records if c else []):
            roles.setdefault(i, []).append(role)
    names = trial_names or {}
    out["trials"] = [{"name": names.get(i, "a trial whose record is not in the data"), "href": run_src(page_id_of(i)),
                      "roles": roles.get(i, [])} for i in rec.trials]
    if rec.default is not None and rec.chosen is not None:  # a failed tune may hold them: figures, no answer
        out["rows"] = [("default", _choice(rec.default, q, fname, src)),
                       ("chosen" if rec.status == "ok" else "best found", _choice(rec.chosen, q, fname, src))]
    if rec.status == "ok" and rec.chosen is not None and rec.default is not None and rec.gain is not None:
        gain = gain_text(rec.gain, rec.chosen, rec.default, q.memory_budget_mib)
        out["answer"] = {"command": shell_command(rec.command, fname), "gain": gain,
                         "beyond_noise": rec.gain.beyond_noise}
    return out


def _question_key(rec: TuneRecord) -> tuple[Any, ...]:
    q = rec.question
    return (slug_of(rec), rec.model.sha256, q.ctx, q.depth, q.memory_budget_mib, q.memory_scope, tuple(q.kv),
            q.objective)


def newest_ok_tunes(records: Sequence[AnyRecord]) -> list[TuneRecord]:
    """The newest ok tune per model and question, by model name then newest first."""
    best: dict[tuple[Any, ...], TuneRecord] = {}
    for r in sorted((r for r in records if isinstance(r, TuneRecord) and r.status == "ok"
                     and not (r.chosen and r.chosen.noisy)),  # figures only on a busy host: never recommended
                    key=lambda r: (r.created_at, r.id)):
        best[_question_key(r)] = r
    return sorted(best.values(), key=lambda r: (label_of(r), -r.created_at.timestamp(), r.id))


def _spot(memory: float | None, values: list[float], noisy: bool) -> charts.Spot | None:
    if memory is None or not values:
        return None
    return charts.Spot(memory, statistics.median(values), min(values), max(values), noisy)


def _stat_spot(memory: float | None, stat: Stat | None) -> charts.Spot | None:
    if memory is None or stat is None:
        return None
    return charts.Spot(memory, stat.value, stat.min, stat.max)


def tuned_section(device: str, src: str,
                  records: Sequence[AnyRecord]) -> tuple[list[dict[str, Any]], list[GeneratedFile]]:
    """The device page's "Tuned for this device": per model and question the newest ok tune, its command, its gain
    and a chart of its trials (speed against memory)."""
    by_id = {r.id: r for r in records}
    items: list[dict[str, Any]] = []
    files: list[GeneratedFile] = []
    for rec in newest_ok_tunes(records):
        q = rec.question
        assert rec.chosen is not None and rec.default is not None and rec.gain is not None  # ok: validated
        what = f"{q.objective}_tps"
        groups: dict[str, list[SpeedRecord]] = {}
        not_measured: list[float] = []
        unplaced = missing = 0
        for tid in dict.fromkeys(rec.trials):
            t = by_id.get(tid)
            if not isinstance(t, SpeedRecord):
                missing += 1
                continue
            if t.status == "ok":
                groups.setdefault(t.config.model_dump_json(), []).append(t)
                continue
            mib = t.memory_mib.used_mib(q.memory_scope)
            if mib is None:
                unplaced += 1
            else:
                not_measured.append(mib)
        spots = []
        for key in (rec.default.config.model_dump_json(), rec.chosen.config.model_dump_json()):
            groups.pop(key, None)  # drawn as the default and the chosen, over their own records
        for recs in groups.values():  # pooled as the tune pools them
            spot = _spot(recs[-1].memory_mib.used_mib(q.memory_scope), values_at(quiet_or_all(recs), q.depth, what),
                         all_noisy(recs))
            if spot is None:
                unplaced += 1
            else:
                spots.append(spot)
        probes = [p.memory_mib for p in rec.probes if p.memory_mib is not None]
        stat = "tg_tps" if q.objective == "tg" else "pp_tps"
        default = _stat_spot(rec.default.memory_mib, getattr(rec.default, stat))
        chosen = _stat_spot(rec.chosen.memory_mib, getattr(rec.chosen, stat))
        page = run_page_id(rec)
        base = f"charts/devices/{device}-tune-{page}"
        ylabel = f"{q.objective} t/s at depth {q.depth:,}"
        xlabel = f"llama.cpp's buffers in {q.memory_scope} memory (MiB)"
        files += chart_files(base, charts.tune_chart(xlabel, ylabel, q.memory_budget_mib,
                                                     spots, default, chosen, not_measured, probes))
        left = []
        if unplaced:
            left.append(f"{unplaced} trial configuration(s) with no memory or no sample at the depth are not drawn")
        if missing:
            left.append(f"{missing} trial record(s) are not in the data")
        if default is None:
            left.append("the default is not drawn (its memory or speed is unknown)")
        alt = (f"Scatter of {OBJECTIVE[q.objective]} against memory for {len(spots)} measured trial "
               f"configuration(s), memory budget {q.memory_budget_mib:g} MiB; default "
               f"{_spot_text(default)}; chosen {_spot_text(chosen)}; {len(not_measured)} trial(s) over the budget, "
               f"not measured; {len(probes)} probe(s).")
        chosen_fig = _objective(rec.chosen, q.objective)
        items.append({
            "name": label_of(rec), "model_href": model_src(slug_of(rec)),
            "file": rec.model.file_name, "question": question_short(q),
            "command": shell_command(rec.command, rec.model.file_name),
            "gain": gain_text(rec.gain, rec.chosen, rec.default, q.memory_budget_mib),
            "beyond_noise": rec.gain.beyond_noise,
            "chosen": chosen_fig, "memory": _mib(rec.chosen.memory_mib), "fits": _fits(rec.chosen,
                                                                                     q.memory_budget_mib),
            "href": run_src(page), "date": rec.created_at.strftime("%Y-%m-%d"), "build": rec.llama_cpp.version,
            "n_trials": len(rec.trials), "n_probes": len(rec.probes), "chart": base, "alt": alt,
            "left": "; ".join(left)})
    return items, files


def _spot_text(s: charts.Spot | None) -> str:
    return "not drawn" if s is None else f"{figure_num(s.y)} t/s at {s.x:,.1f} MiB"
