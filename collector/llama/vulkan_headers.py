"""Vulkan headers new enough for llama.cpp's Vulkan backend, when the system's are not.

llama.cpp (b11434) uses VK_EXT_layer_settings (`vk::LayerSettingEXT`), which Vulkan-Headers gained in 1.3.272;
Debian 12 ships 1.3.239 (`'LayerSettingEXT' is not a member of 'vk'`). Only the headers are needed at compile
time (the loader and the driver stay the system's), so Debian 13's libvulkan-dev package is downloaded, checked
against its pinned sha256 and unpacked with `dpkg-deb -x` into the build folder; nothing is installed. The headers
are the same on every architecture, so the amd64 package serves all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from collector.base.errors import CollectorError

SYSTEM_HEADER = Path("/usr/include/vulkan/vulkan_core.h")
NEEDED = "VK_EXT_layer_settings"
# Debian 13 (trixie) libvulkan-dev, from dists/trixie/main/binary-amd64/Packages (Version 1.4.309.0-1)
DEB_URL = "http://deb.debian.org/debian/pool/main/v/vulkan-loader/libvulkan-dev_1.4.309.0-1_amd64.deb"
DEB_SHA256 = "8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a"


def system_has_them(header: Path = SYSTEM_HEADER) -> bool:
    """Whether the system's Vulkan headers declare what llama.cpp needs (or a Vulkan SDK is set up instead)."""
    if os.environ.get("VULKAN_SDK"):
        return True  # cmake's FindVulkan takes the SDK's headers: not ours to second-guess
    try:
        return NEEDED in header.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def include_dir(work: Path, say: Callable[[str], None] = lambda _: None, *, url: str = DEB_URL,
                sha256: str = DEB_SHA256, header: Path = SYSTEM_HEADER) -> Path | None:
    """None when the system's headers do; else the include folder of the unpacked package (fetched once)."""
    if system_has_them(header):
        return None
    root = work / "vulkan-headers"
    include = root / "usr" / "include"
    if NEEDED in _read(include / "vulkan" / "vulkan_core.h"):
        return include
    work.mkdir(parents=True, exist_ok=True)
    deb = work / Path(url).name
    if not (deb.is_file() and _sha256(deb) == sha256):
        say(f"the Vulkan headers in {header.parent} lack {NEEDED}; fetching {url}")
        _download(url, deb)
        got = _sha256(deb)
        if got != sha256:
            deb.unlink()
            raise CollectorError(f"{url}: sha256 {got} is not the pinned {sha256}; install Vulkan headers >= "
                                 "1.3.272 (or a Vulkan SDK) and run again")
    shutil.rmtree(root, ignore_errors=True)
    res = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True, check=False)
    if res.returncode != 0 or NEEDED not in _read(include / "vulkan" / "vulkan_core.h"):
        raise CollectorError(f"dpkg-deb -x {deb} failed ({(res.stderr or 'no vulkan_core.h in it').strip()[:200]}); "
                             "install Vulkan headers >= 1.3.272 (or a Vulkan SDK) and run again")
    return include


def _download(url: str, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".part")
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as resp:
            resp.raise_for_status()
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_bytes():
                    fh.write(chunk)
    except httpx.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        why = (f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError)
               else str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise CollectorError(f"{url}: download failed ({why}); check the network, or install Vulkan headers "
                             ">= 1.3.272 (or a Vulkan SDK) and run again") from None
    os.replace(tmp, dest)


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
