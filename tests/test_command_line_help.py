"""The benchmarks' and tools' --help: every option says its default."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import help_options

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(
    [p for p in (ROOT / "benchmarks").glob("*.py")]
    + [ROOT / "tools" / "build_tutorials.py", ROOT / "tools" / "check_pages.py"]
)


def test_help_options_splits_an_argparse_help_text():
    text = (
        "usage: x [-h]\n\noptions:\n  -h, --help  show this help message and exit\n"
        "  --a A       first (default: 1)\n  --b B       second,\n"
        "              on two lines\n"
    )
    assert [" ".join(e.split()) for e in help_options(text)] == [
        "--a A first (default: 1)",
        "--b B second, on two lines",
    ]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_option_says_its_default(script):
    if not script.exists():
        pytest.skip(f"{script} is not in this copy")
    result = subprocess.run(
        [sys.executable, str(script), "--help"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", result.stderr)
    if result.returncode and missing:
        pytest.skip(f"{script.name} needs {missing.group(1)}, a benchmark's own dependency")
    assert result.returncode == 0, result.stderr
    options = help_options(result.stdout)
    assert options, result.stdout
    for option in options:
        # Once: "(default: none) (default: None)" was a bug of this kind.
        assert option.count("default:") == 1, f"{script.name}: {' '.join(option.split())}"
