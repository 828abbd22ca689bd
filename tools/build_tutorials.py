"""Builds the tutorial pages: runs each script cell by cell and saves the notebook.

    python tools/build_tutorials.py                 # every tutorial (slow: a full run)
    python tools/build_tutorials.py quickstart.py   # one
    python tools/build_tutorials.py --prose-only    # refresh the prose, keep the outputs

Each ``examples/<script>.py`` (jupytext percent format) is converted to a notebook
with jupytext and executed by nbclient in a fresh Jupyter kernel, in a fresh
temporary folder (no output or feature cache of an earlier run), with the Keras
cache of this machine (where the ImageNet weights are). The executed notebook, outputs
included, is written to ``docs/tutorials/<page>.ipynb``, which mkdocs-jupyter
renders. A run whose cells write anything to standard error fails: the pages
show a quiet console. ``--prose-only`` replaces the prose cells of the existing
pages with the scripts' prose, refusing if any code cell changed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tutorials import EXAMPLES, PAGES, ROOT, TUTORIALS, cell_outputs, script_notebook  # noqa: E402


def _clean(notebook) -> None:
    """Drops what changes at every run without meaning anything (timings)."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)


def execute(script_name: str) -> None:
    page = PAGES / TUTORIALS[script_name]
    notebook = script_notebook(EXAMPLES / script_name)
    environment = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "KERAS_SMALLDATA_QUICK")}
    start = time.perf_counter()
    saved = os.environ.copy()
    os.environ.clear()
    os.environ.update(environment)  # the kernel inherits this environment
    try:
        # A fresh working folder: no output or feature cache of an earlier run.
        with tempfile.TemporaryDirectory(prefix="tutorial-") as folder:
            client = NotebookClient(
                notebook, timeout=7200, kernel_name="python3",
                resources={"metadata": {"path": folder}},
            )
            client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    _clean(notebook)
    noisy = [
        (index, cell_outputs(cell)["stderr"])
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and cell_outputs(cell)["stderr"]
    ]
    nbformat.write(notebook, page)
    print(f"{script_name} -> {page.relative_to(ROOT)} in {time.perf_counter() - start:.0f} s")
    if noisy:
        for index, text in noisy:
            print(f"  cell {index} wrote to standard error:\n{text}", file=sys.stderr)
        raise SystemExit(f"{script_name}: the page would show standard error output")


def refresh_prose(script_name: str) -> None:
    page = PAGES / TUTORIALS[script_name]
    fresh = script_notebook(EXAMPLES / script_name)
    built = nbformat.read(page, as_version=4)
    kinds = [(c.cell_type, c.source) for c in fresh.cells if c.cell_type == "code"]
    built_kinds = [(c.cell_type, c.source) for c in built.cells if c.cell_type == "code"]
    if kinds != built_kinds:
        raise SystemExit(f"{script_name}: code changed since the page was built; run it again")
    code = iter(c for c in built.cells if c.cell_type == "code")
    built.cells = [cell if cell.cell_type == "markdown" else next(code) for cell in fresh.cells]
    nbformat.write(built, page)
    print(f"{script_name}: prose refreshed in {page.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="*", default=list(TUTORIALS),
                        help="scripts of examples/ to build (default: all five)")
    parser.add_argument("--prose-only", action="store_true",
                        help="replace the prose of the built pages, keep their outputs "
                        "(default: off, a full run)")
    args = parser.parse_args()
    for name in args.scripts:
        name = os.path.basename(name)
        if name not in TUTORIALS:
            raise SystemExit(f"{name!r} is not a tutorial; tutorials: {list(TUTORIALS)}")
        (refresh_prose if args.prose_only else execute)(name)


if __name__ == "__main__":
    main()
