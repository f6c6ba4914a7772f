"""One page per model: the quant ladder (size, bits per weight, KLD statistics) and each quant's speed per device."""

from __future__ import annotations

import pandas as pd

from collector.publish import charts
from collector.publish.common import (Output, front_matter, DASH, Col, GeneratedFile, chart_files, chart_md, device_src, gb, href, num,
                                      run_src, source_badge, table)
from collector.publish.frame import rows_of
from collector.publish.escape import h, md
from collector.publish.recommend import pareto_front


def _ladder(src: str, kld: pd.DataFrame) -> str:
    cols = [
        Col("quant", lambda r: f'<a href="{href(src, run_src(r["page_id"]))}">{h(r["quant"])}</a>'),
        Col("file size", lambda r: h(gb(r["size_bytes"]) if r["size_bytes"] or not r.get("size_stated")
                                     else f'{r["size_stated"]} (as stated)'), lambda r: r["size_bytes"]),
        Col("bits/weight", lambda r: h(num(r["bpw"])), lambda r: r["bpw"]),
        Col("KLD mean", lambda r: h(num(r["kld_mean"], 4)), lambda r: r["kld_mean"]),
        Col("KLD 99.9%", lambda r: h(num(r["kld_p99_9"], 4)), lambda r: r["kld_p99_9"]),
        Col("same top p %", lambda r: h(num(r["same_top_p"], 4)), lambda r: r["same_top_p"]),
        Col("PPL ratio", lambda r: h(num(r["ppl_ratio"], 5)), lambda r: r["ppl_ratio"]),
        Col("KV cache", lambda r: h(f'{r["ctk"]}/{r["ctv"]}')),
        Col("corpus", lambda r: h(r["corpus"] or DASH)),
        Col("status", lambda r: h(r["status"]) if r["status"] == "ok" else f"<strong>{h(r['status'])}</strong>"),
        Col("source", source_badge),
    ]
    return table(cols, rows_of(kld.sort_values(["corpus_key", "size_bytes"], na_position="last")))


def _speeds(src: str, speed: pd.DataFrame) -> str:
    ok = speed[speed["status"] == "ok"]
    best = ok.sort_values("tg", ascending=False).drop_duplicates(["device", "quant", "imported"])
    cols = [
        Col("device", lambda r: f'<a href="{href(src, device_src(r["device"]))}">{h(r["device_label"])}</a>'),
        Col("quant", lambda r: h(r["quant"])),
        Col("best tg t/s", lambda r: f'<a href="{href(src, run_src(r["page_id"]))}">{h(num(r["tg"]))}</a>',
            lambda r: r["tg"]),
        Col("pp t/s", lambda r: h(num(r["pp"])), lambda r: r["pp"]),
        Col("configuration", lambda r: h(r["config"])),
        Col("source", source_badge),
    ]
    return table(cols, rows_of(best.sort_values(["device", "quant"])))


def model_page(model: str, speed: pd.DataFrame, kld: pd.DataFrame) -> list[Output]:
    src = f"models/{model}.md"
    name = (kld["model_name"].iloc[0] if not kld.empty else speed["model_name"].iloc[0])
    lines = [front_matter(name, wide=True) + f"# {md(name)}", ""]
    files: list[Output] = []
    lines += ["## Quant ladder", "",
              "KLD against the base model over the named corpus (lower is better); same top p is the share of "
              "tokens where both models pick the same most likely token. KLDs on different corpora are not "
              "comparable.", ""]
    if kld.empty:
        lines += ["No KLD run for this model yet.", ""]
    else:
        lines += [_ladder(src, kld), ""]
        ok = kld[(kld["status"] == "ok") & kld["kld_mean"].notna() & kld["size_bytes"].notna()]
        for i, (corpus, grp) in enumerate(ok.groupby("corpus_key", sort=True)):
            if i >= 3:  # more corpora than that is noise on a page; the table has them all
                break
            pts = [charts.Point(float(s) / 1e9, float(k), str(q), bool(imp))
                   for s, k, q, imp in zip(grp["size_bytes"], grp["kld_mean"], grp["quant"], grp["imported"])]
            # lower size and lower KLD are both better: flip KLD's sign for the frontier
            front = pareto_front([(p.x, -p.y) for p in pts])
            base = f"charts/models/{model}-kld-{i}"
            files += chart_files(base, charts.pareto_chart(f"{model}-kld-{i}", pts, front, "file size (GB)",
                                                           "mean KLD", logx=False))
            lines += [f"### KLD against size, corpus {md(grp['corpus'].iloc[0] or corpus)}", "",
                      chart_md(src, base, "mean KLD against file size"), ""]
    lines += ["## Speed of each quant per device", "",
              "The fastest measured configuration of each quant on each device; measured and imported kept apart.",
              ""]
    lines += [_speeds(src, speed) if not speed.empty else "No speed run for this model yet.", ""]
    return [GeneratedFile(src, "\n".join(lines)), *files]
