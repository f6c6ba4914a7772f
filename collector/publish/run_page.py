"""One permalink page per run: hardware, build, model, exact command, plan settings, raw samples, errors."""

from __future__ import annotations

import json

from collector.publish.common import front_matter, DASH, GeneratedFile, device_src, mdlink, model_src, num, source_md, table, Col
from collector.publish.escape import code_fence, h, md, shell_command
from collector.publish.frame import run_page_id
from collector.records.schema import KldRecord, SpeedRecord
from collector.records.store import AnyRecord, device_slug, model_slug


def _pretty(data: dict[str, object]) -> str:
    """One `key: value` line per top-level key, values as compact JSON (the C encoder; indent= is slow)."""
    return "\n".join(f"{k}: {json.dumps(v, ensure_ascii=False, default=str)}" for k, v in data.items())


def _kv(pairs: list[tuple[str, object]]) -> list[str]:
    """A two-column Markdown table of label/value pairs; values escaped, unknowns as a dash."""
    out = ["| | |", "|---|---|"]
    for k, v in pairs:
        out.append(f"| {md(k)} | {DASH if v is None or v == '' or v == [] else md(v)} |")
    return out + [""]


def _samples_table(rec: SpeedRecord) -> str:
    rows = [s.model_dump() for s in rec.samples]
    fmt = lambda xs: h(", ".join(num(x) for x in xs) or DASH)  # noqa: E731
    cols = [Col("category", lambda r: h(r["category"])),
            Col("depth", lambda r: h(r["depth_tokens"]), lambda r: r["depth_tokens"]),
            Col("prompt tokens", lambda r: h(r["prompt_tokens"] if r["prompt_tokens"] is not None else DASH),
                lambda r: r["prompt_tokens"]),
            Col("gen tokens", lambda r: h(r["gen_tokens"] if r["gen_tokens"] is not None else DASH),
                lambda r: r["gen_tokens"]),
            Col("tg t/s (server)", lambda r: fmt(r["tg_tps"])),
            Col("pp t/s (server)", lambda r: fmt(r["pp_tps"])),
            Col("tg t/s (client)", lambda r: fmt(r["tg_tps_client"])),
            Col("TTFT ms (client)", lambda r: fmt(r["ttft_ms"])),
            Col("note", lambda r: h(r["note"] or ""))]
    return table(cols, rows)


def run_page(rec: AnyRecord) -> GeneratedFile:
    pid = run_page_id(rec)
    src = f"runs/{pid}.md"
    m = rec.model
    title = f"{m.name or m.file_name or 'unknown model'} {m.quant or ''}".strip()
    lines = [front_matter(f"Run {pid}") + f"# Run {md(pid)}", "", f"**{md(rec.kind)}** run of {md(title)} on "
             f"[{md(device_slug(rec.host))}]({mdlink(src, device_src(device_slug(rec.host)))}) · "
             f"model page: [{md(model_slug(rec))}]({mdlink(src, model_src(model_slug(rec)))})", "",
             f"Source: {source_md({'imported': rec.source.type == 'imported', 'citation': rec.source.citation, 'source_url': rec.source.url})}",
             ""]
    if rec.source.note:
        lines += [f"> {md(rec.source.note)}", ""]
    if rec.status == "failed" and rec.error:
        lines += ['!!! failure "This run failed"', "", f"    Stage **{md(rec.error.stage)}**: {md(rec.error.message)}", ""]
        if rec.error.log_tail:
            lines += [code_fence("\n".join(rec.error.log_tail), "text", "log tail"), ""]
    lines += ["## Hardware", ""]
    hw: list[tuple[str, object]] = [("CPU", rec.host.cpu.model), ("cores / threads",
                                    f"{rec.host.cpu.cores or DASH} / {rec.host.cpu.threads or DASH}"),
                                    ("RAM MiB", rec.host.ram_total_mib), ("OS", rec.host.os)]
    for i, g in enumerate(rec.host.gpus):
        hw += [(f"GPU {i}", g.name), (f"GPU {i} driver / CUDA", f"{g.driver or DASH} / {g.cuda or DASH}"),
               (f"GPU {i} VRAM MiB", g.vram_total_mib), (f"GPU {i} bandwidth GB/s", g.mem_bandwidth_gbps),
               (f"GPU {i} PCIe", f"gen {g.pcie_gen_max or DASH} x{g.pcie_width_max or DASH}"),
               (f"GPU {i} power limit W", g.power_limit_w)]
    lines += _kv(hw)
    lc = rec.llama_cpp
    lines += ["## llama.cpp and model", ""] + _kv([
        ("llama.cpp version", lc.version), ("build number", lc.build_number), ("commit", lc.commit),
        ("backend", lc.backend), ("model file", m.file_name), ("quant", m.quant), ("file type", m.file_type),
        ("size bytes", m.size_bytes), ("bits per weight", m.bits_per_weight), ("sha256", m.sha256),
        ("parameters (total / active)", f"{m.params_total or DASH} / {m.params_active or DASH}"),
        ("created", rec.created_at.isoformat())])
    lines += ["## Command", ""]
    lines += [code_fence(shell_command(rec.command, m.file_name), "bash") if rec.command else "No command recorded.", ""]
    if rec.plan:
        lines += ["## Plan", ""] + _kv([("name", rec.plan.name), ("file", rec.plan.file), ("sha256", rec.plan.sha256)])
        if rec.plan.settings:
            lines += [code_fence(_pretty(dict(sorted(rec.plan.settings.items()))), "yaml"), ""]
    if isinstance(rec, SpeedRecord):
        lines += ["## Configuration", "", code_fence(_pretty(rec.config.model_dump()), "yaml"), "",
                  "## Placement (what llama.cpp did)", "",
                  code_fence(_pretty(rec.placement.model_dump()), "yaml"), "",
                  "## Summary", "", code_fence(_pretty(rec.summary.model_dump()), "yaml"), "",
                  "## Memory (MiB)", "", code_fence(_pretty(rec.memory_mib.model_dump(by_alias=True)), "yaml"), ""]
        if rec.samples:
            lines += ["## Raw samples", "", _samples_table(rec), ""]
    elif isinstance(rec, KldRecord):
        lines += ["## KLD", ""] + _kv([
            ("method", rec.kld_method), ("base model", rec.base_model.file_name if rec.base_model else None),
            ("corpus", rec.corpus.name if rec.corpus else None),
            ("corpus sha256", rec.corpus.sha256 if rec.corpus else None)])
        res = {k: v for k, v in rec.results.model_dump().items() if v is not None}
        lines += [code_fence(_pretty(res), "yaml"), ""]
    return GeneratedFile(src, "\n".join(lines))
