"""The matplotlib figures this library returns.

Every plotting function returns a plain `matplotlib.figure.Figure` with an Agg
canvas, not a pyplot figure: nothing is registered globally, so a loop that
plots makes no pile of open figures ("More than 20 figures have been opened"),
and a notebook does not show a second copy at the end of the cell.

A notebook shows a figure that is the last expression of a cell as a picture
only when a picture formatter is registered for `Figure`. Matplotlib's inline
backend registers one when pyplot starts; a session that never imported
pyplot has none and would print ``<Figure size 1000x450 with 2 Axes>``.
`new_figure` registers one then, under IPython only (a script never imports
IPython because of it).
"""

from __future__ import annotations

import io
import sys


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _show_figures_as_pictures_in_ipython(figure_class) -> None:
    """Registers a PNG formatter for figures in a running IPython, if it has none."""
    if "IPython" not in sys.modules:
        return
    shell = sys.modules["IPython"].get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type(figure_class)
    except KeyError:
        formatter.for_type(figure_class, _png)


def new_figure(**kwargs):
    """A `matplotlib.figure.Figure` with an Agg canvas, outside pyplot.

    Args:
        **kwargs: `Figure` arguments (``figsize``, ``layout``...).

    Returns:
        The figure, which a notebook displays as a picture.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _show_figures_as_pictures_in_ipython(Figure)
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)  # draws text and measures the legend without pyplot
    return figure
