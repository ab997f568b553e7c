"""Initial factors of OPNMF: NNDSVD from the Gram pass, random, custom.

The ``opnmf`` package initializes with scikit-learn's NNDSVD on a randomized SVD of the data.
Here the singular triplets come from the Gram matrix ``G = XᵀX`` (n_features, n_features),
which the first pass sums anyway: its top eigenvectors are the right singular vectors ``V``
and the square roots of its eigenvalues the singular values ``s``. The left singular vectors
``U = X V / s`` (n_samples, k) are never formed: NNDSVD needs only the norms of their positive
and negative parts, to choose each column's part and scale. Those come from the rows the Gram
pass keeps (:data:`SAMPLE_BYTES` of them at most, in the storage dtype): exactly when it kept
every row, else as the positive part's share of ``||U_j||² = 1`` on a seeded Bernoulli sample
of rows -- so NNDSVD costs no pass of its own. Over the features the initial ``W`` is built
from ``V`` on the client; over the samples each chunk builds its rows of ``W`` from ``U`` in
the pass that starts the iterations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import eigsh

from ..blas import single_threaded_blas
from ..data import RowData
from ..kernels import opnmf as K
from ..kernels.blocks import Affine, compute_dtype_for, iter_compute_slices, slice_rows

logger = logging.getLogger(__name__)

#: Above this many features, the top eigenvectors of the Gram matrix come from Lanczos
#: iterations (ARPACK, deterministic start) instead of a dense eigensolver.
DENSE_EIGH_MAX = 2048

#: Rows kept by the Gram pass for NNDSVD: at most this many bytes (storage dtype)...
SAMPLE_BYTES = 2**25

#: ... and at least this many rows.
SAMPLE_MIN_ROWS = 2048

#: Inits that start from the singular vectors.
NNDSVD_INITS = ("nndsvd", "nndsvda", "nndsvdar")

#: How each NNDSVD variant fills the zeros of the factor.
NNDSVD_FILL = {"nndsvd": None, "nndsvda": "mean", "nndsvdar": "random"}


@dataclass
class Spectrum:
    """The top ``K`` singular triplets of ``X`` (n_samples, n_features), as NNDSVD uses them.

    Attributes
    ----------
    values : ndarray of shape (K,)
        Singular values, largest first.
    vectors : ndarray of shape (n_features, K)
        Right singular vectors (eigenvectors of ``XᵀX``).
    u_pos, u_neg : ndarray of shape (K,)
        Norms of the positive and negative parts of the left singular vectors ``U = X V / s``.
    """

    values: np.ndarray
    vectors: np.ndarray
    u_pos: np.ndarray
    u_neg: np.ndarray

    @property
    def inv_values(self) -> np.ndarray:
        """``1 / s``, 0 where ``s`` is 0 (the left vector is then taken as 0)."""
        out = np.zeros_like(self.values)
        np.divide(1.0, self.values, out=out, where=self.values > 0)
        return out


def top_eigenvectors(gram: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues (descending, clipped at 0) and their eigenvectors
    (n_features, k) of the symmetric ``gram``. Deterministic."""
    d = gram.shape[0]
    if d <= DENSE_EIGH_MAX or k >= d - 1:
        values, vectors = scipy.linalg.eigh(gram, subset_by_index=[d - k, d - 1])
    else:
        values, vectors = eigsh(gram, k=k, which="LA", v0=np.ones(d), tol=0)
    order = np.argsort(-values, kind="stable")
    return np.maximum(values[order], 0.0), vectors[:, order]


def sample_probability(n_samples: int, n_features: int, itemsize: int) -> float:
    """The probability with which the Gram pass keeps each row for NNDSVD: 1 when all rows
    take at most :data:`SAMPLE_BYTES`, else about that many bytes of rows (at least
    :data:`SAMPLE_MIN_ROWS` rows)."""
    rows = max(SAMPLE_MIN_ROWS, SAMPLE_BYTES // max(1, n_features * itemsize))
    return 1.0 if n_samples <= rows else rows / n_samples


def spectrum(gram: np.ndarray, sample: np.ndarray, affine: Affine, n_samples: int, k: int) -> Spectrum:
    """The top ``k`` singular triplets of the data from its Gram matrix, with the norms of the
    parts of the left vectors measured on ``sample`` (rows in the storage dtype, seen through
    ``affine``: every row of the data, or a uniform sample of them). Data passes: 0."""
    with single_threaded_blas():  # small dense problems: a team of threads only costs here
        eigenvalues, vectors = top_eigenvectors(gram, k)
    values = np.sqrt(eigenvalues)
    inv = np.zeros_like(values)
    np.divide(1.0, values, out=inv, where=values > 0)
    pos_sq = np.zeros(k)
    neg_sq = np.zeros(k)
    dtype = compute_dtype_for(sample.dtype)
    v = vectors.astype(dtype)
    for _, _, x in iter_compute_slices(sample, dtype, affine, slice_rows(sample.shape[1], k)):
        u = (x @ v).astype(np.float64)
        pos_sq += np.einsum("ij,ij->j", np.maximum(u, 0), np.maximum(u, 0))
        neg_sq += np.einsum("ij,ij->j", np.minimum(u, 0), np.minimum(u, 0))
    if len(sample) == n_samples:  # every row: the norms themselves
        return Spectrum(values, vectors, np.sqrt(pos_sq) * inv, np.sqrt(neg_sq) * inv)
    # a sample: the positive part's share of ||U_j||² = 1 (0 when s_j = 0)
    total = pos_sq + neg_sq
    share = np.full(k, 0.5)
    np.divide(pos_sq, total, out=share, where=total > 0)
    alive = (values > 0).astype(np.float64)
    return Spectrum(values, vectors, np.sqrt(share) * alive, np.sqrt(1.0 - share) * alive)


def _pos_neg_norms(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.linalg.norm(np.maximum(v, 0), axis=0), np.linalg.norm(np.minimum(v, 0), axis=0)


def nndsvd_plan(spec: Spectrum, k: int, factor_side: str) -> tuple[np.ndarray, np.ndarray]:
    """Which part of each singular vector makes the factor's columns, and their scale.

    ``factor_side`` is ``'right'`` when ``W`` is over the features (made from ``V``) and
    ``'left'`` when it is over the samples (made from ``U``). Returns ``parts`` (k,) with
    values in ``PART_ABS/PART_POS/PART_NEG`` and ``coefs`` (k,) such that column ``j`` of the
    factor is ``coefs[j] * part_j(vector_j)``, then floored at ``NNDSVD_EPS`` -- scikit-learn's
    NNDSVD (Boutsidis & Gallopoulos 2008): the leading pair as ``sqrt(s0) |u0|``, then for each
    pair the positive or the negative parts, whichever has the larger product of norms.
    """
    v_pos, v_neg = _pos_neg_norms(spec.vectors[:, :k])
    u_pos, u_neg = spec.u_pos[:k], spec.u_neg[:k]
    x_pos, x_neg, y_pos, y_neg = (v_pos, v_neg, u_pos, u_neg) if factor_side == "right" else (u_pos, u_neg, v_pos, v_neg)
    parts = np.empty(k, dtype=np.int64)
    coefs = np.empty(k, dtype=np.float64)
    parts[0] = K.PART_ABS
    coefs[0] = np.sqrt(spec.values[0])
    for j in range(1, k):
        m_p, m_n = x_pos[j] * y_pos[j], x_neg[j] * y_neg[j]
        if m_p > m_n:
            parts[j], sigma, norm = K.PART_POS, m_p, x_pos[j]
        else:
            parts[j], sigma, norm = K.PART_NEG, m_n, x_neg[j]
        coefs[j] = np.sqrt(spec.values[j] * sigma) / norm if norm > 0 else 0.0
    return parts, coefs


def nndsvd_features(spec: Spectrum, k: int, init: str, mean: float, seed: int) -> np.ndarray:
    """The initial ``W`` over the features, (n_features, k): NNDSVD from the right vectors,
    zeros filled per ``init`` (``'nndsvdar'`` draws from ``seed``)."""
    parts, coefs = nndsvd_plan(spec, k, "right")
    W = K.nndsvd_columns(spec.vectors[:, :k], parts, coefs)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(K.STREAM_NNDSVDAR,)))
    return K.fill_zeros(W, NNDSVD_FILL[init], mean, rng)


def nndsvd_samples_params(spec: Spectrum, k: int, init: str, mean: float, seed: int, data: RowData) -> K.FactorInit:
    """Parameters of the pass that builds each chunk's rows of the initial ``W`` over the
    samples from ``U = X V / s`` (NNDSVD, zeros filled per ``init``)."""
    parts, coefs = nndsvd_plan(spec, k, "left")
    return K.FactorInit(
        data.affine, k, "nndsvd", seed=seed, vectors=spec.vectors[:, :k], inv_values=spec.inv_values[:k],
        parts=parts, coefs=coefs, fill=NNDSVD_FILL[init], mean=mean,
    )


def random_features(n_features: int, k: int, mean: float, seed: int) -> np.ndarray:
    """``sqrt(mean / k) * |N(0, 1)|`` of shape (n_features, k), scikit-learn's random init
    scale, drawn from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(K.STREAM_RANDOM_INIT,)))
    W: np.ndarray = np.sqrt(mean / k) * np.abs(rng.standard_normal(size=(n_features, k)))
    return W


def random_scale(mean: float, k: int) -> float:
    """The divisor that turns the ``|N(0, 1)|`` rows drawn by the chunks into scikit-learn's
    random init ``sqrt(mean / k) * |N(0, 1)|``. (OPNMF's update is invariant to the scale of
    ``W``, so for all-zero data, where that scale is 0, the draws are used as they are.)"""
    avg = float(np.sqrt(max(mean, 0.0) / k))
    return 1.0 / avg if avg > 0 else 1.0
