"""Checks the built documentation in a real browser, as a reader sees it.

    mkdocs build --strict --site-dir site
    python tools/check_pages.py site --screenshots outputs/screenshots

Serves the built site on localhost and opens every page of it (every ``.html``
file: guides, tutorials, benchmarks, API reference) in headless Chromium (Debian's
``chromium`` and ``chromium-driver`` packages, driven with Selenium) at a laptop's
window size. On each page it reports

- any element wider than the content column, or whose content is wider than its
  own box: a code block or output that scrolls sideways or cuts its lines, a table
  in a horizontal scroller, a figure that runs past the column. A reader must see
  the whole content without scrolling inside the page;
- any link to an anchor that does not exist (``#x`` on the same page, or
  ``page/#x``), table-of-contents entries included, and any link to a page or
  file that is not in the site;
- on a page rendered from a notebook (a tutorial), the absence of a visible link
  that downloads its notebook (``<page>.ipynb``, with the ``download`` attribute);
  anywhere, a link whose text names an ``.ipynb`` file but that leads to a page.

Every problem is printed with its page, the element and its widths (or the bad
link). With ``--screenshots``, a full-page screenshot of each page is saved for a
person to look at. Exits with status 1 when there is any problem.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import posixpath
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

WINDOW = (1280, 900)  # a laptop screen, in CSS pixels

# What the page shows: the content column, every element wider than it or whose
# content is wider than its own box, the ids, the links. Elements inside one that
# is already reported are not reported again (a `span` inside a scrolling `code`).
_MEASURE = """
const column = document.querySelector("article.md-content__inner")
  || document.querySelector(".md-content") || document.body;
const style = getComputedStyle(column);
const box = column.getBoundingClientRect();
const text_left = box.left + parseFloat(style.borderLeftWidth)
  + parseFloat(style.paddingLeft);
const text_right = box.right - parseFloat(style.borderRightWidth)
  - parseFloat(style.paddingRight);
// The column a reader sees: the main area between the sidebars, gutters included
// (tables' scroll wrappers run into the gutters by design).
const main = (document.querySelector(".md-content") || column).getBoundingClientRect();
const left = Math.min(main.left, text_left), right = Math.max(main.right, text_right);

function describe(element) {
  let name = element.tagName.toLowerCase();
  if (element.id) name += "#" + element.id;
  const classes = [...element.classList].slice(0, 3);
  if (classes.length) name += "." + classes.join(".");
  const shown = element.innerText || element.getAttribute("alt")
    || element.getAttribute("src") || "";
  const text = shown.split("\\n").find(l => l.trim()) || "";
  return [name, text.trim().slice(0, 80)];
}

const wide = [];
const reported = new Set();
for (const element of column.querySelectorAll("*")) {
  // Not drawn: in a closed details block, a hidden tab.
  if (!element.getClientRects().length) continue;
  const css = getComputedStyle(element);
  if (css.visibility === "hidden") continue;
  let parent = element.parentElement, inside = false;
  for (; parent && parent !== column; parent = parent.parentElement) {
    if (reported.has(parent)) { inside = true; break; }
  }
  if (inside) continue;
  const clips = ["auto", "scroll", "hidden", "clip"].includes(css.overflowX);
  const hidden = element.scrollWidth > element.clientWidth + 1;
  if (clips && element.clientWidth > 0 && hidden) {
    const how = ["hidden", "clip"].includes(css.overflowX) ? "cuts" : "scrolls";
    const [name, text] = describe(element);
    wide.push([name, `its content is ${element.scrollWidth} px wide in a box of `
               + `${element.clientWidth} px (it ${how} sideways)`, text]);
    reported.add(element);
    continue;
  }
  const own = element.getBoundingClientRect();
  if (own.width > 0 && (own.right > right + 1 || own.left < left - 1)) {
    const [name, text] = describe(element);
    wide.push([name, `it is ${Math.round(own.width)} px wide and reaches past the `
               + `column (from ${Math.round(own.left - text_left)} to `
               + `${Math.round(own.right - text_left)} px of a `
               + `${Math.round(text_right - text_left)} px text column)`, text]);
    reported.add(element);
  }
}
const page = document.documentElement;
if (page.scrollWidth > page.clientWidth + 1) {
  wide.push(["html", `the page is ${page.scrollWidth} px wide in a `
             + `${page.clientWidth} px window (it scrolls sideways)`, ""]);
}

const toc = "[data-md-component=toc], .md-nav--secondary";
const links = [...document.querySelectorAll("a[href]")].map(a => [
  a.getAttribute("href"), a.href,
  (a.innerText || a.textContent || "").trim().slice(0, 80),
  a.closest(toc) !== null ? "table of contents"
    : a.closest(".md-content") !== null ? "content" : "navigation",
  a.getClientRects().length > 0 && getComputedStyle(a).visibility !== "hidden",
  a.hasAttribute("download"),
]);
return {
  column: Math.round(text_right - text_left),
  wide: wide,
  ids: [...document.querySelectorAll("[id], a[name]")]
    .map(e => e.id || e.getAttribute("name")),
  links: links,
  notebook: document.querySelector(".jupyter-wrapper") !== null,
};
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _browser(user_data_dir: str, window: tuple[int, int]):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        f"--user-data-dir={user_data_dir}", f"--window-size={window[0]},{window[1]}",
    ):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def _open(browser, url: str) -> dict:
    """Loads the page (its pictures and style sheets included) and measures it."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 60).until(
        lambda b: (
            b.execute_script("return document.readyState") == "complete"
            and b.current_url == url
        )
    )
    return browser.execute_script(_MEASURE)


def site_pages(site: Path) -> list[str]:
    """Every HTML page of the built site, relative to it ('' is the home page)."""
    pages = []
    for path in sorted(site.rglob("*.html")):
        relative = path.relative_to(site).as_posix()
        pages.append(
            relative[: -len("index.html")] if path.name == "index.html" else relative
        )
    return pages


def _page_of(path: str) -> str:
    """The page a URL path names, as ``site_pages`` spells it."""
    path = unquote(path).lstrip("/")
    if path.endswith("index.html"):
        path = path[: -len("index.html")]
    elif path and not path.endswith("/") and not posixpath.splitext(path)[1]:
        path += "/"
    return path


def _is_notebook(file: Path) -> bool:
    try:
        return "cells" in json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def _notebook_problems(site: Path, page: str, links: list, origin: str) -> list[str]:
    """A notebook page needs a visible download link to its own notebook."""
    slug = page.rstrip("/").rsplit("/", 1)[-1]
    for _, url, _, _, visible, download in links:
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != origin or not parts.path.endswith(
            ".ipynb"
        ):
            continue
        file = site / unquote(parts.path).lstrip("/")
        if visible and download and file.stem == slug and _is_notebook(file):
            return []
    return [
        f"no visible link downloads the page's notebook ({slug}.ipynb, with the "
        "download attribute)"
    ]


def _link_problems(
    site: Path, links: list, ids: dict[str, set[str]], origin: str
) -> list[str]:
    """One page's links to a missing anchor, page or file, or to the wrong file."""
    problems = []
    for href, url, text, where, _, _ in links:
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != origin:
            continue  # another site
        link = f"the {where} link {text!r} ({href!r})"
        target = _page_of(parts.path)
        if target not in ids and not (site / unquote(parts.path).lstrip("/")).is_file():
            problems.append(
                f"{link} leads to {unquote(parts.path)!r}, which is not in the site"
            )
        elif text.endswith(".ipynb") and not parts.path.endswith(".ipynb"):
            problems.append(f"{link} names a notebook but leads to a page")
        elif (
            parts.fragment
            and target in ids
            and unquote(parts.fragment) not in ids[target]
        ):
            problems.append(
                f"{link} leads to no anchor: {target or '/'} has no id "
                f"{unquote(parts.fragment)!r}"
            )
    counts: dict[str, int] = {}
    for problem in problems:  # the same entry in both sidebars: once, with a count
        counts[problem] = counts.get(problem, 0) + 1
    return [p if n == 1 else f"{p} ({n} such links)" for p, n in counts.items()]


def check(
    site: Path,
    screenshots: Path | None = None,
    window: tuple[int, int] = WINDOW,
    log=print,
) -> list[str]:
    """Opens every page of the built site; returns the problems, one line each.

    Args:
        site: the folder mkdocs built.
        screenshots: a folder for a full-page screenshot of each page, or None.
        window: the browser window's width and height, in CSS pixels.
        log: called with one line per page checked.

    Returns:
        One line per problem, each starting with its page ('/' is the home page).
    """
    pages = site_pages(site)
    found: dict[str, dict] = {}
    server = _serve(site)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as profile:
        browser = _browser(profile, window)
        try:
            for page in pages:
                browser.set_window_size(*window)
                found[page] = _open(browser, f"{origin}/{page}")
                if screenshots is not None:
                    height = browser.execute_script("return document.body.scrollHeight")
                    browser.set_window_size(window[0], min(int(height) + 100, 30000))
                    name = (page.strip("/").replace("/", "_") or "index").removesuffix(
                        ".html"
                    )
                    browser.save_screenshot(str(screenshots / f"{name}.png"))
        finally:
            browser.quit()
            server.shutdown()
    ids = {page: set(measured["ids"]) for page, measured in found.items()}
    problems = []
    for page, measured in found.items():
        mine = [
            f"{element} is wider than its column: {how}: {text!r}"
            for element, how, text in measured["wide"]
        ]
        if measured["notebook"]:
            mine += _notebook_problems(site, page, measured["links"], origin)
        mine += _link_problems(site, measured["links"], ids, origin)
        log(
            f"checked {page or '/'} (text column {measured['column']} px): "
            f"{len(mine)} problems"
        )
        problems += [f"{page or '/'}: {problem}" for problem in mine]
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the folder mkdocs built (--site-dir)")
    parser.add_argument(
        "--screenshots",
        type=Path,
        default=None,
        help="save a full-page screenshot of each page in this folder (default: none)",
    )
    parser.add_argument(
        "--window",
        default=f"{WINDOW[0]}x{WINDOW[1]}",
        help="the browser window, WIDTHxHEIGHT in CSS pixels (default: %(default)s)",
    )
    args = parser.parse_args()
    if not (args.site / "index.html").is_file():
        raise SystemExit(f"{args.site} holds no built site (no index.html)")
    window = tuple(int(n) for n in args.window.lower().split("x"))
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    problems = check(args.site, args.screenshots, window)
    for problem in problems:
        print(problem)
    if problems:
        raise SystemExit(f"{len(problems)} problems on the pages")
    print(f"{len(site_pages(args.site))} pages checked: no problem")


if __name__ == "__main__":
    main()
