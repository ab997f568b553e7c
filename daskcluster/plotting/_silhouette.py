"""The silhouette diagram ("knife" plot) of a clustering, exact on a seeded sample of rows."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..data import as_row_data
from ..errors import InvalidDataError
from ..params import check_int
from ._backend import figure_and_axes, require_matplotlib
from ._sampling import Labels, generator, sample_rows

logger = logging.getLogger(__name__)


def plot_silhouette_diagram(
    X: Any, labels: Any, *, sample_size: int | None = 2000, random_state: Any = None, ax: Any = None
) -> Any:
    """Silhouette coefficients of a seeded sample of rows, sorted within each cluster.

    Each cluster is a band of its sampled rows' silhouette coefficients, sorted; a dashed
    vertical line marks their mean, which is
    ``daskcluster.metrics.silhouette_score(X, labels, sample_size=sample_size,
    random_state=random_state)`` for the same int ``random_state``. The silhouette of the
    sample is exact (:func:`sklearn.metrics.silhouette_samples`, O(sample_size²) distances).

    Parameters
    ----------
    X : array-like, dask array, zarr array, path or Scaled, of shape (n_samples, n_features)
    labels : array-like, dask array, zarr array or path, of shape (n_samples,) or (n_samples, 1)
        The cluster of each row; only the sampled labels are read.
    sample_size : int or None, default=2000
        Rows drawn without replacement (all rows when ``None`` or ``>= n_samples``).
    random_state : None, int, numpy RandomState or Generator
        Seed of the sample.
    ax : matplotlib.axes.Axes, optional
        Draw there instead of in a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Data passes: none; reads only the chunks of ``X`` and of lazy ``labels`` holding sampled rows.

    Raises
    ------
    InvalidDataError
        ``labels`` not of one label per row of ``X``; fewer than 2, or as many clusters as rows,
        in the sample.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster.plotting import plot_silhouette_diagram
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (300, 2)), rng.normal(6, 1, (300, 2))])
    >>> labels = np.repeat([0, 1], 300)
    >>> fig = plot_silhouette_diagram(X, labels, sample_size=200, random_state=0)
    >>> fig.axes[0].get_title()
    'Silhouette of 2 clusters, a sample of 200 of 600 rows'
    """
    from sklearn.metrics import silhouette_samples

    owner = "plot_silhouette_diagram"
    check_int(owner, "sample_size", sample_size, 2, allow_none=True)
    rng = generator(owner, random_state)
    require_matplotlib(owner)
    data = as_row_data(X, owner=owner, min_samples=2)
    source = Labels(labels, data.n_samples, owner=owner)
    fig, ax = figure_and_axes(owner, ax, 6.0, 4.5)
    index, rows = sample_rows(data, sample_size, rng)
    sample_labels = source.take(index)
    clusters = np.unique(sample_labels)
    if not 2 <= len(clusters) <= len(index) - 1:
        raise InvalidDataError(f"{owner}: the sample of {len(index)} rows holds {len(clusters)} cluster(s); the "
                               "silhouette needs 2 to n_samples - 1. Use a larger sample_size or check the labels.")
    values = silhouette_samples(rows.astype(np.float64), sample_labels)
    mean = float(values.mean())
    logger.debug("%s: %d rows sampled of %d, %d clusters, mean silhouette %.4f", owner, len(index),
                 data.n_samples, len(clusters), mean)

    from matplotlib import colormaps

    cmap = colormaps["nipy_spectral"]
    gap = max(2, round(0.02 * len(index)))
    y = gap
    ticks = []
    for i, c in enumerate(clusters):
        band = np.sort(values[sample_labels == c])
        color = cmap((i + 0.5) / len(clusters))
        ax.fill_betweenx(np.arange(y, y + len(band)), 0, band, facecolor=color, edgecolor=color, alpha=0.7)
        ticks.append(y + len(band) / 2)
        y += len(band) + gap
    ax.axvline(mean, color="red", linestyle="--", label=f"mean {mean:.3f}")
    ax.set_yticks(ticks, [str(c) for c in clusters])
    ax.set_ylim(0, y)
    ax.set_xlim(min(-0.1, float(values.min()) - 0.05), 1.0)
    ax.set_xlabel("silhouette coefficient")
    ax.set_ylabel("cluster")
    whole = len(index) == data.n_samples
    rows_text = f"all {data.n_samples:,} rows" if whole else f"a sample of {len(index):,} of {data.n_samples:,} rows"
    ax.set_title(f"Silhouette of {len(clusters)} clusters, {rows_text}")
    ax.legend(loc="lower right")
    return fig
