"""The real `mkdocs build --strict` of this repository's site on a data directory (shared by the site tests)."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE_DATA = REPO / "tests" / "fixtures" / "records" / "data"


def mkdocs_build(data_dir: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` (or with `flags` instead of --strict) of data_dir into out."""
    env = {**os.environ, "QUANT_ATLAS_DATA": str(data_dir), "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", *(flags or ("--strict",)), "-f",
                           str(REPO / "mkdocs.yml"), "-d", str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def build_clean(data_dir: Path, out: Path) -> Path:
    """`mkdocs build --strict` of data_dir into out, which must succeed without a warning; returns out."""
    proc = mkdocs_build(data_dir, out)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert "WARNING" not in proc.stderr, proc.stderr
    return out


def page_text(page: str) -> str:
    """What a reader sees of the page's article: tags removed, entities decoded, spaces collapsed."""
    m = re.search(r"<article[^>]*>(.*)</article>", page, re.S)
    body = re.sub(r"<script.*?</script>", "", m.group(1) if m else page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", body)).split())


def page_commands(page: str) -> list[str]:
    """The text of every highlighted code block of a built page (what the copy button copies)."""
    blocks = re.findall(r'<div class="[^"]*highlight"><pre>.*?<code>(.*?)</code></pre>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", b)).strip() for b in blocks]
