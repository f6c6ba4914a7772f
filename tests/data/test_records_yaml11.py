"""The committed records as a YAML 1.1 reader (PyYAML, the most common) sees them: every float reads back as the
same float (tests/unit/test_store.py checks how floats are written)."""

from __future__ import annotations

from pathlib import Path

import yaml

from collector.records import store

REPO = Path(__file__).resolve().parents[2]


def _floats(value: object) -> list[float]:
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _floats(v)]
    return [value] if isinstance(value, float) else []


def test_committed_floats_read_back_as_floats_by_yaml_1_1_readers() -> None:
    for path in sorted((REPO / "data").rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        read = yaml.load(text, Loader=yaml.CSafeLoader)
        assert _floats(read) == _floats(store.load_record(path).model_dump(mode="json")), path
