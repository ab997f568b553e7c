"""The EM pass of the diagonal covariance types (``'diag'``, ``'spherical'``) as one compiled loop.

With a diagonal precision, a row's distance to a component is ``d`` multiply-adds, and its
responsibilities feed ``2 d`` more per component: products so thin that BLAS gains nothing
over a loop, while the NumPy steps between them (log-sum-exp, entropy, the tile's squares)
cost a Python call each per tile and hold the GIL. So each row is taken once, in one Numba
loop (``nogil``, cached on disk; Dask's threads run it in parallel), while it is in cache:

1. ``v = x - ref`` and, per component, ``sum_j P_kj (v_j - (mu_kj - ref_j))^2`` (the distance
   written as a difference, so no cancellation at the data's scale);
2. the log-sum-exp over components (``log p(x)``), the responsibilities and ``sum_k r_k log r_k``
   (:func:`.estep.row_responsibilities`, as for every type);
3. ``sum r``, ``sum r v`` and ``sum r v^2`` of each component holding a non-zero
   responsibility, into the block's accumulators (:class:`~.stats.Accumulator`, around ``ref``).

Summation order is row by row, so the sums of a block are exact up to the usual
``O(rows x eps)`` relative rounding of a running sum, as with the GEMM of the tiled path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numba
import numpy as np

from ..blocks import Affine, iter_compute_slices
from .buffers import COMPUTE_DTYPE
from .estep import row_responsibilities
from .params import GaussianParams
from .stats import Accumulator

#: Rows cast at once when the block is not float64 or carries an affine map (a few hundred KiB).
CAST_ROWS = 2048


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _diag_em_rows(x: np.ndarray, ref: np.ndarray, mb: np.ndarray, prec: np.ndarray, log_const: np.ndarray,
                  nk: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[float, float, int, float]:  # pragma: no cover (compiled)
    """E-step and statistics of the rows ``x`` (see the module notes). Returns
    ``(sum log p(x), sum r log r, first row whose log p(x) is not finite or -1, its value)``;
    rows after a non-finite one are not read."""
    n, d = x.shape
    k_n = mb.shape[0]
    v = np.empty(d)
    v2 = np.empty(d)
    w = np.empty(k_n)
    log_lik = 0.0
    entropy = 0.0
    for i in range(n):
        for j in range(d):
            t = x[i, j] - ref[j]
            v[j] = t
            v2[j] = t * t
        for k in range(k_n):
            acc = 0.0
            for j in range(d):
                t = v[j] - mb[k, j]
                acc += prec[k, j] * (t * t)
            w[k] = log_const[k] - 0.5 * acc
        log_norm, ent, _ = row_responsibilities(w)
        if not math.isfinite(log_norm):
            return log_lik, entropy, i, log_norm
        log_lik += log_norm
        entropy += ent
        for k in range(k_n):
            r = w[k]
            if r != 0.0:
                nk[k] += r
                for j in range(d):
                    s1[k, j] += r * v[j]
                    s2[k, j] += r * v2[j]
    return log_lik, entropy, -1, 0.0


def float_slices(block: np.ndarray, affine: Affine) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, rows)`` of the block in float64 after ``affine``: the block itself when it is
    float64 already (no copy), else slices of :data:`CAST_ROWS` rows cast into one buffer."""
    if block.dtype == COMPUTE_DTYPE and affine.is_identity:
        yield 0, block
        return
    for start, _, x in iter_compute_slices(block, COMPUTE_DTYPE, affine, CAST_ROWS):
        yield start, x


class DiagRows:
    """One diagonal mixture's compiled pass over the float64 rows of a block read around ``ref``."""

    def __init__(self, gp: GaussianParams, ref: np.ndarray) -> None:
        self.ref = np.ascontiguousarray(ref, dtype=COMPUTE_DTYPE)
        self.mb = np.ascontiguousarray(gp.means - self.ref)
        self.prec = np.ascontiguousarray(gp.covariance.feature_precisions(gp))  # type: ignore[attr-defined]
        self.log_const = np.ascontiguousarray(gp.log_const, dtype=COMPUTE_DTYPE)

    def add(self, acc: Accumulator, x: np.ndarray) -> tuple[int, float]:
        """Add the rows ``x`` (float64) to ``acc``; returns ``(-1, 0.0)``, or the first row whose
        ``log p(x)`` is not finite and that value (the rows' statistics are then incomplete)."""
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        log_lik, entropy, bad, value = _diag_em_rows(x, self.ref, self.mb, self.prec, self.log_const, acc.nk,
                                                     acc.s1, acc.s2)
        acc.n_rows += x.shape[0]
        acc.log_lik += log_lik
        acc.entropy += entropy
        return bad, value
