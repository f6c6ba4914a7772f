"""Records -> DataFrames -> recommendations -> charts -> Markdown pages; MkDocs only sees the result."""

from collector.publish.pages.files import GeneratedFile
from collector.publish.site.build import SiteBuild, build_site, render_site

__all__ = ["GeneratedFile", "SiteBuild", "build_site", "render_site"]
