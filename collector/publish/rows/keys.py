"""What makes two figures comparable, each said once as a named key: the same configuration (a re-measurement),
the same file, the same way of measuring, the same KLD measurement, the same timeline, the same stated claim.

Keys hold plain values (a configuration as its canonical JSON text, so that any value of a flag compares by value)
and are hashable: grouping is `dict[Key, ...]`, never a string built on the spot."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from collector.publish.rows.devices import device_key
from collector.publish.rows.names import slug_of
from collector.records.schema import KldRecord, LlamaConfig, SpeedRecord


def config_text(config: LlamaConfig, drop: tuple[str, ...] = ()) -> str:
    """A configuration's canonical text: every setting by name, equal configurations give equal text."""
    values = config.model_dump(mode="json")
    for k in drop:
        values.pop(k, None)
    return json.dumps(values, sort_keys=True)


def _quant(rec: SpeedRecord | KldRecord) -> str:
    return rec.model.quant or rec.model.file_type or "unknown"


class ConfigKey(NamedTuple):
    """One configuration on one device: what a reader would launch (re-measurements share it). Imported figures
    are each their own (`figure`); N clients at once is another measurement than one; noisy samples are kept apart."""

    device: str
    config: str
    build: str | None
    model: str | None  # measured: the file's sha256
    figure: str | None  # imported: the figure's own id
    clients: int | None
    shared_prefix: bool | None
    noisy: bool


def config_key(rec: SpeedRecord, noisy: bool = False) -> ConfigKey:
    imported = rec.source.type == "imported"
    many = (rec.method.concurrency or 1) > 1
    return ConfigKey(device_key(rec.host), config_text(rec.config), rec.llama_cpp.build_key,
                     None if imported else rec.model.sha256, (rec.source.figure or rec.id) if imported else None,
                     rec.method.concurrency if many else None, bool(rec.method.shared_prefix) if many else None, noisy)


class FileKey(NamedTuple):
    """One GGUF file: its sha256, else its quant, file name and the repository it is published in."""

    sha256: str | None
    quant: str | None
    file_name: str | None
    repo: str | None


def file_key(rec: SpeedRecord) -> FileKey:
    m = rec.model
    return FileKey(m.sha256, None, None, None) if m.sha256 else FileKey(None, _quant(rec), m.file_name, m.repo)


class ShapeKey(NamedTuple):
    """How a speed was measured, for setting files side by side: flags, build, headline depth, runtime, origin."""

    config: str
    build: str | None
    depth: int | None
    runtime: str | None
    imported: bool


def shape_key(rec: SpeedRecord, depth: int | None) -> ShapeKey:
    """`depth`: the headline depth of the row the record stands for."""
    return ShapeKey(config_text(rec.config), rec.llama_cpp.build_key, depth, rec.source.runtime,
                    rec.source.type == "imported")


class SeriesKey(NamedTuple):
    """One configuration measured with several numbers of clients (the slot count follows the clients)."""

    device: str
    sha256: str | None
    config: str
    build: str | None
    noisy: bool


def series_key(rec: SpeedRecord, noisy: bool) -> SeriesKey:
    return SeriesKey(device_key(rec.host), rec.model.sha256, config_text(rec.config, drop=("parallel",)),
                     rec.llama_cpp.build_key, noisy)


class KldKey(NamedTuple):
    """One KLD measurement: the same files (quant and base), corpus, settings and build (re-runs share it)."""

    figure: str
    file: str
    base: str | None
    corpus: str | None
    config: str
    build: str | None
    status: str


def kld_key(rec: KldRecord) -> KldKey:
    return KldKey(rec.source.figure or "", rec.model.sha256 or rec.id,
                  rec.base_model.sha256 if rec.base_model else None, rec.corpus.sha256 if rec.corpus else None,
                  config_text(rec.config), rec.llama_cpp.build_key, rec.status)


class TimelineKey(NamedTuple):
    """One configuration without its build (the points of a history timeline)."""

    device: str
    config: str
    model: str | None  # the file's sha256; imported without one: [name, file name, quant] as JSON
    bench: str | None  # imported llama-bench: the test (pp512, tg128 @ d512)
    clients: int | None
    shared_prefix: bool | None

    def text(self) -> str:
        """The key as stable text (a timeline page's address is a digest of it)."""
        parts: dict[str, Any] = {"device": self.device, "config": json.loads(self.config)}
        if self.bench is not None:
            parts["bench"] = self.bench
            parts["model"] = json.loads(self.model) if self.model and self.model.startswith("[") else self.model
        else:
            parts["model"] = self.model
            if self.clients is not None:
                parts["clients"], parts["shared_prefix"] = self.clients, self.shared_prefix
        return json.dumps(parts, sort_keys=True)


def timeline_key(rec: SpeedRecord) -> TimelineKey | None:
    """None for records that cannot be on a timeline (failed, build not known, imported other than from
    llama-bench, or a -pg test's combined rate)."""
    if rec.status != "ok" or not rec.llama_cpp.build_number:
        return None
    device, config = device_key(rec.host), config_text(rec.config)
    if rec.source.type == "imported":
        if rec.source.tool != "llama-bench" or not rec.samples or not (rec.samples[0].tg_tps or rec.samples[0].pp_tps):
            return None
        model = rec.model.sha256 or json.dumps([rec.model.name, rec.model.file_name, _quant(rec)])
        return TimelineKey(device, config, model, rec.samples[0].category, None, None)
    many = (rec.method.concurrency or 1) > 1
    return TimelineKey(device, config, rec.model.sha256, None, rec.method.concurrency if many else None,
                       bool(rec.method.shared_prefix) if many else None)


class StatedKey(NamedTuple):
    """A configuration as a source states it: device, file (model, quant, name, repository, fine-tune), flags."""

    device: str
    model: str
    quant: str | None
    file_name: str | None
    repo: str | None
    finetune: str | None
    config: str


def stated_key(rec: SpeedRecord) -> StatedKey:
    m = rec.model
    return StatedKey(device_key(rec.host), slug_of(rec), m.quant or m.file_type, m.file_name, m.repo, m.finetune,
                     config_text(rec.config))


def kv_series_key(k: Any) -> tuple[Any, ...]:
    """One file's KLD with one KV cache type, measured at several context sizes."""
    return (k.sha256 or k.model, k.quant, k.corpus_key, k.ctk, k.ctv, k.rec.config.flash_attn, k.imported)
