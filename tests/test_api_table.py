"""docs/api/index.md lists every exported name once, and nothing else; its links land."""

import re
import unicodedata
from pathlib import Path

import keras_smalldata

DOCS = Path(__file__).resolve().parent.parent / "docs"
TABLE = DOCS / "api" / "index.md"
# A table row whose first cell is a linked name: | [`name`](target) | kind | job | guide |
_ROW = re.compile(r"^\|\s*\[`([^`]+)`\]\(([^)]+)\)\s*\|([^|]*)\|([^|]*)\|(.*)\|\s*$")
_LINK = re.compile(r"\[[^\]]*\]\(([^)]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
KINDS = {
    "function", "layer", "model", "callback", "optimizer", "schedule", "warning",
    "result", "constant",
}  # fmt: skip


def table_rows() -> list[tuple[str, str, str, str, str]]:
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            name, target, kind, job, guide = (part.strip() for part in match.groups())
            rows.append((name, target, kind, job, guide))
    return rows


def slug(heading: str) -> str:
    """The anchor mkdocs gives a heading (Python-Markdown's default ``slugify``)."""
    text = re.sub(r"[`*]", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    """The anchors of a page: its headings', and its mkdocstrings entries' (``::: path``)."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    found = set()
    for line in text.splitlines():
        if line.startswith("#"):
            found.add(slug(line.lstrip("#")))
        elif line.startswith("::: "):
            found.add(line[4:].strip())
    return found


def test_every_exported_name_has_one_line_and_the_table_names_nothing_else():
    names = [row[0] for row in table_rows()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    assert repeated == [], f"named more than once in {TABLE.name}: {repeated}"
    exported = set(keras_smalldata.__all__)
    missing = sorted(exported - set(names))
    assert missing == [], f"exported but missing from {TABLE.name}: {missing}"
    not_exported = sorted(set(names) - exported)
    assert not_exported == [], f"in {TABLE.name} but not exported: {not_exported}"


def test_each_line_has_a_kind_and_a_job():
    for name, _, kind, job, guide in table_rows():
        assert kind in KINDS, f"{name}: kind {kind!r} is not one of {sorted(KINDS)}"
        assert job.endswith("."), f"{name}: the job should be one sentence: {job!r}"
        assert _LINK.search(guide), f"{name}: no guide link in {guide!r}"


def test_links_land_on_a_page_and_an_anchor_that_exist():
    broken = []
    for name, target, _, _, guide in table_rows():
        for link in [target] + _LINK.findall(guide):
            path, _, anchor = link.partition("#")
            page = (TABLE.parent / path).resolve()
            if not page.is_file():
                broken.append(f"{name}: no page {path}")
            elif anchor and page.suffix == ".md" and anchor not in anchors(page):
                broken.append(f"{name}: no anchor #{anchor} in {path}")
    assert broken == []


def test_api_links_point_at_the_entry_of_that_name():
    for name, target, *_ in table_rows():
        _, _, anchor = target.partition("#")
        if anchor.startswith("keras_smalldata."):
            assert anchor.rsplit(".", 1)[-1] == name, f"{name} links to {anchor}"
            module = __import__(anchor.rsplit(".", 1)[0], fromlist=[name])
            assert getattr(module, name) is getattr(keras_smalldata, name)


def test_slug_matches_mkdocs():
    assert slug("Dogs vs. cats: `make_subsets`") == "dogs-vs-cats-make_subsets"
    assert slug(" Input: pictures in [0, 255]") == "input-pictures-in-0-255"
