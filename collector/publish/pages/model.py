"""One page per model: the quant ladder (bits per weight, tensor mix, KLD statistics) and each quant's speed per
device."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from collector.publish import charts
from collector.publish.answers.picks import pareto_front, usable
from collector.publish.pages.device import row_context
from collector.publish.pages.files import GeneratedFile, chart_files
from collector.publish.rows.frame import KldRow, Row, device_label
from collector.publish.rows.names import UNNAMED_SLUG
from collector.publish.words.labels import labels, quant_facts
from collector.publish.words.links import device_src, front_matter, model_src, run_src
from collector.publish.words.render import render
from collector.records.schema import KldRecord


def _ladder(klds: list[KldRow]) -> list[dict[str, Any]]:
    out = []
    for k in sorted(klds, key=lambda k: (str(k.scope), k.kv_variant, -(k.rec.model.size_bytes or 0), k.quant)):
        rec: KldRecord = k.rec
        kv = ("not stated" if k.ctk is None and k.ctv is None else
              f"{k.ctk or 'not stated'}/{k.ctv or 'not stated'}" + (" (default)" if k.kv_default else ""))
        size = (f"{rec.model.size_bytes / 1e9:.3f} GB" if rec.model.size_bytes else
                f"{rec.model.size_stated} (as stated)" if rec.model.size_stated else "not stated")
        out.append({**vars(k), "row": k, "kv": kv, "size": size, "qf": quant_facts(rec.model),
                    "run_href": run_src(k.page_id), "citation": rec.source.citation,
                    "device_href": device_src(k.device)})
    return out


def variants(model: str, name: str, names: dict[str, str]) -> list[dict[str, str]]:
    """Other models that are variants of this one, or it of them (a fine-tune, an abliterated or REAP version):
    one's name begins with the other's."""
    key = re.sub(r"[\s_\-]+", " ", name.casefold()).strip()
    out = []
    for slug, label in sorted(names.items(), key=lambda kv: kv[1]):
        other = re.sub(r"[\s_\-]+", " ", label.casefold()).strip()
        if slug != model and slug != UNNAMED_SLUG and (other.startswith(key + " ") or other.startswith(key + "(")
                                                       or key.startswith(other + " ") or key.startswith(other + "(")):
            out.append({"label": label, "href": model_src(slug)})
    return out


def model_page(model: str, rows: list[Row], klds: list[KldRow], name: str,
               names: dict[str, str] | None = None) -> list[GeneratedFile]:
    src = f"models/{model}.md"
    files: list[GeneratedFile] = []
    ladder = _ladder(klds)
    chart_list = []
    ok = [k for k in klds if k.status == "ok" and k.kld_mean is not None and k.rec.model.size_bytes
          and not k.kv_variant]
    by_scope: dict[tuple[str | None, str, int | None], dict[str, KldRow]] = defaultdict(dict)
    for k in sorted(ok, key=lambda k: k.created_at):  # one point per file (the newest measurement of it)
        by_scope[k.scope][k.sha256 or f"{k.quant}|{k.rec.model.file_name}"] = k
    for i, (_, files_of) in enumerate(sorted(by_scope.items(), key=lambda kv: -len(kv[1]))[:3]):
        grp = sorted(files_of.values(), key=lambda k: k.rec.model.size_bytes or 0)  # more scopes than 3: noise
        if len(grp) < 2:
            continue
        pts = [charts.Point((k.rec.model.size_bytes or 0) / 1e9, float(k.kld_mean or 0.0), k.quant, k.imported)
               for k in grp]
        front = pareto_front([(p.x, -p.y) for p in pts])  # smaller and lower KLD are both better
        base = f"charts/models/{model}-kld-{i}"
        files += chart_files(base, charts.pareto_chart(pts, front, "file size (GB)", "mean KLD", zero_x=False))
        alt = "Scatter of mean KLD against file size: " + "; ".join(f"{p.label}: {p.x:.3g} GB, KLD {p.y:.3g}"
                                                                    for p in pts)
        chart_list.append({"title": f"KLD against size, corpus {grp[0].corpus}, against {grp[0].reference}",
                           "base": base, "alt": alt})
    # speed: per device, the quiet configurations of each quant (pooled re-measurements), fastest first
    speeds = []
    by_device: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_device[r.device].append(r)
    for device, group in sorted(by_device.items()):
        ranked = usable(group)
        labelled = dict(zip([r.key for r in group], labels(group, with_model=model == UNNAMED_SLUG)))
        speeds.append({"device": device, "label": device_label(group[-1].rec.host), "href": device_src(device),
                       "rows": [row_context(src, r, labelled[r.key]) for r in ranked],
                       "other": len(group) - len(ranked)})
    references = sorted({k.reference or "a base not stated" for k in klds})
    text = render("model.md.j2", src=src, name=name, ladder=ladder, charts=chart_list, speeds=speeds,
                  references=references, variants=variants(model, name, names or {}),
                  picker_model=name if model != UNNAMED_SLUG else "")
    return [GeneratedFile(src, front_matter(name, wide=True) + text), *files]
