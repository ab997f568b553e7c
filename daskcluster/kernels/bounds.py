"""Exact accelerated k-means: distance bounds that let a Lloyd step skip most rows.

Each row keeps its label ``a``, an upper bound ``u ≥ ‖x - c_a‖`` and a lower bound
``l ≤ min_{c ≠ a} ‖x - c‖`` (Hamerly, 2010). When the centers move, the triangle inequality
keeps them valid: ``u += δ_a`` and ``l -= max_{c ≠ a} δ_c``, ``δ`` the distance each center
moved. A row keeps its label without any distance computed when ``u`` is below
``max(l, 2 s_a - u)``, ``s_a`` half the distance from ``c_a`` to its nearest other center
(Elkan, 2003). Only the other rows are gathered into tiles and multiplied by all centers (one
GEMM per tile; uint8 rows with many zero groups take each row's products with all centers by
one walk over its non-zero groups instead, see :mod:`daskcluster.kernels.elkan`); their bounds
are then exact again. The per-cluster sums of the chunk are kept with the bounds and updated by
the rows that changed cluster, so a late iteration costs O(rows) plus the few rows near a
boundary.

Exact means: the labels are those a Lloyd step computes. Distances come from a float GEMM
whose rounding error is at most ``slack`` (``2 d ε (max ‖x‖² + max ‖c‖²)``, ``ε`` the compute
dtype's machine epsilon, a worst-case bound on a dot product of length ``d`` summed in any
order, so on the walks' products too: :func:`slack`); the bounds carry that error and a row is
skipped only when its nearest center wins by more than it, so the rows Lloyd could label
differently through rounding are always recomputed. A recomputed row is labelled by its
distances (float64 where two float32 intervals overlap), not by Lloyd's float32 products: where
two centers are within rounding of each other for a row, its label may differ from Lloyd's, and
so may the fit from there on, at the level of rounding (1,000,000 MNIST8M rows, 10 clusters:
Lloyd 204 iterations, Elkan 203, centers within 2.2e-4 on a [0, 1] scale, inertia equal to seven
digits).

The state of a chunk (:class:`BoundsState`: int64 labels, a float64 upper bound and ``k``
float32 lower bounds per row, ``16 + 4 k`` bytes a row, plus the float64 ``(k, d)`` sums and
``(k,)`` weights) lives beside the chunk in the memory of the worker that ran its
task (:mod:`daskcluster.engine.rowstate`). It only saves work: a chunk without its state
(first pass, another worker, a lost worker, a resumed checkpoint) computes every distance by
GEMM and builds it again, and gives the same labels up to such ties. The pass that uses these bounds is
:func:`daskcluster.kernels.sweep.sweep_state_kernel` (member kind ``'elkan'``).

This module holds the state, the thresholds and the centers' geometry, none compiled (the
client computes the geometry); the compiled loops that keep the bounds are in
:mod:`daskcluster.kernels.elkan`.

References
----------
C. Elkan. Using the triangle inequality to accelerate k-means. ICML 2003.
G. Hamerly. Making k-means even faster. SDM 2010.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocks import Affine
from .kmeans import FarPoints, LloydStats


@dataclass
class BoundsState:
    """What a chunk keeps between passes: shapes (n_rows,) and (k, n_features) / (k,)."""

    generation: int
    labels: np.ndarray  # int64
    upper: np.ndarray  # float64, (n_rows,)
    lower: np.ndarray  # float32, (n_rows, k)
    sums: np.ndarray  # float64, storage space, raw rows
    wic: np.ndarray  # float64


def dense_threshold(k: int) -> int:
    """Open centers above which a row's distances are computed by GEMM with all ``k`` centers
    rather than one by one: a distance alone costs about ``k / 8`` times its share of a tile's
    GEMM at k = 100 on MNIST (and never fewer than 2)."""
    return max(2, k // 8)


# --------------------------------------------------------------------------- error bound, geometry, statistics


def slack(n_features: int, dtype: np.dtype, xsq_max: float, csq_max: float) -> float:
    """Bound on the rounding error of a squared distance computed as ``‖x‖² + ‖c‖² - 2x·c``
    (a dot product of length ``d`` in ``dtype``: at most ``d ε ‖x‖ ‖c‖`` for each of its
    terms, so ``2 d ε (‖x‖² + ‖c‖²)`` in all).

    The products' error is at most ``γ_d Σ |x_f 2c_f| ≤ 2 γ_d ‖x‖ ‖c‖ ≤ γ_d (‖x‖² + ‖c‖²)``
    (``γ_d = d u / (1 - d u)``, ``u = ε / 2``) whatever the order of the sum — a BLAS kernel's
    blocking, the register blocks of :mod:`~daskcluster.kernels.rowproducts`, or its walks over a
    row's non-zero groups (lanes, then a tree, zero groups adding exactly zero) — with or
    without fused multiply-adds, so this bound holds about four times over; the rest covers the
    float64 additions of the norms. It holds with the norms of one row and one center as with
    the largest of a tile."""
    return float(2 * n_features * np.finfo(dtype).eps * (xsq_max + csq_max))


def center_geometry(centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half the distance between every two centers (k, k) and from each to its nearest other
    one (k,), float64, storage space, rounded down: from one (k, k) product, less its
    float64 rounding error."""
    c = centers.astype(np.float64)
    k, d = c.shape
    sq = np.einsum("ij,ij->i", c, c)
    between = sq[:, None] + sq[None, :] - 2 * (c @ c.T)
    between -= 2 * d * np.finfo(np.float64).eps * (sq[:, None] + sq[None, :])
    half_cc = 0.5 * np.sqrt(np.maximum(between, 0.0))
    np.fill_diagonal(half_cc, 0.0)
    if k == 1:
        return half_cc, np.full(1, np.inf)
    return half_cc, (half_cc + np.diag(np.full(k, np.inf))).min(axis=1)


def lloyd_stats(sums: np.ndarray, wic: np.ndarray, inertia: float, far: FarPoints, affine: Affine) -> LloydStats:
    """The chunk's statistics in the compute space (copies: the state keeps its own arrays)."""
    s = sums.copy() if affine.is_identity else affine.scale * sums + affine.offset * wic[:, None]
    return LloydStats(wic.copy(), s, inertia, far, None)
