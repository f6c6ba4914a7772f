"""The site built once per session from the fixture records, with the real `mkdocs build --strict`."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitebuild import FIXTURE_DATA, mkdocs_build


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "html"
    proc = mkdocs_build(FIXTURE_DATA, out)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert "WARNING" not in proc.stderr, proc.stderr
    return out
