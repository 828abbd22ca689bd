"""Runs every ```python block in docs/ so that the documentation cannot rot.

Each page's blocks run in order, in one namespace, in a fresh temporary working
directory. Blocks fenced as ```py are shown to readers but not run (they need
ImageNet weights or the reader's own data).

When a ```python block is followed by a ```text block, with at most two lines
of prose between them ("This prints:"), the text is the output the page
promises: its lines must appear, in order and together, in what the block
printed (a page may show only the part of the output it talks about).
``...`` in the text stands for any characters (paths, addresses, skipped
lines).
"""

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def page_blocks(page: Path) -> list[tuple[str, str | None]]:
    """The page's ```python blocks, each with the output it promises (or None)."""
    text = page.read_text(encoding="utf-8")
    fences = list(_FENCE.finditer(text))
    blocks = []
    for i, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        expected = None
        if i + 1 < len(fences) and fences[i + 1].group(1) == "text":
            between = text[fence.end() : fences[i + 1].start()].strip()
            if len(between.splitlines()) <= 2:
                expected = fences[i + 1].group(2)
        blocks.append((fence.group(2), expected))
    return blocks


def output_matches(printed: str, expected: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("..."))
    pattern = rf"(?:\A|\n)[ \t]*{pattern}[ \t]*(?:\n|\Z)"
    return re.search(pattern, printed.strip(), flags=re.DOTALL) is not None


PAGES = sorted(p for p in DOCS.rglob("*.md") if page_blocks(p))


def test_the_docs_have_runnable_code():
    assert any(p.name == "data.md" for p in PAGES)


def test_output_matching():
    assert output_matches("a 1\nb\n", "a 1\nb")
    assert output_matches("cached in '/tmp/x/abc'>", "cached in '...'>")
    assert not output_matches("a 2", "a 1")
    assert output_matches("first\na 1\nb\n", "a 1\nb")
    assert output_matches("a 1\nskipped\nb\n", "a 1\n...\nb")
    assert not output_matches("a 1\nb", "b\na 1")
    assert not output_matches("xa 1", "a 1")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_code_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    namespace = {"__name__": f"docs_{page.stem}"}
    for number, (block, expected) in enumerate(page_blocks(page), start=1):
        name = f"{page.relative_to(DOCS)} (block {number})"
        code = compile(block, name, "exec")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(code, namespace)  # noqa: S102 - running our own documentation
        if expected is not None:
            assert output_matches(printed.getvalue(), expected), (
                f"{name} printed\n{printed.getvalue()}\nbut the page says\n{expected}"
            )
