"""mkdocs hooks for the tutorial pages (notebooks rendered by mkdocs-jupyter).

Listed under ``hooks:`` in ``mkdocs.yml``. On each page rendered from a notebook:

- the table of contents is rebuilt from the headings of the rendered page.
  mkdocs-jupyter computes it from a Markdown copy of the notebook from which it
  strips every inline code span, so a heading such as "From `ImageDataGenerator`
  to a layer" became the entry "From to a layer", linked to ``#from-to-a-layer``,
  an id the page does not have;
- a download button for the notebook (copied next to the page by the plugin's
  ``include_source`` option) is added at the top, as mkdocs-jupyter's README shows
  for the Material theme, as a relative link (the site may not be served from the
  root of its domain) with the ``download`` attribute.
"""

from __future__ import annotations

import html
import posixpath
from html.parser import HTMLParser
from pathlib import Path

from mkdocs.structure.toc import get_toc

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


class _MarkdownHeadings(HTMLParser):
    """The headings with an id in the notebook's prose cells, as (level, id, text)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.headings: list[tuple[int, str, str]] = []
        self._divs: list[bool] = []  # for each open div: is it rendered Markdown?
        self._heading: tuple[int, str] | None = None
        self._text: list[str] = []
        self._in_anchor_link = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "div":
            self._divs.append("jp-RenderedMarkdown" in classes)
        elif tag in _HEADINGS and any(self._divs) and attributes.get("id"):
            self._heading = (int(tag[1]), attributes["id"])
            self._text = []
        elif tag == "a" and self._heading and "anchor-link" in classes:
            self._in_anchor_link = True

    def handle_endtag(self, tag):
        if tag == "div" and self._divs:
            self._divs.pop()
        elif tag == "a":
            self._in_anchor_link = False
        elif self._heading and tag == f"h{self._heading[0]}":
            level, anchor = self._heading
            self.headings.append((level, anchor, " ".join("".join(self._text).split())))
            self._heading = None

    def handle_data(self, data):
        if self._heading and not self._in_anchor_link:
            self._text.append(data)


def toc_tokens(content: str) -> list[dict]:
    """The table of contents of a rendered notebook page, as Python-Markdown's."""
    parser = _MarkdownHeadings()
    parser.feed(content)
    tokens: list[dict] = []
    stack: list[dict] = []
    for level, anchor, text in parser.headings:
        token = {
            "level": level,
            "id": anchor,
            "name": html.escape(text),
            "children": [],
        }
        while stack and stack[-1]["level"] >= level:
            stack.pop()
        (stack[-1]["children"] if stack else tokens).append(token)
        stack.append(token)
    return tokens


def _download_icon(config) -> str:
    for folder in config.theme.dirs:
        icon = Path(folder, ".icons", "material", "download.svg")
        if icon.is_file():
            return icon.read_text(encoding="utf-8")
    return ""


def on_page_content(content: str, page, config, files) -> str:
    if not page.file.src_uri.endswith(".ipynb"):
        return content
    page.toc = get_toc(toc_tokens(content))
    notebook = posixpath.basename(page.file.src_uri)
    button = (
        f'<a href="{notebook}" download title="Download the notebook ({notebook})" '
        f'class="md-content__button md-icon">{_download_icon(config)}</a>'
    )
    return button + content
