"""Kernels of the mean and scatter matrix of the rows, for an exact PCA by one pass.

Each block gives its row count, mean and centred scatter ``Σ (x - x̄)(x - x̄)ᵀ`` (n_features,
n_features), summed slice by slice in float64 through the data's affine map; two parts merge by
Chan, Golub & LeVeque's pairwise update (``M = M_a + M_b + n_a n_b / n · δ δᵀ``, ``δ`` the
difference of the means), in chunk order. Centring each slice before its product keeps the
rounding relative to the spread of the data, not to its mean (the raw moments ``Σ x xᵀ - n x̄ x̄ᵀ``
lose every digit the mean has over the spread). The fitted components then map rows to their
projections (:func:`project_rows`) and projections back to rows (:func:`reconstruct_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocks import (
    Affine,
    ChunkInfo,
    check_finite_rows,
    iter_compute_slices,
    row_sq_norms,
    slice_rows,
)

__all__ = ["Moments", "combine_moments", "moments_kernel", "pairwise_update", "project_rows", "reconstruct_rows"]


@dataclass(frozen=True)
class Moments:
    """Rows counted, their mean (n_features,) and centred scatter (n_features, n_features), float64."""

    n_rows: int
    mean: np.ndarray
    scatter: np.ndarray


def pairwise_update(n_a: int, mean_a: np.ndarray, m_a: np.ndarray, n_b: int, mean_b: np.ndarray,
                    m_b: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Chan, Golub & LeVeque's merge of two parts' counts, means (n_features,) and centred sums
    of squares: per feature (n_features,) or the scatter matrix (n_features, n_features)."""
    if n_b == 0:
        return n_a, mean_a, m_a
    if n_a == 0:
        return n_b, mean_b, m_b
    n = n_a + n_b
    delta = mean_b - mean_a
    spread = np.outer(delta, delta) if m_a.ndim == 2 else delta**2
    return n, mean_a + delta * (n_b / n), m_a + m_b + spread * (n_a * n_b / n)


def _merge(a: Moments, b: Moments) -> Moments:
    return Moments(*pairwise_update(a.n_rows, a.mean, a.scatter, b.n_rows, b.mean, b.scatter))


def moments_kernel(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, affine: Affine) -> Moments:
    """The rows' count, mean and centred scatter of one block. ``weights`` is unused (None).
    Raises on NaN or infinity (a slice's mean is then not finite), naming the row."""
    d = block.shape[1]
    out = Moments(0, np.zeros(d), np.zeros((d, d)))
    for start, stop, x in iter_compute_slices(block, np.dtype(np.float64), affine, slice_rows(d, d)):
        mean = x.mean(axis=0)
        if not np.isfinite(mean).all():
            check_finite_rows(x, row_sq_norms(x), chunk, start)
        centred = x - mean
        out = _merge(out, Moments(stop - start, mean, centred.T @ centred))
    return out


def combine_moments(parts: list[Moments]) -> Moments:
    """The moments of the union of the parts' rows, merged in the order given (chunk order)."""
    out = parts[0]
    for p in parts[1:]:
        out = _merge(out, p)
    return out


def project_rows(block: np.ndarray, affine: Affine, mean: np.ndarray, projection: np.ndarray, dtype: np.dtype,
                 chunk: ChunkInfo) -> np.ndarray:
    """``(x - mean) @ projection`` of each row, shape (n_rows, n_columns), in ``dtype``
    (computed in float64). Raises on NaN or infinity, naming the row."""
    out = np.empty((block.shape[0], projection.shape[1]), dtype=dtype)
    for start, stop, x in iter_compute_slices(block, np.dtype(np.float64), affine,
                                              slice_rows(block.shape[1], projection.shape[1])):
        out[start:stop] = (x - mean) @ projection
        if not np.isfinite(out[start:stop]).all():
            check_finite_rows(x, row_sq_norms(x), chunk, start)
    return out


def reconstruct_rows(block: np.ndarray, components: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``y @ components + mean`` of each row ``y`` of projections (n_rows, n_components), with
    ``components`` (n_components, n_features) and ``mean`` (n_features,): rows in feature space,
    float64."""
    return np.asarray(block, dtype=np.float64) @ components + mean
