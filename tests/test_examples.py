"""Runs every example script end to end, small and fast, offline.

Each script in examples/ exposes ``main(argv)``; here it runs with few epochs and
tiny pictures, writing into a temporary folder, and must produce its figures.
"""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Script name -> (arguments for a quick run, figures it must write).
QUICK_RUNS = {
    "quickstart.py": (["--epochs", "2", "--image-size", "32"], ["curves.png"]),
    "fine_tuning.py": (
        ["--epochs", "1", "--image-size", "32", "--weights", "none"],
        ["frozen_base.png", "frozen_base_augmented.png", "fine_tuning.png"],
    ),
    "augmentation.py": (
        ["--epochs", "1", "--image-size", "32"],
        ["augmentations.png", "curves_plain.png", "curves_augmented.png"],
    ),
    "feature_extraction.py": (
        ["--epochs", "2", "--image-size", "32", "--weights", "none", "--augment-rounds", "1"],
        ["curves_features.png", "curves_features_augmented.png"],
    ),
    "visualization.py": (
        ["--epochs", "1", "--image-size", "32", "--filters", "4", "--steps", "3"],
        [
            "activations_conv1.png",
            "filters_conv2.png",
            "grad_cam.png",
            "grad_cam_not_faces.png",
            "misclassified.png",
        ],
    ),
}


def _load(script: Path):
    spec = importlib.util.spec_from_file_location(f"example_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_has_a_quick_run():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(QUICK_RUNS)


@pytest.mark.parametrize("name", sorted(QUICK_RUNS))
def test_example_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    arguments, figures = QUICK_RUNS[name]
    output_dir = tmp_path / "out"
    _load(EXAMPLES / name).main(arguments + ["--output-dir", str(output_dir)])
    for figure in figures:
        written = output_dir / figure
        assert written.is_file() and written.stat().st_size > 1000, figure


def test_feature_extraction_example_reuses_its_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    arguments, _ = QUICK_RUNS["feature_extraction.py"]
    script = _load(EXAMPLES / "feature_extraction.py")
    output = ["--output-dir", str(tmp_path / "out"), "--epochs", "1"]
    first = script.main(arguments + output)
    second = script.main(arguments + output)
    assert first["from_cache"] is False and second["from_cache"] is True
    assert second["features"] == pytest.approx(first["features"])
