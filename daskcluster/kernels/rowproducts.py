"""The products of rows with a few centers, and the Lloyd step of a block, straight from its rows.

For few centers (``k`` up to :data:`MAX_CENTERS`), casting a tile to the compute dtype and
multiplying it by ``-2 Cᵀ`` with one BLAS GEMM spends most of its time moving the tile, not
multiplying: the cast writes a float copy of the tile, and the GEMM reads it again to pack it
(on MNIST, 784 uint8 features and 10 centers: cast 4.7 ms, GEMM 10.7 ms, float64 row norms
2.7 ms per chunk of 32,768 rows, and the GEMM costs as much for 16 centers as for 10). Here
compiled loops read the rows from the block, in their storage dtype, four at a time:

* a group of four ``uint8`` rows is converted into a small float32 buffer that stays in L1
  (``float32`` rows are read in place), and each row's squared norm is summed in a loop of its
  own (fused with the conversion, both loops vectorized half as well);
* the dot products of the four rows with the centers are taken five or four centers at a time
  (:func:`center_groups`: 10 centers are two groups of five, none repeated; twenty or sixteen
  independent float32 accumulators, vectorized over the features by the compiler, all of them
  held in registers where the CPU has 32 (AVX-512); plain Numba, no instruction-set
  intrinsics). Every compiled function here calls
  :func:`~daskcluster.kernels.vectorwidth.prefer_wide_vectors`, so that on AVX-512 CPUs the
  loops use 512-bit registers (LLVM's default there is 256-bit; on MNIST8M at k = 10 the fused
  step costs 15 % less), and 256-bit ones on AVX2 CPUs;
* :func:`lloyd_step` then takes each of the four rows' arg-min and squared distance, and adds
  the rows to their clusters' sums while they are still in L1 — one read of the block for the
  whole Lloyd step, where a separate sum of the rows read the block from memory again. A
  ``float32`` row's norm is not summed before the products (:func:`products` does) but after
  its arg-min, in the loop that adds it to its cluster's float64 sums
  (:func:`_sq_norm_and_add`): each feature is converted to float64 once, for both, and the
  squares are fused multiply-adds (on AVX-512 the conversions and additions, not the reads,
  bound that loop). After each row (``uint8`` or ``float32``), the same row of the next group is
  prefetched into L2 (:func:`_prefetch_row`), so the block is read from memory while the loops
  compute (float32 rows: 17.0-18.5 -> 14.2-15.4 ms per MNIST8M chunk at k = 10 for the fused
  loop, a further 8-9 % for the prefetch; uint8 rows 5-12 % for the prefetch; see
  ``benchmarks/RESULTS-codecs.md``). :func:`products` prefetches float32 rows alike (0.77-0.83x
  the time by tiles of 320 rows; for uint8 rows, no gain, so not there).

Its cost grows with ``k``; below the crossover it is about half of cast + GEMM + norms, and the
fused Lloyd step 0.85 of the same step made of the product, then the arg-min and the sums tile
by tile (uint8 rows, k = 10; 0.77 for float32 rows, whose float64 sums no longer read them from
memory again); see ``benchmarks/RESULTS-codecs.md``, "The compiled product of few centers".
What did not pay: skipping the zero bytes of MNIST's rows (branches cost more than the
multiplications they save), trimming each group of rows to the span outside of which it holds
only zeros (85 % of the features remain, and finding the span cost what the shorter loops
saved), software prefetching of the next groups all at once before their products (nothing for
uint8 rows; for float32 rows 5-25 % more time with the fused loop, one to 64 groups ahead, into
L1 or L2: only the row-by-row prefetch of the next group into L2 pays, and rows two or more
groups ahead do not), the float32 norms summed first in a loop of their own (10 % more), the
fused norm and sums with 256-bit vectors (no gain).

Exact where it matters:

* ``uint8`` rows: the squared norms are sums of integer squares in int32 (int64 beyond 33,025
  features), exact (as the float64 loop's are for such rows); ``float32`` rows: float64 sums of
  the squares (exact in float64), as :func:`~daskcluster.kernels.assign.row_sq_norms64`'s, in
  another order of the vector lanes: within ``γ_d Σ x_f²`` (float64 ``γ_d``) of the exact norm.
* the products are float32 dot products of length ``d`` like the GEMM's, summed in another
  order: each is within the same worst-case bound ``γ_d Σ |2 x_f c_f|`` (``γ_d ≈ d ε``) of the
  exact product as the GEMM's, a bound the Elkan bounds' ``slack``
  (:func:`daskcluster.kernels.bounds.slack`) already covers, so labels can differ from the
  GEMM path's only between centers whose distances tie within that rounding.
* the arg-min is :func:`~daskcluster.kernels.assign.nearest_in_product`'s (first of equals, a
  NaN distance for a non-finite minimum); the sums of :func:`lloyd_step` are, for the same
  labels, the same bits as :func:`~daskcluster.kernels.assign.add_rows`: unweighted ``uint8``
  rows are summed per cluster in uint16 (sixteen lanes a vector), exact for the
  :data:`_FLUSH` rows of 255 at most before each flush into the float64 sums, which hold
  integers below 2⁵³ exactly; other rows are added in float64 in row order.

Rows holding NaN or infinity make their norm (and distance) non-finite; the caller's check then
names them (:func:`~daskcluster.kernels.blocks.check_finite_rows`).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .vectorwidth import prefer_wide_vectors

#: Centers up to which the compiled product costs less than cast + GEMM + norms on a 784-feature
#: uint8 tile (OpenBLAS SkylakeX, one thread: with 4 x 4 blocks of 256-bit vectors the crossover
#: was between 30 and 50 centers; with 4 x 5 blocks of 512-bit ones the compiled assignment of a
#: 32,768-row MNIST8M chunk still costs 0.8x the GEMM path's at 48 centers and 0.86x at 64).
MAX_CENTERS = 48

#: Rows of one register block of the compiled product.
_ROWS = 4

#: Widest group of centers of one register block (five centers by four rows: 20 accumulators).
_WIDEST = 5

_STORAGE = (np.dtype(np.uint8), np.dtype(np.float32))

#: Features up to which a uint8 row's squared norm fits int32 (``255² d < 2³¹``).
_INT32_FEATURES = (2**31 - 1) // 255**2

#: Rows of unweighted uint8 data summed in uint16 before a flush to the float64 sums: a
#: multiple of :data:`_ROWS` with ``255 * _FLUSH < 2¹⁶``, so no uint16 partial sum overflows.
_FLUSH = 256


def applies(block: Any, minus2_t: np.ndarray) -> bool:
    """Whether :func:`products` and :func:`lloyd_step` serve ``block`` against ``minus2_t``
    (d, k): a C-contiguous NumPy block of ``uint8`` or ``float32`` rows, a float32 table of at
    most :data:`MAX_CENTERS` centers."""
    return (
        type(block) is np.ndarray
        and block.ndim == 2
        and block.dtype in _STORAGE
        and block.flags.c_contiguous
        and minus2_t.dtype == np.float32
        and 0 < minus2_t.shape[1] <= MAX_CENTERS
    )


def center_groups(k: int) -> np.ndarray:
    """Widths (5 or 4) of the groups of centers the product takes ``k`` centers in, int64.

    The fewest computed columns (a group past the last center repeats it, uncounted), then the
    fewest groups: 10 centers are ``[5, 5]``, 12 are ``[4, 4, 4]``, 13 are ``[5, 4, 4]``, 7 are
    ``[4, 4]`` (one repeated).
    """
    best: tuple[tuple[int, int], list[int]] | None = None
    for n5 in range(k // _WIDEST + 2):
        n4 = -(-max(0, k - _WIDEST * n5) // 4)
        key = (_WIDEST * n5 + 4 * n4, n5 + n4)
        if best is None or key < best[0]:
            best = (key, [_WIDEST] * n5 + [4] * n4)
    assert best is not None
    return np.array(best[1], dtype=np.int64)


# --------------------------------------------------------------------------- register blocks


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _dot5(r: np.ndarray, i: int, mt: np.ndarray, j0: int, gl: np.ndarray) -> None:  # pragma: no cover
    """``gl[t, j0 + c] = r[i + t] · mt[j0 + c]`` for ``t < 4``, ``c < 5`` (a center past the last
    repeats it; ``gl`` has room for it)."""
    prefer_wide_vectors()
    k, d = mt.shape
    j1 = min(j0 + 1, k - 1)
    j2 = min(j0 + 2, k - 1)
    j3 = min(j0 + 3, k - 1)
    j4 = min(j0 + 4, k - 1)
    s00 = s01 = s02 = s03 = s04 = np.float32(0.0)
    s10 = s11 = s12 = s13 = s14 = np.float32(0.0)
    s20 = s21 = s22 = s23 = s24 = np.float32(0.0)
    s30 = s31 = s32 = s33 = s34 = np.float32(0.0)
    for f in range(d):
        m0 = mt[j0, f]
        m1 = mt[j1, f]
        m2 = mt[j2, f]
        m3 = mt[j3, f]
        m4 = mt[j4, f]
        a0 = r[i, f]
        a1 = r[i + 1, f]
        a2 = r[i + 2, f]
        a3 = r[i + 3, f]
        s00 += a0 * m0
        s01 += a0 * m1
        s02 += a0 * m2
        s03 += a0 * m3
        s04 += a0 * m4
        s10 += a1 * m0
        s11 += a1 * m1
        s12 += a1 * m2
        s13 += a1 * m3
        s14 += a1 * m4
        s20 += a2 * m0
        s21 += a2 * m1
        s22 += a2 * m2
        s23 += a2 * m3
        s24 += a2 * m4
        s30 += a3 * m0
        s31 += a3 * m1
        s32 += a3 * m2
        s33 += a3 * m3
        s34 += a3 * m4
    gl[0, j0], gl[0, j0 + 1], gl[0, j0 + 2], gl[0, j0 + 3], gl[0, j0 + 4] = s00, s01, s02, s03, s04
    gl[1, j0], gl[1, j0 + 1], gl[1, j0 + 2], gl[1, j0 + 3], gl[1, j0 + 4] = s10, s11, s12, s13, s14
    gl[2, j0], gl[2, j0 + 1], gl[2, j0 + 2], gl[2, j0 + 3], gl[2, j0 + 4] = s20, s21, s22, s23, s24
    gl[3, j0], gl[3, j0 + 1], gl[3, j0 + 2], gl[3, j0 + 3], gl[3, j0 + 4] = s30, s31, s32, s33, s34


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _dot4(r: np.ndarray, i: int, mt: np.ndarray, j0: int, gl: np.ndarray) -> None:  # pragma: no cover
    """:func:`_dot5` of four centers."""
    prefer_wide_vectors()
    k, d = mt.shape
    j1 = min(j0 + 1, k - 1)
    j2 = min(j0 + 2, k - 1)
    j3 = min(j0 + 3, k - 1)
    s00 = s01 = s02 = s03 = np.float32(0.0)
    s10 = s11 = s12 = s13 = np.float32(0.0)
    s20 = s21 = s22 = s23 = np.float32(0.0)
    s30 = s31 = s32 = s33 = np.float32(0.0)
    for f in range(d):
        m0 = mt[j0, f]
        m1 = mt[j1, f]
        m2 = mt[j2, f]
        m3 = mt[j3, f]
        a0 = r[i, f]
        a1 = r[i + 1, f]
        a2 = r[i + 2, f]
        a3 = r[i + 3, f]
        s00 += a0 * m0
        s01 += a0 * m1
        s02 += a0 * m2
        s03 += a0 * m3
        s10 += a1 * m0
        s11 += a1 * m1
        s12 += a1 * m2
        s13 += a1 * m3
        s20 += a2 * m0
        s21 += a2 * m1
        s22 += a2 * m2
        s23 += a2 * m3
        s30 += a3 * m0
        s31 += a3 * m1
        s32 += a3 * m2
        s33 += a3 * m3
    gl[0, j0], gl[0, j0 + 1], gl[0, j0 + 2], gl[0, j0 + 3] = s00, s01, s02, s03
    gl[1, j0], gl[1, j0 + 1], gl[1, j0 + 2], gl[1, j0 + 3] = s10, s11, s12, s13
    gl[2, j0], gl[2, j0 + 1], gl[2, j0 + 2], gl[2, j0 + 3] = s20, s21, s22, s23
    gl[3, j0], gl[3, j0 + 1], gl[3, j0 + 2], gl[3, j0 + 3] = s30, s31, s32, s33


@numba.njit(nogil=True, cache=True)
def _group_products(r: np.ndarray, i: int, mt: np.ndarray, widths: np.ndarray,
                    gl: np.ndarray) -> None:  # pragma: no cover - compiled
    """``gl[t, j] = r[i + t] · mt[j]`` for the four rows from ``i`` and every center, group by
    group (``widths``: :func:`center_groups`; ``gl`` has :data:`_WIDEST` spare columns)."""
    prefer_wide_vectors()
    j0 = 0
    for w in widths:
        if w == _WIDEST:
            _dot5(r, i, mt, j0, gl)
        else:
            _dot4(r, i, mt, j0, gl)
        j0 += w


@intrinsic
def _prefetch(typingctx: Any, arr: Any, offset: Any) -> Any:  # pragma: no cover - compiled
    """Ask the CPU to bring the cache line at byte ``offset`` of ``arr``'s data into L2
    (``llvm.prefetch``: a read, locality 2, which is ``prefetcht1`` on x86; a hint, never a fault,
    nothing where the target has no such instruction). For compiled code only."""
    sig = types.void(arr, types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte = ir.IntType(8).as_pointer()
        ptr = builder.gep(builder.bitcast(data, byte), [args[1]])
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(nogil=True, cache=True)
def _prefetch_row(x: np.ndarray, i: int) -> None:  # pragma: no cover - compiled
    """:func:`_prefetch` every cache line of row ``i`` of the C-contiguous ``x`` (none past its last row)."""
    if i < x.shape[0]:
        row_bytes = x.shape[1] * x.itemsize
        for b in range(i * row_bytes, (i + 1) * row_bytes, 64):
            _prefetch(x, b)


# --------------------------------------------------------------------------- rows and norms


@numba.njit(nogil=True, cache=True)
def _byte_sq_norm(xr: np.ndarray) -> int:  # pragma: no cover - compiled
    """``Σ xr_f²`` of a uint8 row of at most :data:`_INT32_FEATURES` features, in int32 (exact;
    eight lanes a vector where int64 has four)."""
    prefer_wide_vectors()
    q = np.int32(0)
    for f in range(xr.shape[0]):
        a = np.int32(xr[f])
        q = np.int32(q + np.int32(a * a))
    return int(q)


@numba.njit(nogil=True, cache=True)
def _byte_sq_norm_wide(xr: np.ndarray) -> int:  # pragma: no cover - compiled
    """``Σ xr_f²`` of a uint8 row of any length, in int64."""
    prefer_wide_vectors()
    q = np.int64(0)
    for f in range(xr.shape[0]):
        a = np.int64(xr[f])
        q += a * a
    return int(q)


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _float_sq_norm(xr: np.ndarray) -> float:  # pragma: no cover - compiled
    """``Σ xr_f²`` of a float32 row, in float64."""
    prefer_wide_vectors()
    q = 0.0
    for f in range(xr.shape[0]):
        v = np.float64(xr[f])
        q += v * v
    return q


@numba.njit(nogil=True, cache=True)
def _load_bytes(x: np.ndarray, i: int, nr: int, r: np.ndarray, x_sq: np.ndarray) -> None:  # pragma: no cover
    """The ``nr`` uint8 rows from ``i`` as float32 into ``r`` (4, d), zero rows after them, and
    their exact squared norms into ``x_sq[:nr]``."""
    prefer_wide_vectors()
    d = x.shape[1]
    for t in range(nr):
        for f in range(d):
            r[t, f] = np.float32(x[i + t, f])
        x_sq[t] = _byte_sq_norm(x[i + t]) if d <= _INT32_FEATURES else _byte_sq_norm_wide(x[i + t])
    for t in range(nr, _ROWS):
        r[t, :] = 0.0


@numba.njit(nogil=True, cache=True)
def _float_norms(x: np.ndarray, i: int, nr: int, x_sq: np.ndarray) -> None:  # pragma: no cover - compiled
    """The float64 squared norms of the ``nr`` float32 rows from ``i`` into ``x_sq[:nr]``."""
    prefer_wide_vectors()
    for t in range(nr):
        x_sq[t] = _float_sq_norm(x[i + t])


@numba.njit(nogil=True, cache=True)
def _float_group(x: np.ndarray, i: int, nr: int, mt: np.ndarray, widths: np.ndarray, r: np.ndarray,
                 gl: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`_group_products` of the ``nr`` float32 rows from ``i``: read in place, or copied
    into ``r`` with zero rows after them when fewer than four are left."""
    prefer_wide_vectors()
    if nr == _ROWS:
        _group_products(x, i, mt, widths, gl)
        return
    for t in range(nr):
        r[t, :] = x[i + t]
    for t in range(nr, _ROWS):
        r[t, :] = 0.0
    _group_products(r, 0, mt, widths, gl)


# --------------------------------------------------------------------------- products


@numba.njit(nogil=True, cache=True)
def _bytes_products(x: np.ndarray, mt: np.ndarray, widths: np.ndarray, g: np.ndarray,
                    x_sq: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`products` of uint8 rows: exact integer squared norms."""
    prefer_wide_vectors()
    n, d = x.shape
    k = mt.shape[0]
    r = np.zeros((_ROWS, d), dtype=np.float32)
    gl = np.zeros((_ROWS, k + _WIDEST), dtype=np.float32)
    for i in range(0, n, _ROWS):
        nr = min(_ROWS, n - i)
        _load_bytes(x, i, nr, r, x_sq[i:])
        _group_products(r, 0, mt, widths, gl)
        for t in range(nr):
            g[i + t, :] = gl[t, :k]


@numba.njit(nogil=True, cache=True)
def _float_products(x: np.ndarray, mt: np.ndarray, widths: np.ndarray, g: np.ndarray,
                    x_sq: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`products` of float32 rows: float64 squared norms; after each row, the same row of
    the next group prefetched into L2 (within ``x``: a tile's first group is not)."""
    prefer_wide_vectors()
    n, d = x.shape
    k = mt.shape[0]
    r = np.zeros((_ROWS, d), dtype=np.float32)
    gl = np.zeros((_ROWS, k + _WIDEST), dtype=np.float32)
    for i in range(0, n, _ROWS):
        nr = min(_ROWS, n - i)
        _float_norms(x, i, nr, x_sq[i:])
        _float_group(x, i, nr, mt, widths, r, gl)
        for t in range(nr):
            g[i + t, :] = gl[t, :k]
            _prefetch_row(x, i + t + _ROWS)


def products(x: np.ndarray, minus2: np.ndarray, g: np.ndarray, x_sq: np.ndarray) -> None:
    """``g = x · (-2Cᵀ)`` and ``x_sq = ‖x‖²`` of a tile of rows, one read of the rows.

    Parameters
    ----------
    x : ndarray of shape (rows, n_features), uint8 or float32, C-contiguous
        The rows in their storage dtype (see :func:`applies`).
    minus2 : ndarray of shape (n_centers, n_features), float32, C-contiguous
        ``-2 C`` (the transpose of :attr:`~daskcluster.kernels.assign.CenterTable.minus2_t`).
    g : ndarray of shape (rows, n_centers), float32
        Filled with the products.
    x_sq : ndarray of shape (rows,), float64
        Filled with the rows' squared norms (exact for uint8 rows).
    """
    widths = center_groups(minus2.shape[0])
    if x.dtype == np.uint8:
        _bytes_products(x, minus2, widths, g, x_sq)
    else:
        _float_products(x, minus2, widths, g, x_sq)


# --------------------------------------------------------------------------- the Lloyd step


@numba.njit(nogil=True, cache=True)
def _nearest_center(gl: np.ndarray, t: int, k: int, c_sq: np.ndarray) -> tuple[int, float]:  # pragma: no cover
    """Row ``t`` of ``gl``'s nearest center (the first of equals) and ``min_j ‖c_j‖² - 2x·c_j``,
    as :func:`~daskcluster.kernels.assign.nearest_in_product` takes them."""
    prefer_wide_vectors()
    best = 0
    bv = np.float64(gl[t, 0]) + c_sq[0]
    for j in range(1, k):
        v = np.float64(gl[t, j]) + c_sq[j]
        if v < bv:
            bv = v
            best = j
    return best, bv


@numba.njit(nogil=True, cache=True)
def _distance(bv: float, x_sq: float) -> float:  # pragma: no cover - compiled
    """``x_sq + bv`` clipped at 0, NaN where ``bv`` is not finite, as
    :func:`~daskcluster.kernels.assign.nearest_in_product` takes it."""
    m = bv + x_sq
    if not np.isfinite(bv):
        m = np.nan
    elif m < 0.0:
        m = 0.0
    return m


@numba.njit(nogil=True, cache=True)
def _nearest_row(gl: np.ndarray, t: int, k: int, c_sq: np.ndarray, x_sq: float) -> tuple[int, float]:  # pragma: no cover
    """Row ``t`` of ``gl``'s nearest center and squared distance, as
    :func:`~daskcluster.kernels.assign.nearest_in_product` takes them."""
    best, bv = _nearest_center(gl, t, k, c_sq)
    return best, _distance(bv, x_sq)


@numba.njit(nogil=True, cache=True)
def _add_row(r: np.ndarray, t: int, wt: float, weighted: bool, sums: np.ndarray, lab: int) -> None:  # pragma: no cover
    """``sums[lab] += wt r[t]`` in float64 (``wt`` = 1 when not ``weighted``), as
    :func:`~daskcluster.kernels.assign.add_rows` adds a row."""
    prefer_wide_vectors()
    row = sums[lab]
    if weighted:
        for f in range(r.shape[1]):
            row[f] += wt * np.float64(r[t, f])
    else:
        for f in range(r.shape[1]):
            row[f] += np.float64(r[t, f])


@numba.njit(nogil=True, cache=True)
def _bytes_lloyd(x: np.ndarray, mt: np.ndarray, widths: np.ndarray, c_sq: np.ndarray, labels: np.ndarray,
                 min_sq: np.ndarray, w: np.ndarray, weighted: bool, sums: np.ndarray,
                 wic: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`lloyd_step` of uint8 rows: unweighted rows summed in uint16 between flushes; after
    each row, the same row of the next group prefetched into L2."""
    prefer_wide_vectors()
    n, d = x.shape
    k = mt.shape[0]
    r = np.zeros((_ROWS, d), dtype=np.float32)
    gl = np.zeros((_ROWS, k + _WIDEST), dtype=np.float32)
    x_sq = np.empty(_ROWS)
    acc = np.zeros((k, d), dtype=np.uint16)
    for i in range(0, n, _ROWS):
        nr = min(_ROWS, n - i)
        _load_bytes(x, i, nr, r, x_sq)
        _group_products(r, 0, mt, widths, gl)
        for t in range(nr):
            lab, m = _nearest_row(gl, t, k, c_sq, x_sq[t])
            labels[i + t] = lab
            min_sq[i + t] = m
            _prefetch_row(x, i + t + _ROWS)
            if weighted:
                wic[lab] += w[i + t]
                _add_row(r, t, w[i + t], True, sums, lab)
            else:
                wic[lab] += 1.0
                row = acc[lab]
                xr = x[i + t]
                for f in range(d):
                    row[f] = np.uint16(row[f] + np.uint16(xr[f]))
        if not weighted and ((i + _ROWS) % _FLUSH == 0 or i + _ROWS >= n):
            for j in range(k):
                for f in range(d):
                    sums[j, f] += np.float64(acc[j, f])
                    acc[j, f] = 0


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _sq_norm_and_add(x: np.ndarray, i: int, sums: np.ndarray, lab: int) -> float:  # pragma: no cover - compiled
    """``sums[lab] += x[i]`` in float64, as :func:`~daskcluster.kernels.assign.add_rows` adds a
    row, and ``‖x[i]‖²`` in float64: one loop over the float32 row, each feature converted once.

    ``reassoc`` lets the norm be summed in vector lanes and ``contract`` fuse its squares and
    additions (a float32 value's square is exact in float64, so the fused square-and-add rounds as
    the two operations do); each feature's sum is a single addition, so the sums are the float64
    loop's bits.
    """
    prefer_wide_vectors()
    row = sums[lab]
    xr = x[i]
    q = 0.0
    for f in range(xr.shape[0]):
        v = np.float64(xr[f])
        q += v * v
        row[f] += v
    return q


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _sq_norm_and_add_weighted(x: np.ndarray, i: int, wt: float, sums: np.ndarray,
                              lab: int) -> float:  # pragma: no cover - compiled
    """:func:`_sq_norm_and_add` of a weighted row: ``sums[lab] += wt x[i]``, the product
    rounded before the addition as in :func:`~daskcluster.kernels.assign.add_rows` (no
    ``contract``)."""
    prefer_wide_vectors()
    row = sums[lab]
    xr = x[i]
    q = 0.0
    for f in range(xr.shape[0]):
        v = np.float64(xr[f])
        q += v * v
        row[f] += wt * v
    return q


@numba.njit(nogil=True, cache=True)
def _float_lloyd(x: np.ndarray, mt: np.ndarray, widths: np.ndarray, c_sq: np.ndarray, labels: np.ndarray,
                 min_sq: np.ndarray, w: np.ndarray, weighted: bool, sums: np.ndarray,
                 wic: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`lloyd_step` of float32 rows: the products of a group of rows, then each row's
    arg-min, and its float64 norm and sums in one loop over it (in L1), rows in order; after each
    row, the same row of the next group prefetched into L2."""
    prefer_wide_vectors()
    n, d = x.shape
    k = mt.shape[0]
    r = np.zeros((_ROWS, d), dtype=np.float32)
    gl = np.zeros((_ROWS, k + _WIDEST), dtype=np.float32)
    for i in range(0, n, _ROWS):
        nr = min(_ROWS, n - i)
        _float_group(x, i, nr, mt, widths, r, gl)
        for t in range(nr):
            lab, bv = _nearest_center(gl, t, k, c_sq)
            wt = w[i + t] if weighted else 1.0
            labels[i + t] = lab
            wic[lab] += wt
            if weighted:
                q = _sq_norm_and_add_weighted(x, i + t, wt, sums, lab)
            else:
                q = _sq_norm_and_add(x, i + t, sums, lab)
            min_sq[i + t] = _distance(bv, q)
            _prefetch_row(x, i + t + _ROWS)


def lloyd_step(x: np.ndarray, minus2: np.ndarray, c_sq: np.ndarray, labels: np.ndarray, min_sq: np.ndarray,
               w: np.ndarray, weighted: bool, sums: np.ndarray, wic: np.ndarray) -> None:
    """A Lloyd step over a block of rows, one read of the rows: each row's nearest center and
    squared distance, and the rows added to their clusters' sums.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_features), uint8 or float32, C-contiguous
        The rows in their storage dtype (see :func:`applies`).
    minus2 : ndarray of shape (n_centers, n_features), float32, C-contiguous
        ``-2 C``.
    c_sq : ndarray of shape (n_centers,), float64
        ``‖c‖²``.
    labels : ndarray of shape (n_rows,), int64
        Filled with each row's nearest center (the first of equals).
    min_sq : ndarray of shape (n_rows,), float64
        Filled with the squared distances ``‖x‖² + min(‖c‖² - 2x·c)``, clipped at 0; NaN or
        infinity where the row holds NaN or infinity.
    w : ndarray of shape (n_rows,) or (0,), float64
        Sample weights, read only when ``weighted``.
    weighted : bool
    sums : ndarray of shape (n_centers, n_features), float64
        ``sums[labels[i]] += w[i] x[i]``, in row order (``w`` = 1 when not ``weighted``).
    wic : ndarray of shape (n_centers,), float64
        ``wic[labels[i]] += w[i]``.
    """
    widths = center_groups(minus2.shape[0])
    step = _bytes_lloyd if x.dtype == np.uint8 else _float_lloyd
    step(x, minus2, widths, c_sq, labels, min_sq, w, weighted, sums, wic)
