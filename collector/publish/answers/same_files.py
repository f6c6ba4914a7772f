"""Fast and faithful for the same files: which files of one model can be set side by side on one device, and the
fastest, balanced and most faithful among them (decisions only; pages.fast_faithful shows them).

Per model, the files that have both a quiet speed on this device and a mean KLD (measured here, on another device or
published: KLD depends on the file, not the GPU; rows.frame.join_kld says how each was joined) are compared like with
like: the configuration (flags and llama.cpp build) and headline depth shared by the most of these files, one row per
file; files measured otherwise are counted, not mixed in."""

from __future__ import annotations

from collections import defaultdict

from collector.publish.answers.picks import (
    KLD_BUDGET,
    Fastest,
    Missing,
    Pick,
    balanced,
    by_speed,
    faithful_pick,
    kld_pool,
    usable,
)
from collector.publish.rows.frame import Row
from collector.publish.rows.keys import file_key, shape_key


def comparable(rows: list[Row]) -> tuple[list[Row], int, tuple[str | None, str, int | None] | None]:
    """(one row per file measured the same way, fastest first; how many files with both figures are left out;
    the KLD scope: reference, corpus, context) for the rows of one model."""
    pool, corpus = kld_pool(usable(rows))
    if not pool:
        return [], 0, None
    by_shape: dict[object, dict[object, Row]] = defaultdict(dict)
    for r in pool:  # usable() is fastest first: the first row of a file in a shape is its fastest there
        by_shape[shape_key(r.rec, r.tg_depth)].setdefault(file_key(r.rec), r)
    best = max(by_shape.values(), key=lambda files: (len(files), max(r.value() or 0.0 for r in files.values())))
    chosen = sorted(best.values(), key=lambda r: (-(r.value() or 0.0), r.page_id))
    return chosen, len({file_key(r.rec) for r in pool}) - len(chosen), corpus


def trio(points: list[Row], budget: float = KLD_BUDGET) -> tuple[list[Pick], list[Missing]]:
    """Fastest, balanced (fastest within the KLD budget) and most faithful among rows that all have a KLD."""
    assert points[0].tg is not None
    picks = [by_speed("fastest", points, Fastest(len(points), points[0].tg, "file"))]
    missing: list[Missing] = []
    found = balanced(points, None, budget, "file")
    (picks if isinstance(found, Pick) else missing).append(found)  # type: ignore[arg-type]
    picks.append(faithful_pick(points, "file"))
    return picks, missing
