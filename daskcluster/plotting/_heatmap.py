"""A clustered heat map of a factorization's weights, with dendrograms, in matplotlib alone."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import as_row_data
from ..errors import InvalidParameterError, NonFiniteDataError
from ..params import check_int
from ._backend import new_figure, require_matplotlib
from ._sampling import generator, sample_rows

logger = logging.getLogger(__name__)

#: Rows labelled on the heat map's axis at most (more would overlap).
MAX_TICK_LABELS = 60


def leaf_order(values: np.ndarray, method: str, metric: str) -> tuple[np.ndarray, dict[str, Any] | None]:
    """The leaf order of the hierarchical clustering of ``values``' rows and its dendrogram's
    coordinates (``None`` for a single row), from :func:`scipy.cluster.hierarchy.linkage`."""
    from scipy.cluster.hierarchy import dendrogram, linkage

    if len(values) < 2:
        return np.arange(len(values)), None
    tree = dendrogram(linkage(values, method=method, metric=metric), no_plot=True)
    return np.asarray(tree["leaves"]), tree


def _draw_dendrogram(ax: Any, tree: dict[str, Any], orientation: str) -> None:
    """Draw a dendrogram's links as lines, its ``i``-th leaf at ``i + 0.5`` (the heat map's ``i``-th cell)."""
    for xs, ys in zip(tree["icoord"], tree["dcoord"]):
        leaf_axis = np.asarray(xs) / 10.0
        if orientation == "left":
            ax.plot(ys, leaf_axis, color="0.3", linewidth=0.8)
        else:
            ax.plot(leaf_axis, ys, color="0.3", linewidth=0.8)
    n = len(tree["leaves"])
    if orientation == "left":
        ax.set_ylim(n, 0)
        ax.invert_xaxis()
    else:
        ax.set_xlim(0, n)
    ax.set_axis_off()


LINKAGE_METHODS = ("single", "complete", "average", "weighted", "centroid", "median", "ward")


def _check_linkage(method: Any, metric: Any, owner: str) -> None:
    """Check ``method`` and ``metric`` before any data are read (on two points, with scipy)."""
    from scipy.spatial.distance import pdist

    if method not in LINKAGE_METHODS:
        shown = ", ".join(repr(m) for m in LINKAGE_METHODS)
        raise InvalidParameterError(f"The 'method' parameter of {owner} must be one of {{{shown}}}. "
                                    f"Got {method!r} instead.")
    if method in ("centroid", "median", "ward") and metric != "euclidean":
        raise InvalidParameterError(f"The 'metric' parameter of {owner} must be 'euclidean' with "
                                    f"method={method!r}. Got {metric!r} instead.")
    try:
        pdist(np.array([[0.0, 1.0], [1.0, 0.5]]), metric=metric)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"The 'metric' parameter of {owner} must be a metric of "
                                    f"scipy.spatial.distance.pdist. Got {metric!r} instead ({exc}).") from exc


def _check_labels(labels: Sequence[Any] | None, n: int, name: str, owner: str) -> list[str] | None:
    if labels is None:
        return None
    out = [str(v) for v in labels]
    if len(out) != n:
        raise InvalidParameterError(f"The '{name}' parameter of {owner} must hold one label per "
                                    f"{'row' if name == 'row_labels' else 'column'} of W ({n}). Got {len(out)} "
                                    "instead.")
    return out


def plot_weights_heatmap(
    W: Any,
    *,
    row_labels: Sequence[Any] | None = None,
    col_labels: Sequence[Any] | None = None,
    cluster_rows: bool = True,
    cluster_cols: bool = False,
    title: str | None = None,
    max_rows: int = 2000,
    random_state: Any = 0,
    method: str = "average",
    metric: str = "euclidean",
    cmap: Any = "viridis",
) -> Any:
    """Heat map of a factorization's weights, rows (and columns) in hierarchical-clustering order.

    As ``seaborn.clustermap`` draws it: rows ordered by the leaves of
    :func:`scipy.cluster.hierarchy.linkage` of the rows, with the dendrogram on the left;
    columns likewise on top with ``cluster_cols``; a colour bar.

    Parameters
    ----------
    W : array-like, dask array, zarr array or path, of shape (n_samples, n_components)
        E.g. the weights ``W`` of an NMF or OPNMF. When ``n_samples > max_rows``, a seeded
        sample of ``max_rows`` rows is drawn (only those rows are read) and the title says so.
    row_labels : sequence of length n_samples, optional
        Shown on the rows when at most 60 rows are drawn.
    col_labels : sequence of length n_components, optional
        Default ``0 .. n_components - 1``.
    cluster_rows, cluster_cols : bool, default=True, False
        Order the rows (columns) by hierarchical clustering and draw their dendrogram.
    title : str, optional
        Default ``"Weights"``; the rows drawn are appended when sampled.
    max_rows : int, default=2000
        Rows drawn at most (the linkage costs O(rows²) memory and time).
    random_state : None, int, numpy RandomState or Generator, default=0
        Seed of the sample of rows.
    method, metric : str, default='average', 'euclidean'
        Of :func:`scipy.cluster.hierarchy.linkage`.
    cmap : str or matplotlib Colormap, default='viridis'

    Returns
    -------
    matplotlib.figure.Figure
        The heat map's axes (first), its colour bar's, and one per dendrogram; the title is the
        figure's. Data passes: none; reads
        only the chunks holding sampled rows.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster.plotting import plot_weights_heatmap
    >>> W = np.random.default_rng(0).random((50, 4))
    >>> fig = plot_weights_heatmap(W, title="NMF weights")
    >>> fig.get_suptitle()
    'NMF weights (50 rows x 4 components)'
    """
    owner = "plot_weights_heatmap"
    check_int(owner, "max_rows", max_rows, 2)
    for name, value in (("cluster_rows", cluster_rows), ("cluster_cols", cluster_cols)):
        if not isinstance(value, (bool, np.bool_)):
            raise InvalidParameterError(f"The '{name}' parameter of {owner} must be a bool. Got {value!r} instead.")
    _check_linkage(method, metric, owner)
    rng = generator(owner, random_state)
    require_matplotlib(owner)
    data = as_row_data(W, owner=owner)
    n, k = data.n_samples, data.n_features
    row_names = _check_labels(row_labels, n, "row_labels", owner)
    col_names = _check_labels(col_labels, k, "col_labels", owner) or [str(j) for j in range(k)]
    index, values = sample_rows(data, max_rows, rng)
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        row = int(index[np.flatnonzero(~np.isfinite(values).all(axis=1))[0]])
        raise NonFiniteDataError(f"{owner}: W holds NaN or infinity (row {row}); the clustering needs finite weights.")
    sampled = len(index) < n
    if sampled:
        logger.info("%s: %d rows sampled of %d", owner, len(index), n)
    row_order, row_tree = leaf_order(values, method, metric) if cluster_rows else (np.arange(len(index)), None)
    col_order, col_tree = leaf_order(values.T, method, metric) if cluster_cols else (np.arange(k), None)
    shown = values[np.ix_(row_order, col_order)]

    fig = new_figure(owner, 2.0 + 0.5 * k + (1.2 if cluster_rows else 0.0), 6.5 if len(index) > 20 else 4.5)
    widths = ([1.2] if cluster_rows else []) + [max(2.0, 0.5 * k), 0.25]
    heights = ([1.0] if cluster_cols else []) + [5.0]
    grid = fig.add_gridspec(len(heights), len(widths), width_ratios=widths, height_ratios=heights)
    r0, c0 = (1 if cluster_cols else 0), (1 if cluster_rows else 0)
    ax = fig.add_subplot(grid[r0, c0])
    image = ax.imshow(shown, aspect="auto", interpolation="nearest", cmap=cmap,
                      extent=(0, k, len(index), 0))
    ax.set_xticks(np.arange(k) + 0.5, [col_names[j] for j in col_order], rotation=90 if k > 10 else 0)
    if row_names is not None and len(index) <= MAX_TICK_LABELS:
        ax.set_yticks(np.arange(len(index)) + 0.5, [row_names[int(index[i])] for i in row_order])
        ax.yaxis.tick_right()
    else:
        ax.set_yticks([])
    ax.set_xlabel("component")
    ax.set_ylabel("rows" + (" (clustered)" if cluster_rows else ""))
    size = f"{len(index):,} of {n:,} rows sampled" if sampled else f"{n:,} rows"
    fig.suptitle(f"{title if title is not None else 'Weights'} ({size} x {k} components)")
    fig.colorbar(image, cax=fig.add_subplot(grid[r0, c0 + 1]), label="weight")
    if cluster_rows:
        dendrogram_ax = fig.add_subplot(grid[r0, 0], sharey=ax)
        if row_tree is not None:
            _draw_dendrogram(dendrogram_ax, row_tree, "left")
        dendrogram_ax.set_axis_off()
    if cluster_cols:
        dendrogram_ax = fig.add_subplot(grid[0, c0], sharex=ax)
        if col_tree is not None:
            _draw_dendrogram(dendrogram_ax, col_tree, "top")
        dendrogram_ax.set_axis_off()
    return fig
