"""Kernels of an out-of-core randomized SVD: products with ``XᵀX`` and norms of projections.

A randomized SVD of a tall ``X`` (n_samples, n_features) needs ``X`` only through products
``XᵀX Z`` with a thin ``Z`` (n_features, l): block by block, ``Σᵢ Xᵢᵀ (Xᵢ Z)``, so nothing of
size n_samples is ever kept. Blocks are cast to float64 a slice at a time and seen through
the data's affine map; sums are in float64 and combine in chunk order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocks import Affine, ChunkInfo, iter_compute_slices, slice_rows


@dataclass(frozen=True)
class Projection:
    """A thin matrix ``Z`` (n_features, l), float64, and how blocks are scaled."""

    matrix: np.ndarray
    affine: Affine


def gram_product_kernel(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo,
                        params: Projection) -> np.ndarray:
    """``Xᵀ (X Z)`` of one block: shape (n_features, l), float64. ``weights`` is unused (None)."""
    z = params.matrix
    out = np.zeros(z.shape)
    for _, _, x in iter_compute_slices(block, np.dtype(np.float64), params.affine,
                                       slice_rows(block.shape[1], z.shape[1])):
        out += x.T @ (x @ z)
    return out


def projected_parts_kernel(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo,
                           params: Projection) -> np.ndarray:
    """Squared norms of the positive and negative parts of each column of ``X Z``: shape
    (2, l), float64 (row 0 the positive parts)."""
    z = params.matrix
    out = np.zeros((2, z.shape[1]))
    for _, _, x in iter_compute_slices(block, np.dtype(np.float64), params.affine,
                                       slice_rows(block.shape[1], z.shape[1])):
        u = x @ z
        pos = np.maximum(u, 0.0)
        neg = np.minimum(u, 0.0)
        out[0] += np.einsum("ij,ij->j", pos, pos)
        out[1] += np.einsum("ij,ij->j", neg, neg)
    return out


def combine_sum(parts: list[np.ndarray]) -> np.ndarray:
    """The sum of the parts, added in the order given (chunk order)."""
    total = np.array(parts[0], dtype=np.float64, copy=True)
    for p in parts[1:]:
        total += p
    return total
