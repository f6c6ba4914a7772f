"""The site's estimates: "what fits and how fast, estimated" on every device page, a page for every catalog device
no record names, the catalog's list, and the held-out report on the Methodology page.

Estimates never enter the frames the rankings are built from (collector.publish.rows.frame): they are rendered here,
from collector.estimate, into sections of their own (badged "estimate", italics, dashed, in tables that do not
sort, no bars), so no pick, Pareto front, chart or download can hold one (tests/site/test_estimates.py).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from collector import estimate
from collector.base.cache import KeyValueCache, code_stamp, digest, pages_stamp
from collector.catalog import CatalogDevice, default, resolve
from collector.estimate.answer import OffloadTerms, offload_terms
from collector.estimate.arch import Arch
from collector.estimate.estimator import FIT_MARGIN_MIB, KV_TYPES, Estimator, SpeedAnswer, vram_mib
from collector.estimate.heldout import BOUND_PCT, MIN_CHECKS, MIN_COVERAGE, MIN_SOURCES, TIME_SPLIT
from collector.estimate.memcheck import TOLERANCE_MIB, TOLERANCE_PCT, data_checks, summarise
from collector.estimate.memory import MemConfig
from collector.estimate.offload import RAM_PRESETS
from collector.estimate.placement import Request, command, gpu_command, place
from collector.estimate.report import MIN_CONTEXT, Row, device_rows, rate
from collector.estimate.speed import kappa
from collector.publish import charts
from collector.publish.pages.files import GeneratedFile, chart_files
from collector.publish.words.escape import safe_url
from collector.publish.words.links import device_src, front_matter, href, run_src
from collector.publish.words.render import render
from collector.records.schema import Host
from collector.records.store import AnyRecord, page_id_of

CHART = "charts/estimates/heldout-tg"
METHODOLOGY_SRC = "methodology.md"
CATALOG_SRC = "devices/catalog.md"


def device_of(host: Host) -> tuple[CatalogDevice | None, int, str | None]:
    """The catalog device of a record's GPUs (all of one kind), their number, and the GPUs' stated memory."""
    names = {g.name for g in host.gpus}
    if len(names) != 1:
        return None, len(host.gpus), None
    return resolve(host.gpus[0].name), len(host.gpus), host.gpus[0].vram_stated


_URL = re.compile(r"https?://[^\s()]+")


def facts_link(source: str) -> dict[str, str | None]:
    """A model's facts as the table cell shows them: the source's first address as a link named by its host and
    first two path parts (huggingface.co/meta-llama/Llama-3.1-8B), the words around it as they are."""
    m = _URL.search(source)
    url = safe_url(m.group()) if m else None
    if m is None or url is None:
        return {"pre": source, "url": None, "label": None, "post": ""}
    host, _, path = re.sub(r"^https?://(www\.)?", "", url).partition("/")
    label = "/".join([host, *path.split("/")[:2]]).rstrip("/")
    return {"pre": source[:m.start()], "url": url, "label": label, "post": source[m.end():]}


def _speed_cell(a: SpeedAnswer, row: Row) -> dict[str, Any]:
    """A speed cell: its figure, what is this row's own (`detail`) and what its vendor class's held-out check says
    (`note`: the same words for every row it applies to, which a table states once above itself)."""
    if not a.shown or a.value is None:
        return {"text": "not estimated", "detail": "", "note": a.why_not or "", "est": False}
    e = a.error
    parts = [f"stated range {rate(a.low or 0)}–{rate(a.high or 0)}"] if a.low and a.high else []
    if row.measured:
        parts.append(f"{row.measured} published figures of this model and quant on this device are in the fit")
    note = ""
    if e:
        cov = f", which held {e.coverage * 100:.0f} % of them" if e.coverage is not None else ""
        note = f"{e.group} figures left out by source: median error {e.median_pct:.0f} % over {e.n}{cov}"
    return {"text": f"~{rate(a.value)} t/s", "detail": " · ".join(parts), "note": note, "est": True}


def _said_once(labels: list[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The notes that more than one row's cells of a column share, stated once above the table (the columns they
    apply to, and whether they explain a range or a missing figure); those cells then keep only their own words."""
    by_note: dict[tuple[str, bool], list[str]] = {}
    for j, label in enumerate(labels):
        cells = [r["speeds"][j][1] for r in rows]
        counts = Counter((c["note"], c["est"]) for c in cells if c["note"])
        for (note, est), n in counts.items():
            if n > 1:
                by_note.setdefault((note, est), []).append(label)
                for c in cells:
                    if (c["note"], c["est"]) == (note, est):
                        c["note"] = ""
    return [{"labels": cols, "note": note, "est": est} for (note, est), cols in by_note.items()]


def _drop_unestimated(rows: list[dict[str, Any]], notes: list[dict[str, Any]]) -> None:
    """A speed column no row estimates, whose reason is stated once above the table, is left out of it (a column of
    "not estimated" says nothing the line above does not); the note says so."""
    if not rows:
        return
    labels = [label for label, _ in rows[0]["speeds"]]
    empty = {label for j, label in enumerate(labels)
             if all(not r["speeds"][j][1]["est"] and not r["speeds"][j][1]["detail"] and not r["speeds"][j][1]["note"]
                    for r in rows)}
    for r in rows:
        r["speeds"] = [(label, cell) for label, cell in r["speeds"] if label not in empty]
    for n in notes:
        n["dropped"] = not n["est"] and set(n["labels"]) <= empty


def _contexts(row: Row) -> list[dict[str, Any]]:
    """The largest context per KV type (the row's device and memory size) and whether it is the training context."""
    out = []
    ctx_train = row.arch.ctx_train
    for kv in KV_TYPES:
        c = row.contexts.get(kv)
        out.append({"kv": kv, "text": "does not fit" if c is None else f"{c:,}",
                    "full": c is not None and ctx_train is not None and c >= ctx_train})
    return out


def _cfg_dump(cfg: MemConfig) -> dict[str, Any]:
    """A placement's settings as JSON (the spill rows are kept across builds), read back by _cfg_load."""
    d = {k: getattr(cfg, k) for k in MemConfig.__dataclass_fields__}
    return {**d, "overrides": [list(o) for o in cfg.overrides], "cpu_features": sorted(cfg.cpu_features)}


def _cfg_load(d: dict[str, Any]) -> MemConfig:
    return MemConfig(**{**d, "overrides": tuple(tuple(o) for o in d["overrides"]),
                        "cpu_features": frozenset(d["cpu_features"])})


def _off_terms(est: Estimator, dev: CatalogDevice, n_gpus: int, vram: float | None,
               spill: dict[str, Any]) -> OffloadTerms | None:
    """tg's terms for a spill row on one GPU (weights in system RAM with several GPUs are not modelled)."""
    if n_gpus != 1 or not vram:
        return None
    return offload_terms(est, dev, spill["arch"], _cfg_load(spill["config"]), vram / 1024)


def _off_note(t: OffloadTerms) -> str:
    e = t.error
    cov = f", which held {e.coverage * 100:.0f} % of them" if e.coverage is not None else ""
    return (f"figures with weights in system RAM left out by source: median error {e.median_pct:.0f} % over {e.n} "
            f"figures of {e.n_sources} sources; stated range {t.low:.2f}-{t.high:.2f} x the estimate{cov}")


def _off_cells(t: OffloadTerms | None) -> list[dict[str, str]]:
    """tg at each preset RAM, its range; empty where not estimated."""
    if t is None:
        return []
    out = []
    for text, gbs in RAM_PRESETS:
        v = t.tg(gbs)
        n = t.threads_needed(gbs)
        out.append({"ram": text, "text": f"~{rate(v)} t/s", "detail": f"stated range {rate(v * t.low)}–"
                    f"{rate(v * t.high)} · {gbs:g} GB/s" + (f", {n}+ CPU threads" if n else "")})
    return out


def _published_offload(est: Estimator, dev: CatalogDevice, n_gpus: int, src: str) -> list[dict[str, Any]]:
    """This device's published tg figures with weights in system RAM, each beside the estimate made with its source
    left out of the fit (the checks the Methodology page sums up)."""
    out = []
    for h in sorted(est.fitted.off_checks.get("tg", []), key=lambda h: (h.point.gpu.model, h.point.record)):
        pt = h.point
        if pt.gpu.gpu != dev.name or pt.gpu.n_gpus != n_gpus:
            continue
        threads = f", -t {pt.threads}" if pt.threads else ""
        out.append({"model": pt.gpu.model, "quant": pt.gpu.facts.quant, "source": pt.source,
                    "setup": f"{pt.cpu_read / 1e9:.2f} GB a token from system RAM at {pt.ram / 1e9:.1f} GB/s{threads}"
                             + (f", {pt.cpu_layers} layers on the CPU" if pt.cpu_layers else ""),
                    "stated": f"{rate(pt.value)} t/s", "estimate": f"~{rate(h.estimate)} t/s",
                    "error": f"{h.error_pct:+.0f} %", "href": href(src, run_src(page_id_of(pt.record)))})
    return out


def section_context(est: Estimator, dev: CatalogDevice, n_gpus: int, src: str) -> dict[str, Any]:
    """Everything the estimate section of one device (n GPUs of it) shows: the table's models that run on it."""
    sizes = vram_mib(dev)
    tables = []
    choices: list[float | None] = list(sizes) or [None]
    for vram in choices:
        rows, too_big = _device_rows(est, dev, n_gpus, vram)
        spills, listed = [], []
        off_note = None
        for a in too_big:
            if (spill := _spill_row(a, vram, n_gpus)) is not None:
                terms = _off_terms(est, dev, n_gpus, vram, spill)
                spills.append({**spill, "speeds": _off_cells(terms)})
                off_note = off_note or (_off_note(terms) if terms else None)
            else:
                listed.append(f"{a.name} {a.quant}")
        table_rows = [
            {"name": r.arch.name, "quant": r.arch.quant or "not stated", "size": r.arch.weight_bytes / 2**30,
             "contexts": _contexts(r) if vram else [], "needs": r.needs_mib,
             "ctx_train": r.arch.ctx_train, "speeds": [(label, _speed_cell(a, r)) for label, a in r.speeds],
             "source": facts_link(r.arch.source)} for r in rows]
        notes = _said_once([label for label, _ in rows[0].speeds], table_rows) if rows else []
        _drop_unestimated(table_rows, notes)
        tables.append({"vram": vram, "spills": spills, "too_big": listed, "rows": table_rows, "notes": notes,
                       "off_note": off_note, "presets": [text for text, _ in RAM_PRESETS]})
    return {"src": src, "dev": dev, "n": n_gpus, "tables": tables, "margin": FIT_MARGIN_MIB, "kv_types": KV_TYPES,
            "published_offload": _published_offload(est, dev, n_gpus, src),
            "bandwidth": dev.bandwidth_gbs, "memory": [v / 1024 for v in sizes], "methodology": METHODOLOGY_SRC,
            "min_context": MIN_CONTEXT}


@lru_cache(maxsize=4096)  # one question per model and memory size, whichever devices have it
def _spill_row(arch: Arch, vram: float | None, n_gpus: int) -> dict[str, Any] | None:
    """A mixture of experts larger than the GPU(s): where llama.cpp's fit puts it at MIN_CONTEXT tokens (f16 KV,
    flash attention, ubatch 512), experts of its last layers in system RAM, and the command that pins that. Kept
    across builds (a placement takes ~40 ms and a build asks a few hundred): it depends on the model and this code
    only, never on the records."""
    if not vram or arch.n_expert <= 1:
        return None
    key = f"{arch.name}|{arch.quant}|{arch.weight_bytes}|{vram:g}|{n_gpus}"
    kept = _spill_cache().get(key)
    if kept is None:
        row = _place_spill(arch, vram, n_gpus)
        _spill_cache().update([(key, json.dumps(row))])
    else:
        row = json.loads(kept)
    return {**row, "arch": arch} if row else None


@lru_cache(maxsize=1)
def _spill_cache() -> KeyValueCache:
    code = code_stamp(tuple(sorted((Path(estimate.__file__).parent).glob("*.py")))
                      + (Path(estimate.__file__).parent / "models.yaml", Path(__file__)))
    return KeyValueCache("estimate", "spills", code)


def _place_spill(arch: Arch, vram: float, n_gpus: int) -> dict[str, Any] | None:
    req = Request(ctx=MIN_CONTEXT)
    p = place(arch, req, vram / 1024, n_gpus)
    if not p.fits:
        return None
    cmd = command(p, req)
    return {"name": arch.name, "quant": arch.quant or "not stated", "size": arch.weight_bytes / 2**30,
            "config": _cfg_dump(p.config),
            "cpu_experts": p.n_cpu_moe, "cpu_layers": p.cpu_layers, "layers": p.total_layers - 1,
            "experts_ram": p.host.experts / 1024, "gpu": max(d.total for d in p.devices) / 1024,
            "budget": min(d.budget or 0 for d in p.devices) / 1024, "command": cmd.text(), "command_origin": cmd.words}


@lru_cache(maxsize=1024)  # a device's rows serve its page and its picker cards (answer_estimates)
def _device_rows(est: Estimator, dev: CatalogDevice, n_gpus: int, vram: float | None) -> tuple[list[Row], list[Any]]:
    return device_rows(est, dev, n_gpus, vram)


def answer_estimates(est: Estimator,
                     sets: dict[str, tuple[CatalogDevice, int]] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The picker's estimate cards of every catalog device (one GPU) and of the sets of several GPUs that have a
    page (`sets`: its slug -> the catalog device and how many), by the slug of that page: per table model that fits
    with every layer on the GPU(s), one card per quant (and memory size, where the device is sold with several), in
    the same words as the page's estimate table; never mixed with the measured and stated cards."""
    wanted = [(dev.slug, dev, 1) for dev in default().devices]
    wanted += [(slug, dev, n) for slug, (dev, n) in sorted((sets or {}).items()) if n > 1]
    what = "answers " + digest(repr([(slug, dev.name, n) for slug, dev, n in wanted]))
    out: dict[str, list[dict[str, Any]]] = json.loads(_kept(est, what, lambda: json.dumps(_answer_estimates(est,
                                                                                                          wanted))))
    return out


def _answer_estimates(est: Estimator, wanted: list[tuple[str, CatalogDevice, int]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for slug, dev, n in wanted:
        by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
        sizes: list[float | None] = list(vram_mib(dev)) or [None]
        each = f"{n} × " if n > 1 else ""
        for vram in sizes:
            # which size, where several (and for a set, per GPU)
            memory = f"{each}{vram / 1024:g} GiB" if vram and (len(sizes) > 1 or n > 1) else None
            rows, too_big = _device_rows(est, dev, n, vram)
            for r in rows:
                by_model[r.arch.name].append(_estimate_card(r, vram is not None, memory, n))
            for a in too_big:
                if (spill := _spill_row(a, vram, n)) is not None:
                    by_model[a.name].append(_spill_card(spill, dev, memory, _off_terms(est, dev, n, vram, spill)))
        if by_model:
            out[slug] = [{"label": name, "cards": cards} for name, cards in by_model.items()]
    return out


def _estimate_card(r: Row, known: bool, memory: str | None, n_gpus: int = 1) -> dict[str, Any]:
    cells = [_speed_cell(a, r) for _, a in r.speeds]
    tg, pp = cells[0], cells[-1]
    least = min(MIN_CONTEXT, r.arch.ctx_train or MIN_CONTEXT)
    usable = [(kv, c) for kv in KV_TYPES if (c := r.contexts.get(kv)) is not None and c >= least]
    command, origin = None, "no command: the device's memory is not known, so no context is known to fit"
    if usable:
        kv, ctx = usable[0]
        cmd = gpu_command(min(ctx, r.arch.ctx_train or ctx), Request(type_k=kv, type_v=kv), n_gpus=n_gpus)
        command, origin = cmd.text(), cmd.words
    ctx_words = "; ".join(f"KV {c['kv']}: {c['text']}" + (" (the training context)" if c["full"] else "")
                          for c in _contexts(r)) if known else \
        f"not known (the device's memory is not known; {r.needs_mib / 1024:.1f} GiB needed at {MIN_CONTEXT:,} tokens)"
    return {"quant": r.arch.quant or "not stated", "memory": memory, "size": f"{r.arch.weight_bytes / 2**30:.2f} GiB",
            "tg": {"value": tg["text"], "detail": _words(tg)}, "pp": {"value": pp["text"], "detail": _words(pp)},
            "tg_label": r.speeds[0][0], "pp_label": r.speeds[-1][0], "ctx": ctx_words,
            "command": command, "command_origin": origin, "facts": r.arch.source}


def _words(cell: dict[str, Any]) -> str:
    return " · ".join(w for w in (cell["detail"], cell["note"]) if w)


def _spill_card(r: dict[str, Any], dev: CatalogDevice, memory: str | None,
                terms: OffloadTerms | None) -> dict[str, Any]:
    """A mixture of experts larger than the GPU, as the picker shows it: where llama.cpp's fit puts it, the command,
    and tg's terms (`tg_terms`), which the picker evaluates at the RAM its reader chooses; without them (several GPUs,
    or the offload estimate not shown) its speed is not estimated on the site."""
    how = f"collector estimate \"{r['name']} {r['quant']}\" --device \"{dev.name}\" --ram \"DDR5-6000 2ch\""
    if terms is None:
        speed = f"not estimated here: it depends on your system RAM's bandwidth: {how} estimates it, with its " \
                "held-out error"
        tg_terms = None
    else:
        cells = "; ".join(f"{c['ram']}: {c['text']} ({c['detail']})" for c in _off_cells(terms))
        speed = f"choose your system RAM's type above; {cells}"
        tg_terms = {"fixed_s": terms.fixed_s, "cpu_bytes": terms.cpu_bytes, "eta": terms.eta, "low": terms.low,
                    "high": terms.high, "beta_gbs": terms.beta_gbs, "note": _off_note(terms)}
    layers = f" and {r['cpu_layers']} whole layer(s) on the CPU" if r["cpu_layers"] else ""
    return {"quant": r["quant"], "memory": memory, "size": f"{r['size']:.2f} GiB",
            "speed": speed, "tg_terms": tg_terms,
            "ctx": f"{MIN_CONTEXT:,} tokens, KV f16 (where this placement was computed)",
            "placement": f"the experts of {r['cpu_experts']} of {r['layers']} layers in system RAM "
                         f"({r['experts_ram']:.1f} GiB){layers}; GPU {r['gpu']:.1f} of the {r['budget']:.1f} GiB "
                         "llama.cpp's fit may use",
            "ram_gb": round(r["experts_ram"] * 2**30 / 1e9, 1), "command": r["command"],
            "command_origin": r["command_origin"], "facts": r["arch"].source}


@lru_cache(maxsize=2)
def _kept_cache(world: str) -> KeyValueCache:
    return KeyValueCache("estimate", "sections", f"{pages_stamp()} {world}")


def _kept(est: Estimator, what: str, make: Callable[[], str]) -> str:
    """An estimate section's text, kept across builds while everything it is a function of is the same (the code
    and templates, and est.key: the figures fitted, the models and mixes the records state). A build after one new
    record of our own runs (never fitted) renders none of them again; one record more in the fit renders them all."""
    if est.key is None:
        return make()
    kv = _kept_cache(est.key)
    key = f"{est.key} {what}"  # the world in the key too: a build of other data sharing the cache never reads ours
    text = kv.get(key)
    if text is None:
        text = make()
        kv.update([(key, text)])
    return text


def device_section(est: Estimator, host: Host, src: str, fold: bool) -> str:
    """The section a record device's page gets (a note where the device is not in the catalog); `fold`: its tables
    behind a "show" (below a page's answer cards)."""
    return _kept(est, f"section {src} {fold} {digest(repr(host))}", lambda: _device_section(est, host, src, fold))


def _device_section(est: Estimator, host: Host, src: str, fold: bool) -> str:
    dev, n, _ = device_of(host)
    if not host.gpus:
        return render("estimates.md.j2", part="none", src=src, why="a CPU: the catalog has no memory bandwidth "
                      "for CPUs (it is the system's), so nothing is estimated")
    if dev is None:
        return render("estimates.md.j2", part="none", src=src, why="these GPUs are not one device of the catalog, "
                      "so nothing is estimated")
    return render("estimates.md.j2", part="section", fold=fold, **section_context(est, dev, n, src))


def _catalog_page(est: Estimator, dev: CatalogDevice, src: str) -> str:
    return render("estimates.md.j2", part="page", **section_context(est, dev, 1, src))


def catalog_pages(est: Estimator, record_pages: dict[str, str]) -> list[GeneratedFile]:
    """A page for every catalog device no record names (record_pages: catalog name -> the page of its records, one
    GPU), and the list of every catalog device."""
    files, items = [], []
    taken = set(record_pages.values())
    for dev in sorted(default().devices, key=lambda d: (d.vendor, d.name)):
        has_records = dev.name in record_pages or device_src(dev.slug) in taken
        src = record_pages.get(dev.name, device_src(dev.slug))
        if not has_records:
            body = _kept(est, f"page {src} {dev.name}", partial(_catalog_page, est, dev, src))
            files.append(GeneratedFile(src, front_matter(dev.name, wide=True) + body))
        items.append({"dev": dev, "href": src, "records": has_records, "memory": [m / 1024 for m in vram_mib(dev)]})
    files.append(GeneratedFile(CATALOG_SRC, front_matter("Device catalog", wide=True) +
                               render("estimates.md.j2", part="catalog", src=CATALOG_SRC, items=items)))
    return files


def methodology_section(est: Estimator, records: list[AnyRecord]) -> tuple[str, list[GeneratedFile]]:
    """The held-out report (tables per vendor class, per backend and per left-out source; a chart) and the memory
    check, for the Methodology page."""
    checks = [h for h in est.fitted.checks.get("tg", []) if h.mode == "source"]
    by_cls: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for h in checks:
        by_cls[h.point.vendor].append((h.point.value, h.estimate))
    series = sorted(by_cls.items())
    files = chart_files(CHART, charts.identity_chart(series, "published tg (t/s, llama.cpp)",
                                                     "estimated tg (t/s), its source left out")) if series else []
    alt = "Scatter of estimated against published generation speed, each source left out, per vendor: " + "; ".join(
        f"{name}: {len(pts)} figures" for name, pts in series)
    mem_checks, skipped = data_checks(records)
    errors = est.fitted.errors
    tables = {(mode, by): [e for e in errors if e.mode == mode and e.by == by]
              for mode in ("source", "time", "device") for by in ("gate", "vendor", "backend", "source", "all")}
    tg = est.fitted.fits.get("tg")
    pp = est.fitted.fits.get("pp")
    text = render("estimates.md.j2", part="methodology", src=METHODOLOGY_SRC, tables=tables, chart=CHART,
                  alt=alt, has_chart=bool(files), memory=summarise(mem_checks), n_checks=len(mem_checks),
                  skipped=skipped, outside=[c for c in mem_checks if not c.within], tol_pct=TOLERANCE_PCT,
                  tol_mib=TOLERANCE_MIB, fits=[c for c in mem_checks if c.fit is not None], left=est.left.most_common(),
                  bound=BOUND_PCT, min_checks=MIN_CHECKS, min_coverage_pct=round(MIN_COVERAGE * 100),
                  min_sources=MIN_SOURCES, time_split=TIME_SPLIT,
                  margin=FIT_MARGIN_MIB, tg=tg, pp=pp, kappa=kappa(tg) if tg else {}, crowd=est.fitted.crowd,
                  offload=est.fitted.off_errors)
    return text, files
