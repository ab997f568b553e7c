"""Squared Euclidean distances by BLAS and nearest-center assignment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .compiled import compiled

if TYPE_CHECKING:  # the real modules, for type checkers
    from . import assign as A
else:
    A = compiled("assign")


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
    center is nearest): one GEMM and one compiled scan of the (n_rows, n_centers) product
    (:func:`~daskcluster.kernels.assign.nearest_in_product`; a non-finite row gets NaN).

    Returns
    -------
    labels : ndarray of shape (n_rows,), int64
    min_sq_dist : ndarray of shape (n_rows,), float64, clipped at 0
    """
    g = x @ (-2 * centers).T
    labels = np.empty(x.shape[0], dtype=np.int64)
    min_sq = np.empty(x.shape[0], dtype=np.float64)
    A.nearest_in_product(g, np.asarray(c_sq, dtype=np.float64), np.asarray(x_sq, dtype=np.float64), labels, min_sq)
    return labels, min_sq
