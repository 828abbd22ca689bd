"""tools/docs_hooks.py: the tutorial pages' table of contents and download button."""

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import docs_hooks  # noqa: E402

# What nbconvert renders for a notebook: headings of prose cells with their ids and
# anchor links, a code cell whose output prints an HTML heading.
_NOTEBOOK_PAGE = """
<div class="jp-Cell jp-MarkdownCell"><div class="jp-Cell-inputWrapper">
<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown jp-MarkdownOutput">
<h1 id="2-fighting-overfitting">2. Fighting overfitting
<a class="anchor-link" href="#2-fighting-overfitting">¶</a></h1>
<p>Text.</p>
<h2 id="from-imagedatagenerator-to-a-layer">From <code>ImageDataGenerator</code> to a
layer<a class="anchor-link" href="#from-imagedatagenerator-to-a-layer">¶</a></h2>
<div class="highlight"><pre>code</pre></div>
<h3 id="r-amp-d">R &amp; D<a class="anchor-link" href="#r-amp-d">¶</a></h3>
</div></div></div>
<div class="jp-Cell jp-CodeCell"><div class="jp-OutputArea-output">
<h2 id="printed">Printed</h2></div></div>
<div class="jp-Cell jp-MarkdownCell"><div class="jp-RenderedMarkdown">
<h2 id="the-curves">The curves<a class="anchor-link" href="#the-curves">¶</a></h2>
</div></div>
"""


def test_the_table_of_contents_keeps_inline_code_and_the_page_ids():
    [title] = docs_hooks.toc_tokens(_NOTEBOOK_PAGE)
    assert (title["level"], title["id"], title["name"]) == (
        1,
        "2-fighting-overfitting",
        "2. Fighting overfitting",
    )
    assert [(t["id"], t["name"]) for t in title["children"]] == [
        ("from-imagedatagenerator-to-a-layer", "From ImageDataGenerator to a layer"),
        ("the-curves", "The curves"),
    ]
    [subsection] = title["children"][0]["children"]
    assert (subsection["id"], subsection["name"]) == ("r-amp-d", "R &amp; D")


def test_a_notebook_page_gets_its_table_of_contents_and_a_download_button(tmp_path):
    icon = tmp_path / ".icons" / "material" / "download.svg"
    icon.parent.mkdir(parents=True)
    icon.write_text("<svg/>")
    config = SimpleNamespace(theme=SimpleNamespace(dirs=[str(tmp_path)]))
    page = SimpleNamespace(
        file=SimpleNamespace(src_uri="tutorials/02_augmentation.ipynb"), toc=None
    )
    content = docs_hooks.on_page_content(_NOTEBOOK_PAGE, page, config, files=None)
    assert content.startswith(
        '<a href="02_augmentation.ipynb" download title="Download the notebook '
        '(02_augmentation.ipynb)" class="md-content__button md-icon"><svg/></a>'
    )
    assert [item.url for item in page.toc.items[0].children] == [
        "#from-imagedatagenerator-to-a-layer",
        "#the-curves",
    ]


def test_markdown_pages_are_left_alone():
    page = SimpleNamespace(file=SimpleNamespace(src_uri="guide.md"), toc="unchanged")
    assert docs_hooks.on_page_content("<h2 id='a'>A</h2>", page, None, None) == (
        "<h2 id='a'>A</h2>"
    )
    assert page.toc == "unchanged"
