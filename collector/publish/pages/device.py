"""One page per device (a GPU set, or a CPU for CPU-only runs): what it is, what to run on it, what fits,
every configuration, charts, and the KLD measured on it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from markupsafe import Markup

from collector.base.stats import separate
from collector.publish import charts
from collector.publish.answers.cards import CROWD
from collector.publish.answers.fits import spill
from collector.publish.answers.picks import KEEP_SPEED, KLD_BUDGET, NoKld, Pick, kld_row_interval, recommend
from collector.publish.pages.answer_cards import device_answers
from collector.publish.pages.fast_faithful import answer
from collector.publish.pages.files import GeneratedFile, chart_files
from collector.publish.pages.hardware import hardware
from collector.publish.pages.history import history_pages
from collector.publish.pages.sweeps import clients_chart, clients_series, clients_table, kv_context_chart
from collector.publish.pages.tune import over_budget, tuned_section
from collector.publish.rows.devices import NOT_STATED, SiteDevice, site_device
from collector.publish.rows.frame import KldRow, Row, bandwidth_gbps, quant_of, run_page_id
from collector.publish.rows.keys import ConfigKey
from collector.publish.rows.names import group_label, label_of
from collector.publish.words.facts import date_text, kv_text, moe_text, quote_of, size_text
from collector.publish.words.gguf_links import download_link
from collector.publish.words.labels import config_summary, labels, quant_facts, runnable_command
from collector.publish.words.links import front_matter, model_src, run_src
from collector.publish.words.reasons import missing as missing_text
from collector.publish.words.reasons import note, separation_text, spill_text, tie_context, title, why
from collector.publish.words.render import PICKER_COUNTS, figure_num, figure_text, mib, num, render
from collector.records.schema import KldRecord, SpeedRecord
from collector.records.store import AnyRecord


def _command(row: Row) -> dict[str, Any]:
    cmd = runnable_command(row.rec)
    if cmd is None:
        why = ("the source prints no command and states no flags to rebuild one from" if row.imported else
               "the record has no command")
        return {"text": None, "why": why}
    origin = {"measured": "the command this run was measured with",
              "printed": "the command as the source prints it",
              "reconstructed": "reconstructed from the flags the source states (it prints no command)"}[cmd.origin]
    return {"text": cmd.text, "origin": origin, "notes": cmd.notes, "printed": cmd.printed}


def _memory(row: Row) -> str:
    rec = row.rec
    m = rec.memory_mib
    parts = []
    if m.vram_peak:
        parts.append(f"VRAM {mib(sum(m.vram_peak))} peak" + (f" ({' + '.join(mib(v) for v in m.vram_peak)})"
                                                             if len(m.vram_peak) > 1 else ""))
    elif m.vram_used_stated:
        parts.append("VRAM " + " + ".join(f"{v:g}" for v in m.vram_used_stated) + f" {m.vram_unit or ''}".rstrip()
                     + " (as stated)")
    if m.host_rss_peak:
        parts.append(f"RAM {mib(m.host_rss_peak)} peak (llama-server)")
    if m.kv_cache is not None:
        parts.append(f"KV cache {num(m.kv_cache)} MiB")
    return " · ".join(parts) or "not measured"


def _layers(row: Row) -> str:
    p = row.rec.placement
    if p.gpu_layers is not None and p.total_layers:
        text = f"{p.gpu_layers}/{p.total_layers} on the GPU"
    elif p.gpu_layers is not None:
        text = f"{p.gpu_layers} on the GPU"
    elif not row.rec.host.gpus:
        text = "CPU only"
    else:
        text = "not stated" if row.imported else "not logged"
    if p.cpu_moe_layers:
        text += f", experts of {p.cpu_moe_layers} on the CPU"
    if p.cpu_layers is not None:
        text = (f"{p.cpu_layers} in system RAM" + (" (as stated)" if row.imported else "") if text.startswith(
            ("not stated", "not logged")) else f"{text}, {p.cpu_layers} in system RAM")
    return text


def row_context(src: str, row: Row, label: str) -> dict[str, Any]:
    """Everything a table row or a pick shows about one configuration."""
    rec = row.rec
    bw = bandwidth_gbps(rec.host.gpus)
    bpt = rec.model.bytes_per_token
    eff = row.tg.value * bpt / (bw * 1e9) * 100 if (row.tg and bpt and bw) else None
    k = row.kld
    over = [r for r in row.records if over_budget(r)]  # a tune's trial over its memory budget: not measured
    crashed = [r for r in row.records if r.status == "failed" and not over_budget(r)]
    failed = crashed or over
    return {
        "row": row, "rec": rec, "label": label, "config": config_summary(rec), "quant": quant_of(rec),
        "model_name": label_of(rec), "model_href": model_src(row.model),
        "run_href": run_src(row.page_id), "runs": [run_src(run_page_id(r)) for r in row.records],
        "n_runs": len(row.records), "n_failed": len(crashed), "n_over": len(over),
        "over_budget": row.status == "failed" and not crashed,
        "error": f"{failed[-1].error.stage}: {failed[-1].error.message}" if failed and failed[-1].error else None,
        "status": row.status, "noisy": row.noisy,
        "noisy_why": "; ".join(row.rec.conditions.reasons) if row.noisy and row.rec.conditions else "",
        "imported": row.imported, "citation": rec.source.citation, "url": rec.source.url, "runtime": rec.source.runtime,
        "quote": quote_of(row), "date": date_text(rec), "build": rec.llama_cpp.version or "build not stated",
        "ctx": rec.config.ctx_size, "kv": kv_text(row), "layers": _layers(row), "memory": _memory(row),
        "size": size_text(rec), "moe": moe_text(rec), "qf": quant_facts(rec.model), "eff": eff,
        "depth_text": ("depth not stated" if row.tg_depth is None else f"at depth {row.tg_depth:,}"),
        "kld": k, "kld_text": _kld_text(row), "warnings": rec.warnings,
        "command": _command(row), "spill": spill_text(spill(rec)), "download": download_link(rec),
        "also": [{"fig": a.tg, "quote": quote_of(a), "href": run_src(a.page_id)} for a in row.also],
        "repeated": [{"citation": x.rec.source.citation, "href": run_src(x.page_id), "url": x.rec.source.url,
                      "build": x.rec.llama_cpp.version} for x in row.repeated],
    }


def _kld_text(row: Row) -> str:
    k = row.kld
    if not k:
        return "no KLD known for this file (none measured here, none published that names it)"
    return f"{num(k.kld_mean, 4)}" + (f" ± {num(k.kld_mean_unc, 2)}" if k.kld_mean_unc else "") + \
        f" ({kld_origin(row)})"


def kld_origin(row: Row) -> str:
    """Where a joined KLD comes from: its corpus, the device it was measured on, the source, and the join used."""
    k = row.kld
    assert k is not None
    where = ("measured on this device" if k.device == row.device else "measured on a device the source does not "
             "state" if k.device == NOT_STATED else f"measured on {k.device_label}")
    text = f"against {k.reference or 'a base not stated'}, corpus {k.corpus or 'unknown'}; {where}"
    text += f", imported from {k.citation}" if k.imported else " by the collector"
    text += "; the same file (sha256)" if row.kld_join == "sha256" else f"; joined by {row.kld_join}"
    return text + (f"; {row.kld_note}" if row.kld_note else "")


def _picks(src: str, rows: list[Row], labelled: dict[ConfigKey, str], klds: list[KldRow]) -> list[dict[str, Any]]:
    """Per model: the picks (with their rows' context) and why any pick is missing."""
    by_model: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_model[r.model].append(r)
    out = []
    for model, group in sorted(by_model.items()):
        picks, missing = recommend(group)
        other = tuple(sorted({k.quant for k in klds if k.model == model and k.status == "ok"}))
        if other:  # KLD exists for this model, but for other files than the ones whose speed was measured
            missing = [NoKld(other) if isinstance(m, NoKld) else m for m in missing]
        out.append({"name": group_label(r.rec for r in group), "model_href": model_src(model),
                    "picks": _same_as([_pick_context(src, p, labelled) for p in picks]),
                    "missing": [missing_text(m) for m in missing], "n_configs": len(group)})
    return out


def _context_picks(src: str, rows: list[Row], labelled: dict[ConfigKey, str]) -> list[dict[str, Any]]:
    """Per model (measured and imported figures apart): the largest-context pick, where there is one."""
    out = []
    for group in (r for r in rows if not r.imported), (r for r in rows if r.imported):
        for m in _picks(src, list(group), labelled, []):
            picks = [p for p in m["picks"] if p["kind"] == "context"]
            for p in picks:
                p["title"] = f"{p['title']}: {m['name']}"
                p["same_as"] = None
            missing = [w for w in m["missing"] if w.startswith("No largest-context pick")]
            if picks or missing:
                out.append({"name": m["name"], "picks": picks, "missing": missing})
    return out


def _same_as(picks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A pick that is the same configuration as an earlier one names it instead of repeating its command."""
    first: dict[ConfigKey, str] = {}
    for p in picks:
        key = p["ctx"]["row"].key
        p["same_as"] = first.get(key)
        first.setdefault(key, p["title"].split(" (")[0])
    return picks


def _pick_context(src: str, pick: Pick, labelled: dict[ConfigKey, str]) -> dict[str, Any]:
    return {"kind": pick.kind, "title": title(pick), "why": why(pick.reason), "notes": [note(n) for n in pick.notes],
            "ctx": row_context(src, pick.row, labelled[pick.row.key]),
            "ties": [{"label": labelled[t.row.key], "tg": t.row.tg, "href": run_src(t.row.page_id),
                      "kld": t.row.kld.kld_mean if t.row.kld else None, **tie_context(pick, t)} for t in pick.ties]}


def _kld_only_picks(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most faithful per model on a device that has KLD figures but no speed run (`table`: its KLD table's rows),
    with the candidates the one tie rule cannot tell from it (KLD ± its uncertainty)."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in table:
        if d["row"].status == "ok" and d["row"].kld_mean is not None:
            by_model[d["row"].model].append(d)
    out = []
    for model, group in sorted(by_model.items()):
        keys = [d["row"].corpus_key for d in group]
        corpus = max(set(keys), key=keys.count)
        same = sorted([d for d in group if d["row"].corpus_key == corpus], key=lambda d: d["row"].kld_mean)
        best = same[0]
        a = kld_row_interval(best["row"])
        ties = []
        for d in same[1:]:
            b = kld_row_interval(d["row"])
            sep = separate(a, b)
            if not sep.apart:
                ties.append({**d, "tie": {"text": separation_text(sep, a, b, "kld"), "rule": sep.why, "a": a.value,
                                          "a_lo": a.low, "a_hi": a.high, "b": b.value, "b_lo": b.low,
                                          "b_hi": b.high, "step": sep.step_pct}})
        out.append({"name": best["row"].model_name, "model_href": model_src(model), "best": best, "n": len(same),
                    "ties": ties, "corpus": best["row"].corpus})
    return out


def _charts(device: str, src: str, rows: list[Row], labelled: dict[ConfigKey, str]) -> tuple[list[dict[str, Any]],
                                                                                        list[GeneratedFile]]:
    out: list[dict[str, Any]] = []
    files: list[GeneratedFile] = []
    base = f"charts/devices/{device}"
    with_tg = [r for r in rows if r.status == "ok" and r.tg is not None and "tg" not in r.held]  # never a held bar
    if with_tg:
        bars = [charts.Bar(labelled[r.key], f.value, f.min if f.has_spread else None, f.max if f.has_spread else None,
                           r.imported) for r in with_tg if (f := r.tg) is not None]
        panels = [("generation speed, t/s (headline depth)", bars)]
        with_vram = [r for r in with_tg if r.rec.memory_mib.vram_peak]
        if with_vram and len(with_vram) == len(with_tg):
            panels.append(("peak VRAM, GiB", [charts.Bar(labelled[r.key], sum(r.rec.memory_mib.vram_peak or [])
                                                         / 1024) for r in with_tg]))
        files += chart_files(f"{base}-tg", charts.bar_chart(panels))
        top = sorted(with_tg, key=lambda r: -r.tg.value)[:5]  # type: ignore[union-attr]
        alt = "Bar chart of generation speed per configuration: " + "; ".join(
            f"{labelled[r.key]}: {figure_text(r.tg, 't/s')}" for r in top) + (
            f"; and {len(with_tg) - 5} more" if len(with_tg) > 5 else "")
        out.append({"title": "Generation speed per configuration",
                    "text": f"The {charts.MAX_BARS} fastest configurations at most, at their headline depth; the "
                            "whiskers span the samples' range; imported figures are orange. The tables have every "
                            "configuration.", "base": f"{base}-tg", "alt": alt})
    multi = sorted([r for r in with_tg if len(r.depths) > 1],
                   key=lambda r: -r.tg.value)[:charts.MAX_LINES]  # type: ignore[union-attr]
    for what, name, unit_text in (("tg", "generation speed", "Generation"), ("pp", "prompt processing", "Prompt")):
        series = []
        for r in multi:
            ds = [d for d in r.depths if what in r.depths[d]]
            figs = [r.depths[d][what] for d in ds]
            if len(ds) > 1:
                series.append((labelled[r.key], ds, [f.value for f in figs],
                               [f.min if f.min is not None else f.value for f in figs],
                               [f.max if f.max is not None else f.value for f in figs]))
        if not series:
            continue
        chart_base = f"{base}-depth" if what == "tg" else f"{base}-depth-{what}"
        files += chart_files(chart_base, charts.line_chart(series,
                                                           "filled context depth (tokens)", f"{name} (t/s)"))
        alt = f"Line chart of {name} against filled context depth: " + "; ".join(
            f"{s[0]}: " + ", ".join(f"{figure_num(y)} t/s at {x}" for x, y in zip(s[1], s[2])) for s in series)
        out.append({"title": f"{unit_text} speed against filled context depth",
                    "text": "Depth is context actually filled with tokens before the prompt, not the allocated "
                            "ctx. The band spans the samples' range.", "base": chart_base, "alt": alt})
    return out, files


def _kld_rows(klds: list[KldRow]) -> list[dict[str, Any]]:
    out = []
    for k in sorted(klds, key=lambda k: (k.model, k.kld_mean if k.kld_mean is not None else 9e9)):
        rec: KldRecord = k.rec
        kv = ("not stated" if k.ctk is None and k.ctv is None else
              f"{k.ctk or 'not stated'}/{k.ctv or 'not stated'}" + (" (default)" if k.kv_default else ""))
        out.append({**vars(k), "row": k, "kv": kv, "run_href": run_src(k.page_id), "model_href": model_src(k.model),
                    "qf": quant_facts(rec.model), "size": size_text(rec), "citation": rec.source.citation,
                    "date": date_text(rec)})
    return out


def device_page(device: str, rows: list[Row], klds: list[KldRow],
                device_records: list[AnyRecord], estimates: Callable[[bool], str] = lambda fold: "",
                all_klds: list[KldRow] | None = None) -> list[GeneratedFile]:
    """The device's Markdown page and its chart files; `estimates(fold)`: its estimate section
    (collector.publish.pages.estimates), placed after what was measured to fit, its tables folded below answer
    cards and open where the page has none; `all_klds`: the KLD rows of the site's for the models of `rows` (what is
    known of a model's other files, wherever measured; others are not read), default this device's."""
    src = f"devices/{device}.md"
    speed_recs = [r for r in device_records if isinstance(r, SpeedRecord)]
    dev = site_device((speed_recs or device_records)[-1].host)
    label = dev.label
    labelled = dict(zip([r.key for r in rows], labels(rows))) if rows else {}
    measured = [r for r in rows if not r.imported]
    imported = [r for r in rows if r.imported]
    table = [row_context(src, r, labelled[r.key]) for r in
             sorted(rows, key=lambda r: (label_of(r.rec), -(r.value() or -1.0), r.page_id))]
    if rows and not klds and all(r.imported and not r.rec.command and not r.kld for r in rows) and \
            all(isinstance(r, SpeedRecord) for r in device_records):  # crowd results only: nothing to launch
        text = render("device_crowd.md.j2", src=src, label=label, hw=hardware(device_records, dev), table=table,
                      n_records=len(speed_recs), estimates=Markup(estimates(False)), gpu=_picker_gpu(dev))
        return [GeneratedFile(src, front_matter(label, wide=True) + text)]
    cards = device_answers(rows, src)
    crowd_models = {a["model"] for a in cards if a["tier"] == CROWD}
    crowd = [c for c in table if c["row"].model in crowd_models]
    depths = sorted({d for r in rows for d in r.depths})
    chart_list, files = _charts(device, src, rows, labelled)
    series = clients_series(rows, labelled)
    clients_charts, clients_files = clients_chart(device, series)
    kld_charts, kld_files = kv_context_chart(device, klds)
    chart_list += clients_charts
    files += clients_files + kld_files
    history, history_files = history_pages(device, speed_recs)
    files += history_files
    tuned, tuned_files = tuned_section(device, src, device_records)
    files += tuned_files
    answers: list[dict[str, Any]] = []
    for group in (measured, imported):
        by_model: dict[str, list[Row]] = defaultdict(list)
        for r in group:
            by_model[r.model].append(r)
        for model in sorted(by_model):
            got, answer_files = answer(device, len(answers), by_model[model], labelled, kld_origin)
            if got:
                answers.append(got)
                files += answer_files
    only_kld = not rows and bool(klds)
    kld_table = _kld_rows(klds)
    text = render("device.md.j2", src=src, title=label, label=label, hw=hardware(device_records, dev),
                  imported_only=bool(rows) and not measured, kld_only=only_kld, n_configs=len(rows),
                  n_records=len(speed_recs), context_picks=_context_picks(src, measured + imported, labelled),
                  table=table, depths=depths,
                  fits=_fits(table), charts=chart_list, klds=kld_table, clients=clients_table(src, series),
                  kld_charts=kld_charts, history=history, tuned=tuned,
                  kld_picks=_kld_only_picks(kld_table) if only_kld else [], kld_budget=KLD_BUDGET, keep=KEEP_SPEED,
                  answers=answers, no_kld=_no_kld(rows, klds if all_klds is None else all_klds),
                  estimates=Markup(estimates(True)), cards=[a for a in cards if a["tier"] != CROWD], crowd=crowd,
                  gpu=_picker_gpu(dev))
    return [GeneratedFile(src, front_matter(label, wide=True) + text), *files]


def _picker_gpu(dev: SiteDevice) -> tuple[str, int]:
    """What the page's picker starts with: the GPU as the picker lists it and how many (a set of one catalog GPU:
    that GPU and the set's count, as a reader would choose them; a mixed set: its own name, one; a CPU: nothing)."""
    if len(dev.catalog) == 1 and dev.count in PICKER_COUNTS:
        return dev.catalog[0].name, dev.count
    return (dev.label, 1) if dev.gpu else ("", 1)


def _no_kld(rows: list[Row], klds: list[KldRow]) -> list[dict[str, Any]]:
    """Models with speed on this device and no KLD known for any of their files: what is known instead."""
    out = []
    by_model: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_model[r.model].append(r)
    for model, group in sorted(by_model.items()):
        if any(r.kld for r in group):
            continue
        quants = sorted({quant_of(r.rec) for r in group})
        out.append({"name": group_label(r.rec for r in group), "model_href": model_src(model), "quants": quants,
                    "other": sorted({k.quant for k in klds if k.model == model and k.status == "ok"
                                     and not k.kv_variant} - set(quants))})
    return out


def _fits(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What fits on this device: one line per model, quant, context and KV type, with the outcome."""
    out = []
    for c in table:
        if c["noisy"]:
            continue
        outcome = ("runs" if c["status"] == "ok" else
                   "not measured: over a tune's memory budget" if c["over_budget"]
                   else f"failed: {c['error'] or 'see the run'}")
        out.append({**c, "outcome": outcome})
    return out


__all__ = ["device_page", "row_context"]
