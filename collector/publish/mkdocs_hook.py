"""MkDocs adapter: adds the generated files and fills the home page; all logic lives in collector.publish."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from collector.publish.site import HOME_PLACEHOLDER, build_site
from collector.records.index import load_records

_home: dict[str, str] = {}  # the last build's home section; the hook module lives as long as `mkdocs serve`


def data_dir(config: Any) -> Path:
    """$QUANT_ATLAS_DATA, else data/ next to mkdocs.yml."""
    env = os.environ.get("QUANT_ATLAS_DATA")
    return Path(env) if env else Path(config.config_file_path).parent / "data"


def on_files(files: Files, config: Any) -> Files:
    build = build_site(load_records(data_dir(config)))
    for g in build.files:
        files.append(File.generated(config, g.src_uri, content=g.content))
    _home["md"] = build.home
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri == "index.md":
        return markdown.replace(HOME_PLACEHOLDER, _home.get("md", ""))
    return markdown
