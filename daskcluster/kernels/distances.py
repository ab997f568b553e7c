"""Squared Euclidean distances by BLAS and nearest-center assignment."""

from __future__ import annotations

import numpy as np


def sq_distances(x: np.ndarray, x_sq: np.ndarray, centers: np.ndarray, c_sq: np.ndarray) -> np.ndarray:
    """Squared distances ``||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2``, clipped at 0.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_features)
    x_sq : ndarray of shape (n_rows,)
        Squared norms of the rows of ``x``.
    centers : ndarray of shape (n_centers, n_features)
        Same dtype as ``x``.
    c_sq : ndarray of shape (n_centers,)

    Returns
    -------
    ndarray of shape (n_rows, n_centers), in ``x``'s dtype.
    """
    d = x @ centers.T
    d *= -2
    d += c_sq
    d += x_sq[:, None]
    np.maximum(d, 0, out=d)
    return d


def nearest_center(
    x: np.ndarray, x_sq: np.ndarray, centers: np.ndarray, c_sq: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's nearest center and the squared distance to it.

    The arg-min is taken over ``||c||^2 - 2 x.c`` (the row's own norm does not change which
    center is nearest), so only one GEMM and one pass over the (n_rows, n_centers) block are
    needed.

    Returns
    -------
    labels : ndarray of shape (n_rows,), int64
    min_sq_dist : ndarray of shape (n_rows,), float64, clipped at 0
    """
    d = x @ (-2 * centers).T
    d += c_sq
    labels = np.argmin(d, axis=1)
    part = np.take_along_axis(d, labels[:, None], axis=1)[:, 0]
    min_sq = part.astype(np.float64)
    min_sq += x_sq
    np.maximum(min_sq, 0.0, out=min_sq)
    return labels, min_sq
