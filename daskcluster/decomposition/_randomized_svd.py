"""The top singular values and right singular vectors of row-chunked data, out of core.

Randomized subspace iteration (Halko, Martinsson & Tropp 2011, algorithm 4.4) run on the
feature side: ``Z₀`` is an orthonormal basis of a Gaussian sketch (n_features, l), each pass
computes ``XᵀX Zₜ`` (one product per block, summed in chunk order: :mod:`daskcluster.kernels.linalg`)
and its QR factor is the next basis; a last pass gives the Rayleigh–Ritz projection ``ZᵀXᵀXZ``
(l, l) whose eigenpairs are the squared singular values and, through ``Z``, the right singular
vectors. Nothing of size n_samples is built: the left vectors ``U = X V / s`` are left to the
caller, chunk by chunk. The same ``seed`` gives the same result on any scheduler; another
chunking changes only the rounding of the sums.

Accuracy: after ``n_iter`` passes the error of the ``j``-th vector decays as
``(s_{l+1} / s_j)^(2 n_iter)`` (as scikit-learn's ``randomized_svd`` with ``n_iter`` power
iterations); the eigenvalues ``s²`` carry an absolute rounding error of about
``l · eps · s₀²``, so singular values below :data:`RELATIVE_CUTOFF` ``· s₀`` are returned as 0.
"""

from __future__ import annotations

import logging

import numpy as np

from ..blas import single_threaded_blas
from ..data import RowData
from ..engine import tree_reduce
from ..kernels import linalg as K

logger = logging.getLogger(__name__)

#: Singular values below this fraction of the largest are rounding noise of ``s²`` in float64
#: (``sqrt(l · eps₆₄)`` is about 5e-8 for l up to 100): returned as 0.
RELATIVE_CUTOFF = 1e-7


def randomized_svd(
    data: RowData, n_components: int, *, n_oversamples: int = 10, n_iter: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_components`` largest singular values of ``data`` (scaled as the estimators see
    it) and their right singular vectors.

    Parameters
    ----------
    data : RowData
        Shape (n_samples, n_features).
    n_components : int
        How many singular triplets; at most n_features.
    n_oversamples : int, default=10
        Extra columns of the sketch (``l = min(n_components + n_oversamples, n_features)``).
    n_iter : int, default=4
        Subspace iterations (passes) before the Rayleigh–Ritz pass.
    seed : int
        Seeds the Gaussian sketch (``RandomState(seed).standard_normal((n_features, l))``).

    Returns
    -------
    values : ndarray of shape (n_components,)
        Singular values, descending, float64.
    vectors : ndarray of shape (n_features, n_components)
        Right singular vectors (orthonormal columns), float64.

    Data passes: ``n_iter + 1``.
    """
    d = data.n_features
    k = int(n_components)
    width = min(k + int(n_oversamples), d)
    basis = _orthonormal(np.random.RandomState(seed).standard_normal((d, width)))
    for _ in range(int(n_iter)):
        basis = _orthonormal(_gram_product(data, basis))
    product = _gram_product(data, basis)
    with single_threaded_blas():  # an (l, l) problem
        ritz = basis.T @ product
        eigenvalues, rotation = np.linalg.eigh((ritz + ritz.T) / 2)
    order = np.argsort(-eigenvalues, kind="stable")[:k]
    values = np.sqrt(np.maximum(eigenvalues[order], 0.0))
    if values.size and values[0] > 0:
        values[values < RELATIVE_CUTOFF * values[0]] = 0.0
    vectors = basis @ rotation[:, order]
    logger.debug("randomized SVD: %d passes, singular values %s", int(n_iter) + 1, values)
    return values, vectors


def left_vector_parts(data: RowData, values: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Norms of the positive and negative parts of each left singular vector ``U = X V / s``,
    each of shape (n_components,); 0 where ``s`` is 0. Data passes: 1."""
    inv = np.zeros_like(values)
    np.divide(1.0, values, out=inv, where=values > 0)
    sq = tree_reduce(data, K.projected_parts_kernel, K.Projection(vectors * inv, data.affine), K.combine_sum,
                     label="svd-left-parts")
    return np.sqrt(sq[0]), np.sqrt(sq[1])


def _gram_product(data: RowData, basis: np.ndarray) -> np.ndarray:
    return tree_reduce(data, K.gram_product_kernel, K.Projection(basis, data.affine), K.combine_sum,
                       label="svd-gram-product")


def _orthonormal(a: np.ndarray) -> np.ndarray:
    with single_threaded_blas():
        q, _ = np.linalg.qr(a)
    return q
