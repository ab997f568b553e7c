"""Elkan's compiled loops: the bounds of each row set from a tile's product, kept through a
Lloyd step, and refreshed (see :mod:`daskcluster.kernels.bounds` for the method, the state and
why the labels are exact). Run on the workers by
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

**Rows in windows.** :func:`elkan_rows` moves the bounds of :data:`WINDOW` rows, then takes the
distances of those the bounds leave open, each open row's data prefetched :data:`AHEAD` open rows
before its turn: the rows it reads are scattered over the block, and read one by one each
started with a miss to memory. MNIST8M chunks of 32,768 rows, k = 10, one thread, AMD EPYC (Zen
4), the loop alone: 3.1 -> 2.4 ms a chunk between the centers of iterations 10 and 11 (4 % of the
distances computed), 6.8 -> 6.9 ms between iterations 3 and 4 (22 %); the same bits.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import overload

from .rowproducts import prefetch_row
from .vectorwidth import prefer_wide_vectors

#: Lower bounds are stored in float32, scaled by this before rounding so they stay below.
_DOWN = 1.0 - 2.5e-7


@numba.njit(nogil=True, cache=True)
def _bounds_from_product(g: np.ndarray, r: int, c_sq: np.ndarray, x_sq: float, slack: float, lower: np.ndarray,
                         i: int) -> tuple[int, float]:  # pragma: no cover - compiled
    """Row ``r`` of ``g = x·(-2Cᵀ)`` (squared norm ``x_sq``): its lower bounds, written to
    ``lower[i]``, its nearest center (first of equals, as ``numpy.argmin``) and the squared
    distance to it."""
    best = 0
    b1 = np.inf
    for j in range(g.shape[1]):
        v = np.float64(g[r, j]) + c_sq[j] + x_sq
        if v < b1:
            b1 = v
            best = j
        lo = v - slack
        lower[i, j] = np.float32(np.sqrt(lo) * _DOWN) if lo > 0.0 else np.float32(0.0)
    return best, b1


@numba.njit(nogil=True, cache=True)
def init_bounds(g: np.ndarray, c_sq: np.ndarray, x_sq: np.ndarray, slack: float, labels: np.ndarray,
                d1: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> None:  # pragma: no cover - compiled
    """From ``g = x·(-2Cᵀ)``: each row's nearest center (first of equals, as ``numpy.argmin``),
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


@numba.njit(nogil=True, cache=True)
def _open_centers(u: float, a: int, lower: np.ndarray, i: int, half_cc: np.ndarray) -> int:  # pragma: no cover
    """How many centers the bounds of row ``i`` (upper ``u``, center ``a``) do not rule out."""
    m = 0
    for j in range(lower.shape[1]):
        if j != a and u > lower[i, j] and u > half_cc[a, j]:
            m += 1
    return m


@numba.njit(nogil=True, cache=True)
def elkan_rows(x: np.ndarray, c: np.ndarray, half_cc: np.ndarray, half_sep: np.ndarray, drift: np.ndarray,
               labels: np.ndarray, upper: np.ndarray, lower: np.ndarray, w: np.ndarray, weighted: bool,
               sums: np.ndarray, wic: np.ndarray, dense: int, deferred: np.ndarray, c32: np.ndarray, err: np.ndarray,
               lo_f: float, hi_f: float, tiny: float) -> tuple[int, int]:  # pragma: no cover
    """One Elkan step over the rows of ``x`` (storage dtype; a dense array or a CSR tuple, see
    :func:`row_distance`) against centers ``c`` (float64).

    Moves every bound by the centers' drift. A row whose upper bound is at most half the
    distance from its center to the nearest other one keeps its label. Otherwise, if some
    centers are not ruled out (``u > lower[j]`` and ``u > ½‖c_a - c_j‖``), the upper bound is
    made tight (one distance, as an interval: :func:`row_interval`, whose other arguments
    ``c32 .. tiny`` are :meth:`IntervalCenters.args`); if more than ``dense`` centers are still
    open, the row is written to ``deferred`` (its distances to all centers are cheaper by GEMM,
    see :func:`refresh_rows`), else each open center's distance is taken and the row takes the
    nearest: by the intervals where they do not overlap, else by float64 distances to both
    centers (first of equals). A row that changes cluster moves its weight and values between
    the clusters' float64 sums. Returns the distances computed and the number of rows deferred.
    """
    n, k = lower.shape
    computed = 0
    n_deferred = 0
    pending = np.empty(WINDOW, dtype=np.int64)
    for w0 in range(0, n, WINDOW):
        n_open = 0
        for i in range(w0, min(n, w0 + WINDOW)):
            a = labels[i]
            u = upper[i] + drift[a]
            for j in range(k):
                lo = np.float64(lower[i, j]) - drift[j]
                lower[i, j] = np.float32(lo * _DOWN) if lo > 0.0 else np.float32(0.0)
            upper[i] = u
            if u <= half_sep[a] or _open_centers(u, a, lower, i, half_cc) == 0:
                continue
            if n_open < AHEAD:
                prefetch(x, i)
            pending[n_open] = i
            n_open += 1
        for p in range(n_open):
            if p + AHEAD < n_open:
                prefetch(x, pending[p + AHEAD])
            done, n_deferred = _open_row(x, pending[p], c, half_cc, labels, upper, lower, w, weighted, sums, wic,
                                         dense, deferred, n_deferred, c32, err, lo_f, hi_f, tiny)
            computed += done
    return computed, n_deferred


@numba.njit(nogil=True, cache=True, inline="always")
def _open_row(x: np.ndarray, i: int, c: np.ndarray, half_cc: np.ndarray, labels: np.ndarray, upper: np.ndarray,
              lower: np.ndarray, w: np.ndarray, weighted: bool, sums: np.ndarray, wic: np.ndarray, dense: int,
              deferred: np.ndarray, n_deferred: int, c32: np.ndarray, err: np.ndarray, lo_f: float, hi_f: float,
              tiny: float) -> tuple[int, int]:  # pragma: no cover - compiled
    """Row ``i`` of :func:`elkan_rows` after its bounds moved, some centers left open by them:
    its distances, label, bounds and sums; returns the distances computed and the rows deferred
    so far."""
    k = lower.shape[1]
    a = labels[i]
    computed = 0
    lo_a, u = row_interval(x, i, c, a, c32, err, lo_f, hi_f, tiny)
    computed += 1
    upper[i] = u
    m = _open_centers(u, a, lower, i, half_cc)
    if m == 0:
        return computed, n_deferred
    if m > dense:
        deferred[n_deferred] = i
        return computed, n_deferred + 1
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
        move_row(x, i, labels[i], a, w[i] if weighted else 1.0, sums, wic)
        labels[i] = a
    return computed, n_deferred


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
