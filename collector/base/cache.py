"""The collector's caches, one scheme: where they live, the on/off switch, their keys and stamps, and how they are
stored. Everything cached is derived data: a miss, an unreadable or corrupt entry, a read-only disk, a lock held too
long only ever cost time, never change a result.

- `cache_dir(sub)`: $COLLECTOR_CACHE_DIR, else $XDG_CACHE_HOME/quant-atlas, else ~/.cache/quant-atlas.
- `enabled()`: QUANT_ATLAS_CACHE=0 turns every cache off (tests compare cached and uncached output byte for byte).
- Keys: `code_stamp(files)` ties a cache to the code that filled it (a cache written by other code is emptied);
  `scope(path)` gives one cache per data directory; `digest(...)` keys an entry by content.
- Stores: `KeyValueCache`, a key -> text table in one SQLite file (streamed, one row written per new entry: the
  record index, run pages, file hashes); `Blob`, one pickled object under a key line in a file written atomically
  (the whole-site memo, streamed so that no second copy is held in memory).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sqlite3
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from collector.base import settings
from collector.base.errors import CollectorError
from collector.base.files import atomic_open

_HASH_CHUNK = 8 << 20



def cache_dir(sub: str = "") -> Path:
    """$COLLECTOR_CACHE_DIR, else $XDG_CACHE_HOME/quant-atlas, else ~/.cache/quant-atlas; created."""
    root = settings.cache_dir()
    if not root:
        xdg = settings.xdg_cache_home() or str(Path.home() / ".cache")
        root = str(Path(xdg) / "quant-atlas")
    path = Path(root) / sub if sub else Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where the folder should be, /proc, a read-only disk
        where = "COLLECTOR_CACHE_DIR" if settings.cache_dir() else "the cache directory"
        raise CollectorError(f"{path}: cannot be used as {where} ({exc.strerror or exc}); point COLLECTOR_CACHE_DIR "
                             "at a writable folder") from None
    return path


def enabled() -> bool:
    """Whether caches are on (QUANT_ATLAS_CACHE=0 turns them off)."""
    return settings.cache_enabled()


def digest(*parts: str) -> str:
    """A key for these parts (sha256 hex): the same parts, the same key, in any process."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def scope(path: Path) -> str:
    """A short name for a cache that belongs to one directory (one record index, memo, run-page cache per data dir)."""
    return digest(str(Path(path).resolve()))[:16]


@lru_cache(maxsize=8)
def code_stamp(files: tuple[Path, ...]) -> str:
    """A stamp of the code that fills a cache: the files' bytes, in order."""
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()[:16]


def package_files(suffixes: tuple[str, ...] = (".py", ".j2", ".txt", ".css", ".js")) -> tuple[Path, ...]:
    """This package's code and assets: what generated pages are a function of, besides their records."""
    root = Path(__file__).resolve().parents[1]  # the collector package
    return tuple(p for p in sorted(root.rglob("*")) if p.suffix in suffixes and p.is_file())


# What else a page's bytes depend on: the libraries that template and write the files and place the charts' ticks
# and text (matplotlib's locators and font metrics)
PAGE_LIBS = ("matplotlib", "jinja2", "markupsafe", "pydantic", "pandas", "pyarrow")


def lib_versions(names: Iterable[str]) -> str:
    """`name=version` of each installed distribution (`name=-` where it is not installed)."""
    from importlib import metadata

    libs = []
    for name in names:
        try:
            libs.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            libs.append(f"{name}=-")
    return " ".join(libs)


def pages_stamp() -> str:
    """A stamp of everything generated pages are a function of besides their inputs: this package's code, templates,
    assets and data files (the device catalog, the model table) and the versions of PAGE_LIBS."""
    return f"{code_stamp(package_files(('.py', '.j2', '.txt', '.css', '.js', '.yaml')))} {lib_versions(PAGE_LIBS)}"


class KeyValueCache:
    """`cache_dir(folder)/name.sqlite`: key -> text, tied to `code` (entries of other code are dropped on open).

    SQLite reads entries as a stream (no whole-file JSON held in memory), and a build that adds one record writes
    one row instead of rewriting tens of MiB. Any SQLite error makes the cache a no-op."""

    def __init__(self, folder: str, name: str, code: str, use: bool | None = None) -> None:
        self.db: sqlite3.Connection | None = None
        if not (enabled() if use is None else use):
            return
        try:
            db = sqlite3.connect(cache_dir(folder) / f"{name}.sqlite", timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE name = 'code'").fetchone()
            if row is None or row[0] != code:
                with db:
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("DELETE FROM kv")
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('code', ?)", (code,))
            self.db = db
        except (sqlite3.Error, OSError):
            self.db = None

    def get(self, key: str) -> str | None:
        if self.db is None:
            return None
        try:
            row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        return str(row[0]) if row else None

    def items(self) -> Iterator[tuple[str, str]]:
        """Every (key, value), streamed."""
        if self.db is None:
            return
        try:
            yield from self.db.execute("SELECT key, value FROM kv")
        except sqlite3.Error:
            return

    def stored_keys(self) -> list[str]:
        if self.db is None:
            return []
        try:
            return [str(k) for (k,) in self.db.execute("SELECT key FROM kv")]
        except sqlite3.Error:
            return []

    def update(self, put: Iterable[tuple[str, str]], drop: Iterable[str] = ()) -> None:
        """Write these entries and remove those keys, in one transaction."""
        if self.db is None:
            return
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("DELETE FROM kv WHERE key = ?", ((k,) for k in drop))
                self.db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", put)
        except sqlite3.Error:
            pass

    def update_in_batches(self, put: Iterable[tuple[str, str]], drop: Iterable[str], per_batch: int) -> None:
        """update() with every entry of `put`, `per_batch` of them a transaction (`drop` with the first): a caller
        that makes the entries as it goes never holds them all. `put` is taken whole even where the cache is off
        or fails (its making may be work the caller needs done)."""
        batch: list[tuple[str, str]] = []
        for entry in put:
            batch.append(entry)
            if len(batch) >= per_batch:
                self.update(batch, drop)
                batch, drop = [], ()
        self.update(batch, drop)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def __enter__(self) -> KeyValueCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Blob:
    """One pickled object in `cache_dir(folder)/name`, valid under one key (the file's first line)."""

    def __init__(self, folder: str, name: str) -> None:
        self.path = cache_dir(folder) / name if enabled() else None

    def exists(self) -> bool:
        return self.path is not None and self.path.is_file()

    def get(self, key: str) -> Any:
        """The object kept under `key`; None on a miss or anything unreadable."""
        if self.path is None:
            return None
        try:
            with open(self.path, "rb") as fh:
                if fh.readline().rstrip(b"\n") != key.encode():
                    return None
                return pickle.load(fh)
        except Exception:  # a truncated or foreign file is only a miss: the cache only saves time
            return None

    def put(self, key: str, obj: Any) -> None:
        """Streamed into the file, never left partial."""
        if self.path is None:
            return
        try:
            with atomic_open(self.path) as fh:
                fh.write(key.encode() + b"\n")
                pickle.dump(obj, fh, pickle.HIGHEST_PROTOCOL)
        except (OSError, pickle.PickleError, RecursionError):
            pass  # a cache that cannot be written only costs time


def sha256_files(paths: list[Path]) -> str:
    """sha256 over the files' bytes in order, cached by (path, size, mtime_ns) so a big file is hashed once."""
    stats = [p.stat() for p in paths]
    key = json.dumps([[str(p.resolve()), s.st_size, s.st_mtime_ns] for p, s in zip(paths, stats)])
    with KeyValueCache("hashes", "files", "1") as kv:
        cached = kv.get(key)
        if cached is not None and len(cached) == 64 and all(c in "0123456789abcdef" for c in cached):
            return cached
        value = _hash_files(paths)
        kv.update([(key, value)])
    return value


def _hash_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        try:
            with open(p, "rb") as fh:
                while chunk := fh.read(_HASH_CHUNK):
                    h.update(chunk)
        except OSError as exc:
            raise CollectorError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return h.hexdigest()
