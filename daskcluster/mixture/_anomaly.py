"""Anomaly detection with a fitted mixture: the rows of lowest density.

The threshold is a percentile of ``score_samples`` over the whole data set, found by a
distributed quantile summary (one pass) and, on request, refined to the exact value (a second
pass); the anomalies are then a lazy mask (or the rows) for lazy input.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import dask.array as da
import numpy as np

from ..data import RowData, check_n_features
from ..engine import map_rows, nonzero_index, rows_at, tree_reduce
from ..errors import InvalidParameterError
from ..kernels import mixture as K
from ..params import check_float
from ._gaussian_mixture import GaussianMixture, as_mixture_data

logger = logging.getLogger(__name__)


def _data(gmm: GaussianMixture, X: Any, owner: str) -> RowData:
    if not isinstance(gmm, GaussianMixture):
        raise InvalidParameterError(f"The 'gmm' parameter of {owner} must be a fitted daskcluster GaussianMixture. "
                                    f"Got {type(gmm).__name__} instead.")
    gmm._check_fitted()
    data = as_mixture_data(X, owner=owner)
    check_n_features(data, gmm.n_features_in_, owner)
    return data


def _target(n: int, q: float) -> tuple[int, float]:
    """NumPy's linear percentile: 0-based order statistic ``lo`` and the weight of ``lo + 1``."""
    h = (n - 1) * q
    lo = int(math.floor(h))
    return lo, h - lo


def density_threshold(
    gmm: GaussianMixture,
    X: Any,
    percentile: float = 4.0,
    *,
    eps: float = 1e-3,
    exact: bool = False,
) -> float:
    """The ``percentile``-th percentile of ``gmm.score_samples(X)`` over all of ``X``.

    One pass builds a quantile summary: each chunk sorts its rows' ``log p(x)`` and keeps every
    ``s``-th value (``s = max(1, floor(eps * chunk_rows))``, plus its largest), each standing for
    the ``s`` values up to it; the summaries are concatenated. The value returned is a kept
    score whose estimated rank is the target rank.

    Error bound (``exact=False``): with ``n`` rows and ``R`` the target (1-based) rank of
    ``numpy.percentile``'s lower order statistic, ``R = floor((n - 1) * percentile / 100) + 1``,
    the result ``t`` satisfies ``x_(R - E/2) <= t <= x_(R + E/2)``, with ``x_(i)`` the ``i``-th
    smallest score and ``E = sum over chunks of (s - 1) <= eps * n``: at most ``eps * n / 2``
    ranks (``50 * eps`` percentiles) away. The summary holds about ``n_chunks / eps`` values on
    the client.

    With ``exact=True`` a second pass counts the scores below a bracket that the summary
    guarantees to contain the two order statistics around the percentile and gathers those in
    it (about ``2 * eps * n`` values), and the result equals
    ``numpy.percentile(gmm.score_samples(X), percentile)`` (linear interpolation).

    Parameters
    ----------
    gmm : GaussianMixture
        Fitted.
    X : array-like, dask array, zarr array, path or Scaled of shape (n_samples, n_features)
    percentile : float, default=4.0
        In [0, 100].
    eps : float, default=1e-3
        Relative rank error of the summary, in (0, 1).
    exact : bool, default=False

    Returns
    -------
    float
        Data passes: 1 (2 with ``exact=True``).
    """
    owner = "density_threshold"
    q = check_float(owner, "percentile", percentile, 0, 100) / 100.0
    eps = check_float(owner, "eps", eps, 0, 1, closed="neither")
    data = _data(gmm, X, owner)
    gp = gmm._params()
    sketch = tree_reduce(data, K.score_sketch_kernel, K.SketchParams(gp, data.affine, eps), K.combine_sketches,
                         label="gmm-score-sketch")
    n = sketch.n_rows
    lo, frac = _target(n, q)
    rank = lo + 1  # 1-based rank of the lower order statistic
    slack = sketch.slack
    low_count = np.cumsum(sketch.weights)  # estimated count <= each kept value (a lower bound)
    # count <= v is in [low_count, low_count + slack]; with ties use the last of equal values
    last = np.searchsorted(sketch.values, sketch.values, side="right") - 1
    low_count = low_count[last]
    j = int(np.searchsorted(low_count + slack / 2.0, rank, side="left"))
    estimate = float(sketch.values[min(j, len(sketch.values) - 1)])
    if not exact:
        logger.info("density_threshold: percentile %g of %d scores ~ %.6g (rank slack %d)",
                    percentile, n, estimate, slack)
        return estimate
    # bracket (low, high] holding the order statistics of ranks `rank` and `rank + 1`
    below = np.flatnonzero(low_count + slack < rank)
    low = float(sketch.values[below[-1]]) if below.size else -np.inf
    above = np.flatnonzero(low_count >= min(rank + 1, n))
    high = float(sketch.values[above[0]]) if above.size else np.inf
    bracket = tree_reduce(data, K.bracket_kernel, K.BracketParams(gp, data.affine, low, high), K.combine_brackets,
                          label="gmm-score-bracket")
    values = np.sort(bracket.values)
    i = rank - 1 - bracket.n_below
    value = float(values[i])
    if frac > 0 and i + 1 < values.size:
        value = value + frac * (float(values[i + 1]) - value)
    return value


def anomalies(
    gmm: GaussianMixture,
    X: Any,
    percentile: float = 4.0,
    *,
    threshold: float | None = None,
    eps: float = 1e-3,
    exact: bool = False,
    return_mask: bool = False,
) -> np.ndarray | da.Array:
    """The rows of ``X`` whose density is below the ``percentile``-th percentile.

    A row is an anomaly when ``gmm.score_samples(row) < threshold``; the threshold is given,
    or found by :func:`density_threshold` (same ``percentile``, ``eps``, ``exact``).

    Returns
    -------
    rows : ndarray or dask array of shape (n_anomalies, n_features)
        The rows as stored in ``X`` (before any scaling of a :class:`~daskcluster.Scaled`);
        for lazy input a lazy array of known chunk sizes (the rows' positions are found by
        a pass in this call; only the chunks holding anomalies are read when it is
        computed). With ``return_mask=True``, instead a boolean array of shape (n_samples,),
        lazy for lazy input.
        Data passes: those of :func:`density_threshold` (none with ``threshold``), + 1 for
        the rows of lazy input, + 1 when the result is computed.
    """
    owner = "anomalies"
    data = _data(gmm, X, owner)
    if threshold is None:
        threshold = density_threshold(gmm, X, percentile, eps=eps, exact=exact)
    else:
        threshold = check_float(owner, "threshold", threshold)
    mask = map_rows(data, K.below_block, (data.affine, gmm._params(), float(threshold)), dtype=bool, label="gmm-below")
    if return_mask:
        return mask if data.lazy else np.asarray(mask.compute())  # type: ignore[no-untyped-call]
    # the rows' positions found now (one pass), then the rows as a lazy array of known chunk
    # sizes: a boolean row index (rows of unknown chunk sizes) is not on Dask's query-planning
    # backend
    rows = rows_at(data.array, nonzero_index(mask))
    return rows if data.lazy else np.asarray(rows.compute())  # type: ignore[no-untyped-call]
