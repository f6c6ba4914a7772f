"""The site built once per session from the fixture records, with the real `mkdocs build --strict`."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitebuild import FIXTURE_DATA, build_clean


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_clean(FIXTURE_DATA, tmp_path_factory.mktemp("site") / "html")
