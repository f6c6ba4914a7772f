"""One permalink page per run (runs/<id>/), rendered from one jinja2 template outside MkDocs' page pipeline.

Thousands of records would make thousands of MkDocs pages, each through Markdown and the theme; a run page has
nothing MkDocs needs to work out, so `run_html` renders its body and the hook wraps it in the site's own page
shell (header, palette, navigation, scripts) taken from one page MkDocs did build. Only known values are shown:
a section with nothing known is left out, and unknown stays "not stated".
"""

from __future__ import annotations

from typing import Any

from collector.publish.pages.tune import over_budget, tune_of, tune_run_context
from collector.publish.rows.devices import device_key
from collector.publish.rows.frame import (
    device_label,
    kv_types,
    page_id_of,
    quant_of,
    run_page_id,
)
from collector.publish.rows.names import label_of, slug_of
from collector.publish.words.escape import shell_command
from collector.publish.words.labels import quant_facts, runnable_command
from collector.publish.words.links import device_src, model_src, run_src
from collector.publish.words.render import figure_text, mib, num, render
from collector.publish.words.run_words import fit_words, kld_stats
from collector.records.figures import pooled, record_headline, stat_of
from collector.records.flags import FLAGS, server_args
from collector.records.schema import KldRecord, SpeedRecord, Stat, TuneRecord
from collector.records.store import AnyRecord

SRC_DEPTH = "runs/x/"  # a run page's URL depth, for relative links


def run_title(rec: AnyRecord) -> str:
    what = "KLD run" if isinstance(rec, KldRecord) else "Tune" if isinstance(rec, TuneRecord) else "Speed run"
    return f"{label_of(rec)} {quant_of(rec)} on {device_label(rec.host)} — {what}"


def _pairs(items: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """Only the known values, as text."""
    out = []
    for label, value in items:
        if value is None or value == "" or value == [] or value == {}:
            continue
        out.append((label, ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    return out


def _hardware(rec: AnyRecord) -> list[tuple[str, str]]:
    h = rec.host
    items: list[tuple[str, Any]] = [("CPU", h.cpu.model), ("cores / threads", f"{h.cpu.cores} / {h.cpu.threads}"
                                     if h.cpu.cores and h.cpu.threads else h.cpu.cores),
                                    ("system RAM", mib(h.ram_total_mib) if h.ram_total_mib else
                                     (f"{h.ram_stated} (as stated)" if h.ram_stated else None)), ("OS", h.os)]
    for i, g in enumerate(h.gpus):
        items += [(f"GPU {i}", g.name), (f"GPU {i} VRAM", mib(g.vram_total_mib) if g.vram_total_mib else
                                         (f"{g.vram_stated} (as stated)" if g.vram_stated else None)),
                  (f"GPU {i} driver / CUDA", f"{g.driver} / {g.cuda}" if g.driver and g.cuda else g.driver),
                  (f"GPU {i} bandwidth GB/s", g.mem_bandwidth_gbps), (f"GPU {i} compute capability",
                                                                      g.compute_capability),
                  (f"GPU {i} PCIe", f"gen {g.pcie_gen_max} x{g.pcie_width_max}" if g.pcie_gen_max else None),
                  (f"GPU {i} power limit W", g.power_limit_w)]
    return _pairs(items)


def _model(rec: AnyRecord) -> list[tuple[str, str]]:
    m = rec.model
    qf = quant_facts(m)
    experts = (f"{m.n_experts} ({m.n_experts_used} active)" if m.n_experts and m.n_experts_used else m.n_experts)
    return _pairs([("file", m.file_name), ("name in the file (general.name)", m.name), ("fine-tune", m.finetune),
                   ("architecture", m.arch), ("size label", m.size_label), ("quant", m.quant),
                   ("file type", m.file_type), ("file size", f"{m.size_bytes:,} bytes" if m.size_bytes else
                                                (f"{m.size_stated} (as stated)" if m.size_stated else None)),
                   ("bits per weight", num(qf["bpw"], 4) if qf["bpw"] else None), ("tensor mix", qf["mix_text"]),
                   ("note", m.quant_note), ("sha256", m.sha256),
                   ("parameters", f"{m.params_total:,}" if m.params_total else None),
                   ("active parameters per token", f"{m.params_active:,}" if m.params_active and m.n_experts
                    else None),
                   ("layers", m.n_layers), ("experts", experts),
                   ("mixture of experts", None if m.moe is None else ("yes" if m.moe else "no (dense)")),
                   ("vocabulary", m.n_vocab), ("training context", m.ctx_train),
                   ("sliding window (SWA)", m.n_swa), ("origin", m.origin)])


def _config(rec: SpeedRecord | KldRecord) -> list[tuple[str, str]]:
    unset = "not stated" if rec.source.type == "imported" else "llama.cpp default"
    items = []
    for key, flag in FLAGS.items():
        value = getattr(rec.config, key)
        if value is not None:
            items.append((f"{flag.label} ({flag.server[0]})", str(value)))
    if rec.config.extra_args:
        items.append(("further arguments", " ".join(rec.config.extra_args)))
    if isinstance(rec, SpeedRecord) or rec.source.type == "measured":
        k, v, defaulted = kv_types(rec)
        if k or v:
            items.append(("KV cache used", f"{k}/{v}" + (" (llama.cpp's default)" if defaulted else "")))
    return items or [("flags", unset)]


def _depth_table(rec: SpeedRecord) -> list[dict[str, Any]]:
    out = []
    for depth, vals in pooled(rec.samples).items():
        figs: dict[str, Stat | None] = {k: stat_of(v, digits=3) for k, v in vals.items()}
        out.append({"depth": depth, **figs})
    return out


def run_html(rec: AnyRecord, trial_names: dict[str, str] | None = None,
             held: list[tuple[str, str, str]] | None = None) -> str:
    """The body of the run's page (HTML, everything from the record escaped); `trial_names`: a tune's trials in
    words (trial_names_of); `held`: (figure, as stated, why) for each figure the judge holds back."""
    src = f"runs/{run_page_id(rec)}.md"
    ctx: dict[str, Any] = {
        "src": src, "rec": rec, "title": run_title(rec), "kind": rec.kind,
        "device_href": device_src(device_key(rec.host)), "model_href": model_src(slug_of(rec)),
        "device": device_label(rec.host), "model": label_of(rec),
        "hardware": _hardware(rec), "model_facts": _model(rec),
        "config": [] if isinstance(rec, TuneRecord) else _config(rec),
        "llama": _pairs([("version", rec.llama_cpp.version), ("build number", rec.llama_cpp.build_number),
                         ("build number from", rec.llama_cpp.build_source), ("commit", rec.llama_cpp.commit),
                         ("backend", rec.llama_cpp.backend), ("binary sha256", rec.llama_cpp.binary_sha256),
                         ("compiler", rec.llama_cpp.compiler)]),
        "date": (f"{rec.source.date} (as the source states)" if rec.source.date else "not stated")
        if rec.source.type == "imported" else rec.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        "command": None, "kld": None, "speed": None, "tune": None, "over_budget": over_budget(rec),
        "tune_href": None, "held": held or [],
    }
    if isinstance(rec, TuneRecord):
        ctx["tune"] = tune_run_context(rec, src, ctx["device"], trial_names)
    elif isinstance(rec, SpeedRecord):
        trial_of = tune_of(rec)
        if trial_of:
            ctx["tune_href"] = run_src(page_id_of(trial_of))
        cmd = runnable_command(rec)
        ctx["command"] = cmd
        p, m = rec.placement, rec.memory_mib
        ctx["speed"] = {
            "depths": _depth_table(rec), "summary": rec.summary,
            "placement": _pairs([("layers on the GPU", f"{p.gpu_layers}/{p.total_layers}" if p.total_layers else
                                  p.gpu_layers), ("CPU-MoE layers", p.cpu_moe_layers),
                                 ("flash attention", None if p.flash_attn is None else ("on" if p.flash_attn
                                                                                        else "off")),
                                 ("context (n_ctx)", p.n_ctx), ("per slot (n_ctx_seq)", p.n_ctx_seq),
                                 ("slots", p.n_slots), ("sliding window", p.n_swa), ("devices", p.devices),
                                 ("layers in system RAM (as stated)", p.cpu_layers),
                                 ("memory fit", fit_words(p.fit) if rec.source.type == "measured" else None),
                                 ("placement as stated", "; ".join(p.fit) if rec.source.type == "imported" and p.fit
                                  else None)]),
            "memory": _pairs([("VRAM peak", " + ".join(mib(v) for v in m.vram_peak) if m.vram_peak else None),
                              ("VRAM used (as stated)", " + ".join(f"{v:g}" for v in m.vram_used_stated)
                               + f" {m.vram_unit or ''}" if m.vram_used_stated else None),
                              ("RAM peak of llama-server", mib(m.host_rss_peak) if m.host_rss_peak else None),
                              ("KV cache MiB", " + ".join(f"{c.size:g} ({'SWA' if c.swa else 'non-SWA'})"
                                                          for c in m.kv_caches) + f" = {m.kv_cache:g}"
                               if len(m.kv_caches) > 1 and m.kv_cache is not None else m.kv_cache),
                              ("model buffers MiB", ", ".join(f"{k} {v:g}" for k, v in m.model_buffers.items())),
                              ("compute buffers MiB", ", ".join(f"{k} {v:g}" for k, v in m.compute_buffers.items()))]),
            "method": _pairs([("endpoint", rec.method.endpoint), ("tokens generated per request", rec.method.n_predict),
                              ("temperature", rec.method.temperature), ("repetitions", rec.method.repetitions),
                              ("warmup requests", rec.method.warmup), ("filled depths", rec.method.depths),
                              ("prompt suite", rec.method.prompt_suite.name if rec.method.prompt_suite else None),
                              ("clients at once", rec.method.concurrency),
                              ("every stream fed the same filler", rec.method.shared_prefix
                               if (rec.method.concurrency or 1) > 1 else None),
                              ("load time s", rec.load_seconds), ("note", rec.method.note)]),
            "clients": _clients(rec),
            "conditions": rec.conditions, "engine": rec.engine_bench,
        }
    else:
        r = rec.results
        ctx["kld"] = {
            "command": shell_command(rec.command, rec.model.file_name) if rec.command else None,
            "base_command": shell_command(rec.base_command, rec.base_model.file_name if rec.base_model else None)
            if rec.base_command else None,
            "base": _pairs([("file", rec.base_model.file_name), ("quant", rec.base_model.quant),
                            ("sha256", rec.base_model.sha256)]) if rec.base_model else [],
            "corpus": _pairs([("name", rec.corpus.name), ("sha256", rec.corpus.sha256),
                              ("tokens", rec.corpus.tokens), ("ctx", rec.corpus.ctx_size),
                              ("chunks", rec.corpus.chunks)]) if rec.corpus else [],
            "results": kld_stats(r),
        }
    return render("run.html.j2", **ctx)


def _clients(rec: SpeedRecord) -> list[tuple[str, Any]]:
    """The run's requests taken together: aggregate throughput over its batches, TTFT p95, slot waits."""
    s = rec.summary
    if s.throughput_tps is None:
        return []
    n = rec.method.concurrency or 1
    return _pairs([("clients at once", n), ("batches", len(rec.batches)),
                   ("aggregate throughput", figure_text(s.throughput_tps, "t/s")),
                   ("TTFT p95 ms", None if s.ttft_ms_p95 is None else
                    f"{num(s.ttft_ms_p95)} (95th percentile of n={s.ttft_ms.n if s.ttft_ms else '?'} requests)"),
                   ("requests that waited for a slot", f"{s.slot_waits} of {s.requests}"
                    if s.slot_waits is not None and s.requests is not None else None)])


def trial_names_of(records: dict[str, AnyRecord]) -> dict[str, dict[str, str]]:
    """tune id -> {trial record id -> the trial's configuration in words}, for the tunes among `records` (by page)."""
    out: dict[str, dict[str, str]] = {}
    for rec in records.values():
        if isinstance(rec, TuneRecord):
            names = {}
            for i in rec.trials:
                t = records.get(page_id_of(i))
                if isinstance(t, SpeedRecord):
                    flags = " ".join(server_args(t.config)) or "llama.cpp's defaults"
                    head = record_headline(t)
                    tg = head.tg_tps if head else None
                    names[i] = f"{flags}: " + (figure_text(tg, "t/s") if tg else (
                        f"not measured ({t.error.stage}: {t.error.message})" if t.error else "no speed"))
            out[rec.id] = names
    return out
