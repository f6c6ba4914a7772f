"""ServerProcess against the real llama-server: clean environment, readiness, published command, stop."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.llama import server as server_mod
from collector.llama.binaries import LlamaTools
from collector.llama.client import LlamaClient
from collector.llama.logparse import parse_server_log
from collector.llama.server import ServerProcess, free_port
from collector.llama.tools import ToolError

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_real_server_clean_env_ready_and_stopped(tmp_path: Path, llama_tools: LlamaTools, smollm2: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Both would silently change what is measured if they reached the server.
    monkeypatch.setenv("LLAMA_ARG_CTX_SIZE", "768")
    monkeypatch.setenv("LLAMA_ARG_FLASH_ATTN", "on")
    srv = ServerProcess(llama_tools.path("llama-server"), smollm2, ["-t", "1", "-np", "1", "-fa", "off"],
                        log_dir=tmp_path, load_timeout_s=120)
    with srv:
        pid = srv.pid
        assert pid and _alive(pid) and srv.load_seconds and 0 < srv.load_seconds < 60
        with LlamaClient(srv.base_url) as client:
            assert client.health() == 200
            props = client.props()
            assert props["default_generation_settings"]["n_ctx"] == 8192  # training context: env var ignored
            assert client.tokenize("hello world") and "llamacpp:" in client.metrics()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [e for e in environ if e.startswith(b"LLAMA_ARG_")]
        assert any(e.startswith(b"XDG_CONFIG_HOME=") and b"qa-xdg-" in e for e in environ)
        assert os.getpgid(pid) == pid  # own process group: the whole group can be killed
    assert srv.proc is None and not _alive(pid)
    facts = parse_server_log(srv.log_text())  # the exit table is printed on SIGTERM: a clean stop
    assert facts.placement.n_ctx == 8192 and facts.placement.flash_attn is False and facts.memory.breakdown
    cmd = srv.published_command()
    assert cmd[:3] == ["llama-server", "-m", "{model}"]
    assert not {"--log-file", "-lv", "--port", "--host", "--metrics", "--no-webui"} & set(cmd)
    assert cmd[3:] == srv.argv[srv.argv.index("--no-webui") + 1:-1]  # the plan's flags, in order
    assert str(smollm2) in srv.argv and "--log-file" in srv.argv and srv.argv[srv.argv.index("-lv") + 1] == "4"


def test_port_taken_retries_then_fails(tmp_path: Path, llama_tools: LlamaTools, smollm2: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy, free_port()])
        srv = ServerProcess(llama_tools.path("llama-server"), smollm2, ["-c", "512", "-t", "1", "-np", "1"],
                            log_dir=tmp_path / "a", port_picker=lambda: next(picks))
        with srv:
            assert srv.port != busy and srv.load_seconds
        always = ServerProcess(llama_tools.path("llama-server"), smollm2, ["-c", "512", "-t", "1", "-np", "1"],
                               log_dir=tmp_path / "b", port_picker=lambda: busy)
        with pytest.raises(ToolError, match="could not bind 127.0.0.1 after 3 tries") as info:
            always.start()
        assert info.value.stage == "load" and any("couldn't bind" in line for line in info.value.log_tail)
        assert always.proc is None


def test_sigterm_ignored_escalates_to_sigkill(tmp_path: Path) -> None:
    fake = tmp_path / "stubborn"
    fake.write_text(f"#!{sys.executable}\nimport signal, sys, time\nif '--help' in sys.argv: sys.exit(0)\n"
                    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(300)\n")
    fake.chmod(0o755)
    srv = ServerProcess(fake, fake, [], log_dir=tmp_path, load_timeout_s=1.0, stop_grace_s=0.5)
    with pytest.raises(ToolError, match="did not become ready within 1 s"):
        srv.start()
    assert srv.proc is None  # stopped: SIGTERM ignored -> SIGKILL after the grace period
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _cmd_has(p, str(fake))]


def test_system_config_file_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.ini"
    cfg.write_text("[server]\n")
    monkeypatch.setattr(server_mod, "SYSTEM_CONFIG", cfg)
    with pytest.raises(CollectorError, match="config.ini exists and llama.cpp reads it"):
        ServerProcess(Path("/bin/true"), cfg, [], log_dir=tmp_path).start()


def _cmd_has(pid: str, needle: str) -> bool:
    try:
        return needle.encode() in Path(f"/proc/{pid}/cmdline").read_bytes() and _alive(int(pid))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
