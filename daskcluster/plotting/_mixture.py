"""Gaussian mixtures: BIC/AIC by covariance type, density contours and anomalies of 2-D data."""

from __future__ import annotations

import logging
from typing import Any

import dask.array as da
import numpy as np

from ..data import RowData, as_row_data
from ..engine import nonzero_index, take_rows
from ..errors import DataTypeError, InvalidDataError, InvalidParameterError
from ..params import check_int
from ._backend import figure_and_axes, new_figure, require_matplotlib
from ._sampling import generator, sample_index, sample_rows
from ._tables import check_table, numeric_column

logger = logging.getLogger(__name__)

PRODUCER = "daskcluster.mixture.gmm_bic_table"


def plot_information_criteria(table: Any) -> Any:
    """BIC and AIC against the number of components, one line per covariance type.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``n_components``, ``covariance_type``, ``bic`` and ``aic`` (the output of
        :func:`daskcluster.mixture.gmm_bic_table`). Rows of NaN criteria (models that failed)
        are left out; a covariance type without any finite value gets no line.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes, "BIC" then "AIC", each with one line per covariance type in the table's order
        and the least value marked with a star. Data passes: 0.

    Examples
    --------
    >>> import pandas as pd
    >>> from daskcluster.plotting import plot_information_criteria
    >>> table = pd.DataFrame({"n_components": [1, 2, 1, 2], "covariance_type": ["full", "full", "diag", "diag"],
    ...                       "bic": [10.0, 8.0, 11.0, 9.0], "aic": [9.0, 7.0, 10.0, 8.5]})
    >>> [ax.get_title() for ax in plot_information_criteria(table).axes]
    ['BIC (least: full, 2 components)', 'AIC (least: full, 2 components)']
    """
    owner = "plot_information_criteria"
    check_table(table, ["n_components", "covariance_type", "bic", "aic"], owner=owner, producer=PRODUCER)
    ks = numeric_column(table, "n_components", owner=owner)
    types = [str(t) for t in table["covariance_type"]]
    criteria = {name: numeric_column(table, name, owner=owner) for name in ("bic", "aic")}
    if not any(np.isfinite(values).any() for values in criteria.values()):
        raise InvalidDataError(f"{owner}: every model of the table failed (bic and aic are NaN in all {len(table)} "
                               "rows); see the table's 'error' column.")
    fig = new_figure(owner, 10.0, 4.0)
    from matplotlib.ticker import MaxNLocator

    order = list(dict.fromkeys(types))
    for i, name in enumerate(("bic", "aic")):
        ax = fig.add_subplot(1, 2, i + 1)
        values = criteria[name]
        finite = np.isfinite(values) & np.isfinite(ks)
        for j, kind in enumerate(order):
            rows = finite & (np.asarray(types) == kind)
            if not rows.any():
                logger.info("%s: no finite %s for covariance_type=%r, no line", owner, name, kind)
                continue
            sort = np.argsort(ks[rows], kind="stable")
            ax.plot(ks[rows][sort], values[rows][sort], marker="o", color=f"C{j}", label=kind)
        title = name.upper()
        if finite.any():
            best = int(np.flatnonzero(finite)[np.argmin(values[finite])])
            ax.plot([ks[best]], [values[best]], linestyle="none", marker="*", markersize=16, color="black",
                    label=f"least {title}")
            title = f"{title} (least: {types[best]}, {int(ks[best])} components)"
        ax.set_title(title)
        ax.set_xlabel("number of components (n_components)")
        ax.set_ylabel(f"{name.upper()} (lower is better)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(title="covariance_type")
    return fig


def _anomaly_rows(anomalies: Any, data: RowData, limit: int, rng: np.random.Generator,
                  owner: str) -> tuple[np.ndarray, int]:
    """The anomalies' rows to draw (at most ``limit``, a seeded sample beyond) and how many there are.

    ``anomalies``: a boolean mask of shape (n_samples,), row indices, or rows of shape (m, 2) in
    ``X``'s storage space (as :func:`daskcluster.mixture.anomalies` returns), NumPy or Dask.
    A Dask mask costs one pass over the mask; only the chunks holding anomalies are read.
    """
    n = data.n_samples
    shape = getattr(anomalies, "shape", None)
    if isinstance(anomalies, da.Array):
        if len(anomalies.shape) == 1 and anomalies.dtype.kind == "b":
            if anomalies.shape[0] != n:
                raise InvalidDataError(f"{owner}: the anomalies mask has shape {anomalies.shape}; it must have "
                                       f"shape ({n},), one value per row of X.")
            values = nonzero_index(anomalies)
            kind = "index"
        else:
            values = np.asarray(anomalies.compute())  # type: ignore[no-untyped-call]
            kind = ""
    else:
        try:
            values = np.asarray(anomalies)
        except (TypeError, ValueError) as exc:
            raise DataTypeError(f"{owner} cannot use anomalies of type {type(anomalies).__name__}: {exc}") from exc
        kind = ""
    if not kind:
        if values.ndim == 1 and values.dtype.kind == "b":
            if values.shape[0] != n:
                raise InvalidDataError(f"{owner}: the anomalies mask has shape {values.shape}; it must have shape "
                                       f"({n},), one value per row of X.")
            values, kind = np.flatnonzero(values), "index"
        elif values.ndim == 1 and (values.dtype.kind in "iu" or values.size == 0):
            kind = "index"
        elif values.ndim == 2 and values.shape[1] == 2 and values.dtype.kind in "uif":
            kind = "rows"
        else:
            raise InvalidDataError(f"{owner}: anomalies must be a boolean mask of shape ({n},), integer row indices, "
                                   f"or rows of shape (n_anomalies, 2); got shape {shape} and dtype {values.dtype}.")
    total = len(values)
    keep = sample_index(total, limit, rng)
    if kind == "rows":
        return data.to_compute(values[keep]), total
    index = values.astype(np.int64)
    if total and (index.min() < 0 or index.max() >= n):
        raise InvalidDataError(f"{owner}: anomaly indices must be in [0, {n}); got values from {index.min()} to "
                               f"{index.max()}.")
    return take_rows(data, np.sort(index[keep])), total


def plot_mixture_2d(
    model: Any,
    X: Any,
    *,
    anomalies: Any = None,
    n_grid: int = 200,
    sample_size: int = 5000,
    random_state: Any = None,
    n_levels: int = 12,
    ax: Any = None,
) -> Any:
    """Density contours of a Gaussian mixture over 2-D data, its means, and anomalies in red.

    The contour lines are those of the negative log-density ``-model.score_samples`` on an
    ``n_grid`` x ``n_grid`` grid spanning the drawn points, at levels spaced geometrically above
    the grid's least value (denser near the modes).

    Parameters
    ----------
    model : fitted daskcluster or scikit-learn GaussianMixture
        Fitted on 2 features (e.g. the first two principal components).
    X : array-like, dask array, zarr array, path or Scaled, of shape (n_samples, 2)
        The data the model describes, in the model's space (a Scaled source is drawn scaled).
    anomalies : optional
        Rows to mark in red: a boolean mask of shape (n_samples,), row indices, or the rows
        themselves of shape (n_anomalies, 2) (as :func:`daskcluster.mixture.anomalies` returns,
        in ``X``'s storage space), NumPy or Dask. At most ``sample_size`` are drawn (a seeded
        sample beyond); the legend gives their number.
    n_grid : int, default=200
        Grid points per axis.
    sample_size : int, default=5000
        Rows of ``X`` drawn (a seeded sample when ``X`` has more).
    random_state : None, int, numpy RandomState or Generator
        Seed of the samples.
    n_levels : int, default=12
        Number of contour levels.
    ax : matplotlib.axes.Axes, optional
        Draw there instead of in a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Data passes: none over ``X`` (only the chunks holding sampled rows and anomalies are
        read); one over a Dask ``anomalies`` mask.

    Raises
    ------
    InvalidDataError
        ``X`` or the model not of 2 features; anomalies of the wrong shape or out of range.
    InvalidParameterError
        A model without ``means_`` and ``score_samples`` (not a fitted GaussianMixture).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.mixture import GaussianMixture
    >>> from daskcluster.plotting import plot_mixture_2d
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(6, 1, (200, 2))])
    >>> gmm = GaussianMixture(2, random_state=0).fit(X)
    >>> fig = plot_mixture_2d(gmm, X, anomalies=gmm.score_samples(X) < -5, random_state=0)
    >>> fig.axes[0].get_xlabel()
    'feature 0'
    """
    owner = "plot_mixture_2d"
    means = getattr(model, "means_", None)
    if means is None or not callable(getattr(model, "score_samples", None)):
        raise InvalidParameterError(f"The 'model' parameter of {owner} must be a fitted GaussianMixture (with "
                                    f"means_ and score_samples). Got {type(model).__name__} without means_; fit it "
                                    "first.")
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2 or means.shape[1] != 2:
        raise InvalidDataError(f"{owner} draws 2-D mixtures; the model's means_ have shape {means.shape} "
                               f"({means.shape[-1]} features). Fit the mixture on 2 features, e.g. a PCA projection "
                               "to n_components=2.")
    check_int(owner, "n_grid", n_grid, 2)
    check_int(owner, "sample_size", sample_size, 1)
    check_int(owner, "n_levels", n_levels, 1)
    rng = generator(owner, random_state)
    require_matplotlib(owner)
    data = as_row_data(X, owner=owner)
    if data.n_features != 2:
        raise InvalidDataError(f"{owner} draws 2-D data; X has shape {tuple(data.array.shape)} ({data.n_features} "
                               "features). Project it to 2 features first (e.g. PCA(n_components=2)) and fit the "
                               "mixture on the projection.")
    fig, ax = figure_and_axes(owner, ax, 6.5, 5.5)
    index, points = sample_rows(data, sample_size, rng)
    odd = np.zeros((0, 2))
    n_odd = 0
    if anomalies is not None:
        odd, n_odd = _anomaly_rows(anomalies, data, sample_size, rng, owner)
    shown = np.concatenate([points, odd, means]).astype(np.float64)
    low, high = shown.min(axis=0), shown.max(axis=0)
    pad = 0.05 * np.where(high > low, high - low, 1.0)
    gx = np.linspace(low[0] - pad[0], high[0] + pad[0], n_grid)
    gy = np.linspace(low[1] - pad[1], high[1] + pad[1], n_grid)
    xx, yy = np.meshgrid(gx, gy)
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    z = -np.asarray(model.score_samples(grid), dtype=np.float64).reshape(xx.shape)
    finite = z[np.isfinite(z)]
    if finite.size:
        zmin, zmax = float(finite.min()), float(finite.max())
        span = zmax - zmin if zmax > zmin else 1.0
        levels = np.unique(zmin + span * np.geomspace(1e-2, 1.0, n_levels))
        contours = ax.contour(xx, yy, z, levels=levels, cmap="viridis", linewidths=1)
        ax.clabel(contours, contours.levels[::3], fontsize="x-small", fmt="%.3g")
    sample_text = (f"all {data.n_samples:,} rows" if len(index) == data.n_samples
                   else f"{len(index):,} of {data.n_samples:,} rows")
    ax.scatter(points[:, 0], points[:, 1], s=4, color="0.45", alpha=0.6, linewidths=0, label=sample_text)
    if anomalies is not None:
        drawn = f"{len(odd):,} of {n_odd:,}" if len(odd) < n_odd else f"{n_odd:,}"
        ax.scatter(odd[:, 0], odd[:, 1], s=12, color="red", linewidths=0, label=f"anomalies ({drawn})")
    ax.scatter(means[:, 0], means[:, 1], marker="x", s=80, color="black", linewidths=2,
               label=f"means ({len(means)} components)")
    ax.set_xlabel("feature 0")
    ax.set_ylabel("feature 1")
    ax.set_title(f"{type(model).__name__}: negative log-likelihood contours")
    ax.legend(loc="best", fontsize="small")
    return fig
