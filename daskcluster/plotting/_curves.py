"""Curves of a sweep over the number of clusters: the elbow, the silhouette, every metric.

The tables are those of :func:`daskcluster.selection.kmeans_sweep`: one row per number of
clusters, NaN where a fit or a metric failed (such rows are left out of the curves). Drawing
costs no pass over the data.
"""

from __future__ import annotations

import logging
import numbers
from typing import Any

import numpy as np

from ..errors import InvalidDataError, InvalidParameterError
from ._backend import figure_and_axes, grid_shape, new_figure
from ._tables import check_table, finite_curve

logger = logging.getLogger(__name__)

PRODUCER = "daskcluster.selection.kmeans_sweep"

#: The metrics plot_sweep draws, in panel order: (axis label, the better direction or None).
SWEEP_METRICS: dict[str, tuple[str, str | None]] = {
    "inertia": ("inertia", None),
    "silhouette": ("silhouette", "max"),
    "calinski_harabasz": ("Calinski-Harabasz", "max"),
    "davies_bouldin": ("Davies-Bouldin", "min"),
    "fit_time": ("fit time (s)", None),
}

X_LABEL = "number of clusters (n_clusters)"


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _check_elbow(owner: str, elbow: Any, xs: np.ndarray, source: str) -> int:
    if isinstance(elbow, (bool, np.bool_)) or not isinstance(elbow, numbers.Integral) or int(elbow) not in set(
        xs.astype(np.int64).tolist()
    ):
        raise InvalidParameterError(
            f"The {source} of {owner} must be one of the table's n_clusters with a finite inertia "
            f"{sorted(set(xs.astype(np.int64).tolist()))}. Got {elbow!r} instead."
        )
    return int(elbow)


def _mark(ax: Any, x: float, y: float, label: str) -> None:
    """A vertical dashed line at ``x`` and a ring around the point (x, y), in red, labelled."""
    ax.axvline(x, color="tab:red", linestyle="--", linewidth=1)
    ax.plot([x], [y], linestyle="none", marker="o", markersize=12, markerfacecolor="none",
            markeredgecolor="tab:red", markeredgewidth=2, label=label)


def _draw_elbow(ax: Any, xs: np.ndarray, ys: np.ndarray, elbow: int | None) -> None:
    ax.plot(xs, ys, marker="o", color="tab:blue", label="inertia")
    if elbow is not None:
        _mark(ax, elbow, float(ys[xs == elbow][0]), f"elbow: k = {elbow}")


def plot_elbow(table: Any, *, elbow: int | None = None, ax: Any = None) -> Any:
    """Inertia against the number of clusters, with the elbow marked.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``n_clusters`` and ``inertia``, one row per number of clusters (the output of
        :func:`daskcluster.selection.kmeans_sweep`); rows of NaN inertia are left out.
    elbow : int, optional
        The number of clusters to mark; by default ``table.attrs["elbow"]`` when present, else
        no mark. It must be one of the table's ``n_clusters``.
    ax : matplotlib.axes.Axes, optional
        Draw there instead of in a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure (or ``ax``'s). Data passes: 0.

    Examples
    --------
    >>> import pandas as pd
    >>> from daskcluster.plotting import plot_elbow
    >>> table = pd.DataFrame({"n_clusters": [1, 2, 3, 4], "inertia": [100.0, 30.0, 20.0, 17.0]})
    >>> fig = plot_elbow(table, elbow=2)
    >>> fig.axes[0].get_xlabel()
    'number of clusters (n_clusters)'
    """
    owner = "plot_elbow"
    check_table(table, ["n_clusters", "inertia"], owner=owner, producer=PRODUCER)
    xs, ys = finite_curve(table, "n_clusters", "inertia", owner=owner)
    if elbow is not None:
        elbow = _check_elbow(owner, elbow, xs, "'elbow' parameter")
    elif table.attrs.get("elbow") is not None:
        elbow = _check_elbow(owner, table.attrs["elbow"], xs, 'table.attrs["elbow"]')
    fig, ax = figure_and_axes(owner, ax, 5.5, 3.8)
    _draw_elbow(ax, xs, ys, elbow)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel("inertia (sum of squared distances)")
    ax.set_title("Elbow method" if elbow is None else f"Elbow method: k = {elbow}")
    _integer_ticks(ax)
    ax.legend()
    return fig


def _draw_best(ax: Any, xs: np.ndarray, ys: np.ndarray, direction: str, name: str) -> int:
    i = int(np.argmax(ys) if direction == "max" else np.argmin(ys))
    _mark(ax, xs[i], ys[i], f"best: k = {int(xs[i])} ({name} {ys[i]:.3g})")
    return int(xs[i])


def plot_silhouette_scores(table: Any, *, ax: Any = None) -> Any:
    """Mean silhouette coefficient against the number of clusters, the best (highest) marked.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``n_clusters`` and ``silhouette`` (the output of
        :func:`daskcluster.selection.kmeans_sweep`); rows of NaN silhouette are left out.
    ax : matplotlib.axes.Axes, optional
        Draw there instead of in a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Data passes: 0.

    Examples
    --------
    >>> import pandas as pd
    >>> from daskcluster.plotting import plot_silhouette_scores
    >>> table = pd.DataFrame({"n_clusters": [2, 3, 4], "silhouette": [0.5, 0.7, 0.6]})
    >>> plot_silhouette_scores(table).axes[0].get_title()
    'Silhouette: best k = 3'
    """
    owner = "plot_silhouette_scores"
    check_table(table, ["n_clusters", "silhouette"], owner=owner, producer=PRODUCER)
    xs, ys = finite_curve(table, "n_clusters", "silhouette", owner=owner)
    fig, ax = figure_and_axes(owner, ax, 5.5, 3.8)
    ax.plot(xs, ys, marker="o", color="tab:blue", label="silhouette")
    best = _draw_best(ax, xs, ys, "max", "silhouette")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel("mean silhouette coefficient")
    ax.set_title(f"Silhouette: best k = {best}")
    _integer_ticks(ax)
    ax.legend()
    return fig


def plot_sweep(table: Any) -> Any:
    """One panel per metric of a sweep against the number of clusters.

    The panels, in this order, for each column present with a finite value: ``inertia`` (the
    elbow of ``table.attrs["elbow"]`` marked when present), ``silhouette`` and
    ``calinski_harabasz`` (highest marked), ``davies_bouldin`` (lowest marked), ``fit_time``.

    Parameters
    ----------
    table : pandas.DataFrame
        Column ``n_clusters`` and at least one of the metric columns (the output of
        :func:`daskcluster.selection.kmeans_sweep`).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per metric drawn, at most three per row. Data passes: 0.

    Examples
    --------
    >>> import pandas as pd
    >>> from daskcluster.plotting import plot_sweep
    >>> table = pd.DataFrame({"n_clusters": [2, 3, 4], "inertia": [9.0, 4.0, 3.0],
    ...                       "davies_bouldin": [0.9, 0.4, 0.6]})
    >>> [ax.get_ylabel() for ax in plot_sweep(table).axes]
    ['inertia', 'Davies-Bouldin']
    """
    owner = "plot_sweep"
    check_table(table, ["n_clusters"], owner=owner, producer=PRODUCER)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in SWEEP_METRICS:
        if name not in table.columns:
            continue
        try:
            curves[name] = finite_curve(table, "n_clusters", name, owner=owner)
        except InvalidDataError:
            logger.info("%s: no finite %s, no panel", owner, name)
    if not curves:
        raise InvalidDataError(f"{owner} found no metric with a finite value; it draws the columns "
                               f"{list(SWEEP_METRICS)} and the table has {list(map(str, table.columns))}.")
    elbow = table.attrs.get("elbow")
    if elbow is not None and "inertia" in curves:
        elbow = _check_elbow(owner, elbow, curves["inertia"][0], 'table.attrs["elbow"]')
    rows, cols = grid_shape(len(curves), min(3, len(curves)), 3)
    fig = new_figure(owner, 3.6 * cols, 3.0 * rows)
    for i, (name, (xs, ys)) in enumerate(curves.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        label, direction = SWEEP_METRICS[name]
        if name == "inertia":
            _draw_elbow(ax, xs, ys, elbow)
            ax.set_title("inertia" if elbow is None else f"inertia\nelbow k = {elbow}", fontsize="medium")
        else:
            ax.plot(xs, ys, marker="o", color="tab:blue", label=label)
            if direction is None:
                ax.set_title(label, fontsize="medium")
            else:
                best = _draw_best(ax, xs, ys, direction, label)
                better = "higher" if direction == "max" else "lower"
                ax.set_title(f"{label} ({better} is better)\nbest k = {best}", fontsize="medium")
        ax.set_xlabel("n_clusters")
        ax.set_ylabel(label)
        _integer_ticks(ax)
    fig.suptitle("Sweep over the number of clusters")
    return fig
