"""The tutorials: each page is its script, and each script runs as a reader runs it.

A tutorial is one flat script in examples/ (jupytext percent format); its page,
docs/tutorials/<page>.ipynb, is that script executed cell by cell by
tools/build_tutorials.py. Here each script is converted the same way and run
in a fresh Jupyter kernel, cell by cell, in its quick mode (tiny pictures, one
epoch, and whatever weights a fresh clone has), and what each cell prints is
compared with what the page shows, numbers masked: the page's output must come
from that code.
"""

import ast
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from tutorials import (  # noqa: E402
    EXAMPLES,
    MAX_LINE,
    PAGES,
    QUICK_ENVIRONMENT,
    ROOT,
    TUTORIALS,
    cell_outputs,
    output_skeleton,
    script_notebook,
)

from tests.conftest import help_options, write_fake_fashion_mnist  # noqa: E402

SCRIPTS = sorted(TUTORIALS)
# TensorFlow's C++ log lines (absl format): a quiet console has none.
_TENSORFLOW_LOG = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\]", re.MULTILINE)


def test_every_script_in_examples_is_a_tutorial():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == SCRIPTS


def test_every_tutorial_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in TUTORIALS.values():
        assert f"tutorials/{page}" in nav, page


@pytest.mark.parametrize("script", SCRIPTS)
def test_code_fits_the_page_and_uses_no_private_names(script):
    source = (EXAMPLES / script).read_text(encoding="utf-8")
    wide = [
        (number, len(line))
        for number, line in enumerate(source.splitlines(), start=1)
        if len(line) > MAX_LINE
    ]
    assert wide == [], f"{script}: lines wider than {MAX_LINE} characters: {wide}"
    private = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name[0] == "_":
            private.add(node.name)
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            private.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module and "._" in node.module:
            private.add(node.module)
        elif isinstance(node, ast.Name) and node.id.startswith("_") and node.id != "_":
            private.add(node.id)
    assert private == set(), f"{script} uses {sorted(private)}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_page_is_the_script(script):
    page = nbformat.read(PAGES / TUTORIALS[script], as_version=4)
    fresh = script_notebook(EXAMPLES / script)
    assert [(c.cell_type, c.source) for c in page.cells] == [
        (c.cell_type, c.source) for c in fresh.cells
    ], f"{TUTORIALS[script]} is out of date: run python tools/build_tutorials.py {script}"
    errors = [cell_outputs(c)["stderr"] for c in page.cells if c.cell_type == "code"]
    assert not any(errors), f"the page shows standard error output: {errors}"


def _run_quick(script, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    notebook = script_notebook(EXAMPLES / script)
    for key, value in QUICK_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    # The hard task's pictures come through keras.datasets.fashion_mnist: a tiny
    # stand-in in the temporary Keras cache (a fresh clone has no real data).
    write_fake_fashion_mnist(tmp_path / "keras_home", train_per_class=20, test_per_class=10)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return notebook


@pytest.mark.parametrize("script", SCRIPTS)
def test_tutorial_runs_cell_by_cell_and_prints_what_its_page_shows(
    script, tmp_path, monkeypatch
):
    ran = _run_quick(script, tmp_path, monkeypatch)
    page = nbformat.read(PAGES / TUTORIALS[script], as_version=4)
    page_cells = [c for c in page.cells if c.cell_type == "code"]
    ran_cells = [c for c in ran.cells if c.cell_type == "code"]
    assert len(page_cells) == len(ran_cells)
    for number, (shown, fresh) in enumerate(zip(page_cells, ran_cells), start=1):
        expected, got = cell_outputs(shown), cell_outputs(fresh)
        assert output_skeleton(got["stdout"]) == output_skeleton(expected["stdout"]), (
            f"{script}, code cell {number}: the page shows\n{expected['stdout']}\n"
            f"but the code printed\n{got['stdout']}"
        )
        assert got["images"] == expected["images"], f"{script}, code cell {number}"
        assert not _TENSORFLOW_LOG.search(got["stderr"]), (
            f"{script}, code cell {number} printed TensorFlow logs:\n{got['stderr']}"
        )
    assert (tmp_path / "outputs").is_dir()


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_shows_the_settings_and_the_quick_mode_quietly(script):
    import subprocess

    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--help"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "KERAS_SMALLDATA_QUICK"},
        check=True,
        timeout=120,
    )
    assert "--quick" in result.stdout
    # Every option's help says its default.
    options = help_options(result.stdout)
    assert len(options) >= 5
    for option in options:
        assert "(default:" in option, option
    assert result.stderr == ""
