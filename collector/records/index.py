"""The one record reader: every record under a data directory, valid or with the reason it is not.

`collector validate`, the collector's "already recorded" checks, the importers and the site all read records
through `load_index`, so they agree on what is valid: a file the validator refuses is never published.

Speed: ruamel's pure-Python parser takes ~15-20 ms per record. The fast path reads libyaml's event stream (PyYAML's
C parser, installed with MkDocs) and builds the values itself by the YAML 1.2 core schema, the one the store
writes against (PyYAML's own constructor resolves by YAML 1.1, `on` would become a boolean, and costs three times
as much): ~1 ms per record. Any file the fast path cannot read or validate goes through the store's ruamel reader,
whose errors name file:line; so the fast path only ever decides "valid". Parsed records are cached per data
directory (collector.base.cache: one SQLite row per file, the record as pydantic's JSON), keyed by the sha256 of each
file's bytes (never by size, mtime or inode: an edit that keeps the size and puts the mtime back is still an edit;
a fresh checkout, as in CI, has new mtimes and inodes but the same bytes), and re-validated from that JSON when
used (pydantic-core parses and checks it in one pass, about twice as fast as json.loads plus validation).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver

from collector.base.cache import KeyValueCache, code_stamp, enabled, scope
from collector.base.errors import CollectorError
from collector.base.files import pid_alive, temp_owner
from collector.base.yamlcheck import file_kind, read_regular
from collector.records.store import (
    RECORD_MAX_BYTES,
    AnyRecord,
    load_record,
    page_id_of,
    parse_record,
    record_from_json,
    record_json,
)

_CParser: Any = None
try:  # libyaml's C parser, in PyYAML's wheels; a PyYAML built without libyaml has none: the store reads every file
    from yaml import cyaml as _cyaml
    from yaml import events as _ev

    _CParser = _cyaml.CParser  # type: ignore[attr-defined]  # re-exported from yaml._yaml, not in __all__
except (ImportError, AttributeError):
    pass
_log = logging.getLogger("collector")
_SLOW_SAID: list[bool] = []  # the missing fast path is said once per process
_LIVE_LOCK = threading.Lock()
_LIVE: dict[str, dict[str, tuple[str, AnyRecord | str]]] = {}  # load_index(live=True): data dir -> file -> (sha256,
# the record or the reason it is refused), of the last data directory loaded


def _say_slow() -> None:
    if not _SLOW_SAID:
        _SLOW_SAID.append(True)
        _log.warning("warning: PyYAML's libyaml parser is missing, so records are read by the pure-Python reader "
                     "(~45x slower); reinstall PyYAML from its wheel (pip install --force-reinstall PyYAML)")

# How a plain (unquoted, untagged) scalar resolves is the store's reader's decision (ruamel, YAML 1.2): its own
# resolver names the type, and this module builds only the forms whose value is unambiguous
_RESOLVER = VersionedResolver(version=(1, 2))
_FIRST = frozenset(c for c in _RESOLVER.versioned_resolver if c)  # first characters of non-string plain scalars
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_SPECIAL = re.compile(r"([-+]?)\.(?:inf|Inf|INF)|(\.(?:nan|NaN|NAN))")
_SEEN: dict[str, Any] = {}  # plain text -> its value (null, numbers and keys repeat across records)
_STR = object()  # in _SEEN: the text itself


class _Unusual(Exception):
    """Something the fast reader does not decide (a tag, an anchor, a date, a duplicate key, several documents,
    a number written with underscores or in octal): the store reads it."""


def _resolve(text: str) -> Any:
    tag = str(_RESOLVER.resolve(ScalarNode, text, (True, False)))
    if tag == "tag:yaml.org,2002:str":
        return _STR
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool" and text in _BOOL:
        return _BOOL[text]
    if tag == "tag:yaml.org,2002:int" and _INT.fullmatch(text):
        return int(text, 10)  # 1.2: "012" is twelve, not octal
    if tag == "tag:yaml.org,2002:int" and _HEX.fullmatch(text):
        return int(text, 16)
    if tag == "tag:yaml.org,2002:float":
        if _FLOAT.fullmatch(text):
            return float(text)
        special = _SPECIAL.fullmatch(text)
        if special:
            return math.nan if special[2] else -math.inf if special[1] == "-" else math.inf
    raise _Unusual(text)  # a date, a merge key, 0o17, 1_000, ...


_COMMON = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # how numbers are written: the store's resolver agrees on these


def _plain(text: str) -> Any:
    if text and text[0] not in _FIRST:
        return text  # most keys and words: no resolver applies
    common = _COMMON.fullmatch(text)
    if common:
        return float(text) if common[1] else int(text, 10)  # 1.2: "012" is twelve, not octal
    try:
        value = _SEEN[text]
    except KeyError:
        if len(_SEEN) > 1 << 16:
            _SEEN.clear()
        value = _SEEN[text] = _resolve(text)
    return text if value is _STR else value


_NO_KEY = object()  # in _yaml_12's keys: this mapping waits for a key
# Bytes on which libyaml (YAML 1.1) and the store's ruamel reader (1.2) part ways: libyaml reads UTF-16 and
# UTF-32 with a BOM, takes NEL, U+2028 and U+2029 for line breaks and is lenient with tabs and carriage returns,
# where the store reads UTF-8 only and refuses or reads differently. A file holding any of them (the store never
# writes one: it quotes such characters as escapes) goes to the store, whose errors name file:line.
_PARTING = re.compile(rb"[\t\r\x00]|\xc2\x85|\xe2\x80[\xa8\xa9]|\xef\xbb\xbf")
HAS_FAST_PATH = _CParser is not None


def fast_yaml(data: bytes) -> Any:
    """The one document in `data`, read by the fast path; _Unusual (or libyaml's error) for anything it leaves
    to the store: bytes that are not plain UTF-8 text, the characters above, and every construct _yaml_12 does not
    decide."""
    if _PARTING.search(data):
        raise _Unusual("bytes the two readers read differently")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unusual("not UTF-8") from None
    return _yaml_12(data)


def _yaml_12(data: bytes) -> Any:
    """The one document in `data` as Python values, by libyaml's event stream and the YAML 1.2 core schema.

    Building the values from events here is ~3x faster than PyYAML's constructor (its generic machinery, not the
    C parser, was ~80 % of a cold build's reading). Only plain block/flow mappings, sequences and scalars are
    decided here: tags, anchors and aliases, and anything but exactly one document raise _Unusual."""
    parser = _CParser(data)
    get = parser.get_event
    scalar, seq_start, map_start = _ev.ScalarEvent, _ev.SequenceStartEvent, _ev.MappingStartEvent
    ends = (_ev.MappingEndEvent, _ev.SequenceEndEvent)
    stack: list[Any] = []  # open containers
    keys: list[Any] = []  # per open container: a mapping's pending key (_NO_KEY: none yet)
    docs = 0
    root: Any = None
    while True:
        ev: Any = get()
        kind = ev.__class__
        if kind is scalar:
            if ev.anchor is not None or ev.tag is not None:
                raise _Unusual
            value: Any = _plain(ev.value) if ev.implicit[0] else ev.value
        elif kind is map_start or kind is seq_start:
            if ev.anchor is not None or ev.tag is not None:
                raise _Unusual
            stack.append({} if kind is map_start else [])
            keys.append(_NO_KEY)
            continue
        elif kind in ends:
            value = stack.pop()
            keys.pop()
        elif kind is _ev.DocumentStartEvent:
            docs += 1
            if docs > 1 or ev.version is not None or ev.tags:  # a %YAML 1.1 directive changes the resolution
                raise _Unusual
            continue
        elif kind is _ev.StreamEndEvent:
            if docs != 1:
                raise _Unusual
            return root
        elif kind is _ev.AliasEvent:
            raise _Unusual
        else:  # stream start, document end
            continue
        if not stack:
            root = value
            continue
        top = stack[-1]
        if top.__class__ is list:
            top.append(value)
            continue
        key = keys[-1]
        if key is _NO_KEY:  # value is this mapping's key: wait for its value
            if value.__class__ is dict or value.__class__ is list:
                raise _Unusual  # a collection as a key
            keys[-1] = value
        elif key in top:
            raise _Unusual  # a duplicate key: the store refuses it
        else:
            top[key] = value
            keys[-1] = _NO_KEY


PARALLEL_FROM = 400  # files; below this, forking costs more than it saves
CACHE_VERSION = 5  # 5: SQLite, [error, sha256 of the file] + the record as pydantic's JSON text
# the cache holds validation results: they are only reusable with the same schema and reader code
_CODE_STAMP = code_stamp(tuple(Path(__file__).parent / n for n in ("flags.py", "schema.py", "store.py",
                                                                        "index.py")))


@dataclass
class RecordIndex:
    """Valid records by file, and every refused file with a one-line reason naming file (and line)."""

    records: dict[Path, AnyRecord] = field(default_factory=dict)
    errors: dict[Path, str] = field(default_factory=dict)
    digests: dict[Path, str] = field(default_factory=dict)  # sha256 of each record file's bytes

    def versions(self) -> dict[str, str]:
        """Record id -> a key that changes whenever its file's content does (what caches of derived pages key on;
        the same in a fresh checkout, so a CI cache of them is used)."""
        return {rec.id: f"{path}|{self.digests.get(path, '')}" for path, rec in self.records.items()}

    @property
    def valid(self) -> list[AnyRecord]:
        return list(self.records.values())

    def fingerprint(self) -> str:
        """A digest of everything this index was made from: each record file's path and bytes, each stray file
        with its reason, and the reader's code. `fingerprint(data_dir)` gives the same without parsing a file,
        so what is derived from an index can be cached under it (the site build: collector.publish.site.build)."""
        h = hashlib.sha256(_CODE_STAMP.encode())
        for path, digest in sorted(self.digests.items()):
            h.update(f"{path}\0{digest}\n".encode("utf-8", "surrogateescape"))
        for path, why in sorted(self.errors.items()):
            if path not in self.digests:  # strays: not record files, listed with their reason
                h.update(f"{path}\0{why}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()


def _read(path: Path) -> bytes | None:
    """The file's bytes, or None when it is over the size limit or not a regular file (the store's reader says
    which): never more than the limit is read."""
    try:
        data = read_regular(path, RECORD_MAX_BYTES)
    except CollectorError:
        return None
    return data if len(data) <= RECORD_MAX_BYTES else None


def read_record(path: Path, data: bytes | None) -> AnyRecord | str:
    """The record in `path`, whose bytes are `data` (None: unreadable or too large), or the store's one-line
    reason it is not one."""
    if _CParser is not None and data is not None:
        try:
            return parse_record(fast_yaml(data), str(path))
        except Exception:
            pass
    try:
        return load_record(path)
    except CollectorError as exc:
        return str(exc)


def _one_json(path: Path) -> tuple[bool, str, str | None]:
    """(True, the record as pydantic's JSON) or (False, the reason), and the sha256 of the file's bytes (None: gone):
    what worker processes send back. JSON crosses the process boundary several times cheaper than pickled models,
    and it is what the cache stores. The digest is of the bytes parsed (read once)."""
    try:
        data = _read(path)
    except OSError:
        data = None
    got = read_record(path, data)
    try:
        digest = hashlib.sha256(data).hexdigest() if data is not None else _digest(path)
    except OSError:
        digest = None  # gone since: nothing to cache
    return (False, got, digest) if isinstance(got, str) else (True, record_json(got), digest)


def _cache(data_dir: Path, use: bool) -> KeyValueCache:
    """One cache per data directory: file path -> "[stamp, error]\\n" + the record's JSON."""
    return KeyValueCache("records", f"index-{scope(data_dir)}", f"{CACHE_VERSION}:{_CODE_STAMP}", use)


def _digest(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if file_kind(os.fstat(fd).st_mode) is not None:
            raise OSError(f"{path}: not a regular file")
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):  # streamed: a huge stray file costs time, not memory; a record
            h.update(chunk)  # is one read (os.read: a third of file objects' cost over 10,000 small files)
        return h.hexdigest()
    finally:
        os.close(fd)


def scan(data_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(record files, other files under records/ that do not belong there, each with the reason).

    Only regular files are records: a symbolic link (to a file, a folder, /dev/zero or nowhere), a FIFO (reading
    it would wait forever) or a device under data/ is refused with one line, never opened; so is a name that is
    not UTF-8 (no file the collector writes has one)."""
    root = Path(data_dir)
    try:
        kind = file_kind(root.lstat().st_mode)
    except OSError as exc:
        return [], [(root, f"cannot be read ({exc.strerror or exc})")]
    if kind is None:
        return [root], []
    if kind != "a directory":
        return [], [(root, f"{kind}, not a folder of records or a record file")]
    files, strays = [], []
    for dirpath, dirnames, names in os.walk(root):
        dirnames.sort()
        linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]  # never followed by os.walk
        for name in sorted(names) + linked:
            path = Path(dirpath) / name
            owner = temp_owner(name)
            if owner is not None:
                if not pid_alive(owner):
                    strays.append((path, "a temporary file left by an interrupted write (its process is gone); "
                                         "delete it, or run `collector cache clean --data-dir DIR`"))
                continue
            if (not name.endswith(".yaml") or name.startswith(".")) and name not in linked:
                continue  # not a record file: README, .gitkeep, ...
            try:
                kind = file_kind(os.lstat(path).st_mode)
            except OSError as exc:
                strays.append((path, f"cannot be read ({exc.strerror or exc})"))
                continue
            if kind is not None:
                strays.append((path, f"{kind}; only regular files are read under a data folder (replace it with "
                                     "the file itself, or remove it)"))
            elif _not_utf8(name):
                strays.append((path, "a file name that is not UTF-8; rename it (records are named "
                                     "<date>-<kind>-<id>.yaml)"))
            else:
                files.append(path)
    return files, strays


def _not_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.walk hands undecodable bytes over as lone surrogates
        return True
    return False


def _stray_error(path: Path, why: str) -> str:
    return f"{path}: {why}"


class Scanned(NamedTuple):
    """A data directory's record files with the sha256 of each (None: unreadable), and its stray files."""

    files: list[Path]
    strays: list[tuple[Path, str]]
    digests: list[str | None]


# A file last changed this long before it was hashed can only change again with a later change time: a digest
# is kept by the file's status only then (git's "racily clean" rule, with room for coarse timestamps)
SETTLED_NS = 2_000_000_000


def _status(st: os.stat_result) -> str:
    """What changes whenever a file's bytes can have: its identity, size and times (the change time is set by the
    kernel on every write, rename or `touch`: putting the modification time back does not put it back)."""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def scan_digests(data_dir: Path, use: bool | None = None) -> Scanned:
    """The record files and the sha256 of each. With the cache, a file whose status (_status) is the one it had
    when it was last hashed, and had changed at least SETTLED_NS before that, keeps that digest unread: a rebuild
    of 10,000 records hashed ~0.5 GB to find the one new file."""
    files, strays = scan(Path(data_dir))
    kv = KeyValueCache("records", f"digests-{scope(data_dir)}", str(CACHE_VERSION), use)
    known = dict(kv.items())
    now = time.time_ns()
    digests: list[str | None] = []
    put: list[tuple[str, str]] = []
    for path in files:
        name = str(path)
        try:
            st = os.lstat(path)
            status = _status(st)
            kept = known.pop(name, None)
            if kept is not None and kept.startswith(status + " "):
                digests.append(kept[len(status) + 1:])
                continue
            digests.append(_digest(path))
        except OSError:
            digests.append(None)  # gone or replaced since the scan: read (and refused) by load_index
            continue
        if now - max(st.st_mtime_ns, st.st_ctime_ns) >= SETTLED_NS:
            put.append((name, f"{status} {digests[-1]}"))
    kv.update(put, drop=known)  # what is left of `known`: files gone
    kv.close()
    return Scanned(files, strays, digests)


def fingerprint(data_dir: Path | Scanned) -> str:
    """RecordIndex.fingerprint() of load_index(data_dir), from the files' bytes alone (no YAML parsed): reading
    and hashing 10,000 records takes a fraction of a second. Given a Scanned, of those files and digests."""
    files, strays, digests = data_dir if isinstance(data_dir, Scanned) else scan_digests(data_dir)
    index = RecordIndex(errors={path: _stray_error(path, why) for path, why in strays})
    for path, digest in zip(files, digests):
        index.digests[path] = digest or ""  # as load_index records a file it could not hash
    return index.fingerprint()


def load_index(data_dir: Path, cache: bool | None = None, live: bool = False,
               scanned: Scanned | None = None) -> RecordIndex:
    """Every record file under data_dir: valid ones parsed, the others with their reason; ids must be unique.

    With the cache (default; QUANT_ATLAS_CACHE=0 turns it off) a file whose bytes are unchanged since the last
    load (the same sha256) is taken from a cache of validated records (SQLite, one row per file) instead of
    re-parsing its YAML; only new and changed files are parsed and written back. Ids must also be unique as run
    pages (two ids that slug alike would share one).

    `live` (the site build): the records of the last data directory loaded with it stay in this process, and a
    file whose bytes are unchanged gives the same record object again, neither read from the cache nor validated
    (`mkdocs serve` rebuilds in one process). Its callers never change a record. `scanned`: the files and digests
    scan_digests gave (what fingerprint read), so they are neither listed nor hashed again.
    """
    if not live:
        return _load_index(data_dir, cache, live, scanned)
    with _LIVE_LOCK:  # mkdocs serve: a rebuild and the loading that fills the memo at its start
        return _load_index(data_dir, cache, live, scanned)


def _load_index(data_dir: Path, cache: bool | None, live: bool, scanned: Scanned | None) -> RecordIndex:
    from collector.base.parallel import pmap_iter

    use = cache if cache is not None else enabled()
    if scanned is None:  # the cache's key is the content: a same-size edit with its mtime put back is still an edit
        scanned = scan_digests(data_dir, use) if use else Scanned(*scan(Path(data_dir)), [])
    files, strays = scanned.files, scanned.strays
    digests = list(scanned.digests) or [None] * len(files)
    if _CParser is None and files:
        _say_slow()  # here, before workers fork: they inherit that it was said
    kv = _cache(data_dir, use)
    at = {str(p): i for i, p in enumerate(files)}
    out: list[AnyRecord | str | None] = [None] * len(files)
    if use and live:  # this process loaded these files before: only new and changed ones are read
        memo = _LIVE.get(scope(data_dir), {})
        for i, p in enumerate(files):
            hit = memo.get(str(p))
            if hit is not None and digests[i] is not None and hit[0] == digests[i]:
                out[i] = hit[1]
    stale = [name for name in kv.stored_keys() if name not in at]  # cached files that are gone
    missing = [i for i, got in enumerate(out) if got is None]
    stored = (kv.items() if len(missing) > len(files) // 2  # most: one pass over the cache
              else ((name, v) for i in missing if (v := kv.get(name := str(files[i]))) is not None))
    for name, value in stored:
        at_i = at.get(name)
        if at_i is None or out[at_i] is not None:
            continue
        i = at_i
        head, _, body = value.partition("\n")
        try:
            error, digest = json.loads(head)
            if digest is None or digest != digests[i]:
                continue  # changed (or unreadable now): parsed again
            # the cached record was valid with this code: pydantic parses and checks its JSON in one pass
            out[i] = str(error) if error is not None else record_from_json(body)
        except (ValueError, ValidationError, TypeError):
            pass
    todo = [i for i, got in enumerate(out) if got is None]

    def parsed() -> Iterator[tuple[str, str]]:
        """The files not cached, read as the workers give them; a cache row for each still there."""
        for i, (ok, text, digest) in zip(todo, pmap_iter(_one_json, [files[i] for i in todo], PARALLEL_FROM, 256)):
            out[i] = record_from_json(text) if ok else text
            if digest is None:
                continue  # gone since: nothing to cache
            digests[i] = digest
            yield str(files[i]), json.dumps([None if ok else text, digest]) + "\n" + (text if ok else "")

    kv.update_in_batches(parsed(), stale, 2000)  # not every file's JSON text held at once
    kv.close()
    if use and live:
        _LIVE.clear()  # the last data directory only
        _LIVE[scope(data_dir)] = {str(p): (d, got) for p, d, got in zip(files, digests, out)
                                  if d is not None and got is not None}
    index = RecordIndex()
    by_id: dict[str, list[Path]] = defaultdict(list)
    for path, item, digest in zip(files, out, digests):
        index.digests[path] = digest or ""
        if isinstance(item, str):
            index.errors[path] = item
        elif item is not None:
            index.records[path] = item
            by_id[item.id].append(path)
    for rid, paths in by_id.items():
        if len(paths) > 1:
            for p in paths:
                others = ", ".join(str(o) for o in paths if o != p)
                index.errors[p] = f"{p}: id {rid} is also the id of {others}; every record needs its own id"
                index.records.pop(p, None)
    by_page: dict[str, list[Path]] = defaultdict(list)
    for path, rec in index.records.items():
        by_page[page_id_of(rec.id)].append(path)
    for page, paths in by_page.items():
        if len(paths) > 1:  # ids that differ but slug alike ("qa x", "r-qa-x") would share one run page
            for p in paths:
                others = ", ".join(f"{o} (id {index.records[o].id})" for o in paths if o != p)
                index.errors[p] = (f"{p}: id {index.records[p].id} gives the same run page (runs/{page}/) as "
                                   f"{others}; every record needs an id of its own")
            for p in paths:
                index.records.pop(p, None)
    for path, why in strays:
        index.errors[path] = _stray_error(path, why)
    return index


def load_records(data_dir: Path) -> list[AnyRecord]:
    """The valid records under data_dir (the refused ones are what `collector validate` lists)."""
    return load_index(data_dir).valid


def record_files(data_dir: Path) -> list[Path]:
    """Every record file (*.yaml) under data_dir, sorted."""
    return scan(Path(data_dir))[0]
