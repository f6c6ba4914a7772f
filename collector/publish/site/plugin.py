"""MkDocs adapter: adds the generated files, fills the home page and the Methodology page's estimates report, puts
the deferred tables back into the finished pages, writes the run pages, reports refused records.

All logic lives in collector.publish. A record file that `collector validate` refuses is never published: each
is reported as one warning line naming the file and the reason (escaped for the terminal), and a strict build fails
on it whatever the log level: `-q` drops warnings before MkDocs' strict counter sees them, so the hook aborts
the strict build itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mkdocs.exceptions import Abort
from mkdocs.structure.files import File, Files

from collector.base.errors import printable
from collector.publish.site.deferred import restore_tables
from collector.publish.site.run_pages import keep_run_pages, write_run_pages
from collector.publish.site.build import ESTIMATES_PLACEHOLDER, HOME_PLACEHOLDER, SiteBuild, build_from

log = logging.getLogger("mkdocs.plugins.quant_atlas")
_state: dict[str, SiteBuild] = {}  # the last build; the hook module lives as long as `mkdocs serve`


def data_dir(config: Any) -> Path:
    """$QUANT_ATLAS_DATA, else data/ next to mkdocs.yml."""
    env = os.environ.get("QUANT_ATLAS_DATA")
    return Path(env) if env else Path(config.config_file_path).parent / "data"


def on_pre_build(config: Any) -> None:
    keep_run_pages(Path(config.site_dir))  # before MkDocs cleans site_dir


def on_files(files: Files, config: Any) -> Files:
    build = build_from(data_dir(config))
    for _path, why in sorted(build.invalid.items()):
        log.warning("invalid record, not published: %s", printable(why))
    for g in build.files:
        files.append(File.generated(config, g.src_uri, content=g.content))
    _state["build"] = build
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri == "index.md":
        return markdown.replace(HOME_PLACEHOLDER, _state["build"].home)
    if page.file.src_uri == "methodology.md":
        return markdown.replace(ESTIMATES_PLACEHOLDER, _state["build"].methodology)
    return markdown


def on_post_page(output: str, page: Any, config: Any) -> str:
    return restore_tables(output, _state["build"].deferred.get(page.file.src_uri, []))


def on_post_build(config: Any) -> None:
    build = _state["build"]
    write_run_pages(build, Path(config.site_dir))
    if build.invalid and config.strict:
        first = printable(next(iter(sorted(build.invalid.items())))[1])
        raise Abort(f"Aborted: {len(build.invalid)} invalid record file(s) under {printable(str(data_dir(config)))} "
                    f"in strict mode (first: {first}); `collector validate` lists them")
