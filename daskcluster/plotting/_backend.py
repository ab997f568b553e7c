"""matplotlib, imported on first use, and the figures the plotting functions return.

Nothing here touches ``pyplot``: a figure is a :class:`matplotlib.figure.Figure` with an Agg
canvas of its own, so it renders without a display, never enters pyplot's list of open figures
(no leak in a notebook, no interference with the caller's backend), and is shown in a notebook
as a PNG when it is a cell's value.
"""

from __future__ import annotations

import logging
import math
from io import BytesIO
from typing import Any

from ..errors import DataTypeError

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "daskcluster[plot]"'


def require_matplotlib(owner: str) -> None:
    """Import matplotlib's object API, or raise an ``ImportError`` naming the extra to install."""
    try:
        import matplotlib.backends.backend_agg
        import matplotlib.figure  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"{owner} needs matplotlib, which is not installed ({exc}). Install the plotting extra: {INSTALL_HINT}"
        ) from exc


def _display_figure_class() -> type:
    from matplotlib.figure import Figure

    class DisplayFigure(Figure):
        """A :class:`matplotlib.figure.Figure` that a notebook shows as a PNG when it is a cell's value.

        matplotlib registers a notebook formatter for figures only once ``pyplot`` sets up the
        inline backend; ``_repr_png_`` makes a figure built without ``pyplot`` display too.
        """

        def _repr_png_(self) -> bytes:
            buffer = BytesIO()
            self.savefig(buffer, format="png")
            return buffer.getvalue()

    DisplayFigure.__module__ = __name__
    DisplayFigure.__qualname__ = "DisplayFigure"
    return DisplayFigure


def __getattr__(name: str) -> Any:
    # Built on first use so that importing daskcluster.plotting does not import matplotlib; kept
    # as a module attribute so that figures can be pickled.
    if name == "DisplayFigure":
        cls = _display_figure_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def new_figure(owner: str, width: float, height: float) -> Any:
    """A new figure of ``width`` x ``height`` inches with its own Agg canvas and constrained layout."""
    require_matplotlib(owner)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    cls = globals().get("DisplayFigure") or __getattr__("DisplayFigure")
    fig = cls(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_and_axes(owner: str, ax: Any, width: float, height: float) -> tuple[Any, Any]:
    """The caller's ``ax`` and its (root) figure, or a new figure with one axes."""
    if ax is None:
        fig = new_figure(owner, width, height)
        return fig, fig.add_subplot()
    require_matplotlib(owner)
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise DataTypeError(f"The 'ax' parameter of {owner} must be a matplotlib Axes or None. "
                            f"Got {type(ax).__name__} instead.")
    try:
        return ax.get_figure(root=True), ax
    except TypeError:  # matplotlib < 3.10: a subfigure's .figure is its root figure
        return ax.figure.figure or ax.figure, ax


def grid_shape(n_panels: int, n_cols: int | None, max_cols: int) -> tuple[int, int]:
    """(rows, columns) of a grid of ``n_panels``: ``n_cols`` columns, or about a square up to ``max_cols``."""
    cols = n_cols if n_cols is not None else min(max_cols, max(1, math.ceil(math.sqrt(n_panels))))
    cols = max(1, min(cols, n_panels))
    return math.ceil(n_panels / cols), cols
