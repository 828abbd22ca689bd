"""Checks the built documentation in a real browser: no code block scrolls sideways.

    mkdocs build --site-dir site
    python tools/check_pages.py site --screenshots outputs/screenshots

Serves the built site on localhost, opens the tutorial and guide pages in headless
Chromium (Debian's ``chromium`` and ``chromium-driver`` packages, driven with
Selenium) at a laptop's window size, and measures every code block and output
block: one whose content is wider than the block (a horizontal scrollbar) is
reported with its first line. A full-page screenshot of each page is saved for a
person to look at. Exits with status 1 when any block overflows.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import tempfile
import threading
from pathlib import Path

PAGES = (
    "tutorials/01_from_scratch/",
    "tutorials/02_augmentation/",
    "tutorials/03_feature_extraction/",
    "tutorials/04_fine_tuning/",
    "tutorials/05_visualization/",
    "augmentation/",
    "pretrained/",
    "features/",
    "training/",
    "visualization/",
    "data/",
    "scaling/",
)
WINDOW = (1280, 900)  # a laptop screen, in CSS pixels

# Every element of the page's content that scrolls sideways and holds code: code
# cells and outputs of the notebooks, code blocks of the Markdown pages.
_OVERFLOWING_BLOCKS = """
const found = [];
for (const element of document.querySelectorAll(".md-content *")) {
  if (element.offsetParent === null) continue;  // hidden (a closed details block)
  const overflow = getComputedStyle(element).overflowX;
  if (overflow !== "auto" && overflow !== "scroll") continue;
  if (element.scrollWidth <= element.clientWidth + 1) continue;
  if (!element.querySelector("pre, code") && element.tagName !== "PRE") continue;
  const text = (element.innerText || "").split("\\n").find(l => l.trim()) || "";
  found.push([element.className || element.tagName, element.scrollWidth,
              element.clientWidth, text.slice(0, 100)]);
}
return found;
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _browser(user_data_dir: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        f"--user-data-dir={user_data_dir}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def check(site: Path, screenshots: Path | None) -> list[str]:
    problems = []
    server = _serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    with tempfile.TemporaryDirectory() as profile:
        browser = _browser(profile)
        try:
            for page in PAGES:
                if not (site / page / "index.html").is_file():
                    continue
                browser.set_window_size(*WINDOW)
                browser.get(base + page)
                for block, wide, shown, text in browser.execute_script(_OVERFLOWING_BLOCKS):
                    problems.append(f"{page}: a {block} block is {wide} px wide in "
                                    f"{shown} px: {text!r}")
                if screenshots is not None:
                    height = browser.execute_script("return document.body.scrollHeight")
                    browser.set_window_size(WINDOW[0], min(int(height) + 100, 30000))
                    name = page.strip("/").replace("/", "_") + ".png"
                    browser.save_screenshot(str(screenshots / name))
                print(f"checked {page}")
        finally:
            browser.quit()
            server.shutdown()
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the folder mkdocs built")
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args()
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    problems = check(args.site, args.screenshots)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise SystemExit(f"{len(problems)} code blocks scroll sideways")
    print("no code block scrolls sideways")


if __name__ == "__main__":
    main()
