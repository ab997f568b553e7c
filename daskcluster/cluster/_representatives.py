"""Representatives of clusters and label propagation, for semi-supervised learning.

The procedure of the texts: cluster the unlabelled training rows into ``k`` groups, have a
person label only the row nearest each center (the group's *representative*), then give
every row its group's label -- or, to leave out the rows on the group's edge, only the rows
among the closest ``percentile`` per cent of their group.

* :func:`representatives` -- the row nearest each center, one pass over the data;
* :func:`propagate_labels` -- each row gets its cluster's representative's label (lazy for
  lazy input); with ``percentile``, only the rows whose distance to their center is at most
  that percentile of their cluster's distances (exact per-cluster percentiles, found by radix
  selection in a few passes over the labels and distances, never over ``X``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import dask.array as da
import numpy as np

from ..data import as_row_data, cached
from ..engine import tree_reduce
from ..errors import DataTypeError, InvalidDataError, InvalidParameterError
from ..kernels import representatives as K
from ..params import check_float, check_int

logger = logging.getLogger(__name__)

#: Key bits resolved by one histogram pass of the radix selection (a 1024-bin histogram per cluster).
RADIX_BITS = 10
#: A cluster's rows left in the selected key range are gathered to the client once at most this many.
GATHER_MAX = 16384


def _center_array(centers: Any, owner: str) -> np.ndarray:
    """Centers as a float64 (n_clusters, n_features) array, from an array or a fitted estimator."""
    if hasattr(centers, "get_params") and not hasattr(centers, "__array__"):
        for attr in ("cluster_centers_", "means_"):
            if hasattr(centers, attr):
                centers = getattr(centers, attr)
                break
        else:
            raise InvalidParameterError(
                f"The 'centers' parameter of {owner} got a {type(centers).__name__} without cluster_centers_ "
                "or means_: fit it first, or pass the centers as an array of shape (n_clusters, n_features)."
            )
    try:
        array = np.asarray(centers, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataTypeError(
            f"The 'centers' parameter of {owner} must be an array of shape (n_clusters, n_features) or a "
            f"fitted estimator; got {type(centers).__name__}: {exc}"
        ) from exc
    if array.ndim != 2 or array.shape[0] < 1:
        raise InvalidParameterError(
            f"The 'centers' parameter of {owner} must have shape (n_clusters, n_features) with n_clusters >= 1; "
            f"got shape {array.shape}."
        )
    if not np.isfinite(array).all():
        raise InvalidParameterError(f"The centers given to {owner} contain NaN or infinity.")
    return array


def representatives(X: Any, centers: Any) -> np.ndarray:
    """Global row index of the row of ``X`` nearest to each center.

    Parameters
    ----------
    X : array-like, numpy.memmap, dask array, zarr array, path or Scaled of shape (n_samples, n_features)
        Any source the estimators accept; a :class:`~daskcluster.Scaled` source is compared
        with the centers in its scaled space (as the estimator fitted on it saw it).
    centers : ndarray of shape (n_clusters, n_features), or a fitted estimator
        An estimator gives its ``cluster_centers_`` (KMeans, MiniBatchKMeans) or ``means_``
        (GaussianMixture).

    Returns
    -------
    index : ndarray of shape (n_clusters,), int64
        ``index[j]`` is the row nearest center ``j`` (Euclidean); among rows at the same
        distance, the lowest. Two centers may share a row. Data passes: 1.

    Notes
    -----
    Each chunk returns, per center, its nearest row and the exact float64 squared distance
    to it; the chunks' answers are merged in a fixed tree. Within a slice of rows the
    arg-min is taken on the BLAS expansion ``||x||^2 - 2 x.c`` in the compute dtype
    (float32 for non-float64 storage), so a near tie inside one slice is decided at that
    precision.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster.cluster import representatives
    >>> X = np.array([[0.0, 0.0], [0.9, 1.0], [5.0, 5.0], [4.0, 4.2]])
    >>> representatives(X, [[1.0, 1.0], [4.5, 4.5]]).tolist()
    [1, 2]
    """
    owner = "representatives"
    array = _center_array(centers, owner)
    data = as_row_data(X, owner=owner)
    if array.shape[1] != data.n_features:
        raise InvalidDataError(
            f"X has {data.n_features} features but the centers have {array.shape[1]}: pass the data the "
            "centers were fitted on (same features, same scaling)."
        )
    params = K.NearestParams(array, data.affine, data.dtype)
    result = tree_reduce(data, K.nearest_rows_kernel, params, K.combine_nearest, label="representatives")
    logger.info("representatives: %d centers over %d rows in %d chunks", len(array), data.n_samples, data.n_chunks)
    return np.asarray(result.index, dtype=np.int64)


def _labels_1d(cluster_labels: Any) -> np.ndarray | da.Array:
    lab = cluster_labels if isinstance(cluster_labels, da.Array) else np.asarray(cluster_labels)
    if lab.ndim != 1:
        raise InvalidDataError(f"cluster_labels must be 1-D (one cluster index per row); got shape {lab.shape}.")
    if lab.dtype.kind not in "iu":
        raise DataTypeError(
            f"cluster_labels must hold integer cluster indices (as KMeans.labels_ does); got dtype {lab.dtype}."
        )
    return lab


def _table(representative_labels: Any) -> np.ndarray:
    table = np.asarray(representative_labels)
    if table.ndim != 1 or table.shape[0] < 1:
        raise InvalidParameterError(
            f"representative_labels must be 1-D with one label per cluster; got shape {table.shape}."
        )
    return table


def _percentile_of_sorted(a: float, b: float, gamma: float) -> float:
    """NumPy's linear interpolation between consecutive order statistics ``a <= b``."""
    diff = b - a
    return float(b - diff * (1 - gamma)) if gamma >= 0.5 else float(a + diff * gamma)


def cluster_percentiles(cluster_labels: Any, values: Any, n_clusters: int, percentile: float) -> np.ndarray:
    """The ``percentile``-th percentile of ``values`` within each cluster, exactly.

    Equal to ``numpy.percentile(values[cluster_labels == j], percentile)`` for each ``j``
    (linear interpolation), without bringing the values to the client: a radix selection
    of the two order statistics around the percentile, all clusters at once. Each pass
    fixes the next 10 bits of each cluster's order statistic from a histogram per cluster;
    once at most 16,384 of a cluster's values are left in the range, the next pass gathers
    them.

    Parameters
    ----------
    cluster_labels : ndarray or dask array of shape (n_samples,), integers in [0, n_clusters)
    values : ndarray or dask array of shape (n_samples,), finite
    n_clusters : int
    percentile : float in [0, 100]

    Returns
    -------
    ndarray of shape (n_clusters,), float64
        ``-inf`` for a cluster without rows. Data passes over the labels and values: 2 for
        up to 16,384 rows per cluster, rarely more than 4 (at most 8); the pair is persisted
        for the passes when it takes at most half the memory available (``cache='auto'``).
    """
    owner = "cluster_percentiles"
    q = check_float(owner, "percentile", percentile, 0, 100) / 100.0
    lab = _labels_1d(cluster_labels)
    val = values if isinstance(values, da.Array) else np.asarray(values)
    if val.ndim != 1 or val.shape[0] != lab.shape[0]:
        raise InvalidDataError(
            f"distances must be 1-D with one value per row of cluster_labels ({lab.shape[0]}); got shape {val.shape}."
        )
    if val.dtype.kind not in "iuf":
        raise DataTypeError(f"distances must be real numbers; got dtype {val.dtype}.")
    if isinstance(lab, da.Array) or isinstance(val, da.Array):
        lab_d = da.asarray(lab)
        val_d = da.asarray(val).rechunk((lab_d.chunks[0],))
        pairs: Any = da.stack([lab_d.astype(np.float64), val_d.astype(np.float64)], axis=1)
    else:
        pairs = np.column_stack([lab.astype(np.float64), val.astype(np.float64)])
    data = as_row_data(pairs, owner=owner)
    k = int(check_int(owner, "n_clusters", n_clusters, 1) or 0)
    prefix = np.zeros(k, dtype=np.uint64)
    fixed = np.zeros(k, dtype=np.int64)
    gather = np.zeros(k, dtype=bool)
    below = np.zeros(k, dtype=np.int64)  # values of the cluster whose key is below the range
    in_range = np.zeros(k, dtype=np.int64)
    out = np.full(k, -np.inf)
    done = np.zeros(k, dtype=bool)
    counts: np.ndarray | None = None
    lo = np.zeros(k, dtype=np.int64)
    h = np.zeros(k)
    passes = 0
    with cached(data, "auto") as work:
        while not done.all():
            params = K.RadixParams(prefix.copy(), fixed.copy(), gather & ~done, RADIX_BITS)
            stats = tree_reduce(work, K.radix_kernel, params, K.combine_radix, label="cluster-percentiles")
            passes += 1
            if counts is None:
                counts = stats.counts
                done |= counts == 0
                h = (counts - 1) * q
                lo = np.minimum(np.floor(h), counts - 1).astype(np.int64)
                in_range = counts.copy()
            for c in np.flatnonzero(~done):
                n = int(counts[c])
                if gather[c]:
                    r = int(lo[c] - below[c])
                    if fixed[c] < 64:
                        vals = np.sort(stats.gathered_value[stats.gathered_label == c])
                        a = float(vals[r])
                        b = float(vals[r + 1]) if r + 1 < len(vals) else float(stats.min_above[c])
                    else:
                        a = K.key_value(int(prefix[c]))
                        b = a if r + 1 < in_range[c] else float(stats.min_above[c])
                    if h[c] >= n - 1:
                        out[c] = a
                    else:
                        out[c] = _percentile_of_sorted(a, b, float(h[c] - math.floor(h[c])))
                    done[c] = True
                    continue
                width = min(RADIX_BITS, 64 - int(fixed[c]))
                hist = stats.hist[c, : 1 << width]
                cum = below[c] + np.cumsum(hist)
                j = int(np.searchsorted(cum, lo[c] + 1, side="left"))
                below[c] = int(cum[j] - hist[j])
                in_range[c] = int(hist[j])
                prefix[c] = np.uint64((int(prefix[c]) << width) | j)
                fixed[c] += width
                gather[c] = in_range[c] <= GATHER_MAX or fixed[c] == 64
    logger.info("cluster_percentiles: percentile %g of %d clusters in %d passes", percentile, k, passes)
    return out


def propagate_labels(
    cluster_labels: Any,
    representative_labels: Any,
    *,
    distances: Any = None,
    percentile: float | None = None,
) -> np.ndarray | da.Array:
    """Give each row the label of its cluster's representative.

    Parameters
    ----------
    cluster_labels : ndarray or dask array of shape (n_samples,), integers in [0, n_clusters)
        Each row's cluster, e.g. ``KMeans.labels_`` (lazy for lazy input).
    representative_labels : array-like of shape (n_clusters,)
        The label of each cluster's representative (e.g. ``y[representatives(X, km)]``, or
        labels a person gave them).
    distances : ndarray or dask array of shape (n_samples,), optional
        Each row's distance to its cluster's center, e.g. ``km.transform(X).min(axis=1)``.
        Needed with ``percentile`` and only then.
    percentile : float in [0, 100], optional
        Propagate only to the rows whose distance is at most the ``percentile``-th percentile
        of their cluster's distances (``numpy.percentile``, linear, per cluster); the other
        rows get -1, scikit-learn's mark of an unlabelled row. None: every row.

    Returns
    -------
    labels : ndarray or dask array of shape (n_samples,)
        Lazy when ``cluster_labels`` or ``distances`` is. The dtype of
        ``representative_labels``; with ``percentile``, widened to hold -1 (uint8 becomes
        int16). Data passes: none until computed, then 1 over the labels; with
        ``percentile``, those of :func:`cluster_percentiles` first (over the labels and
        distances, never over ``X``).

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster.cluster import propagate_labels
    >>> propagate_labels(np.array([0, 1, 1, 0]), np.array([7, 3])).tolist()
    [7, 3, 3, 7]
    >>> propagate_labels(np.array([0, 0, 0, 1]), np.array([7, 3]), distances=np.array([0.1, 0.5, 0.2, 0.0]),
    ...                  percentile=50).tolist()
    [7, -1, 7, 3]
    """
    lab = _labels_1d(cluster_labels)
    table = _table(representative_labels)
    if percentile is None:
        if distances is not None:
            raise InvalidParameterError(
                "propagate_labels got distances without percentile: distances only choose the rows to label "
                "when percentile is given. Pass percentile=20 to label each cluster's closest 20%, or drop distances."
            )
        if isinstance(lab, da.Array):
            return da.map_blocks(K.lookup_block, lab, table, dtype=table.dtype)  # type: ignore[no-untyped-call,no-any-return]
        return K.lookup_block(lab, table)
    percentile = check_float("propagate_labels", "percentile", percentile, 0, 100)
    if distances is None:
        raise InvalidParameterError(
            f"propagate_labels got percentile={percentile!r} without distances: pass each row's distance to its "
            "cluster's center, e.g. distances=km.transform(X).min(axis=1)."
        )
    if table.dtype.kind not in "iu":
        raise DataTypeError(
            f"With percentile, representative_labels must be integers (the rows left out get -1); got dtype {table.dtype}."
        )
    table = table.astype(np.result_type(table.dtype, np.int8))
    thresholds = cluster_percentiles(lab, distances, len(table), percentile)
    if isinstance(lab, da.Array) or isinstance(distances, da.Array):
        lab_d = da.asarray(lab)
        val_d = da.asarray(distances).rechunk((lab_d.chunks[0],))
        return da.map_blocks(K.propagate_block, lab_d, val_d, table, thresholds, -1, dtype=table.dtype)
    return K.propagate_block(lab, np.asarray(distances), table, thresholds, -1)
