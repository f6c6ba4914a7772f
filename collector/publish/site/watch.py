"""What `mkdocs serve` watches of the data directory.

MkDocs' own watcher polls: every half second it lists and stats every file under each watched path. Over 10,000
records that is ~40 % of a core while serve sits idle, and during a rebuild it takes the interpreter lock from the
build. So the data directory is watched by the operating system's notifications instead (watchdog's native observer:
inotify, FSEvents, ReadDirectoryChangesW), whose handler rewrites one small flag file; serve polls only that file and
rebuilds when it changes. Where watchdog has no native observer, serve polls the data directory itself.
"""

from __future__ import annotations

from pathlib import Path
from threading import Lock

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from collector.base.cache import cache_dir, scope
from collector.base.errors import CollectorError

_FLAGS: dict[str, Path] = {}  # data directory -> its flag file, one observer each per process
_LOCK = Lock()
_QUIET = frozenset({"opened", "closed_no_write", "attrib"})  # reads (the build's own) and metadata change no record


class _Touch(FileSystemEventHandler):
    def __init__(self, flag: Path) -> None:
        self.flag, self.n = flag, 0

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _QUIET or (event.is_directory and event.event_type == "modified"):
            return  # a folder's "modified" comes with its files' own events; a folder moved in has none of those
        self.n += 1
        self.flag.write_text(f"{self.n}\n", encoding="utf-8")


def watched_path(data_dir: Path) -> Path:
    """The path serve should watch for changes under `data_dir`: a flag file the OS's notifications rewrite on any
    change below it (in the collector's cache directory, one per data directory, so a serve that is killed leaves
    nothing behind), or `data_dir` itself where watchdog has no native observer or it cannot watch this tree."""
    key = str(data_dir.resolve())
    with _LOCK:
        if key not in _FLAGS:
            observer = Observer()
            if isinstance(observer, PollingObserver):
                return data_dir
            observer.daemon = True
            try:
                flag = cache_dir("site") / f"serve-{scope(data_dir)}.changed"
                flag.write_text("0\n", encoding="utf-8")
                observer.schedule(_Touch(flag), key, recursive=True)
                observer.start()
            except (OSError, CollectorError):  # inotify's watch limit, a read-only cache: MkDocs' polling still works
                return data_dir
            _FLAGS[key] = flag
        return _FLAGS[key]
