"""Differential fuzz: the record index's fast path (libyaml events) and the store's reader (ruamel) accept exactly
the same files, as the same records.

Each run mutates real records from data/ (a fixed seed, so a failure is reproducible: the message gives the seed,
the record and the mutation) and reads every mutant both ways. The fast path only ever decides "valid": a file it
accepts must be one the store accepts, holding the same record; a file it refuses goes to the store anyway.
"""

from __future__ import annotations

import codecs
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.records import index, store

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "records"
SEED = int(os.environ.get("QA_FUZZ_SEED", "20261127"))
MUTANTS = int(os.environ.get("QA_FUZZ_MUTANTS", "1000"))

# Bytes that parsers disagree about, and YAML's own syntax
TOKENS = [b"\t", b"\r", b"\r\n", "\u0085".encode(), "\u2028".encode(), "\u2029".encode(), codecs.BOM_UTF8,
          b"\x00", b"\xff", b"\xc3", b'"', b"'", b":", b": ", b" #", b"- ", b"&a ", b"*a", b"!!str ", b"!!int ",
          b"!x ", b"%YAML 1.1\n---\n", b"---\n", b"\n...\n", b"{", b"}", b"[", b"]", b",", b"? ", b"|", b">", b"@",
          b"`", b"\\", b" ", b"\n", b"  ", b"0x1F", b"0o17", b"1_000", b".inf", b"-.inf", b".nan", b"~", b"null",
          b"yes", b"on", b"2026-01-01", b"2026-11-27T10:00:00", b"12:30:00", b"1e400", b"-0", b"+1", b".5", b"1.",
          b'"\\ud800"', b'"\\x41"', b'"\\N"', b'"\\_"', b'"\\L"', b'"\\P"', "\u00e9".encode(), b"<<: ",
          "\ufeff".encode(), "\u00a0".encode(), b"\x1b", b"\x7f", "\ue000".encode(), b"=", b"!!binary ",
          b"01M8BRJNK040N5WYFYHXMZ0Z46", b"9" * 30, b"-9" * 10, b"1" + b"0" * 400]


def _records() -> list[Path]:
    files = sorted(DATA.rglob("*.yaml"))
    assert len(files) >= 20, "the fuzz test mutates the committed records under data/"
    # every kind and source there is, and the smallest of each: ruamel's time is per line
    by_kind: dict[str, list[Path]] = {}
    for f in files:
        rec = index.read_record(f, f.read_bytes())
        assert not isinstance(rec, str), rec
        by_kind.setdefault(f"{rec.kind}/{rec.source.type}/{rec.status}", []).append(f)
    return [f for group in by_kind.values() for f in sorted(group, key=lambda p: p.stat().st_size)[:1]]


# lines holding free text (a name, a note, an argument of a command): a token there keeps most records valid, so
# the two readers are compared on what they read, not only on what they refuse
_TEXT = re.compile(rb"^ *(?:- )?(?:(?:name|model|note|citation|title|file_name|file_type|os|driver|category|version"
                   rb"|commit|message|basename|arch|size_label|backend|compiler|target|tool|author|figure|text"
                   rb"|version_text|origin|description|quant_note): )?(?=[^\n]*[A-Za-z])")


def _in_text(rng: random.Random, data: bytes, token: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    candidates = [i for i, line in enumerate(lines)
                  if (_TEXT.match(line) and b": " in line) or line.lstrip()[:2] == b"- "]
    i = rng.choice(candidates)
    line = lines[i].rstrip(b"\n")
    start = line.index(b": ") + 2 if b": " in line else line.index(b"- ") + 2
    at = rng.randint(start, len(line))
    lines[i] = line[:at] + token + line[at:] + b"\n"
    return b"".join(lines)


def _mutate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    lines = data.splitlines(keepends=True)
    pos = rng.randrange(len(data))
    token = rng.choice(TOKENS)
    i = rng.randrange(len(lines))
    if rng.random() < 0.25:
        return _in_text(rng, data, token), f"text {token!r}"
    ops: list[tuple[str, Callable[[], bytes]]] = [
        ("insert", lambda: data[:pos] + token + data[pos:]),
        ("replace", lambda: data[:pos] + token + data[pos + rng.randint(1, 8):]),
        ("delete", lambda: data[:pos] + data[pos + rng.randint(1, 40):]),
        ("value", lambda: b"".join(lines[:i]) + (lines[i].split(b":", 1)[0] + b": " + token + b"\n"
                                                 if b":" in lines[i] else lines[i]) + b"".join(lines[i + 1:])),
        ("line-end", lambda: b"".join(lines[:i]) + lines[i].rstrip(b"\n") + token + b"\n" + b"".join(lines[i + 1:])),
        ("duplicate", lambda: b"".join(lines[:i + 1]) + lines[i] + b"".join(lines[i + 1:])),
        ("swap", lambda: b"".join(lines[:i]) + b"".join(lines[i + 1:i + 2]) + lines[i] + b"".join(lines[i + 2:])),
        ("indent", lambda: b"".join(lines[:i]) + b" " * rng.choice([1, 2, 4]) + lines[i] + b"".join(lines[i + 1:])),
        ("dedent", lambda: b"".join(lines[:i]) + lines[i].lstrip(b" ") + b"".join(lines[i + 1:])),
        ("truncate", lambda: data[:pos]),
        ("utf-16", lambda: codecs.BOM_UTF16_LE + data.decode("utf-8").encode("utf-16-le")),
        ("utf-16-be", lambda: data.decode("utf-8").encode("utf-16")),
        ("utf-32", lambda: data.decode("utf-8").encode("utf-32")),
        ("bom", lambda: codecs.BOM_UTF8 + data),
        ("crlf", lambda: data.replace(b"\n", b"\r\n")),
        ("cr", lambda: data.replace(b"\n", b"\r")),
        ("nel", lambda: data.replace(b"\n", "\u0085".encode(), rng.randint(1, 3))),
        ("ls", lambda: data.replace(b"\n", rng.choice(["\u2028", "\u2029"]).encode(), rng.randint(1, 3))),
        ("tab-indent", lambda: b"".join(lines[:i]) + lines[i].replace(b"  ", b"\t", 1) + b"".join(lines[i + 1:])),
        ("tab-in-scalar", lambda: b"".join(lines[:i]) + lines[i].replace(b" ", b"\t", 2) + b"".join(lines[i + 1:])),
    ]
    name, op = rng.choice(ops)
    return op(), f"{name} {token!r} at byte {pos} / line {i + 1}"


def _fast(data: bytes, origin: str) -> store.AnyRecord | None:
    """What the index's fast path decides: a record, or None (it leaves the file to the store)."""
    try:
        return store.parse_record(index.fast_yaml(data), origin)
    except Exception:
        return None


def _store(path: Path) -> store.AnyRecord | None:
    try:
        return store.load_record(path)
    except CollectorError:
        return None


@pytest.mark.skipif(not index.HAS_FAST_PATH, reason="PyYAML's libyaml binding is not installed")
def test_fast_path_and_store_agree_on_mutated_real_records(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    originals = [(f, f.read_bytes()) for f in _records()]
    path = tmp_path / "mutant.yaml"
    accepted = refused = 0
    for n in range(MUTANTS):
        source, data = originals[n % len(originals)]
        mutant, how = _mutate(rng, data)
        fast = _fast(mutant, str(path))
        if fast is None:
            refused += 1
            continue
        accepted += 1
        path.write_bytes(mutant)
        slow = _store(path)
        where = f"seed {SEED}, mutant {n} of {source.name}: {how}"
        assert slow is not None, f"the fast path accepts what the store refuses ({where})"
        assert store.record_json(fast) == store.record_json(slow), f"the two readers read different records ({where})"
        # and the index, which picks the path, gives the same
        got = index.read_record(path, mutant)
        assert not isinstance(got, str) and store.record_json(got) == store.record_json(slow), where
    # the mutations exercise both outcomes (a fuzzer whose every mutant is refused would test nothing)
    assert accepted > MUTANTS // 10 and refused > MUTANTS // 2, (accepted, refused)


@pytest.mark.parametrize("name, mutate", [
    ("utf-16 with BOM", lambda d: d.decode().encode("utf-16")),
    ("utf-8 BOM", lambda d: codecs.BOM_UTF8 + d),
    ("U+2028 as a line break", lambda d: d.replace(b"\nstatus:", "\u2028status:".encode())),
    ("U+2029 as a line break", lambda d: d.replace(b"\nstatus:", "\u2029status:".encode())),
    ("NEL as a line break", lambda d: d.replace(b"\nstatus:", "\u0085status:".encode())),
    ("a tab inside a plain scalar", lambda d: d.replace(b"status: ok", b"status: ok\t")),
])
def test_the_cases_the_fuzzer_found(name: str, mutate: Callable[[bytes], bytes], tmp_path: Path) -> None:
    """The disagreements of the hostile review (issue 25): each is refused, or read the same, by both readers."""
    source = min(DATA.rglob("*-speed-*.yaml"), key=lambda p: p.stat().st_size)
    data = mutate(source.read_bytes())
    assert data != source.read_bytes()
    path = tmp_path / "x.yaml"
    path.write_bytes(data)
    slow, fast = _store(path), _fast(data, str(path))
    assert fast is None or (slow is not None and store.record_json(fast) == store.record_json(slow)), name
    got = index.read_record(path, data)
    assert (isinstance(got, str)) == (slow is None), name


def test_a_measured_record_cut_short_is_refused(tmp_path: Path) -> None:
    """Cut at a line, a measured record (the smallest of each kind in data/) is refused or reads as the very
    same record: nothing it needs (its conditions, a summary, a statistic's range, a noisy run's reasons, a KLD
    run's timing) can be lost without the file being refused (issue 25, 2)."""
    checked = 0
    for f in _records():
        data = f.read_bytes()
        whole = index.read_record(f, data)
        assert not isinstance(whole, str)
        if not whole.measured:
            continue  # an imported record holds what its source states: any of its figures may be absent
        lines = data.splitlines(keepends=True)
        # every line of the trailing blocks (conditions, batches, timing, a tune's answer), every 4th before
        for k in (k for k in range(1, len(lines)) if k % 4 == 0 or k > len(lines) - 80):
            cut = b"".join(lines[:k])
            got = _either(cut, tmp_path / "cut.yaml")
            assert got is None or store.record_json(got) == store.record_json(whole), (
                f"{f.name} cut after line {k} of {len(lines)} ({lines[k - 1].strip()[:40]!r}) is valid and different")
            checked += 1
    assert checked > 300


def _either(data: bytes, path: Path) -> store.AnyRecord | None:
    """The index's verdict, cheaply: YAML the fast path reads is validated as the store would (parse_record is
    shared); only YAML it does not read goes through the store's slower reader."""
    try:
        values = index.fast_yaml(data)
    except Exception:
        path.write_bytes(data)
        return _store(path)
    try:
        return store.parse_record(values, str(path))
    except CollectorError:
        return None
