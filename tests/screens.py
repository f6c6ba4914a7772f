"""Screenshots of built pages as a reader sees them: headless Chromium at each width, light and dark.

    python tests/screens.py SITE_DIR OUT_DIR devices/cpu-amd-epyc/ models/x/ ... [--widths 1400,390] [--max-height N]
        [--at CSS_SELECTOR] [--scroll-x PX]

SITE_DIR is an `mkdocs build` output; each page is saved as OUT_DIR/<page path with / as ->-<width>-<scheme>.png
(docs/screenshots/ holds the committed set). Full page, device scale 1; a phone width emulates a mobile viewport.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cdp import CDP, chromium, serve


def shoot(cdp: CDP, url: str, width: int, scheme: str, out: Path, max_height: int = 0, at: str = "",
          scroll_x: int = 0) -> None:
    cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=width < 600)
    cdp.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": scheme}])
    cdp.open("about:blank")
    cdp.open(url)
    cdp.js("localStorage.clear(), sessionStorage.clear()")  # material keeps the last palette: let the media decide
    cdp.open(url)
    cdp.poll("document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)")
    if scroll_x:  # every wide table scrolled sideways, as a reader on a phone swipes it
        cdp.js(f"document.querySelectorAll('.qa-table-wrap').forEach(w => w.scrollLeft = {scroll_x})")
    top = 0
    if at:  # from the first element the CSS selector matches (open its folded <details> first)
        top = cdp.js(f"""(() => {{ const e = document.querySelector({json.dumps(at)}); if (!e) return 0;
            for (let d = e.closest('details'); d; d = d.parentElement.closest('details')) d.open = true;
            return Math.round(e.getBoundingClientRect().top + scrollY); }})()""")
    clip = {}
    if max_height or at:  # a part of a long page (the whole page is what the browser shows when scrolled)
        height = cdp.js("document.documentElement.scrollHeight") - top
        height = min(max_height, height) if max_height else height
        clip = {"clip": {"x": 0, "y": top, "width": width, "height": height, "scale": 1}}
    shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, **clip)["data"]
    out.write_bytes(base64.b64decode(shot))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("site", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("pages", nargs="+")
    ap.add_argument("--widths", default="1400,390")
    ap.add_argument("--max-height", type=int, default=0, help="clip each shot to this many px from the top (0: all)")
    ap.add_argument("--at", default="", help="start each shot at the first element this CSS selector matches")
    ap.add_argument("--scroll-x", type=int, default=0, help="scroll every wide table sideways by this many px")
    args = ap.parse_args()
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        sys.exit("chromium is not installed")
    args.out.mkdir(parents=True, exist_ok=True)
    with serve(args.site) as base, chromium(exe) as cdp:
        for page in args.pages:
            name = page.strip("/").replace("/", "-") or "home"
            for width in (int(w) for w in args.widths.split(",")):
                for scheme in ("light", "dark"):
                    path = args.out / f"{name}-{width}-{scheme}.png"
                    shoot(cdp, f"{base}/{page.lstrip('/')}", width, scheme, path, args.max_height, args.at,
                          args.scroll_x)
                    print(path)


if __name__ == "__main__":
    main()
