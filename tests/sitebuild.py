"""The real `mkdocs build --strict` of this repository's site on a data directory (shared by the site tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE_DATA = REPO / "tests" / "fixtures" / "records" / "data"


def mkdocs_build(data_dir: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANT_ATLAS_DATA": str(data_dir), "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                           "-d", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
