"""Metrics of a clustering of ``X``: inertia, Calinski-Harabasz, Davies-Bouldin, silhouette.

Each is a pass or two over ``X`` (the labels may be lazy Dask arrays); the silhouette is exact
on a seeded sample of rows.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from ..data import RowData, as_row_data, as_sample_weight
from ..engine import take, take_rows, tree_reduce
from ..errors import InvalidDataError
from ..kernels import kmeans as KK
from ..kernels import metrics as KM
from ._contingency import _codes
from ._silhouette import sample_index


def _encode(block: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.searchsorted(values, block)


def _labelled(X: Any, labels: Any, owner: str) -> tuple[RowData, da.Array, int]:
    """X as RowData, labels as codes 0..k-1 chunked like X's rows, and k."""
    data = as_row_data(X, owner=owner)
    lab = da.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != data.n_samples:
        raise InvalidDataError(f"labels must have shape ({data.n_samples},) like X's rows; got {lab.shape}.")
    lab = lab.rechunk((data.array.chunks[0],))
    values, k = _codes(lab)
    if values is not None:
        lab = lab.map_blocks(_encode, values, dtype=np.int64)
    return data, lab, k


def _centroids(data: RowData, lab: da.Array, k: int) -> tuple[np.ndarray, np.ndarray]:
    stats = tree_reduce(data, KM.label_sums_kernel, KM.LabelSumsParams(k, data.affine, np.dtype(np.float64)),
                        KM.combine_label_sums, weights=lab)
    counts = stats.counts
    centers = np.zeros_like(stats.sums)
    nz = counts > 0
    centers[nz] = stats.sums[nz] / counts[nz, None]
    return counts, centers


def _check_n_labels(n_labels: int, n_samples: int) -> None:
    if not 1 < n_labels < n_samples:
        raise InvalidDataError(
            f"Number of labels is {n_labels}. Valid values are 2 to n_samples - 1 (inclusive)"
        )


def calinski_harabasz_score(X: Any, labels: Any) -> float:
    """Variance ratio criterion, as :func:`sklearn.metrics.calinski_harabasz_score`.

    Parameters
    ----------
    X : array-like, dask array, zarr, path or Scaled, of shape (n_samples, n_features)
    labels : array-like or dask array of shape (n_samples,)

    Returns
    -------
    float. Data passes: 2 (the centroids, then the dispersion around them).
    """
    data, lab, k = _labelled(X, labels, "calinski_harabasz_score")
    counts, centers = _centroids(data, lab, k)
    present = counts > 0
    _check_n_labels(int(present.sum()), data.n_samples)
    disp = tree_reduce(data, KM.dispersion_kernel, KM.DispersionParams(centers, data.affine, np.dtype(np.float64)),
                       KM.combine_dispersion, weights=lab)
    return calinski_harabasz_from_stats(counts, centers, disp.sq)


def calinski_harabasz_from_stats(counts: np.ndarray, centroids: np.ndarray, sq: np.ndarray) -> float:
    """The Calinski-Harabasz index from per-label row counts (k,), centroids (k, d) and sums of
    squared distances to the centroid (k,); labels with no rows are left out. No data pass."""
    present = counts > 0
    n_labels = int(present.sum())
    _check_n_labels(n_labels, int(counts.sum()))
    mean = (centroids * counts[:, None]).sum(axis=0) / counts.sum()
    extra = float((counts[present] * ((centroids[present] - mean) ** 2).sum(axis=1)).sum())
    intra = float(sq.sum())
    return 1.0 if intra == 0.0 else extra * (counts.sum() - n_labels) / (intra * (n_labels - 1.0))


def davies_bouldin_score(X: Any, labels: Any) -> float:
    """Davies-Bouldin index, as :func:`sklearn.metrics.davies_bouldin_score`.

    Returns
    -------
    float. Data passes: 2.
    """
    data, lab, k = _labelled(X, labels, "davies_bouldin_score")
    counts, centers = _centroids(data, lab, k)
    present = counts > 0
    _check_n_labels(int(present.sum()), data.n_samples)
    disp = tree_reduce(data, KM.dispersion_kernel, KM.DispersionParams(centers, data.affine, np.dtype(np.float64)),
                       KM.combine_dispersion, weights=lab)
    return davies_bouldin_from_stats(counts, centers, disp.dist)


def davies_bouldin_from_stats(counts: np.ndarray, centroids: np.ndarray, dist: np.ndarray) -> float:
    """The Davies-Bouldin index from per-label row counts (k,), centroids (k, d) and sums of
    distances to the centroid (k,); labels with no rows are left out. No data pass."""
    present = counts > 0
    _check_n_labels(int(present.sum()), int(counts.sum()))
    intra = dist[present] / counts[present]
    c = centroids[present]
    between = np.sqrt(np.maximum(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1), 0))
    if np.allclose(intra, 0) or np.allclose(between, 0):
        return 0.0
    between[between == 0] = np.inf
    return float(np.mean(np.max((intra[:, None] + intra[None, :]) / between, axis=1)))


def inertia(X: Any, centers: Any, sample_weight: Any = None) -> float:
    """Sum of (weighted) squared distances of the rows of ``X`` to their nearest center.

    ``centers`` has shape (n_clusters, n_features). Data passes: 1.
    """
    data = as_row_data(X, owner="inertia")
    c = np.asarray(centers, dtype=data.dtype)
    if c.ndim != 2 or c.shape[1] != data.n_features:
        raise InvalidDataError(f"centers must have shape (n_clusters, {data.n_features}); got {c.shape}.")
    w = as_sample_weight(sample_weight, data, owner="inertia")
    return tree_reduce(data, KK.assign_stats_kernel, KK.AssignParams(c, data.affine), KK.combine_assign, weights=w).inertia


def silhouette_error_bound(sample_size: int, delta: float = 0.05) -> float:
    """Half-width of the interval that holds the mean silhouette of the sampled rows' population
    with probability ``1 - delta``: ``sqrt(2 ln(2/delta) / sample_size)`` (Hoeffding; silhouette
    values lie in [-1, 1])."""
    return float(np.sqrt(2 * np.log(2 / delta) / sample_size))


def silhouette_score(X: Any, labels: Any, *, sample_size: int | None = 10_000, random_state: Any = None) -> float:
    """Mean silhouette coefficient, exact on a seeded sample of ``sample_size`` rows.

    The exact silhouette costs O(n²) distances; as :func:`sklearn.metrics.silhouette_score` with
    ``sample_size``, this draws ``sample_size`` distinct rows (seeded by ``random_state``) and
    computes the silhouette of that sample. Error: the sample's mean estimates the mean over all
    rows within :func:`silhouette_error_bound` (about ±0.027 for 10,000 rows, 95%), plus the
    small bias of measuring each sampled row's distances against the sample rather than all rows.
    ``sample_size=None`` or ``>= n_samples`` gives the exact score (rows brought to the client:
    only for data that fit in memory).

    Data passes: reads only the chunks holding the sampled rows.
    """
    from sklearn.metrics import silhouette_score as exact

    data = as_row_data(X, owner="silhouette_score")
    lab = da.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != data.n_samples:
        raise InvalidDataError(f"labels must have shape ({data.n_samples},) like X's rows; got {lab.shape}.")
    index = sample_index(data.n_samples, sample_size, random_state)
    rows = take_rows(data, index)
    sample_labels = take(lab, index)
    n_labels = len(np.unique(sample_labels))
    _check_n_labels(n_labels, len(index))
    return float(exact(rows.astype(np.float64), sample_labels))
