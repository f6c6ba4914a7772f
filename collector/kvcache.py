"""A key -> text cache in one SQLite file under the collector's cache directory (derived data only).

The record index and the site's run pages keep one entry per record file. SQLite reads them as a stream (no
whole-file JSON held in memory), and a build that adds one record writes one row instead of rewriting tens of
MiB. Entries are tied to a code stamp: a cache written by other code is emptied on open. Any SQLite error
(a read-only or corrupt cache, a lock held too long) makes the cache a no-op: a cache only ever saves time.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from collector.cache import cache_dir


class KeyValueCache:
    def __init__(self, folder: str, name: str, code: str, enabled: bool | None = None) -> None:
        """`cache_dir(folder)/name.sqlite`; enabled None: unless QUANT_ATLAS_CACHE=0."""
        self.db: sqlite3.Connection | None = None
        if not (enabled if enabled is not None else os.environ.get("QUANT_ATLAS_CACHE", "1") != "0"):
            return
        path = Path(cache_dir(folder)) / f"{name}.sqlite"
        try:
            db = sqlite3.connect(path, timeout=30, isolation_level=None)
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
        except sqlite3.Error:
            self.db = None

    def items(self) -> Iterator[tuple[str, str]]:
        """Every (key, value), streamed."""
        if self.db is None:
            return
        try:
            yield from self.db.execute("SELECT key, value FROM kv")
        except sqlite3.Error:
            return

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

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
