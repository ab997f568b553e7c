"""Figures written as PNG files, atomically."""

from __future__ import annotations

import logging
import numbers
import os
from pathlib import Path
from typing import Any

from ..atomic import atomic_file
from ..errors import DataTypeError, InvalidParameterError
from ._backend import require_matplotlib

logger = logging.getLogger(__name__)


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: float = 100) -> Path:
    """Write ``fig`` as a PNG file at ``path``, atomically.

    The image is written with :func:`daskcluster.atomic.atomic_file`: under a temporary name in
    the same folder (created when missing), flushed to disk, then renamed over ``path``: a reader sees the previous file or the new
    one, never a partial file, and no temporary file is left behind on error. The figure is
    left open (nothing is closed).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or os.PathLike
        Ending in ``.png``.
    dpi : float, default=100
        Dots per inch.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from daskcluster.plotting import plot_elbow, save_figure
    >>> fig = plot_elbow(pd.DataFrame({"n_clusters": [1, 2, 3], "inertia": [9.0, 2.0, 1.5]}))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     save_figure(fig, f"{folder}/plots/elbow.png").name
    'elbow.png'
    """
    owner = "save_figure"
    require_matplotlib(owner)
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise DataTypeError(f"{owner} expects a matplotlib Figure (what the plotting functions return); "
                            f"got {type(fig).__name__}.")
    if isinstance(dpi, (bool,)) or not isinstance(dpi, numbers.Real) or not 0 < dpi < float("inf"):
        raise InvalidParameterError(f"The 'dpi' parameter of {owner} must be a float in the range (0, inf). "
                                    f"Got {dpi!r} instead.")
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise InvalidParameterError(f"The 'path' parameter of {owner} must end in '.png' (the file is a PNG). "
                                    f"Got {str(path)!r} instead.")
    with atomic_file(target) as out:
        fig.savefig(out, format="png", dpi=float(dpi))
    logger.debug("%s: wrote %s", owner, target)
    return target
