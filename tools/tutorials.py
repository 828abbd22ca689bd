"""The tutorials: which script makes which page, and how a page is checked.

Each tutorial is one flat script in ``examples/`` written in jupytext's "percent"
format (``# %%`` code cells, ``# %% [markdown]`` prose cells). The script is the
source; ``tools/build_tutorials.py`` turns it into ``docs/tutorials/<page>.ipynb``
by executing it cell by cell in a fresh Jupyter kernel, and mkdocs-jupyter renders
that notebook as the web page (with a download link to the notebook).
``tests/test_tutorials.py`` checks that each page is its script and runs each
script cell by cell in a quick mode.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PAGES = ROOT / "docs" / "tutorials"

# Script in examples/ -> notebook page in docs/tutorials/, in reading order.
TUTORIALS = {
    "quickstart.py": "01_from_scratch.ipynb",
    "augmentation.py": "02_augmentation.ipynb",
    "feature_extraction.py": "03_feature_extraction.ipynb",
    "fine_tuning.py": "04_fine_tuning.ipynb",
    "visualization.py": "05_visualization.ipynb",
}

MAX_LINE = 88  # characters: wider lines overflow the page's code blocks

QUICK_ENVIRONMENT = {"KERAS_SMALLDATA_QUICK": "1"}


def script_notebook(script: Path):
    """The script as an (unexecuted) notebook, the way a reader opens it."""
    import jupytext

    notebook = jupytext.read(script, fmt="py:percent")
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata.pop("jupytext", None)
    return notebook


_QUOTED = re.compile(r"'[^']*'")
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")
# What differs between the full run and the quick smoke test by design: numbers,
# and the weights a base really got (ImageNet's, or random ones when the weights
# file cannot be had, as in a fresh clone without network).
_WEIGHTS = re.compile(r"(weights: )\S+")
# TensorFlow's note that Keras' own train and test functions were traced again: in
# the quick run each compiled function is called once or twice, so every new
# compile() counts as frequent retracing; the full runs call them hundreds of times
# and print nothing. A performance note about Keras' functions, not the script's output.
_KERAS_RETRACING = re.compile(
    r"^WARNING:tensorflow:\d+ out of the last \d+ calls to <function "
    r"TensorFlowTrainer\._make_function.* triggered tf\.function retracing"
)


def output_skeleton(text: str) -> list[str]:
    """Printed lines with every number and quoted text masked: what the print calls fix.

    Quoted text is data (a class name that a network with other weights
    predicts); the words around it are the code's.
    """
    lines = []
    for line in text.splitlines():
        if _KERAS_RETRACING.match(line):
            continue
        line = _WEIGHTS.sub(r"\1<weights>", line.rstrip())
        line = _QUOTED.sub("'…'", line)
        lines.append(_NUMBER.sub("#", line))
    return lines


def cell_outputs(cell) -> dict:
    """A code cell's outputs: its standard output, standard error and image count."""
    stdout, stderr, images = [], [], 0
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            (stdout if output.get("name") == "stdout" else stderr).append(
                output.get("text", "")
            )
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            if "image/png" in data:
                images += 1
            elif "text/plain" in data:
                stdout.append(data["text/plain"] + "\n")
        elif kind == "error":
            stderr.append(f"{output.get('ename')}: {output.get('evalue')}\n")
    return {"stdout": "".join(stdout), "stderr": "".join(stderr), "images": images}
