"""Answer cards in words: what a device page leads with, and what answers/*.json holds for the question-first
picker (assets/quant-atlas/answer.js renders the same dicts in the browser, as text).

Every figure says where it comes from: **measured here** (by the collector), **stated by** a named source (with its
runtime), **estimated** (with its range), or **not known**; nothing is defaulted.
"""

from __future__ import annotations

import json
from typing import Any

from collector.catalog import default as default_catalog
from collector.publish.answers.cards import (
    BENCH,
    CROWD,
    MEASURED,
    STATED,
    Card,
    ModelAnswer,
    model_answers,
    test_of,
)
from collector.publish.answers.fits import spill
from collector.publish.pages.device_index import device_rows
from collector.publish.pages.files import GeneratedFile
from collector.publish.rows.frame import Frames, Row, quant_of
from collector.publish.rows.names import group_label
from collector.publish.words.escape import shell_command
from collector.publish.words.facts import date_text, kv_text, moe_text, quote_of
from collector.publish.words.gguf_links import download_link
from collector.publish.words.labels import config_parts, config_summary, runnable_command
from collector.publish.words.links import device_src, href, model_src, run_src
from collector.publish.words.reasons import spill_text
from collector.publish.words.render import figure_detail, figure_value, mib
from collector.records.store import page_id_of

TIER_WORDS = {MEASURED: "measured here", STATED: "stated by its source", BENCH: "llama-bench table",
              CROWD: "crowd results"}
LAUNCH_WORDS = {
    "measured": "the command this run was measured with",
    "printed": "the command as the source prints it",
    "reconstructed": "rebuilt from the flags the source states (it prints no command)",
    "from-bench": "derived from the llama-bench settings of this figure: the source ran llama-bench, which starts "
                  "no server; this llama-server command uses the same settings",
}


def _figure(stat: Any, unit: str, runs: int = 1) -> dict[str, str] | None:
    if stat is None:
        return None
    pooled = f" over {runs} runs of this configuration" if runs > 1 else ""
    return {"value": f"{figure_value(stat)} {unit}", "detail": figure_detail(stat) + pooled}


def _size(row: Row) -> tuple[str, float | None]:
    m = row.rec.model
    if m.size_bytes:
        return f"{m.size_bytes / 1e9:.2f} GB", m.size_bytes / 1e9
    return (f"{m.size_stated} (as stated)", None) if m.size_stated else ("size not stated", None)


def _ctx(card: Card) -> str:
    if card.ctx is None:
        if card.ctx_words:
            return f"{card.ctx_words} (as stated; no -c value given)"
        return "not stated" if card.row.imported else "llama.cpp's default"
    return f"{card.ctx:,} tokens" + (" (as stated)" if card.ctx_stated else "")


def _setup_of(row: Row, card: Row) -> str:
    """What tells one of a file's other setups from the card's: a llama-bench row's test (a sweep-bench row's, with
    its depth), else its context; then its backend, build and the settings it states that the card's configuration
    does not ("tg128 (SYCL · split mode none)")."""
    test = test_of(row) if (row.rec.source.raw or {}).get("cells") or row.rec.source.tool in (
        "llama-bench", "llama-sweep-bench") else None
    if test:
        what = test
    else:
        c = row.rec.config.ctx_size
        what = f"ctx {c:,}" if c is not None else (f"ctx {row.rec.ctx_stated}" if row.rec.ctx_stated else
                                                     "ctx not stated")
    mine_cpp, card_cpp = row.rec.llama_cpp, card.rec.llama_cpp
    differ = [x for x, y in ((mine_cpp.backend, card_cpp.backend), (mine_cpp.version, card_cpp.version))
              if x and x != y]
    theirs = set(config_parts(card.rec) or [config_summary(card.rec)])  # none: "llama.cpp defaults" / "no flags"
    differ += [p for p in config_parts(row.rec) or [config_summary(row.rec)]
               if p not in theirs and not p.startswith(("ctx ", "no flags"))]
    if not differ and what == "ctx not stated":  # nothing stated tells them apart (a crowd's submissions)
        return "another result" + (f" of {row.rec.source.date}" if row.rec.source.date else "")
    return what + (f" ({' · '.join(differ)})" if differ else "")


def _fits(row: Row) -> str:
    rec = row.rec
    p, m = rec.placement, rec.memory_mib
    parts = []
    if p.gpu_layers is not None:
        parts.append(f"{p.gpu_layers}/{p.total_layers} layers on the GPU" if p.total_layers else
                     f"{p.gpu_layers} layers on the GPU")
    if p.cpu_moe_layers:
        parts.append(f"the experts of {p.cpu_moe_layers} layers in system RAM")
    if p.cpu_layers is not None:
        parts.append(f"{p.cpu_layers} layers in system RAM" + (" (as stated)" if row.imported else ""))
    if m.vram_peak:
        parts.append(f"VRAM {mib(sum(m.vram_peak))} peak")
    elif m.vram_used_stated:
        parts.append("VRAM " + " + ".join(f"{v:g}" for v in m.vram_used_stated) + f" {m.vram_unit or ''}".rstrip()
                     + " (as stated)")
    if not parts:
        return "ran on this device (the source states no placement)" if row.imported else \
            "ran on this device (no placement logged)"
    return "; ".join(parts)


def card_words(card: Card, src: str) -> dict[str, Any]:
    """One card as a page or the picker shows it; hrefs relative to `src` (the site root for answers/*.json)."""
    row, rec = card.row, card.row.rec
    k = row.kld
    size, size_gb = _size(row)
    launch = card.launch
    # a printed or measured command as a reader runs it today (llama-server from PATH, flags respelled): the one
    # definition the configuration tables use too
    cmd = runnable_command(rec) if launch.origin in ("measured", "printed", "reconstructed") else None
    origin = TIER_WORDS[card.tier]
    if card.tier != MEASURED:
        origin += f": {rec.source.title or rec.source.citation or 'source not named'}"
        origin += f" ({rec.source.runtime})" if rec.source.runtime else ""
    return {
        "quant": quant_of(rec), "file": rec.model.file_name or "file not stated", "size": size, "size_gb": size_gb,
        "repo": rec.model.repo, "tier": card.tier, "origin": origin,
        "tg": _figure(card.tg, "t/s", len(row.records)), "pp": _figure(card.pp, "t/s", len(row.records)),
        "test": card.test,
        # pp from the same llama-bench run's pp test (a record of its own): its test, and its run page
        "pp_test": f"{test_of(card.pp_row) or 'its pp test'} of the same run" if card.pp_row else None,
        "pp_href": href(src, run_src(card.pp_row.page_id)) if card.pp_row else None,
        "depth": "depth not stated" if card.depth is None else f"at depth {card.depth:,}",
        "ctx": _ctx(card),
        "command": cmd.text if cmd else shell_command(list(launch.argv), rec.model.file_name) if launch.argv else None,
        "command_origin": LAUNCH_WORDS.get(launch.origin, launch.why_none or "") + (
            f"; spelled for today's llama-server (as printed: {cmd.printed})" if cmd and cmd.printed else ""),
        "kld": None if not k or k.kld_mean is None else {
            "value": f"{k.kld_mean:.4g}" + (f" ± {k.kld_mean_unc:.2g}" if k.kld_mean_unc else ""),
            "reference": k.reference or "a base not stated", "corpus": k.corpus or "unknown",
            "join": "the same file (sha256)" if row.kld_join == "sha256" else f"joined by {row.kld_join}",
            "href": href(src, run_src(k.page_id))},
        "fits": _fits(row), "spill": spill_text(spill(rec)),
        "run_href": href(src, run_src(row.page_id)), "others": card.others, "held": card.held,
        "runs": [href(src, run_src(page_id_of(r.id))) for r in row.records],  # a figure pools all of them
        "also": [f"{figure_value(s)} t/s ({figure_detail(s)})" for s in card.also],
        "build": rec.llama_cpp.version or "build not stated", "settings": config_summary(rec),
        "kv": kv_text(row), "moe": moe_text(rec), "date": date_text(rec), "download": download_link(rec),
        "quote": quote_of(row) if row.imported else None,
        "disagree": row.disagree,
        "siblings": [f"{_setup_of(r, row)}: {figure_value(r.tg)} t/s" for r in card.siblings
                     if r.tg is not None][:6],
        "caveats": sorted({f"{r.rec.source.title or r.rec.source.citation}: “{c}”" for r in [row, *row.repeated]
                           for c in r.rec.source.caveats}),
    }


def answer_words(answer: ModelAnswer, src: str) -> dict[str, Any]:
    return {"model": answer.model, "label": group_label(r.rec for r in answer.rows),
            "href": href(src, model_src(answer.model)), "tier": answer.tier, "tier_words": TIER_WORDS[answer.tier],
            "cards": [card_words(c, src) for c in answer.cards]}


def device_answers(rows: list[Row], src: str) -> list[dict[str, Any]]:
    return [answer_words(a, src) for a in model_answers(rows)]


ANSWERS_INDEX = "answers/index.json"


def picker_devices(f: Frames) -> dict[str, dict[str, Any]]:
    """Every device the picker offers: the catalog's (even with no record yet) and every device of the data, by the
    slug of its page; memory_gb only where it is one size (the picker adds system RAM to it)."""
    out: dict[str, dict[str, Any]] = {}
    for dev in default_catalog().devices:
        sizes = dev.memory_gb
        out[dev.slug] = {"label": dev.name, "vendor": dev.vendor,
                         "memory_gb": sizes[0] if len(sizes) == 1 else None}
    for item in device_rows(f):
        slug = item["href"].removeprefix("devices/").removesuffix(".md")
        known = [float(s) for s in item["sizes"].split()]
        out[slug] = {"label": item["label"], "vendor": item["vendor"],
                     "memory_gb": known[0] if len(known) == 1 else out.get(slug, {}).get("memory_gb")}
    return out


def answer_files(f: Frames, estimates: dict[str, list[dict[str, Any]]]) -> list[GeneratedFile]:
    """answers/index.json (every device and model the picker offers) and answers/d/<device>.json (the cards of every
    model on that device, and apart from them its estimate cards: `estimates`, by device slug, from
    collector.publish.pages.estimates.answer_estimates), for the question-first picker on a static host."""
    devices = picker_devices(f)
    by_device: dict[str, list[Row]] = {}
    for r in f.rows:
        by_device.setdefault(r.device, []).append(r)
    files = []
    models: dict[str, str] = {}
    for device in sorted(by_device.keys() | estimates.keys()):
        answers = [answer_words(a, "index.md") for a in model_answers(by_device.get(device, []))]
        for a in answers:
            models.setdefault(a["model"], a["label"])
        for e in estimates.get(device, []):
            models.setdefault(e["label"], e["label"])
        files.append(GeneratedFile(f"answers/d/{device}.json", json.dumps(
            {"device": device, "label": devices.get(device, {}).get("label", device),
             "href": device_src(device).removesuffix(".md") + "/", "models": answers,
             "estimates": estimates.get(device, [])}, separators=(",", ":"))))
    index = {"devices": [{"slug": d, **info, "has_data": d in by_device} for d, info in sorted(devices.items())],
             "models": [{"slug": m, "label": label} for m, label in sorted(models.items(), key=lambda kv: kv[1])]}
    files.append(GeneratedFile(ANSWERS_INDEX, json.dumps(index, separators=(",", ":"))))
    return files
