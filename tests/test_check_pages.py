"""tools/check_pages.py fails on what a reader would see wrong, and passes a clean page.

Tiny hand-written sites with the page structure of the Material theme (a content
column, a table of contents), each page planting one problem, are checked in
headless Chromium. Skipped where Chromium, its driver or Selenium is missing.
"""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import check_pages  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()),
    reason="needs Debian's chromium and chromium-driver packages",
)

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><style>
  body {{ margin: 0; font: 16px sans-serif; }}
  .md-content {{ width: 640px; margin-left: 240px; }}
  .md-content__inner {{ margin: 0 20px; padding: 0; }}
  pre > code {{ display: block; overflow: auto; font: 12px monospace; }}
  pre.wraps > code {{ white-space: pre-wrap; overflow-wrap: anywhere; }}
</style></head><body>
<nav class="md-nav md-nav--secondary" data-md-component="toc">{toc}</nav>
<div class="md-content"><article class="md-content__inner md-typeset">
<h1 id="title">A page</h1>
{body}
</article></div></body></html>
"""

_LONG_LINE = "x = " + " + ".join(f"value_{i}" for i in range(40))


def _write(site: Path, page: str, body: str = "", toc: str = "") -> None:
    file = site / page / "index.html" if not page.endswith(".html") else site / page
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(_PAGE.format(body=body, toc=toc), encoding="utf-8")


def _notebook(site: Path, page: str) -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# A page"]}]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    name = page.rstrip("/").rsplit("/", 1)[-1]
    (site / page / f"{name}.ipynb").write_text(json.dumps(notebook), encoding="utf-8")


def _clean_site(site: Path) -> None:
    _write(
        site,
        "",
        body=(
            '<p>See <a href="#title">the title</a>, '
            '<a href="guide/#usage">the usage</a> and '
            '<a href="tutorial/">the tutorial</a>.</p>'
            f'<pre class="wraps"><code>{_LONG_LINE}</code></pre>'
            "<table><tr><td>a small table</td><td>1</td></tr></table>"
        ),
        toc='<a href="#title">A page</a>',
    )
    _write(
        site,
        "guide",
        body='<h2 id="usage">Usage</h2><pre><code>print(1)</code></pre>',
        toc='<a href="#title">A page</a><a href="#usage">Usage</a>',
    )
    _write(
        site,
        "tutorial",
        body=(
            '<a href="tutorial.ipynb" download title="Download the notebook">'
            "download</a>"
            '<div class="jupyter-wrapper"><p>A notebook.</p></div>'
        ),
    )
    _notebook(site, "tutorial")


def test_a_clean_site_passes(tmp_path):
    _clean_site(tmp_path)
    assert check_pages.check(tmp_path, log=lambda line: None) == []


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The clean site plus one page per problem; the problems, by page."""
    site = tmp_path_factory.mktemp("site")
    _clean_site(site)
    _write(site, "scrolls", body=f"<pre><code>{_LONG_LINE}</code></pre>")
    _write(
        site,
        "cuts",
        body=(
            '<div style="overflow: hidden">'
            f'<pre style="white-space: pre">{_LONG_LINE}</pre></div>'
        ),
    )
    _write(
        site,
        "figure",
        body='<img src="data:," alt="a figure" '
        'style="display: block; width: 900px; height: 10px">',
    )
    _write(
        site,
        "table",
        body="<table><tr>"
        + "".join(f"<td>column_number_{i}</td>" for i in range(7))
        + "</tr></table>",
    )
    _write(
        site,
        "anchors",
        body=(
            '<a href="#nowhere">here</a> <a href="../guide/#missing">there</a> '
            '<a href="../absent/">a page</a>'
        ),
        toc='<a href="#from-to-a-layer">From to a layer</a>',
    )
    _write(
        site,
        "no-download",
        body='<div class="jupyter-wrapper"><p>A notebook.</p></div>',
    )
    _notebook(site, "no-download")
    _write(site, "notebook-name", body='<a href="../tutorial/">tutorial.ipynb</a>')
    problems = check_pages.check(site, log=lambda line: None)
    by_page: dict[str, list[str]] = {}
    for problem in problems:
        page, _, text = problem.partition(": ")
        by_page.setdefault(page, []).append(text)
    return by_page


def test_the_clean_pages_of_the_planted_site_pass(planted):
    assert not {"/", "guide/", "tutorial/"} & set(planted)


def test_a_code_block_that_scrolls_sideways_fails(planted):
    [problem] = planted["scrolls/"]
    assert problem.startswith("code is wider than its column: its content is")
    assert "(it scrolls sideways)" in problem and "value_0" in problem


def test_a_block_that_cuts_its_lines_fails(planted):
    [problem] = planted["cuts/"]
    assert (
        problem.startswith("div is wider than its column")
        and "(it cuts sideways)" in problem
    )


def test_a_figure_wider_than_the_column_fails(planted):
    [problem] = planted["figure/"]
    assert problem.startswith("img is wider than its column: it is 900 px wide")


def test_a_table_wider_than_the_column_fails(planted):
    [problem] = planted["table/"]
    assert (
        problem.startswith("table is wider than its column")
        and "column_number_0" in problem
    )


def test_links_to_missing_anchors_and_pages_fail(planted):
    problems = planted["anchors/"]
    assert len(problems) == 4
    assert (
        "the table of contents link 'From to a layer' ('#from-to-a-layer') leads to no "
        "anchor: anchors/ has no id 'from-to-a-layer'"
    ) in problems
    assert (
        "the content link 'here' ('#nowhere') leads to no anchor: anchors/ has no id "
        "'nowhere'"
    ) in problems
    assert (
        "the content link 'there' ('../guide/#missing') leads to no anchor: guide/ has "
        "no id 'missing'"
    ) in problems
    assert (
        "the content link 'a page' ('../absent/') leads to '/absent/', which is not in "
        "the site"
    ) in problems


def test_a_tutorial_without_its_notebook_download_link_fails(planted):
    assert planted["no-download/"] == [
        "no visible link downloads the page's notebook (no-download.ipynb, with the "
        "download attribute)"
    ]


def test_a_link_named_after_a_notebook_must_lead_to_it(planted):
    assert planted["notebook-name/"] == [
        "the content link 'tutorial.ipynb' ('../tutorial/') names a notebook but "
        "leads to a page"
    ]
