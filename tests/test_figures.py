"""The figures the library returns: outside pyplot, and pictures in a notebook."""

import sys

import matplotlib
import numpy as np
import pytest

import keras_smalldata as ks

IPython = pytest.importorskip("IPython")
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HISTORY = {"loss": [0.9, 0.6, 0.5], "val_loss": [1.0, 0.8, 0.85]}


@pytest.fixture
def shell():
    """An IPython shell that never imported pyplot (no inline backend)."""
    InteractiveShell.clear_instance()
    instance = InteractiveShell.instance()
    yield instance
    InteractiveShell.clear_instance()


def test_a_returned_figure_is_a_picture_in_a_notebook_without_pyplot(shell):
    figure = ks.plot_history(HISTORY)
    formats, _ = shell.display_formatter.format(figure)
    assert formats["image/png"].startswith(PNG_SIGNATURE)
    assert "matplotlib.pyplot" not in sys.modules or not matplotlib.pyplot.get_fignums()


def test_the_formatter_is_registered_once_and_an_existing_one_is_kept(shell):
    from matplotlib.figure import Figure

    formatter = shell.display_formatter.formatters["image/png"]
    mine = formatter.for_type(Figure, lambda figure: b"theirs")  # e.g. the inline backend's
    assert mine is None
    figure = ks.show_augmentations(lambda x, training=True: x, np.zeros((8, 8, 3)), num_images=2)
    assert shell.display_formatter.format(figure)[0]["image/png"] == b"theirs"


def test_no_formatter_is_registered_outside_ipython():
    InteractiveShell.clear_instance()
    from matplotlib.figure import Figure

    figure = ks.plot_history(HISTORY)
    assert isinstance(figure, Figure)
    assert InteractiveShell.initialized() is False
