"""Shared test setup: TensorFlow backend, quiet logs, headless matplotlib."""

import os
import re

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def help_options(help_text: str) -> list[str]:
    """The option entries of an argparse --help text, ``-h`` left out."""
    entries = re.split(r"\n  (?=-)", help_text.split("options:", 1)[1])[1:]
    return [e for e in entries if not e.startswith("-h")]


def write_picture(path, size=32, seed=0, fmt=None, mode="RGB"):
    """Writes a real small picture file (random pixels) and returns its path."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, size=(size, size, channels), dtype=np.uint8)
    if channels == 1:
        pixels = pixels[..., 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def write_fake_fashion_mnist(keras_home, train_per_class=8, test_per_class=6):
    """A tiny stand-in for Fashion-MNIST in Keras' cache layout (``keras_home``).

    `keras.datasets.fashion_mnist.load_data` reads these files as it reads the
    real ones, so code under test takes the user's path without the real data
    (which the tests never need). Each picture says who it is: pixel (0, 0)
    holds its label, pixel (1, 0) its index within its class and split (test
    pictures from 100 on); the other pixels are noise.
    """
    import gzip
    import struct
    from pathlib import Path

    folder = Path(keras_home) / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, per_class, offset in (
        ("train", train_per_class, 0),
        ("t10k", test_per_class, 100),
    ):
        labels = np.repeat(np.arange(10), per_class).astype(np.uint8)
        pictures = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        pictures[:, 0, 0] = labels
        pictures[:, 1, 0] = np.tile(np.arange(per_class), 10) + offset
        for kind, array, magic in (("labels-idx1", labels, 2049), ("images-idx3", pictures, 2051)):
            header = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape)
            with gzip.open(folder / f"{prefix}-{kind}-ubyte.gz", "wb") as handle:
                handle.write(header + array.tobytes())
    return folder


@pytest.fixture
def picture_writer():
    return write_picture


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
