"""Exact accelerated k-means: distance bounds that let a Lloyd step skip most rows.

Each row keeps its label ``a``, an upper bound ``u ≥ ‖x - c_a‖`` and a lower bound
``l ≤ min_{c ≠ a} ‖x - c‖`` (Hamerly, 2010). When the centers move, the triangle inequality
keeps them valid: ``u += δ_a`` and ``l -= max_{c ≠ a} δ_c``, ``δ`` the distance each center
moved. A row keeps its label without any distance computed when ``u`` is below
``max(l, 2 s_a - u)``, ``s_a`` half the distance from ``c_a`` to its nearest other center
(Elkan, 2003). Only the other rows' distances are computed: one by one to the centers left
open, or, for a row with more than :func:`dense_threshold` centers open, to all centers from the
products of a tile of such rows gathered (:func:`~daskcluster.kernels.assign.iter_products`: a
GEMM, or for at most :data:`~daskcluster.kernels.rowproducts.MAX_CENTERS` centers and uint8 or
float32 rows the compiled products of :mod:`daskcluster.kernels.rowproducts`); uint8 rows with
many zero groups take each open row's products with all centers by one walk over its non-zero
groups instead (see :mod:`daskcluster.kernels.elkan`). Their bounds are then exact again. The
per-cluster sums of the chunk are kept with the bounds and updated by the rows that changed
cluster, so a late iteration costs O(rows) plus the few rows near a boundary.

**Lloyd's labels.** For ``uint8`` rows that take the walks over their non-zero groups in a Lloyd
step (:func:`~daskcluster.kernels.rowproducts.walks_pay`), float32 centers, at most
:data:`~daskcluster.kernels.elkan.WALK_CENTERS` of them, and no sample weights, every label is
the one a Lloyd step (:func:`~daskcluster.kernels.rowproducts.lloyd_step`) gives for the same
centers, ties included, so the sums (integers, moved in int32) are its bits too and an Elkan fit
goes through Lloyd's labels, centers and iterations:

* a row the bounds leave open takes its products by Lloyd's own walk, with Lloyd's table, and
  its label by Lloyd's rule on them (the first of equals of ``float64(x·(-2c_j)) + ‖c_j‖²``:
  :func:`~daskcluster.kernels.rowproducts.lloyd_row`); its bounds come from the same products, with
  the slack, so they hold on the exact distances whichever center wins a tie;
* a pass that makes the bounds from a tile's products (the first pass, a chunk that lost its
  state, a step that computes every distance) takes the same rule
  (:func:`~daskcluster.kernels.elkan.init_bounds`: ``‖x‖²`` is added after the arg-min, which
  adding it first could turn into a tie);
* a row the bounds skip is certified. Lloyd's value for center ``j`` (plus ``‖x‖²``) is within
  ``η_j ≤ 2 γ_d ‖x‖ ‖c_j‖`` of ``d_j² = ‖x - c_j‖²`` (and float64 rounding, ~2⁻⁵³ relative);
  an upper bound made by pass ``p`` from its products is ``u_p = √(v_a + slack_p)`` with
  ``slack_p ≈ 4 γ_d (‖x‖² + C_p²)`` (``C_p`` the largest center norm then), so ``u_p² - d_a² ≥
  slack_p - η_a ≥ 6 γ_d ‖x‖ C_p``. The drifts keep that margin on the squared distances: if a
  later step finds ``u ≤ l_j`` then ``d_j² - d_a² ≥ m (2u - m) ≥ u_p² - d_a²`` (``m = u_p -
  d_a``, ``u ≥ u_p``, ``d_j ≥ l_j ≥ u``), and if it finds ``u ≤ ½‖c_a - c_j‖`` twice that. Lloyd's
  values then order ``a`` strictly before ``j`` (no tie for its first of equals to break) as long
  as ``η_a + η_j ≤ 4 γ_d ‖x‖ C`` stays below, which holds while the centers' largest norm ``C``
  is below ``1.5 C_p``. The state keeps the least ``C_p²`` of the passes whose bounds it holds
  (:attr:`BoundsState.csq_floor`), and a step whose centers' largest squared norm exceeds
  :data:`NORM_GROWTH` times it does not skip by them (:meth:`BoundsState.certifies`): the chunk
  makes them again from every product, as a chunk without state does.

Other rows (``float32`` or ``float64`` rows, weighted rows, more than ``WALK_CENTERS`` centers,
sparse rows, uint8 rows that do not take the walks) keep the bounds as they were: a row left
open is labelled by its distances (float32 intervals, float64 distances where two intervals
overlap: :func:`~daskcluster.kernels.elkan.row_interval`), and its upper bound is the end of an
interval, with no margin, so a row skipped by it is nearest by the exact distances, not by
Lloyd's rule: where two centers are within rounding of each other for a row, its label may
differ from Lloyd's, and so may the fit from there on, at the level of rounding (the rows of a
pass that makes the bounds from every product, and the rows a step defers to them, take Lloyd's
rule on those products, as above). Distances from products (a tile's GEMM or compiled
products, or a walk) carry a rounding error of at most ``slack`` (``2 d ε (max ‖x‖² + max
‖c‖²)``, ``ε`` the compute dtype's machine epsilon, a worst-case bound on a dot product of length
``d`` summed in any order, so on each of them: :func:`slack`).

The state of a chunk (:class:`BoundsState`: int64 labels, a float64 upper bound and ``k``
float32 lower bounds per row, ``16 + 4 k`` bytes a row, plus the float64 ``(k, d)`` sums and
``(k,)`` weights) lives beside the chunk in the memory of the worker that ran its
task (:mod:`daskcluster.engine.rowstate`). It only saves work: a chunk without its state
(first pass, another worker, a lost worker, a resumed checkpoint) computes every distance from
its tiles' products (a GEMM or the compiled products, as above) and builds it again: Lloyd's
labels in the case above, in the others the same labels up to such ties. The pass that uses
these bounds is :func:`daskcluster.kernels.sweep.sweep_state_kernel` (member kind ``'elkan'``).

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
    #: The least ``max_j ‖c_j‖²`` (storage space) of the centers of the passes whose products made
    #: the bounds held: what a skip is certified against (see the module; 0: certifies none).
    csq_floor: float = 0.0

    def certifies(self, centers: np.ndarray) -> bool:
        """Whether a step against ``centers`` (storage space) may skip rows by these bounds:
        the centers' largest squared norm is at most :data:`NORM_GROWTH` times
        :attr:`csq_floor`."""
        return sq_norm_max(centers) <= NORM_GROWTH * self.csq_floor

    def made_with(self, centers: np.ndarray) -> None:
        """Record that a step against ``centers`` (storage space) made some of the bounds."""
        self.csq_floor = min(self.csq_floor, sq_norm_max(centers))


#: How much the centers' largest squared norm may grow over :attr:`BoundsState.csq_floor` while
#: the bounds still certify that a skipped row keeps Lloyd's label: 2, a norm growth of √2, below
#: the 1.5 the margins allow (see the module).
NORM_GROWTH = 2.0


def sq_norm_max(centers: np.ndarray) -> float:
    """The centers' largest squared norm, in float64."""
    c = np.asarray(centers, dtype=np.float64)
    return float(np.einsum("ij,ij->i", c, c).max(initial=0.0))


def dense_threshold(k: int) -> int:
    """Open centers above which a row's distances to all ``k`` centers are taken from a tile's
    products (:func:`~daskcluster.kernels.assign.iter_products`: a GEMM, or the compiled products
    of :mod:`~daskcluster.kernels.rowproducts` for few centers) rather than one by one: a
    distance alone costs about ``k / 8`` times its share of a tile's GEMM at k = 100 on MNIST
    (and never fewer than 2)."""
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
