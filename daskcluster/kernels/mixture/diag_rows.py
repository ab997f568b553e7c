"""The EM pass of the diagonal covariance types (``'diag'``, ``'spherical'``) as one compiled loop.

With a diagonal precision, a row's distance to a component is ``d`` multiply-adds, and its
responsibilities feed ``2 d`` more per component that holds it: products so thin that BLAS
gains little over a loop (measured at 784 features, 10 components, uint8 rows, one thread: the
tile GEMMs ``[x, 1, x^2] @ B`` and ``resp^T [x, 1, x^2]`` plus the tile's cast and squares cost
2.7 us a row, this loop 1.6 us), while the NumPy steps between them (cast, log-sum-exp, entropy, the tile's
squares) cost a Python call each per tile and hold the GIL. So the block is read as it is
stored (``uint8`` too) and each row is taken once, in one Numba loop (``nogil``, cached on
disk; Dask's threads run it in parallel), :data:`TILE_ROWS` rows at a time:

1. ``v = (x * scale + offset) - ref`` (the block's affine map and centring, in float64, into a
   tile buffer of 64 rows, 400 KB at 784 features, that stays in L2: no float64 copy of the
   block is written), four rows at a time;
2. per component, ``sum_j P_kj (v_j - (mu_kj - ref_j))^2`` for four rows at once (each
   ``mu_k``, ``P_k`` loaded once for four rows; the distance written as a difference, so no
   cancellation at the data's scale);
3. per row, the log-sum-exp over components (``log p(x)``), the responsibilities and
   ``sum_k r_k log r_k`` (:func:`.estep.row_responsibilities`, as for every type); each
   component whose responsibility is at least its ``min_resp`` (``1e-30`` for components
   holding at least one row's worth of mass, as for ``'full'``'s second moments; else every
   non-zero one) notes the row and its responsibility. At 784 dimensions a row's
   responsibilities are non-zero for 8 of 10 components but above ``1e-30`` for fewer than 2:
   the terms left out change ``n_k`` by less than ``1e-30`` a row. So the exponential of a
   component more than ``-log(min_resp) + 1`` nats (70 for ``1e-30``) below the row's best is
   not taken (:func:`.estep.responsibilities_above`): its ``r_k < min_resp / e`` would be left out of the
   statistics anyway, and ``log p(x)`` and ``sum r log r`` move by less than ``1e-27`` (the
   same bits on MNIST8M chunks; 3-10 % less CPU a chunk in EM iterations 3-5, where 5-6 of the
   7 exponentials a row took are skipped);
4. at the end of the tile, per component, ``sum r``, ``sum r v`` and ``sum r v^2`` of the rows
   it noted, four rows per read-modify-write of the block's accumulators
   (:class:`~.stats.Accumulator`, around ``ref``): a quarter of the stores of one update per
   row, which bound this stage (measured on MNIST8M chunks, one thread: 10-12 % less CPU a chunk).

Summation order is row by row (four rows summed pairwise, then added), so the sums of a block
are exact up to the usual ``O(rows x eps)`` relative rounding of a running sum, as with the
GEMM of the tiled path.

**The data's zeros.** A block whose affine map has no offset, of at most
:data:`~.diag_nonzeros.MAX_COMPONENTS` components, and whose first :data:`SHARE_ROWS` rows have
at most :func:`nonzero_share` of their 8-feature groups non-zero (0.95 up to 10 components) is
taken on its non-zeros by :mod:`.diag_nonzeros` instead (its E-step by :mod:`.nonzero_groups`: a
row's groups of 8 stored values skipped when all zero, bit masks from vector compares, LLVM
vector code): on MNIST8M chunks (25 % non-zero bytes, 46 % non-zero groups, one thread, the
models of EM iterations 1, 3, 5) 17-23 ms a chunk against 34-39 ms for this loop. That pass's
cost follows the share of non-zero groups, not of values (``benchmarks/gmm_crossover.py``, the
same chunks and models with non-zeros added at random or next to the strokes): with the 10
components both loops cost the same at 96.5 % non-zero groups or more in both families, which is
58 % non-zero values or more at random but 84 % or more next to the strokes; at 95 % of the
groups the pass is still 3-6 % cheaper, above that within noise of this loop. Its walks grow
with the components faster than this loop's distances (the model of EM iteration 3 cut or with
components added near its own): the same at 93-96 % of the groups with 12-16 components, 89-92 %
with 20, 81-85 % with 24, 80-82 % with 32; with 8 or fewer the pass is the cheaper at any share,
but rows with (almost) no zero keep this loop, whose sums around ``ref`` do not cancel far from
the origin. For the same reason a block with a feature whose values over those rows sit far from
0 relative to their range (:data:`NEAR_ORIGIN`) keeps this loop whatever its zeros.
Measured before and not used (``benchmarks/bench_gmm_mnist8m.py --variants``, chunks of 32,768
rows, one thread): this loop run on the columns non-zero in some row of each 128-row tile only
(18 % of the columns dropped, exact) costs 50-55 ms a chunk, the gathered cast and the tile's
copies of the parameters outweighing the saved work; and the per-row non-zeros with the
parameters laid out (d, K) in Numba's own loops 51-55 ms (their compaction alone is about a third
of this loop's time, and Numba vectorizes neither the K-vector updates nor the compaction:
hence the explicit vector code of :mod:`.diag_nonzeros`).

**Pruning the E-step by bounds, measured and not used** (``benchmarks/bench_gmm_pruning.py``,
the benchmark's ``GaussianMixture(10, "diag", reg_covar=1e-3)`` on ``scaled(X, 1/255)``, one
thread). A diagonal distance is a sum of non-negative terms, so a partial sum bounds a
component's log-density from above, and a component whose bound falls ``G`` nats below the
row's best (computed in full) can be dropped: ``G = 746`` gives a responsibility of exactly 0,
``G = 70`` one below ``min_resp``. The rows are far from every component, though, and the gaps
are small against the distances: from the second E-step on, 6.8-9.2 of a row's 10 components
lie within 746 nats of the best (1.3-2.2 within 69; median gap to the second 50-130 nats,
median half-distance of the best ~190), so even an oracle that knows the best in advance and
drops each component at the first 64-feature block whose bound is low enough (blocks ordered
by how they separate the components) leaves 0.85-0.98 of the distance work with ``G = 746``
and 0.38-0.59 with ``G = 70`` (0.71-0.89 by groups of four rows, the unit whose parameters the
loop loads once). Only the first E-step, from ``random_from_data``'s variances of ``reg_covar``,
separates the rows (one component within 746 nats; oracle 0.50). Built, a pruned loop costs
more than this one in every E-step: per row (the head's 64 features for all components four
rows at a time, then the components by decreasing bound, block by block) 44-80 ms a chunk
against 34-38 ms, per four rows 42-58 ms; one row's distance to one component reads its
parameters from L2 for that row alone (0.18-0.2 ns a feature, against 0.07 ns a row and
feature in the four-row loop), which eats the saved work.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..blocks import Affine
from .buffers import COMPUTE_DTYPE
from .diag_nonzeros import (
    BLOCK_COST,
    MAX_COMPONENTS,
    diag_em_nonzeros,
    padded_components,
)
from .estep import exp_floor, responsibilities_above
from .nonzero_groups import GROUP, GroupParams, screen_bound
from .params import GaussianParams
from .stats import Accumulator
from ..vector_ir import aligned_zeros

#: Rows whose distances are computed together (each component's parameters loaded once for them).
ROW_GROUP = 4
#: Rows of a tile: cast, E-step, then the statistics of all of them (a multiple of :data:`ROW_GROUP`).
TILE_ROWS = 64
#: Largest share of non-zero groups of :data:`~.nonzero_groups.GROUP` features (8; the last
#: ``d mod 8`` features one more group) among a block's first :data:`SHARE_ROWS` rows for which a
#: model of :data:`SHARE_COMPONENTS` components takes the pass on its non-zeros
#: (:mod:`.diag_nonzeros`), when the block's affine map has no offset: below the share (96.5 % or
#: more) at which both loops cost the same on MNIST8M rows made denser (see the module notes).
NONZERO_SHARE = 0.95
#: Components of the model up to which :data:`NONZERO_SHARE` holds (the benchmark's 10). Not more
#: with fewer, though with 8 or fewer the pass is the cheaper at any share (0.81 of the dense loop
#: at 98 % non-zero groups with 8 components, at most 0.71 with 6): rows with (almost) no zero
#: keep the dense loop, whose sums around the block's reference point do not cancel far from the
#: origin as the pass's expanded form does.
SHARE_COMPONENTS = 10
#: How much the largest share falls per component more than :data:`SHARE_COMPONENTS`: the pass's
#: walks grow with the components faster than the dense loop's distances (both cost the same at
#: 93-96 % non-zero groups with 12-16 components, 89-92 % with 20, 81-85 % with 24, 80-82 % with 32).
SHARE_PER_COMPONENT = 0.008
#: Rows whose share of non-zero groups chooses a block's loop (deterministic given the block).
SHARE_ROWS = 256
#: Least range of a feature's values over a block's first :data:`SHARE_ROWS` rows, relative to
#: their largest magnitude, for the block to take the pass on non-zeros: the pass's expanded form
#: loses about ``2 log10(|x| / spread)`` digits where a feature's values sit far from 0 relative
#: to their spread (scikit-learn's form does too), the dense loop's sums around the block's
#: reference point nothing; at 1e-2, at most about 4 of the 16 digits. A feature holding a zero
#: among those rows (an image's pixel) always passes.
NEAR_ORIGIN = 1e-2


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _log_densities4(v: np.ndarray, b0: int, mb: np.ndarray, prec: np.ndarray, log_const: np.ndarray,
                    w: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``w[b, k] = log_const_k - sum_j prec_kj (v[b, j] - mb_kj)^2 / 2`` for the four rows
    ``b0 .. b0 + 3`` of ``v``."""
    d = mb.shape[1]
    b1 = b0 + 1
    b2 = b0 + 2
    b3 = b0 + 3
    for k in range(mb.shape[0]):
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for j in range(d):
            m = mb[k, j]
            p = prec[k, j]
            t0 = v[b0, j] - m
            t1 = v[b1, j] - m
            t2 = v[b2, j] - m
            t3 = v[b3, j] - m
            a0 += p * (t0 * t0)
            a1 += p * (t1 * t1)
            a2 += p * (t2 * t2)
            a3 += p * (t3 * t3)
        w[b0, k] = log_const[k] - 0.5 * a0
        w[b1, k] = log_const[k] - 0.5 * a1
        w[b2, k] = log_const[k] - 0.5 * a2
        w[b3, k] = log_const[k] - 0.5 * a3


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _add_held(v: np.ndarray, held: np.ndarray, resp: np.ndarray, counts: np.ndarray, nk: np.ndarray,
              s1: np.ndarray, s2: np.ndarray) -> None:  # pragma: no cover (compiled)
    """Add ``r``, ``r v`` and ``r v^2`` of the rows each component holds (``held[k, :counts[k]]``,
    rows of the tile ``v``, with responsibilities ``resp[k, :counts[k]]``) to ``nk``, ``s1``,
    ``s2``, four rows per read-modify-write; ``counts`` is reset to 0."""
    d = v.shape[1]
    for k in range(counts.shape[0]):
        m = counts[k]
        q = 0
        while q + 4 <= m:
            i0 = held[k, q]
            i1 = held[k, q + 1]
            i2 = held[k, q + 2]
            i3 = held[k, q + 3]
            r0 = resp[k, q]
            r1 = resp[k, q + 1]
            r2 = resp[k, q + 2]
            r3 = resp[k, q + 3]
            nk[k] += (r0 + r1) + (r2 + r3)
            for j in range(d):
                t0 = v[i0, j]
                t1 = v[i1, j]
                t2 = v[i2, j]
                t3 = v[i3, j]
                u0 = r0 * t0
                u1 = r1 * t1
                u2 = r2 * t2
                u3 = r3 * t3
                s1[k, j] += (u0 + u1) + (u2 + u3)
                s2[k, j] += (u0 * t0 + u1 * t1) + (u2 * t2 + u3 * t3)
            q += 4
        while q < m:
            i0 = held[k, q]
            r0 = resp[k, q]
            nk[k] += r0
            for j in range(d):
                t0 = v[i0, j]
                u0 = r0 * t0
                s1[k, j] += u0
                s2[k, j] += u0 * t0
            q += 1
        counts[k] = 0


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _diag_em_rows(x: np.ndarray, scale: float, offset: float, ref: np.ndarray, mb: np.ndarray, prec: np.ndarray,
                  log_const: np.ndarray, min_resp: np.ndarray, floor: np.ndarray, nk: np.ndarray, s1: np.ndarray,
                  s2: np.ndarray) -> tuple[float, float, int, float]:  # pragma: no cover (compiled)
    """E-step and statistics of the stored rows ``x`` (see the module notes; ``floor`` from
    :func:`.estep.exp_floor`). Returns
    ``(sum log p(x), sum r log r, first row whose log p(x) is not finite or -1, its value)``;
    the statistics are incomplete after a non-finite row. (No array views inside the loops:
    each costs about as much as a row's work at 50 features.)"""
    n, d = x.shape
    k_n = mb.shape[0]
    v = np.empty((TILE_ROWS, d))
    w = np.empty((TILE_ROWS, k_n))
    held = np.empty((k_n, TILE_ROWS), dtype=np.int64)
    resp = np.empty((k_n, TILE_ROWS))
    counts = np.zeros(k_n, dtype=np.int64)
    log_lik = 0.0
    entropy = 0.0
    for t0 in range(0, n, TILE_ROWS):
        t_rows = min(TILE_ROWS, n - t0)
        for g in range(0, t_rows, ROW_GROUP):
            rows = min(ROW_GROUP, t_rows - g)
            for b in range(ROW_GROUP):
                i = t0 + g + min(b, rows - 1)  # the last group repeats its last row (results unused)
                for j in range(d):
                    v[g + b, j] = (x[i, j] * scale + offset) - ref[j]
            _log_densities4(v, g, mb, prec, log_const, w)
        for b in range(t_rows):
            log_norm, ent = responsibilities_above(w[b], floor)
            if not math.isfinite(log_norm):
                return log_lik, entropy, t0 + b, log_norm
            log_lik += log_norm
            entropy += ent
            for k in range(k_n):
                r = w[b, k]
                if r != 0.0 and r >= min_resp[k]:
                    held[k, counts[k]] = b
                    resp[k, counts[k]] = r
                    counts[k] += 1
        _add_held(v, held, resp, counts, nk, s1, s2)
    return log_lik, entropy, -1, 0.0


def nonzero_share(n_components: int) -> float:
    """The largest share of non-zero 8-feature groups for which a model of ``n_components``
    components takes the pass on non-zeros: :data:`NONZERO_SHARE` up to :data:`SHARE_COMPONENTS`,
    less by :data:`SHARE_PER_COMPONENT` per component more (0.774 at 32)."""
    return NONZERO_SHARE - SHARE_PER_COMPONENT * max(0, n_components - SHARE_COMPONENTS)


def flush_tiny(a: np.ndarray) -> np.ndarray:
    """``a`` (float64, C-contiguous) with the values whose square underflows set to 0.

    Means of features that are 0 in almost every row (an image's border) come out of the
    M-step as tiny or subnormal numbers (``1e-320``); every product whose operand or result is
    subnormal costs the CPU a microcode assist (measured: 2.3 instead of 0.8 us a row for the
    distances at 784 features). Their squares underflow anyway; a distance changes by less than
    ``2 |v| 1.5e-154`` times the precision.
    """
    a = np.ascontiguousarray(a, dtype=COMPUTE_DTYPE)
    a[np.abs(a) < math.sqrt(np.finfo(COMPUTE_DTYPE).tiny)] = 0.0
    return a


class DiagRows:
    """One diagonal mixture's compiled pass over the stored rows of a block read around ``ref``."""

    def __init__(self, gp: GaussianParams, ref: np.ndarray, affine: Affine) -> None:
        self.ref = np.ascontiguousarray(ref, dtype=COMPUTE_DTYPE)
        self.scale = float(affine.scale)
        self.offset = float(affine.offset)
        self.mb = flush_tiny(gp.means - self.ref)
        self.prec = np.ascontiguousarray(gp.covariance.feature_precisions(gp))  # type: ignore[attr-defined]
        self.log_const = np.ascontiguousarray(gp.log_const, dtype=COMPUTE_DTYPE)
        self.min_resp = np.ascontiguousarray(gp.min_resp, dtype=COMPUTE_DTYPE)
        self.floor = exp_floor(self.min_resp)
        self.means = np.asarray(gp.means, dtype=COMPUTE_DTYPE)
        self._nonzero_params: GroupParams | None = None

    def uses_nonzeros(self, block: np.ndarray) -> bool:
        """Whether :meth:`add` takes ``block`` (n, d) on its non-zeros (:mod:`.diag_nonzeros`): an
        affine map without offset, ``K`` at most :data:`~.diag_nonzeros.MAX_COMPONENTS`
        components, and at most :func:`nonzero_share` ``(K)`` of the groups of
        :data:`~.nonzero_groups.GROUP` features of its first :data:`SHARE_ROWS` rows non-zero
        (the last ``d mod 8`` features one more group; a NaN is non-zero), each feature's values
        over those rows spread over at least :data:`NEAR_ORIGIN` of their magnitude. Reads those
        rows twice (0.01-0.03 ms for the groups at 784 features, ~0.05 ms for the ranges)."""
        k_n = self.means.shape[0]
        if self.offset != 0.0 or k_n > MAX_COMPONENTS:
            return False
        nonzero = np.asarray(block[:SHARE_ROWS]) != 0
        rows, d = nonzero.shape
        if rows == 0 or d == 0:
            return False
        full = d - d % GROUP
        # A group's booleans read as one unsigned word: non-zero iff the group holds a non-zero value.
        groups = int(np.count_nonzero(np.ascontiguousarray(nonzero[:, :full]).view(f"u{GROUP}")))
        n_groups = rows * (full // GROUP)
        if full < d:
            groups += int(np.count_nonzero(nonzero[:, full:].any(axis=1)))
            n_groups += rows
        if groups > nonzero_share(k_n) * n_groups:
            return False
        head = np.asarray(block[:SHARE_ROWS])
        low = head.min(axis=0).astype(COMPUTE_DTYPE)
        high = head.max(axis=0).astype(COMPUTE_DTYPE)
        with np.errstate(invalid="ignore"):  # a NaN or an infinity: the pass raises on the row
            far = high - low < NEAR_ORIGIN * np.maximum(np.abs(low), np.abs(high))
        return not bool(far.any())

    def add(self, acc: Accumulator, block: np.ndarray) -> tuple[int, float]:
        """Add the rows of ``block`` (as stored: any real dtype, the affine map applied here) to
        ``acc``; returns ``(-1, 0.0)``, or the first row whose ``log p(x)`` is not finite and that
        value (the rows' statistics are then incomplete).

        A non-finite value among the rows that set ``ref`` (the block's first 256) makes every
        row's ``log p(x)`` non-finite: the row returned is then the first row holding one."""
        if not block.flags.c_contiguous:
            block = np.ascontiguousarray(block)
        if self.uses_nonzeros(block):
            log_lik, entropy, bad, value = self._add_nonzeros(acc, block)
        else:
            log_lik, entropy, bad, value = _diag_em_rows(block, self.scale, self.offset, self.ref, self.mb, self.prec,
                                                         self.log_const, self.min_resp, self.floor, acc.nk, acc.s1,
                                                         acc.s2)
        acc.n_rows += block.shape[0]
        acc.log_lik += log_lik
        acc.entropy += entropy
        if bad >= 0 and not np.isfinite(self.ref).all():
            finite = np.isfinite(block).all(axis=1)
            if not finite.all():
                bad = int(np.argmin(finite))
        return bad, value

    def _add_nonzeros(self, acc: Accumulator, block: np.ndarray) -> tuple[float, float, int, float]:
        """:func:`.diag_nonzeros.diag_em_nonzeros` on ``block``, its sums around 0 moved to
        ``acc``'s around ``ref``: ``S1 - n ref`` and ``S2 - 2 ref S1 + n ref^2`` per component
        (see :mod:`.diag_nonzeros` for their rounding)."""
        if self._nonzero_params is None:
            self._nonzero_params = GroupParams(self.means, self.prec)
        p = self._nonzero_params
        k_n, d = self.means.shape
        nk = np.zeros(k_n)
        s1 = aligned_zeros((k_n, d))
        s2 = aligned_zeros((k_n, d))
        t1 = aligned_zeros((d, padded_components(k_n)))
        t2 = aligned_zeros((d, padded_components(k_n)))
        bound = screen_bound(block.dtype, self.scale, d)
        coef, slack = bound if bound is not None else (-1.0, 0.0)
        out = diag_em_nonzeros(block, self.scale, p.p, p.a, p.c, self.log_const, self.min_resp, self.floor, nk,
                               s1, s2, t1, t2, BLOCK_COST, p.p32, p.a32, coef, slack)
        s1 += t1[:, :k_n].T
        s2 += t2[:, :k_n].T
        acc.nk += nk
        acc.s1 += s1 - nk[:, None] * self.ref
        acc.s2 += s2 - 2.0 * self.ref * s1 + nk[:, None] * (self.ref * self.ref)
        return out
