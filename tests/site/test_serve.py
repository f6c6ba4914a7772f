"""`mkdocs serve` as a contributor previews: a record written to the data directory ($QUANT_ATLAS_DATA, which
mkdocs.yml cannot name) is on the served pages after serve's own rebuild, which keeps the unchanged records in
memory (load_index(live=True)) and learns of the change from the OS, not by polling the data directory."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from procs import wait_until

from collector.publish.site.watch import watched_path

pytestmark = pytest.mark.site
REPO = Path(__file__).resolve().parents[2]
FIXTURE_DATA = REPO / "tests" / "fixtures" / "records" / "data"
# measured on a device the source does not state; joined to the RTX 4090's imported figures by model + quant
OTHER_DEVICES_KLD = "cpu-unknown/coder-next-test/2026-11-01-kld-01FIXTURE00000000000000027.yaml"
BUILT = "Documentation built in "


def test_serve_rebuilds_when_a_record_is_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE_DATA, data)
    record = data / "records" / OTHER_DEVICES_KLD
    text = record.read_bytes()
    shutil.rmtree(record.parent)  # its folder too: a new device's first record makes its folder
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "QUANT_ATLAS_DATA": str(data), "NO_MKDOCS_2_WARNING": "1", "QUANT_ATLAS_CACHE": "1"}
    log = tmp_path / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "mkdocs", "serve", "-f", str(REPO / "mkdocs.yml"), "-a",
                                 f"127.0.0.1:{port}", "--livereload", "-v"], cwd=REPO, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    page = f"http://127.0.0.1:{port}/devices/rtx-4090/"
    try:
        wait_until(lambda: "Serving on" in log.read_text(errors="replace") or proc.poll() is not None, 300)
        said = log.read_text(errors="replace")
        assert proc.poll() is None, said
        watching = next(line for line in said.splitlines() if "Watching paths for changes" in line)
        assert "/site/serve-" in watching and f"'{data}'" not in watching, watching  # not polled
        before = httpx.get(page, timeout=30)
        assert before.status_code == 200 and "0.0412" not in before.text
        record.parent.mkdir(parents=True)
        record.write_bytes(text)  # as the collector writes a record: a new folder, a new file
        wait_until(lambda: log.read_text(errors="replace").count(BUILT) >= 2 or proc.poll() is not None, 300)
        time.sleep(0.5)  # serve swaps the built site in after logging
        after = httpx.get(page, timeout=30)
        assert after.status_code == 200 and "mean KLD 0.0412" in after.text, log.read_text(errors="replace")
        run = httpx.get(f"http://127.0.0.1:{port}/runs/01FIXTURE00000000000000027/", timeout=30)
        assert run.status_code == 200
        said = log.read_text(errors="replace")
        assert "WARNING" not in said
        # the rebuild rendered with the theme only the pages the record changed, the rest kept from serve's first
        # build (whose configuration MkDocs gives with another path to mkdocs.yml)
        [(done, kept)] = re.findall(r"theme rendering of (\d+) pages done again, (\d+) kept", said.split(BUILT)[1])
        assert 0 < int(done) < int(kept), (done, kept)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def test_the_data_directory_is_watched_by_notifications(tmp_path: Path) -> None:
    """A change anywhere below the data directory, a folder moved in included, rewrites the one flag file serve
    polls; reads do not (the build reads every record)."""
    data = tmp_path / "data"
    (data / "records").mkdir(parents=True)
    flag = watched_path(data)
    assert flag != data and flag.is_file() and watched_path(data) == flag  # one observer per data directory

    def settled() -> None:
        """Until the flag has stayed the same for 1 s: an act's events come one after another (a write is a
        create, modifies and a close), and one arriving late would be taken for the next act's."""
        last, since = flag.read_text(), time.monotonic()
        end = since + 10
        while time.monotonic() - since < 1.0 and time.monotonic() < end:
            time.sleep(0.05)
            if (now := flag.read_text()) != last:
                last, since = now, time.monotonic()

    def changes_flag(act) -> bool:
        settled()
        old = flag.read_text()
        act()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if flag.read_text() != old:
                return True
            time.sleep(0.05)
        return False

    new = data / "records" / "dev" / "m" / "r.yaml"
    assert changes_flag(lambda: new.parent.mkdir(parents=True))
    assert changes_flag(lambda: new.write_text("kind: speed\n"))
    assert not changes_flag(new.read_bytes)
    moved = tmp_path / "outside"
    (moved / "sub").mkdir(parents=True)
    (moved / "sub" / "x.yaml").write_text("x\n")
    assert changes_flag(lambda: moved.rename(data / "records" / "moved"))
    assert changes_flag(new.unlink)


def test_serve_reads_the_records_into_memory_while_it_waits(tmp_path: Path, monkeypatch) -> None:
    """on_serve starts reading the records in the background, so the first rebuild finds them in memory (a first
    build from the whole-build memo read none)."""
    import collector.records.index as index_mod
    from collector.base.cache import scope
    from collector.publish.site.plugin import QuantAtlasPlugin

    data = tmp_path / "data"
    shutil.copytree(FIXTURE_DATA, data)
    monkeypatch.setenv("QUANT_ATLAS_DATA", str(data))
    monkeypatch.setenv("QUANT_ATLAS_CACHE", "1")
    index_mod._LIVE.clear()
    watched: list[str] = []

    class Server:
        def watch(self, path: str) -> None:
            watched.append(path)

    server = Server()
    assert QuantAtlasPlugin().on_serve(server, config=None, builder=lambda: None) is server  # type: ignore[arg-type]
    assert watched == [str(watched_path(data))]
    wait_until(lambda: len(index_mod._LIVE.get(scope(data), {})) == len(list(data.rglob("*.yaml"))), 60)
    # and derives what is kept per record object: the first rebuild derives as little as the later ones
    wait_until(lambda: not any(t.name == "quant-atlas-records" for t in threading.enumerate()), 60)
    from collector.publish.pages import sections
    from collector.publish.rows.names import name_of

    recs = [got for _, got in index_mod._LIVE[scope(data)].values() if not isinstance(got, str)]
    assert recs
    assert all(id(r) in name_of.memo for r in recs)
    assert all(id(r) in sections._json_text.memo for r in recs)
