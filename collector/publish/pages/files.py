"""The files a build hands to MkDocs: generated pages, charts, assets and downloads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GeneratedFile:
    """A virtual file for MkDocs: a path under docs_dir (never written there) and its content."""

    src_uri: str
    content: str | bytes


def chart_files(chart_src_base: str, svgs: dict[str, bytes] | None) -> list[GeneratedFile]:
    """A chart's SVG files, one per variant (light, dark)."""
    return [GeneratedFile(f"{chart_src_base}-{variant}.svg", data) for variant, data in (svgs or {}).items()]
