"""The observer through which long runs report progress: the CLI plugs in rich, tests a recorder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class Observer(Protocol):
    def run_started(self, index: int, total: int, label: str) -> None: ...
    def run_finished(self, index: int, total: int, status: str, path: Path | None, detail: str = "") -> None: ...
    def message(self, text: str) -> None: ...


class NullObserver:
    def run_started(self, index: int, total: int, label: str) -> None:
        pass

    def run_finished(self, index: int, total: int, status: str, path: Path | None, detail: str = "") -> None:
        pass

    def message(self, text: str) -> None:
        pass


@dataclass
class RecordingObserver:
    """Keeps every event, for tests."""

    events: list[tuple] = field(default_factory=list)

    def run_started(self, index: int, total: int, label: str) -> None:
        self.events.append(("start", index, total, label))

    def run_finished(self, index: int, total: int, status: str, path: Path | None, detail: str = "") -> None:
        self.events.append(("finish", index, total, status, path, detail))

    def message(self, text: str) -> None:
        self.events.append(("message", text))
