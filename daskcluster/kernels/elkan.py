"""Elkan's compiled loops: the bounds of each row set from a tile's product, kept through a
Lloyd step, and refreshed (see :mod:`daskcluster.kernels.bounds` for the method, the state and
which labels are Lloyd's, bit for bit, and why). Run on the workers by
:func:`daskcluster.kernels.sweep.sweep_state_kernel`.

**A row's distances as intervals.** A row the bounds do not settle needs its distance to its
center and to each center left open. For ``uint8`` and ``float32`` rows these are first taken in
float32 against the centers rounded to float32 (:class:`IntervalCenters`: ``k x d x 4`` bytes,
31 KB at MNIST's 784 features and 10 centers, held in L1, sixteen lanes a vector), each as an
interval that provably holds the float64 centers' distance (:func:`row_interval`): the bounds
take its ends, and only a choice between two centers whose intervals overlap is made again from
float64 distances, as before. On MNIST8M rows: 55 ns a distance against 125 ns for the float64
differences (one thread). The interval: with ``t_f = x_f - c32_f`` rounded once (``x`` is exact
in float32) and the squares summed in any order, the float32 sum ``s`` is within
``[(1-u)^2 (1-g), (1+u)^2 (1+g)]`` of ``S = sum t_f^2`` (``u = 2^-24``, ``g = gamma_{d+1}``, all
terms non-negative), plus ``d 2^-126`` for squares that underflow; ``||x - c||`` is then within
``||c - c32||`` (exact float64 differences, summed) of ``sqrt(S)`` by the triangle inequality.
The ends are widened by ``1e-12`` relative for the float64 operations that make them. A sum
that overflows float32 falls back to the float64 distance.

**Rows in windows.** :func:`elkan_rows` moves the bounds of :data:`WINDOW` rows (one loop over
their lower bounds, the open centers then counted without branches), then takes the distances
of those the bounds leave open, each open row's data prefetched :data:`AHEAD` open rows before
its turn: the rows it reads are scattered over the block, and read one by one each started with
a miss to memory.

**Open rows by one walk.** For a ``uint8`` block whose rows take the walks over their non-zero
groups in a Lloyd step (:func:`~daskcluster.kernels.rowproducts.walks_pay`; float32 centers, at
most :data:`WALK_CENTERS`, no sample weights), an open row takes its products with every
center by one walk (:class:`WalkCenters`: ~130 ns a MNIST8M row at k = 10, against ~80 ns one
interval among scattered rows): the walk and the table of Lloyd's step, so the products are
Lloyd's, bit for bit, and the row takes the label Lloyd's step gives it, by Lloyd's rule on them
(:func:`lloyd_walk`, ties included), and bounds from them for every center, not only the open
ones: the next steps leave fewer rows open (:func:`_walk_row`). No row is deferred, none is
labelled by distances or intervals. Rows that change cluster are moved in int32 sums (exact), so
the sums are Lloyd's bits too (:mod:`~daskcluster.kernels.bounds`, "Lloyd's labels"). Weighted
rows, and up to :data:`~daskcluster.kernels.rowproducts.MAX_CENTERS` centers, keep the single
distances, and the rows they defer take one walk each, in their order (:func:`refresh_walks`),
not a gathered tile. Over twenty steps, one walk for every open row costs as much as the single
distances at k = 24 and more beyond (:data:`WALK_CENTERS`).
MNIST8M chunk of 32,768 rows, k = 10, one thread, AMD EPYC (Zen 4): twenty bounded steps from
the centers of iteration 3, the bounds carried, 142-148 -> 96 ms (the first seven 69-72 -> 50
ms, the last ten 53 -> 31 ms); one step from bounds made by a full pass at iteration a, the
deferred rows' tiles included: 3 -> 4 9.1 -> 7.9 ms, 10 -> 11 2.9 -> 2.8 ms, 20 -> 21 0.96 ->
1.0 ms (a walk costs more than the one or two intervals of a row a late step leaves open, and
pays in the steps after it); the same labels and sums (``benchmarks/RESULTS-kmeans.md``).
Not kept: taking the first distance as an interval and walking only rows left with two or more
(three, four) open centers (111-124, 127-134, 135-140 ms for the twenty steps): a walk's bounds
on every center pay in the following steps.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import overload

from .assign import CenterTable
from .rowproducts import group_table, lloyd_row, prefetch_row, serves, walks_pay
from .vector_ir import GROUP
from .vectorwidth import prefer_wide_vectors

#: Lower bounds are stored in float32, scaled by this before rounding so they stay below.
_DOWN = 1.0 - 2.5e-7


@numba.njit(nogil=True, cache=True)
def _bounds_from_product(g: np.ndarray, r: int, c_sq: np.ndarray, x_sq: float, slack: float, lower: np.ndarray,
                         i: int) -> tuple[int, float]:  # pragma: no cover - compiled
    """Row ``r`` of ``g = x·(-2Cᵀ)`` (squared norm ``x_sq``): its lower bounds, written to
    ``lower[i]``, its nearest center by Lloyd's rule (the first of equals of ``float64(g[r, j]) +
    c_sq[j]``, as :func:`~daskcluster.kernels.assign.nearest_in_product` takes it: adding ``x_sq``
    first could round two of them to a tie) and the squared distance to it, ``x_sq`` added."""
    k = c_sq.shape[0]
    best = 0
    bv = np.float64(g[r, 0]) + c_sq[0]
    for j in range(k):
        e = np.float64(g[r, j]) + c_sq[j]
        if e < bv:
            bv = e
            best = j
        lo = e + x_sq - slack
        lower[i, j] = np.float32(np.sqrt(lo) * _DOWN) if lo > 0.0 else np.float32(0.0)
    return best, bv + x_sq


@numba.njit(nogil=True, cache=True)
def init_bounds(g: np.ndarray, c_sq: np.ndarray, x_sq: np.ndarray, slack: float, labels: np.ndarray,
                d1: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> None:  # pragma: no cover - compiled
    """From ``g = x·(-2Cᵀ)``: each row's nearest center (Lloyd's rule: :func:`_bounds_from_product`),
    its squared distance ``d1``, and bounds that hold whatever the product's rounding (within
    ``slack`` on a squared distance): ``upper ≥ ‖x - c_label‖``, ``lower[:, j] ≤ ‖x - c_j‖``."""
    for i in range(g.shape[0]):
        best, b1 = _bounds_from_product(g, i, c_sq, x_sq[i], slack, lower, i)
        labels[i] = best
        d1[i] = b1 if np.isfinite(b1) else np.nan
        upper[i] = np.sqrt(max(b1, 0.0) + slack)


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _distance(x: np.ndarray, i: int, c: np.ndarray, j: int) -> float:  # pragma: no cover - compiled
    """``‖x_i - c_j‖`` from the differences, in float64."""
    s = 0.0
    for f in range(x.shape[1]):
        t = np.float64(x[i, f]) - c[j, f]
        s += t * t
    return np.sqrt(s)


@numba.njit(nogil=True, cache=True)
def _move(x: np.ndarray, r: int, old: int, new: int, wi: float, sums: np.ndarray,
          wic: np.ndarray) -> None:  # pragma: no cover - compiled
    """Move row ``r`` of ``x`` (weight ``wi``) from cluster ``old`` to ``new`` in the float64
    sums and weights."""
    wic[old] -= wi
    wic[new] += wi
    for f in range(x.shape[1]):
        v = wi * np.float64(x[r, f])
        sums[old, f] -= v
        sums[new, f] += v


#: float32's unit roundoff.
_U32 = 2.0**-24
#: Smallest normal float32: a square below it may have lost all of its relative precision.
_TINY32 = 2.0**-126
#: Relative widening of an interval's ends for the float64 operations that make them.
_WIDEN = 1e-12


class IntervalCenters:
    """The centers as :func:`row_interval` takes them: rounded to float32, with how far each
    moved in the rounding and the factors that turn a float32 sum of squares into an interval.

    Parameters
    ----------
    centers : ndarray of shape (k, n_features), float64
        The centers in the rows' storage space.
    """

    def __init__(self, centers: np.ndarray) -> None:
        c64 = np.ascontiguousarray(centers, dtype=np.float64)
        self.c32 = c64.astype(np.float32)
        moved = c64 - self.c32.astype(np.float64)  # exact: the bits rounding dropped
        self.err = np.sqrt(np.einsum("ij,ij->i", moved, moved)) * (1 + _WIDEN)
        d = c64.shape[1]
        n = (d + 1) * _U32
        g = n / (1 - n)
        #: ``S >= s * lo_f - tiny`` and ``S <= s * hi_f + tiny`` (see the module).
        self.lo_f = 1.0 / ((1 + _U32) ** 2 * (1 + g)) * (1 - _WIDEN)
        self.hi_f = 1.0 / ((1 - _U32) ** 2 * (1 - g)) * (1 + _WIDEN)
        self.tiny = d * _TINY32

    @classmethod
    def off(cls) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        """Arguments that make :func:`row_interval` take every distance in float64."""
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0), 1.0, 1.0, 0.0

    def args(self) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        """``(c32, err, lo_f, hi_f, tiny)`` for the compiled loops."""
        return self.c32, self.err, self.lo_f, self.hi_f, self.tiny


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _sq_distance32(x: np.ndarray, i: int, c32: np.ndarray, j: int) -> float:  # pragma: no cover - compiled
    """``Σ (x_if - c32_jf)²`` in float32 (any order of the sum), as a float64."""
    prefer_wide_vectors()
    s = np.float32(0.0)
    for f in range(x.shape[1]):
        t = np.float32(x[i, f]) - c32[j, f]
        s += t * t
    return np.float64(s)


def row_interval(x: object, i: int, c: np.ndarray, j: int, c32: np.ndarray, err: np.ndarray, lo_f: float,
                 hi_f: float, tiny: float) -> tuple[float, float]:  # pragma: no cover - compiled only
    """``(lo, hi)`` with ``lo <= ‖x_i - c_j‖ <= hi`` (see the module): from float32 for uint8
    and float32 rows when ``c32`` holds the centers, else ``lo = hi =`` :func:`row_distance`.
    Compiled code only (see the overload)."""
    raise NotImplementedError


@overload(row_interval)
def _row_interval(x, i, c, j, c32, err, lo_f, hi_f, tiny):  # type: ignore[no-untyped-def]  # pragma: no cover
    if isinstance(x, types.Array) and x.dtype in (types.uint8, types.float32):
        def fast(x, i, c, j, c32, err, lo_f, hi_f, tiny):  # type: ignore[no-untyped-def]
            if c32.shape[0] == 0:
                v = row_distance(x, i, c, j)
                return v, v
            s = _sq_distance32(x, i, c32, j)
            if not np.isfinite(s):  # float32 overflow: the float64 differences
                v = row_distance(x, i, c, j)
                return v, v
            lo = np.sqrt(max(s * lo_f - tiny, 0.0)) - err[j]
            hi = np.sqrt(s * hi_f + tiny) + err[j]
            return max(lo, 0.0) * (1 - 1e-12), hi * (1 + 1e-12)

        return fast

    def exact(x, i, c, j, c32, err, lo_f, hi_f, tiny):  # type: ignore[no-untyped-def]
        v = row_distance(x, i, c, j)
        return v, v

    return exact


def row_distance(x: object, i: int, c: np.ndarray, j: int) -> float:  # pragma: no cover - compiled only
    """``‖x_i - c_j‖`` in float64 for rows ``x`` that are a dense array (from the differences)
    or a CSR tuple ``(data, indices, indptr, c_sq)`` (``c_sq`` the centers' float64 squared
    norms: ``‖c_j‖² + Σ_stored v (v - 2 c_jf)``). Compiled code only (see the overload)."""
    raise NotImplementedError


@overload(row_distance)
def _row_distance(x, i, c, j):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    if isinstance(x, types.Array):
        return lambda x, i, c, j: _distance(x, i, c, j)

    def sparse_row(x, i, c, j):  # type: ignore[no-untyped-def]
        data, indices, indptr, c_sq = x
        s = c_sq[j]
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[p])
            s += v * (v - 2.0 * c[j, indices[p]])
        return np.sqrt(max(s, 0.0))

    return sparse_row


def move_row(x: object, r: int, old: int, new: int, wi: float, sums: np.ndarray,
             wic: np.ndarray) -> None:  # pragma: no cover - compiled only
    """:func:`_move` for rows that are a dense array or a CSR tuple (as :func:`row_distance`)."""
    raise NotImplementedError


@overload(move_row)
def _move_row(x, r, old, new, wi, sums, wic):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    if isinstance(x, types.Array):
        return lambda x, r, old, new, wi, sums, wic: _move(x, r, old, new, wi, sums, wic)

    def sparse_row(x, r, old, new, wi, sums, wic):  # type: ignore[no-untyped-def]
        data, indices, indptr, _ = x
        wic[old] -= wi
        wic[new] += wi
        for p in range(indptr[r], indptr[r + 1]):
            v = wi * np.float64(data[p])
            sums[old, indices[p]] -= v
            sums[new, indices[p]] += v

    return sparse_row


def prefetch(x: object, i: int) -> None:  # pragma: no cover - compiled only
    """:func:`~daskcluster.kernels.rowproducts.prefetch_row` of row ``i`` of a dense array; nothing
    for a CSR tuple (as :func:`row_distance`). Compiled code only (see the overload)."""
    raise NotImplementedError


@overload(prefetch)
def _prefetch(x, i):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    if isinstance(x, types.Array):
        return lambda x, i: prefetch_row(x, i)
    return lambda x, i: None


#: Rows whose bounds :func:`elkan_rows` moves before it takes the distances of those among them
#: that the bounds leave open, their rows prefetched in between (the rows it reads are scattered
#: over the block, so the CPU's prefetchers do not bring them in).
WINDOW = 64

#: Open rows of a window prefetched ahead of the one whose distances are taken.
AHEAD = 4

#: Centers up to which the open rows of a uint8 block whose rows take the walks over their
#: non-zero groups (:func:`~daskcluster.kernels.rowproducts.walks_pay`) take all their products
#: by one walk (:class:`WalkCenters`) rather than their distances one by one.
WALK_CENTERS = 16


class WalkCenters:
    """The centers as the walks over a ``uint8`` row's non-zero groups take them
    (:func:`~daskcluster.kernels.rowproducts.lloyd_row`), for :func:`elkan_rows`: ``-2 C`` in
    float32 and laid out group by group, the float64 squared norms (then :data:`GROUP`
    infinities, as ``lloyd_row`` takes them), and the factor of the products' rounding bound.

    ``-2 C`` and the norms are those of :meth:`~daskcluster.kernels.assign.CenterTable.of`, the
    table of a Lloyd step, so a row's walk gives the products of Lloyd's own walk
    (:func:`~daskcluster.kernels.rowproducts.lloyd_step`), bit for bit, and its label
    (:func:`lloyd_walk`). A walk's product of a row with a center is a float32 dot product of length ``d``
    summed in some order (each of the 8 lanes over the row's non-zero groups, by multiply-adds,
    then the lanes by a tree, then the features past the last full group; a zero group adds
    exactly zero): any such order is within ``γ_d Σ |x_f 2c_f| ≤ γ_d (‖x‖² + ‖c‖²)`` of the exact
    product, the bound :func:`daskcluster.kernels.bounds.slack` takes four times over
    (``2 d ε (‖x‖² + ‖c‖²)``, ``ε = 2u``). The products are also those of the tiles of
    :func:`~daskcluster.kernels.assign.iter_products` when they take the walks (the same walk,
    row by row), so a row's label from them is the one :func:`refresh_rows` gives it; the slack
    is taken with the row's own squared norm (exact for uint8 rows) where the tiles take their
    largest, the same bound for this row.

    Parameters
    ----------
    centers : ndarray of shape (k, n_features), float32
        The centers in the rows' storage space, in the compute dtype.
    """

    def __init__(self, centers: np.ndarray) -> None:
        lloyd = CenterTable.of(np.asarray(centers, dtype=np.float32))
        self.minus2 = np.ascontiguousarray(lloyd.minus2_t.T)  # as assign_and_sum passes it
        self.table = group_table(self.minus2)
        k = lloyd.n_centers
        self.c_sq = np.full(k + GROUP, np.inf)
        self.c_sq[:k] = lloyd.sq_norms
        #: ``slack(d, float32, x_sq, csq_max) = slack_f * (x_sq + csq_max)``.
        self.slack_f = 2 * self.minus2.shape[1] * float(np.finfo(np.float32).eps)
        self.csq_max = float(lloyd.sq_norms.max(initial=0.0))

    @staticmethod
    def serve(rows: object, n_centers: int, dtype: np.dtype, deferred: bool = False) -> bool:
        """Whether the open rows of ``rows`` (a block) take the walks: a C-contiguous ``uint8``
        block whose rows take them in a Lloyd step (:func:`~daskcluster.kernels.rowproducts.walks_pay`),
        float32 centers, at most :data:`WALK_CENTERS` of them; with ``deferred``, whether the rows
        a step deferred do (:func:`refresh_walks`: as many centers as the walks serve)."""
        return (serves(rows, n_centers, dtype) and rows.dtype == np.uint8  # type: ignore[attr-defined]
                and (deferred or n_centers <= WALK_CENTERS) and walks_pay(rows))  # type: ignore[arg-type]

    @classmethod
    def off(cls) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        """Arguments that make :func:`elkan_rows` take the open rows' distances one by one."""
        return np.zeros((0, 2, GROUP), dtype=np.float32), np.zeros((0, 0), dtype=np.float32), np.zeros(0), 0.0, 0.0

    def args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        """``(table, minus2, c_sq, slack_f, csq_max)`` for the compiled loops (``c_sq`` padded)."""
        return self.table, self.minus2, self.c_sq, self.slack_f, self.csq_max


def lloyd_walk(x: object, i: int, table: np.ndarray, mt: np.ndarray, out: np.ndarray,
               c_pad: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled only
    """:func:`~daskcluster.kernels.rowproducts.lloyd_row` for ``uint8`` rows: row ``i``'s products
    by Lloyd's walk, left in ``out``, its label by Lloyd's rule on them (``c_pad``: the centers'
    squared norms, then :data:`GROUP` infinities) and its exact squared norm; ``(0, 0)`` for
    other rows, which never take the walks. Compiled code only (see the overload)."""
    raise NotImplementedError


@overload(lloyd_walk)
def _lloyd_walk(x, i, table, mt, out, c_pad):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    if isinstance(x, types.Array) and x.dtype == types.uint8 and x.ndim == 2 and x.layout == "C":
        def bytes_row(x, i, table, mt, out, c_pad):  # type: ignore[no-untyped-def]
            b, _, q = lloyd_row(x, i, table, mt, out, c_pad, c_pad)
            return b, q

        return bytes_row
    return lambda x, i, table, mt, out, c_pad: (0, 0)


def move_counts(x: object, r: int, old: int, new: int, acc: np.ndarray) -> None:  # pragma: no cover
    """``acc[old] -= x[r]``, ``acc[new] += x[r]`` in int32 for ``uint8`` rows (exact); nothing for
    other rows, which never take it. Compiled code only (see the overload)."""
    raise NotImplementedError


@overload(move_counts)
def _move_counts(x, r, old, new, acc):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    if isinstance(x, types.Array) and x.dtype == types.uint8:
        def bytes_row(x, r, old, new, acc):  # type: ignore[no-untyped-def]
            prefer_wide_vectors()
            for f in range(x.shape[1]):
                v = np.int32(x[r, f])
                acc[old, f] -= v
                acc[new, f] += v

        return bytes_row
    return lambda x, r, old, new, acc: None


@numba.njit(nogil=True, cache=True, inline="always")
def _shift(x: np.ndarray, r: int, old: int, new: int, w: np.ndarray, weighted: bool, sums: np.ndarray,
           wic: np.ndarray, acc: np.ndarray) -> None:  # pragma: no cover - compiled
    """Row ``r`` from cluster ``old`` to ``new``: into the int32 ``acc`` when it is kept (unweighted
    ``uint8`` rows, see :func:`elkan_rows`), else :func:`move_row`."""
    if acc.shape[0]:
        wic[old] -= 1.0
        wic[new] += 1.0
        move_counts(x, r, old, new, acc)
    else:
        move_row(x, r, old, new, w[r] if weighted else 1.0, sums, wic)


@numba.njit(nogil=True, cache=True)
def _move_window(flat: np.ndarray, start: int, stop: int, shift: np.ndarray) -> None:  # pragma: no cover
    """``flat[start:stop]`` (lower bounds, float32) less ``shift[:stop - start]`` (the drifts,
    repeated row by row), stored below (``_DOWN``), or 0 when not positive."""
    prefer_wide_vectors()
    for t in range(stop - start):
        lo = np.float64(flat[start + t]) - shift[t]
        flat[start + t] = np.float32(lo * _DOWN) if lo > 0.0 else np.float32(0.0)


@numba.njit(nogil=True, cache=True, inline="always")
def _count_open(u: float, lower: np.ndarray, i: int, half_cc_a: np.ndarray) -> int:  # pragma: no cover
    """How many centers the bounds of row ``i`` (upper ``u``) do not rule out, without branches;
    ``half_cc_a`` is the row of the row's center in half the distances between the centers with
    an infinite diagonal (so the center itself is never open)."""
    m = 0
    for j in range(lower.shape[1]):
        m += (u > lower[i, j]) & (u > half_cc_a[j])
    return m


@numba.njit(nogil=True, cache=True)
def elkan_rows(x: np.ndarray, c: np.ndarray, half_cc: np.ndarray, half_sep: np.ndarray, drift: np.ndarray,
               labels: np.ndarray, upper: np.ndarray, lower: np.ndarray, w: np.ndarray, weighted: bool,
               sums: np.ndarray, wic: np.ndarray, dense: int, deferred: np.ndarray, c32: np.ndarray, err: np.ndarray,
               lo_f: float, hi_f: float, tiny: float, table: np.ndarray, mt: np.ndarray, c_sq: np.ndarray,
               slack_f: float, csq_max: float) -> tuple[int, int]:  # pragma: no cover
    """One Elkan step over the rows of ``x`` (storage dtype; a dense array or a CSR tuple, see
    :func:`row_distance`) against centers ``c`` (float64).

    Moves every bound by the centers' drift. A row whose upper bound is at most half the
    distance from its center to the nearest other one keeps its label. Otherwise, if some
    centers are not ruled out (``u > lower[j]`` and ``u > ½‖c_a - c_j‖``):

    * rows that take the walks (``mt`` holds ``-2C``: ``table .. csq_max`` are
      :meth:`WalkCenters.args`; unweighted ``uint8`` rows only) take their products with all
      centers by Lloyd's walk, Lloyd's label by Lloyd's rule on them, and bounds from them
      (:func:`_walk_row`); none is deferred;
    * other rows make the upper bound tight (one distance, as an interval: :func:`row_interval`,
      whose other arguments ``c32 .. tiny`` are :meth:`IntervalCenters.args`); if more than
      ``dense`` centers are still open, the row is written to ``deferred`` (its distances to all
      centers are cheaper from the products of gathered tiles, see :func:`refresh_rows`), else each open center's distance is
      taken and the row takes the nearest: by the intervals where they do not overlap, else by
      float64 distances to both centers (first of equals).

    A row that changes cluster moves its weight and values between the clusters' float64 sums
    (unweighted ``uint8`` rows through int32 sums of the moves, added to ``sums`` at the end:
    every value is an integer, so the sums are the same bits in any order). Returns the
    distances computed (``k`` a walk) and the number of rows deferred.
    """
    n, k = lower.shape
    computed = 0
    n_deferred = 0
    walks = mt.shape[0] > 0
    pending = np.empty(WINDOW, dtype=np.int64)
    out = np.zeros(k + GROUP, dtype=np.float32)
    v = np.empty(k)
    counted = not weighted and n * 255 < 2**31 and _is_bytes(x)
    acc = np.zeros((k, sums.shape[1]) if counted else (0, 0), dtype=np.int32)
    flat = lower.reshape(n * k)
    shift = np.empty(WINDOW * k)
    for t in range(WINDOW * k):
        shift[t] = drift[t % k]
    hcc = half_cc.copy()  # the diagonal infinite: a row's own center is never open
    for j in range(k):
        hcc[j, j] = np.inf
    for w0 in range(0, n, WINDOW):
        w1 = min(n, w0 + WINDOW)
        _move_window(flat, w0 * k, w1 * k, shift)
        n_open = 0
        for i in range(w0, w1):
            a = labels[i]
            u = upper[i] + drift[a]
            upper[i] = u
            if u <= half_sep[a]:
                continue
            m = _count_open(u, lower, i, hcc[a])
            if m == 0:
                continue
            if n_open < AHEAD:
                prefetch(x, i)
            pending[n_open] = i
            n_open += 1
        for p in range(n_open):
            if p + AHEAD < n_open:
                prefetch(x, pending[p + AHEAD])
            i = pending[p]
            if walks:
                computed += _walk_row(x, i, labels, upper, lower, w, weighted, sums, wic, table, mt, c_sq, slack_f,
                                      csq_max, out, v, acc)
                continue
            done, n_deferred = _open_row(x, i, c, hcc, labels, upper, lower, w, weighted, sums, wic, dense,
                                         deferred, n_deferred, c32, err, lo_f, hi_f, tiny, acc)
            computed += done
    for j in range(acc.shape[0]):
        for f in range(acc.shape[1]):
            if acc[j, f] != 0:
                sums[j, f] += np.float64(acc[j, f])
    return computed, n_deferred


def _is_bytes(x: object) -> bool:  # pragma: no cover - compiled only
    """Whether ``x`` is a ``uint8`` array (a compile-time constant). Compiled code only."""
    raise NotImplementedError


@overload(_is_bytes)
def _is_bytes_impl(x):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    bytes_ = isinstance(x, types.Array) and x.dtype == types.uint8
    return lambda x: bytes_


@numba.njit(nogil=True, cache=True, inline="always")
def _open_row(x: np.ndarray, i: int, c: np.ndarray, half_cc: np.ndarray, labels: np.ndarray, upper: np.ndarray,
              lower: np.ndarray, w: np.ndarray, weighted: bool, sums: np.ndarray, wic: np.ndarray, dense: int,
              deferred: np.ndarray, n_deferred: int, c32: np.ndarray, err: np.ndarray, lo_f: float, hi_f: float,
              tiny: float, acc: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """Row ``i`` of :func:`elkan_rows` after its bounds moved, some centers left open by them:
    its distances, label, bounds and sums; returns the distances computed and the rows deferred
    so far. ``half_cc`` has an infinite diagonal (:func:`_count_open`)."""
    a = labels[i]
    lo_a, u = row_interval(x, i, c, a, c32, err, lo_f, hi_f, tiny)
    upper[i] = u
    m = _count_open(u, lower, i, half_cc[a])
    if m == 0:
        return 1, n_deferred
    if m > dense:
        deferred[n_deferred] = i
        return 1, n_deferred + 1
    return 1 + _nearest_open(x, i, a, lo_a, u, c, half_cc, labels, upper, lower, w, weighted, sums, wic, c32, err,
                             lo_f, hi_f, tiny, acc), n_deferred


@numba.njit(nogil=True, cache=True, inline="always")
def _nearest_open(x: np.ndarray, i: int, a: int, lo_a: float, u: float, c: np.ndarray, half_cc: np.ndarray,
                  labels: np.ndarray, upper: np.ndarray, lower: np.ndarray, w: np.ndarray, weighted: bool,
                  sums: np.ndarray, wic: np.ndarray, c32: np.ndarray, err: np.ndarray, lo_f: float, hi_f: float,
                  tiny: float, acc: np.ndarray) -> int:  # pragma: no cover - compiled
    """Row ``i`` (center ``a``, its distance within ``[lo_a, u]``): the distance to each center
    its bounds leave open, as an interval, and the nearest center (float64 distances where two
    intervals overlap, first of equals), its bounds and sums; returns the distances computed.

    The label is that of the float64 distances (first of equals) whatever the intervals: two
    that do not overlap are at least their ``1e-12`` widening apart, far more than the float64
    distances' rounding, and a center the bounds rule out is farther than ``u`` by as much."""
    k = lower.shape[1]
    computed = 0
    for j in range(k):
        if j == a or u <= lower[i, j] or u <= half_cc[a, j]:
            continue
        lo_j, hi_j = row_interval(x, i, c, j, c32, err, lo_f, hi_f, tiny)
        computed += 1
        if hi_j < lo_a:
            nearer = True
        elif lo_j > u:
            nearer = False
        else:  # the intervals overlap: float64 distances decide, first of equals
            if lo_a != u:
                lo_a = u = row_distance(x, i, c, a)
            if lo_j != hi_j:
                lo_j = hi_j = row_distance(x, i, c, j)
            nearer = hi_j < u or (hi_j == u and j < a)
        lower[i, j] = np.float32(lo_j * _DOWN)
        if nearer:
            lower[i, a] = np.float32(lo_a * _DOWN)
            a = j
            lo_a = lo_j
            u = hi_j
    upper[i] = u
    if a != labels[i]:
        _shift(x, i, labels[i], a, w, weighted, sums, wic, acc)
        labels[i] = a
    return computed


@numba.njit(nogil=True, cache=True, inline="always")
def _walk(x: np.ndarray, i: int, table: np.ndarray, mt: np.ndarray, c_sq: np.ndarray, slack_f: float,
          csq_max: float, out: np.ndarray, v: np.ndarray) -> tuple[int, float, float]:  # pragma: no cover - compiled
    """Row ``i``'s products with every center by Lloyd's walk (:class:`WalkCenters`; ``c_sq``
    padded with infinities) and its label by Lloyd's rule on them (:func:`lloyd_walk`); ``v_j =
    (float64(x·(-2c_j)) + ‖c_j‖²) + ‖x‖²``, within ``slack`` of the squared distances. Returns the
    label ``b``, ``max(v_b, 0)`` and ``slack``."""
    b, q = lloyd_walk(x, i, table, mt, out, c_sq)
    x_sq = np.float64(q)
    slack = slack_f * (x_sq + csq_max)
    for j in range(v.shape[0]):
        v[j] = np.float64(out[j]) + c_sq[j] + x_sq
    return b, max(v[b], 0.0), slack


@numba.njit(nogil=True, cache=True, inline="always")
def _walk_row(x: np.ndarray, i: int, labels: np.ndarray, upper: np.ndarray, lower: np.ndarray, w: np.ndarray,
              weighted: bool, sums: np.ndarray, wic: np.ndarray, table: np.ndarray, mt: np.ndarray, c_sq: np.ndarray,
              slack_f: float, csq_max: float, out: np.ndarray, v: np.ndarray,
              acc: np.ndarray) -> int:  # pragma: no cover - compiled
    """Row ``i`` of :func:`elkan_rows`, some centers left open by its moved bounds, by one walk
    (:func:`_walk`): the label a Lloyd step gives it (:func:`lloyd_walk`: Lloyd's rule on Lloyd's
    products, whatever the ties) and the bounds of its products (:func:`_take_products`), which hold on the
    exact distances whichever center the label is. Returns the distances computed (``k``)."""
    b, b1, slack = _walk(x, i, table, mt, c_sq, slack_f, csq_max, out, v)
    _take_products(x, i, b, np.sqrt(b1 + slack), v, slack, labels, upper, lower, w, weighted, sums, wic, acc)
    return v.shape[0]


@numba.njit(nogil=True, cache=True, inline="always")
def _take_products(x: np.ndarray, i: int, b: int, hi: float, v: np.ndarray, slack: float, labels: np.ndarray,
                   upper: np.ndarray, lower: np.ndarray, w: np.ndarray, weighted: bool, sums: np.ndarray,
                   wic: np.ndarray, acc: np.ndarray) -> None:  # pragma: no cover - compiled
    """Row ``i`` takes center ``b`` and the bounds of its products ``v`` (squared distances within
    ``slack``; ``hi = √(max(v_b, 0) + slack)``) as :func:`refresh_rows` sets them, each bound
    kept where the one it had is tighter (both hold)."""
    prefer_wide_vectors()
    for j in range(v.shape[0]):
        lo = np.float32(np.sqrt(max(v[j] - slack, 0.0)) * _DOWN)
        lower[i, j] = max(lower[i, j], lo)
    a = labels[i]
    if b == a:
        upper[i] = min(upper[i], hi)
        return
    upper[i] = hi
    _shift(x, i, a, b, w, weighted, sums, wic, acc)
    labels[i] = b


@numba.njit(nogil=True, cache=True)
def refresh_walks(x: np.ndarray, rows: np.ndarray, table: np.ndarray, mt: np.ndarray, c_sq: np.ndarray,
                  slack_f: float, csq_max: float, labels: np.ndarray, upper: np.ndarray, lower: np.ndarray,
                  w: np.ndarray, weighted: bool, sums: np.ndarray, wic: np.ndarray) -> None:  # pragma: no cover
    """:func:`refresh_rows` of the rows ``rows`` of a ``uint8`` block that takes the walks, in
    their order, each row's products by one walk (:class:`WalkCenters`: ``table .. csq_max`` are
    :meth:`WalkCenters.args`) where the rows were gathered into a tile and its products taken by
    the same walk row by row: the same labels, in the same order of the sums; bounds from the
    row's own slack, each kept where the one the row had is tighter (:func:`_take_products`)."""
    k = mt.shape[0]
    out = np.zeros(k + GROUP, dtype=np.float32)
    v = np.empty(k)
    kept = np.zeros((0, 0), dtype=np.int32)
    for r in range(min(AHEAD, rows.shape[0])):
        prefetch(x, rows[r])
    for r in range(rows.shape[0]):
        if r + AHEAD < rows.shape[0]:
            prefetch(x, rows[r + AHEAD])
        i = rows[r]
        b, b1, slack = _walk(x, i, table, mt, c_sq, slack_f, csq_max, out, v)
        _take_products(x, i, b, np.sqrt(b1 + slack), v, slack, labels, upper, lower, w, weighted, sums, wic, kept)


@numba.njit(nogil=True, cache=True)
def refresh_rows(x: np.ndarray, rows: np.ndarray, g: np.ndarray, c_sq: np.ndarray, x_sq: np.ndarray, slack: float,
                 labels: np.ndarray, upper: np.ndarray, lower: np.ndarray, w: np.ndarray, weighted: bool,
                 sums: np.ndarray, wic: np.ndarray) -> None:  # pragma: no cover - compiled
    """Rows ``rows`` of the block, whose tile (``x``, cast) was multiplied by ``-2Cᵀ`` into
    ``g``: new labels (as a Lloyd step takes them) and bounds from every distance, the rows that
    change cluster moved in the sums. ``w``, ``labels``, ``upper``, ``lower`` are the block's."""
    for r in range(g.shape[0]):
        i = rows[r]
        best, b1 = _bounds_from_product(g, r, c_sq, x_sq[r], slack, lower, i)
        upper[i] = np.sqrt(max(b1, 0.0) + slack)
        if best != labels[i]:
            move_row(x, r, labels[i], best, w[i] if weighted else 1.0, sums, wic)
            labels[i] = best
