"""Model names as pages show and group them: one model however its sources spell it (collector.judge.names folds
case, separators, a trailing GGUF and an owner prefix), and no page of its own for what names no model ("Model Hf",
".", a Windows path): those are "unnamed model (as submitted: ...)", listed together on one page, never grouped with
each other or ranked as one model."""

from __future__ import annotations

from collections.abc import Iterable

from collector.judge.names import ModelName, model_name, readable_labels
from collector.records.derived import PerRecord
from collector.records.store import AnyRecord, model_display_name, page_slug, slugify

UNNAMED_SLUG = "unnamed"  # models/unnamed/: every result whose stated model name names no model
UNNAMED_TITLE = "Unnamed models (as submitted)"


def _name_of(rec: AnyRecord) -> ModelName:
    return model_name(model_display_name(rec.model), getattr(rec.model, "params_stated", None))


def _slug_of(rec: AnyRecord) -> str:
    n = name_of(rec)
    return UNNAMED_SLUG if n.unnamed else page_slug(slugify(n.key))


# Once per record object: a build asks each record's name ~10 times, and mkdocs serve keeps the records it read.
# slug_of: the model's page (models/<slug>/), one per model whatever its spelling; UNNAMED_SLUG for no model; never
# a page of the site's own (a model called "index" is `index_page`).
name_of = PerRecord(_name_of)
slug_of = PerRecord(_slug_of)


def label_of(rec: AnyRecord) -> str:
    """The model as this record names it, readable: its own spelling, or "unnamed model (as submitted: ...)"."""
    return name_of(rec).label


def named(rec: AnyRecord) -> bool:
    return not name_of(rec).unnamed


def group_label(recs: Iterable[AnyRecord]) -> str:
    """One label for the records of one model page or group: the spelling readable_labels chooses."""
    names = [name_of(r) for r in recs]
    if not names:
        return "unknown model"
    if all(n.unnamed for n in names):
        return UNNAMED_TITLE if len({n.key for n in names}) > 1 else names[0].label
    key = next(n.key for n in reversed(names) if not n.unnamed)
    return readable_labels([n for n in names if not n.unnamed])[key]
