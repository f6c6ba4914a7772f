"""Names for configurations, commands a reader can run, and the glossary, all derived from the flag registry.

Labels show only what varies between the configurations they sit next to (the approach of llama.cpp's
compare-llama-bench), and are unique within their chart or table.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from collector.publish.rows.frame import Row, quant_of, varying_keys
from collector.publish.rows.names import label_of
from collector.publish.words.escape import h, neutralize, shell_command
from collector.records.flags import FLAGS, RESPELLINGS, known_server_flags
from collector.records.schema import ModelInfo, SpeedRecord


def value_text(row: Row, key: str) -> str:
    """A setting's value as a label shows it: unset means llama.cpp's default (measured) or not stated (imported)."""
    value = getattr(row.rec.config, key)
    if key == "extra_args":
        return " ".join(value) if value else "none"
    if value is None:
        return "not stated" if row.imported else "default"
    return str(value)


def labels(rows: list[Row], *, with_model: bool | None = None) -> list[str]:
    """A short label per row, unique among `rows`: the model and quant when they vary (or when asked), then only
    as many of the varying settings (registry order) as it takes to tell the rows apart; the full settings are
    in the tables. Rows that no setting separates get their source or a number."""
    parts: list[list[str]] = [[] for _ in rows]
    if with_model or (with_model is None and len({label_of(r.rec) for r in rows}) > 1):
        for p, r in zip(parts, rows):
            p.append(label_of(r.rec))
    quants = {quant_of(r.rec) for r in rows}
    for p, r in zip(parts, rows):
        if len(quants) > 1 or with_model or len(rows) == 1:
            p.append(quant_of(r.rec))
    def flag_text(k: str) -> Callable[[Row], str]:
        return lambda r: f"{FLAGS[k].label if k in FLAGS else 'extra'} {value_text(r, k)}"

    def clients_text(r: Row) -> str:
        n = r.rec.method.concurrency or 1
        return f"{n} clients" if n > 1 else ""

    # clients first: N clients run on N slots, so it also tells apart what "slots" would
    candidates: list[tuple[str, Callable[[Row], str]]] = [("clients", clients_text)]
    candidates += [(k, flag_text(k)) for k in varying_keys(rows)]
    candidates.append(("build", lambda r: r.rec.llama_cpp.version or "build not stated"))
    candidates.append(("noisy", lambda r: "noisy" if r.noisy else ""))
    for _, text in candidates:
        current = [" · ".join(p) for p in parts]
        if len(set(current)) == len(current):
            break
        options = [text(r) for r in rows]
        # add this setting only if it separates rows that are still alike
        if any(len({o for o, c2 in zip(options, current) if c2 == c}) > 1 for c in set(current)):
            for p, o in zip(parts, options):
                if o:
                    p.append(o)
    out = [neutralize(" · ".join(p) or quant_of(r.rec)) for p, r in zip(parts, rows)]
    counts = Counter(out)
    seen: Counter[str] = Counter()
    for i, (label, r) in enumerate(zip(out, rows)):
        if counts[label] > 1:  # the date a source states for the figure, else a number (never an internal id)
            seen[label] += 1
            date = (r.rec.source.date or "").replace("T", " ")[:16] if r.imported else ""
            tag = neutralize(date) if date else ("result " if r.imported else "run ") + str(seen[label])
            out[i] = f"{label} · {tag}"
    counts = Counter(out)
    return [f"{label} · #{i + 1}" if counts[label] > 1 else label for i, label in enumerate(out)]


def config_parts(rec: SpeedRecord) -> list[str]:
    """Every flag the configuration sets, one item each: `ctx 2048`, `flash attn on`, the extra arguments."""
    parts = [f"{flag.label} {value}" for key, flag in FLAGS.items() if (value := getattr(rec.config, key)) is not None]
    if rec.config.extra_args:
        parts.append(" ".join(rec.config.extra_args))
    return parts


def config_summary(rec: SpeedRecord) -> str:
    """Every flag the configuration sets, for tables: `ctx 2048 · flash attn on · threads 2`."""
    return " · ".join(config_parts(rec)) or ("no flags stated" if rec.source.type == "imported" else
                                             "llama.cpp defaults")


def quant_facts(m: ModelInfo) -> dict[str, Any]:
    """bits per weight and the tensor-type mix (shares of the weights), as read from the GGUF."""
    total = sum(m.tensor_types.values())
    mix = [(t, n / total) for t, n in m.tensor_types.items()] if total else []
    return {"bpw": m.bits_per_weight, "mix": mix, "note": m.quant_note,
            "mix_text": ", ".join(f"{t} {share:.0%}" for t, share in mix[:4])}


@dataclass
class Command:
    """A command a reader can paste: runnable by today's llama-server, and how it came to be."""

    text: str
    origin: str  # measured | printed | reconstructed
    notes: list[Markup] = field(default_factory=list)  # what was changed from the printed command, and why (HTML)
    printed: str | None = None  # the command as the source printed it, when it had to be changed


def _value_follows(argv: list[str], i: int) -> bool:
    return i + 1 < len(argv) and not (argv[i + 1].startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?",
                                                                                       argv[i + 1]))


def runnable_command(rec: SpeedRecord) -> Command | None:
    """The record's command as a reader can run it with today's llama-server (build of server_flags.txt).

    Measured commands come from the registry and run as they are. A command printed by a source is checked flag
    by flag: a spelling today's llama-server no longer takes is replaced by the current one (with a note), and a
    flag that has no current equivalent is left out (with a note). None when the record has no command."""
    argv = [a for a in rec.command]
    if not argv:
        return None
    model = rec.model.file_name
    origin = "measured" if rec.source.type == "measured" else rec.source.command or "printed"
    if argv[0].rsplit("/", 1)[-1] != "llama-server":
        return Command(shell_command(argv, model), origin)
    known = known_server_flags()
    out = ["llama-server"]
    notes: list[Markup] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if name.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", name) and name not in known:
            has_value = "=" not in arg and _value_follows(argv, i)
            value = argv[i + 1] if has_value else None
            if name in RESPELLINGS:
                now = shlex.split(RESPELLINGS[name])
                out += now + ([value] if value is not None and len(now) == 1 else [])
                notes.append(Markup(f"<code>{h(name)}</code> is not a flag of today's llama-server; it is "
                                    f"<code>{h(' '.join(now))}</code> now"))
            else:
                notes.append(Markup(f"<code>{h(name)}</code> is not a flag of today's llama-server and has no "
                                    "current equivalent: left out"))
            i += 2 if has_value else 1
            continue
        out.append(arg)
        i += 1
    printed = shell_command(argv, model) if notes or argv[0] != "llama-server" else None
    return Command(shell_command(out, model), origin, notes, printed if notes else None)


def glossary_anchor(term: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", term.lower()).strip("-")


# Terms a reader meets on the pages (flags come from the registry; these are the rest)
TERMS: dict[str, str] = {
    "tg": "Generation speed, tokens per second: llama-server's own timing of the generated tokens (the first "
          "token, which comes from prompt processing, is not counted). Median over every repetition and prompt at "
          "one filled depth; n is the number of samples and the range their min–max.",
    "pp": "Prompt processing speed, tokens per second, as llama-server times the prompt of each request.",
    "TTFT": "Time to first token, milliseconds, measured by the client: from sending the request to the first "
            "streamed token (prompt processing included).",
    "depth": "Filled depth: tokens actually in the context when generation starts. A context allocated with -c "
             "but not filled says nothing about speed when it is full.",
    "clients": "Requests in flight at once: N streaming clients sent together, served by N server slots (-np N, "
               "each slot holding ctx / N tokens). One client is how the other figures are measured.",
    "throughput": "Aggregate generation, tokens per second: every concurrent stream's generated tokens over the "
                  "wall time of its batch, from the first request sent to the last token received (prompt "
                  "processing included). With one client it is one request's tokens over its whole time.",
    "waited for a slot": "A request whose slot started on its prompt only after another stream of the same batch "
                         "had received its last token, i.e. it got the slot that stream freed. The slot's start is "
                         "the client's time to first token less llama-server's prompt time.",
    "n and range": "n is how many samples a figure summarises; the range is their min–max. A single figure "
                   "(n=1, or a figure a source states without a spread) cannot show noise. llama-bench prints its "
                   "mean ± sd (standard deviation) over repetitions it does not count: shown as printed, with n "
                   "not stated.",
    "tie": "Two figures the data cannot tell apart, by the one rule every pick, ranking and history step uses: "
           "they differ by 5 % or less, or their intervals overlap (the 95 % interval of a median measured from 6 "
           "or more samples, else the range of the samples; a stated ± as stated; a single figure is a point). Each "
           "tie says which of the two it is, with the figures.",
    "noisy": "A run measured while other processes used the CPU or GPU, or whose samples scattered beyond the "
             "limit: shown, marked, never recommended (Methodology).",
    "KLD": "Kullback–Leibler divergence of the quant's next-token distribution from the base model's, in nats, "
           "averaged over a corpus (llama-perplexity --kl-divergence). 0 means identical; lower is more faithful.",
    "same top p": "Share of tokens where the quant and the base model put their highest probability on the same "
                  "token, percent.",
    "PPL ratio": "The quant's perplexity divided by the base model's over the same corpus.",
    "Pareto front": "The files no other file beats on both generation speed and mean KLD at once: for each of them, "
                    "every faster file is less faithful and every more faithful file is slower.",
    "bpw": "Bits per weight: 8 × file size ÷ parameters, what the file really spends per weight whatever its "
           "name says.",
    "tensor mix": "Which ggml types the weights are stored in, as shares of all weights. A quant name is a recipe; "
                  "llama.cpp falls back to other types when a tensor's rows do not fit a type's block size.",
    "MoE": "Mixture of experts: each layer has many expert networks and a token uses only a few (e.g. 10 of 512), "
           "so the active parameters per token are far fewer than the total.",
    "UD-": "Unsloth Dynamic: Unsloth's quants that give more bits to sensitive tensors than the name's type.",
    "i1-": "A quant made with an importance matrix (mradermacher's naming), weighting the rounding towards the "
           "weights that matter most on a calibration text.",
    "IQ quants": "llama.cpp's importance-matrix quantization types (IQ1_S … IQ4_XS): fewer bits per weight at a "
                 "given quality, usually with an importance matrix.",
    "K quants": "llama.cpp's k-quant types (Q2_K … Q6_K) with S/M/L/XL recipes mixing several types per file.",
    "MXFP4": "A 4-bit microscaling floating-point format (OCP MX); MXFP4_MOE stores the expert weights in it.",
    "REAP": "Router-weighted Expert Activation Pruning: a MoE model with part of its experts removed (e.g. 512 "
            "to 308), smaller than the original.",
    "abliterated": "A fine-tune with the model's refusal behaviour removed; not the original model's weights.",
    "bandwidth efficiency": "Generation speed × weight bytes read per token ÷ the GPU's peak memory bandwidth: "
                            "the share of the memory-bandwidth bound a run reaches.",
    "imported": "A figure from a published source, kept exactly as the source states it (approximations keep "
                "their ~), ranked apart from what the collector measured.",
}


def glossary() -> list[tuple[str, str, str | None, str]]:
    """(anchor, term, flag spellings or None, text) for every term and every flag of the registry, by term."""
    entries: list[tuple[str, str | None, str]] = [(t, None, text) for t, text in TERMS.items()]
    for key, flag in FLAGS.items():
        default = f" Default when not passed: {flag.default}." if flag.default else ""
        entries.append((flag.label, f"{', '.join(flag.server)} ({key})", f"{flag.help}{default}"))
    return sorted(((glossary_anchor(t), t, code, x) for t, code, x in entries), key=lambda e: e[1].lower())


def config_json(rec: SpeedRecord) -> str:
    return json.dumps(rec.config.model_dump(mode="json"), sort_keys=True)
