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
  prefetched into L2 (:func:`prefetch_row`), so the block is read from memory while the loops
  compute (float32 rows: 17.0-18.5 -> 14.2-15.4 ms per MNIST8M chunk at k = 10 for the fused
  loop, a further 8-9 % for the prefetch; uint8 rows 5-12 % for the prefetch; see
  ``benchmarks/RESULTS-codecs.md``). :func:`products` prefetches float32 rows alike (0.77-0.83x
  the time by tiles of 320 rows; for uint8 rows, no gain, so not there).

**uint8 rows with zero groups: walks over the non-zero groups.** Where at most
:data:`WALK_SHARE` of the 8-feature groups of a block's first rows hold a non-zero
(:func:`walks_pay`; MNIST8M: 46 %), :func:`products` and :func:`lloyd_step` take the rows one by
one and only their non-zero groups (:func:`_row_products`): the row's group mask
(:func:`~daskcluster.kernels.vector_ir.block_groups`, two 64-group words walked as
one ``i128`` with ``cttz`` and ``m & (m - 1)``), then per set group one load of its 8 bytes,
converted to float32 and repeated in both halves of a 16-lane vector, and per two centers one
multiply-add into their accumulator, the centers laid out group by group (:func:`group_table`;
up to :data:`PART` centers a walk); the accumulators' lanes summed by a transposed tree, the
exact int32 squares of the same groups, the arg-min of the float64 distances 8 lanes at a time
(:func:`_first_min`), and the row added to its cluster's uint16 sums while in L1, each
cluster's flushed after :data:`_FLUSH` of its rows. A zero group adds exactly zero, so the
products are dot products summed in another order (the bound below holds). Two centers a
16-lane vector: where a CPU runs 512-bit multiply-adds as two 256-bit halves (AMD Zen 4) that
costs what one center an 8-lane vector would, where it has two 512-bit units (Intel Skylake-X)
half. On MNIST8M chunks of 32,768 rows, k = 10, one thread (AMD EPYC Zen 4): the Lloyd step
8.9 -> 5.6 ms (the walks ~3.8 ms of it; without them 1.9 ms: the masks and the first read of
the rows, the arg-min, the sums, 0.7 of which the sums); the prefetch of the row four ahead
saves 1 ms; ``benchmarks/RESULTS-kmeans.md``. Not kept: blocks of 49 or fewer groups over tiles
of 16-256 rows so that a block's centers stay in L1 (each block's walk costs its mask, its
accumulators' loads and stores and a mispredicted exit: 7.7-18 ms against 7.1 ms for whole
rows), the scalar arg-min by branches (0.35 ms more) or by selects (0.1 ms more).

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

from .vector_ir import F32, GROUP, I64, WORD, aligned_zeros, bit_count, block_groups, fma, vector, vector_ptr
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
    return serves(block, minus2_t.shape[1], minus2_t.dtype)


def serves(block: Any, n_centers: int, dtype: Any) -> bool:
    """:func:`applies` to a table of ``n_centers`` centers in ``dtype``."""
    return (
        type(block) is np.ndarray
        and block.ndim == 2
        and block.dtype in _STORAGE
        and block.flags.c_contiguous
        and np.dtype(dtype) == np.float32
        and 0 < n_centers <= MAX_CENTERS
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
def prefetch_row(x: np.ndarray, i: int) -> None:  # pragma: no cover - compiled
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
            prefetch_row(x, i + t + _ROWS)


class BlockProducts:
    """:func:`products` of the tiles of one block: the path (walks or register blocks), the
    centers' layout for it and the groups of centers, chosen and made once for the block (per
    320-row tile they cost 50 us, 5 ms a 32,768-row chunk).

    Parameters
    ----------
    block : ndarray of shape (n_rows, n_features), uint8 or float32, C-contiguous
        The block whose tiles will be passed (see :func:`applies`); uint8 rows take the walks
        where :func:`walks_pay` for the block.
    minus2 : ndarray of shape (n_centers, n_features), float32, C-contiguous
        ``-2 C``.
    """

    def __init__(self, block: np.ndarray, minus2: np.ndarray) -> None:
        self.minus2 = minus2
        self.table = group_table(minus2) if block.dtype == np.uint8 and walks_pay(block) else None
        self.widths = center_groups(minus2.shape[0])

    def __call__(self, x: np.ndarray, g: np.ndarray, x_sq: np.ndarray) -> None:
        """``g = x · (-2Cᵀ)`` and ``x_sq = ‖x‖²`` of a tile ``x`` of the block (as :func:`products`)."""
        if self.table is not None:
            _bytes_products_groups(x, self.table, self.minus2, g, x_sq)
        elif x.dtype == np.uint8:
            _bytes_products(x, self.minus2, self.widths, g, x_sq)
        else:
            _float_products(x, self.minus2, self.widths, g, x_sq)


def products(x: np.ndarray, minus2: np.ndarray, g: np.ndarray, x_sq: np.ndarray) -> None:
    """``g = x · (-2Cᵀ)`` and ``x_sq = ‖x‖²`` of a tile of rows, one read of the rows (a block's
    tiles: :class:`BlockProducts`).

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
    BlockProducts(x, minus2)(x, g, x_sq)


# --------------------------------------------------------------------------- walks over non-zero groups

#: Centers whose accumulators one walk of a row's groups holds in registers (two centers a
#: 16-lane vector; more centers: one walk per part of at most this many).
PART = 12

#: Share of non-zero groups (over a block's first :data:`SHARE_ROWS` rows) up to which uint8 rows
#: take the walks rather than the register blocks: on MNIST8M chunks made denser (zero groups
#: given a non-zero at random), one thread, k = 10, the walks cost as much at ~0.95 (AMD EPYC
#: Zen 4: 5.6 against 9.1 ms a chunk at 0.46, 9.5 against 9.2 at 1.0; ``RESULTS-kmeans.md``).
WALK_SHARE = 0.9

#: Rows whose groups :func:`walks_pay` counts.
SHARE_ROWS = 256

_I32 = ir.IntType(32)


def group_table(minus2: np.ndarray) -> np.ndarray:
    """``-2 C`` (k, d) laid out for the walks: (d // :data:`GROUP`, k + k % 2, :data:`GROUP`) float32,
    ``table[q, j] = minus2[j, 8q : 8q + 8]`` (a group's centers contiguous, two a 16-lane load),
    an odd ``k`` padded with a zero center; the table starts on a cache line."""
    k, d = minus2.shape
    groups = d // GROUP
    kp = k + k % 2
    table = aligned_zeros((groups, kp, GROUP), np.float32)
    table[:, :k] = minus2[:, : groups * GROUP].reshape(k, groups, GROUP).transpose(1, 0, 2)
    return table


def _sum_lanes(builder: ir.IRBuilder, accs: list[ir.Value]) -> ir.Value:
    """The lane sums of up to eight 8-lane vectors as the lanes of one (a transposed tree: three
    levels of two shuffles and an addition, zero vectors past the last)."""
    accs = accs + [ir.Constant(vector(GROUP, F32), [0.0] * GROUP)] * (GROUP - len(accs))

    def level(pairs: list[ir.Value], lo: list[int], hi: list[int]) -> list[ir.Value]:
        out = []
        for a, b in zip(pairs[0::2], pairs[1::2]):
            sa = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, GROUP), lo))
            sb = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, GROUP), hi))
            out.append(builder.fadd(sa, sb))
        return out

    # lanes [a0+a4, a1+a5, a2+a6, a3+a7, b0+b4, ...], then two partial sums each, then one
    accs = level(accs, [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15])
    accs = level(accs, [0, 1, 4, 5, 8, 9, 12, 13], [2, 3, 6, 7, 10, 11, 14, 15])
    return level(accs, [0, 2, 4, 6, 8, 10, 12, 14], [1, 3, 5, 7, 9, 11, 13, 15])[0]


def _emit_row_walk(builder: ir.IRBuilder, pairs: int, x_data: ir.Value, x_at: ir.Value, words: list[ir.Value],
                   t_data: ir.Value, t_at: ir.Value, stride: ir.Value, out_data: ir.Value, out_at: ir.Value,
                   sq: ir.Value) -> None:
    """``out[out_at + c] += Σ_q x[8q ..] · table[q, c]`` (8 lanes summed) for ``c < 2 pairs`` and
    the set bits ``q`` of the two mask ``words`` (one ``i128``: groups 0-127), and ``sq`` (an
    ``i64`` slot) ``+= Σ_q Σ x[8q ..]²`` in int32 lanes; ``stride`` floats from one group's centers
    to the next's. Two centers a 16-lane vector (the group's 8 values in both halves)."""
    lanes = 2 * GROUP
    vec = vector(lanes, F32)
    ivec = ir.VectorType(_I32, GROUP)
    bytes_ = ir.VectorType(ir.IntType(8), GROUP)
    regs = [cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * lanes)) for _ in range(pairs)]
    squares = cgutils.alloca_once_value(builder, ir.Constant(ivec, [0] * GROUP))
    i128 = ir.IntType(2 * WORD)
    bits = builder.or_(builder.zext(words[0], i128),
                       builder.shl(builder.zext(words[1], i128), ir.Constant(i128, WORD)))
    state = cgutils.alloca_once_value(builder, bits)
    cond = builder.append_basic_block("walk.cond")
    turn = builder.append_basic_block("walk.body")
    done = builder.append_basic_block("walk.end")
    builder.branch(cond)
    builder.position_at_end(cond)
    builder.cbranch(builder.icmp_unsigned("!=", builder.load(state), ir.Constant(i128, 0)), turn, done)
    builder.position_at_end(turn)
    m = builder.load(state)
    q = builder.trunc(builder.cttz(m, ir.Constant(ir.IntType(1), 1)), I64)
    ptr = builder.gep(x_data, [builder.add(x_at, builder.mul(q, ir.Constant(I64, GROUP)))])
    wide = builder.zext(builder.load(builder.bitcast(ptr, bytes_.as_pointer()), align=1), ivec)
    y8 = builder.uitofp(wide, vector(GROUP, F32))
    y = builder.shuffle_vector(y8, y8, ir.Constant(ir.VectorType(_I32, lanes), list(range(GROUP)) * 2))
    builder.store(builder.add(builder.load(squares), builder.mul(wide, wide)), squares)
    at = builder.add(t_at, builder.mul(q, stride))
    for c in range(pairs):
        cv = builder.load(vector_ptr(builder, t_data, builder.add(at, ir.Constant(I64, lanes * c)), lanes, F32),
                          align=32)
        builder.store(fma(builder, y, cv, builder.load(regs[c]), lanes, F32), regs[c])
    builder.store(builder.and_(m, builder.sub(m, ir.Constant(i128, 1))), state)
    builder.branch(cond)
    builder.position_at_end(done)
    accs = []
    for r in regs:
        acc = builder.load(r)
        for h in range(2):
            accs.append(builder.shuffle_vector(acc, acc, ir.Constant(ir.VectorType(_I32, GROUP),
                                                                     list(range(h * GROUP, (h + 1) * GROUP)))))
    for c0 in range(0, len(accs), GROUP):
        sums = _sum_lanes(builder, accs[c0 : c0 + GROUP])
        ptr = vector_ptr(builder, out_data, builder.add(out_at, ir.Constant(I64, c0)), GROUP, F32)
        builder.store(builder.fadd(builder.load(ptr, align=4), sums), ptr, align=4)
    squares_ = builder.load(squares)
    total = builder.load(sq)
    for lane in range(GROUP):
        total = builder.add(total, builder.zext(builder.extract_element(squares_, ir.Constant(_I32, lane)), I64))
    builder.store(total, sq)


@intrinsic
def _walk_products(typingctx: Any, x: Any, i: Any, g0: Any, lo: Any, hi: Any, table: Any, k0: Any, n: Any,
                   out: Any) -> Any:  # pragma: no cover - compiled
    """``out[k0 + c] += Σ_q x[i, 8 (g0 + q) ..] · table[g0 + q, k0 + c]`` for ``c < n`` (``1 <= n
    <=`` :data:`PART`) over the set bits ``q`` of ``lo`` (groups ``g0 ..``) and ``hi`` (groups
    ``g0 + 64 ..``), ``n`` even, each product's 8 lanes summed in float32; returns ``Σ_q Σ
    x[i, 8 (g0 + q) ..]²`` (int32 lanes, each the sum of at most 128 squares: exact). ``x`` uint8
    (n, d) and ``table`` float32 (d // 8, k, 8) C-contiguous (:func:`group_table`), ``out``
    float32 with 8 entries past ``k0 + n``."""
    if not (isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C" and x.dtype == types.uint8
            and isinstance(table, types.Array) and table.ndim == 3 and table.layout == "C"
            and table.dtype == types.float32 and isinstance(out, types.Array) and out.dtype == types.float32):
        return None
    sig = types.int64(x, i, g0, lo, hi, table, k0, n, out)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        a_x, a_i, a_g0, a_lo, a_hi, a_t, a_k0, a_n, a_out = args
        tx, ti, tg, tlo, thi, tt, tk, tn, to = signature.args
        cast = context.cast
        vx = context.make_array(tx)(context, builder, a_x)
        vt = context.make_array(tt)(context, builder, a_t)
        vo = context.make_array(to)(context, builder, a_out)
        d = cgutils.unpack_tuple(builder, vx.shape, 2)[1]
        stride = builder.mul(cgutils.unpack_tuple(builder, vt.shape, 3)[1], ir.Constant(I64, GROUP))
        g0 = cast(builder, a_g0, tg, types.intp)
        k0 = cast(builder, a_k0, tk, types.intp)
        x_at = builder.add(builder.mul(cast(builder, a_i, ti, types.intp), d), builder.mul(g0, ir.Constant(I64, GROUP)))
        t_at = builder.add(builder.mul(g0, stride), builder.mul(k0, ir.Constant(I64, GROUP)))
        words = [cast(builder, a_lo, tlo, types.int64), cast(builder, a_hi, thi, types.int64)]
        sq = cgutils.alloca_once_value(builder, ir.Constant(I64, 0))
        end = builder.append_basic_block("part.end")
        switch = builder.switch(cast(builder, a_n, tn, types.int64), end)
        for pairs in range(1, PART // 2 + 1):
            case = builder.append_basic_block(f"part.{pairs}")
            switch.add_case(ir.Constant(I64, 2 * pairs), case)
            builder.position_at_end(case)
            _emit_row_walk(builder, pairs, vx.data, x_at, words, vt.data, t_at, stride, vo.data, k0, sq)
            builder.branch(end)
        builder.position_at_end(end)
        return builder.load(sq)

    return sig, codegen


@intrinsic
def _first_min(typingctx: Any, g: Any, c_sq: Any, k: Any) -> Any:  # pragma: no cover - compiled
    """The first ``j < k`` of least ``v_j = float64(g[j]) + c_sq[j]`` (``g`` float32, ``c_sq``
    float64, both with 8 entries past ``k``, ``c_sq``'s infinite), 8 lanes at a time: the lanes'
    minima, their least, and the first lane equal to it; -1 when a ``v_j`` is NaN or the least is
    not finite (the caller then takes :func:`_nearest_center`, whose choice among NaNs this is
    not)."""
    if not (isinstance(g, types.Array) and g.dtype == types.float32 and isinstance(c_sq, types.Array)
            and c_sq.dtype == types.float64):
        return None
    sig = types.int64(g, c_sq, k)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        tg, tc, tk = signature.args
        g_data = context.make_array(tg)(context, builder, args[0]).data
        c_data = context.make_array(tc)(context, builder, args[1]).data
        k = context.cast(builder, args[2], tk, types.int64)
        vec = vector(GROUP)
        inf = ir.Constant(vec, [float("inf")] * GROUP)
        eight = ir.Constant(I64, GROUP)

        def values(c0: ir.Value) -> ir.Value:
            g8 = builder.load(vector_ptr(builder, g_data, c0, GROUP, F32), align=4)
            return builder.fadd(builder.fpext(g8, vec), builder.load(vector_ptr(builder, c_data, c0, GROUP), align=8))

        least = cgutils.alloca_once_value(builder, inf)
        nan = cgutils.alloca_once_value(builder, ir.Constant(ir.IntType(1), 0))
        with cgutils.for_range_slice(builder, ir.Constant(I64, 0), k, eight) as (c0, _):
            v = values(c0)
            m = builder.load(least)
            builder.store(builder.select(builder.fcmp_ordered("<", v, m), v, m), least)
            unordered = builder.bitcast(builder.fcmp_unordered("uno", v, v), ir.IntType(GROUP))
            builder.store(builder.or_(builder.load(nan), builder.icmp_unsigned("!=", unordered, ir.Constant(
                ir.IntType(GROUP), 0))), nan)
        m = builder.load(least)
        for width in (4, 2, 1):
            other = builder.shuffle_vector(m, m, ir.Constant(ir.VectorType(_I32, GROUP),
                                                             [(lane + width) % GROUP for lane in range(GROUP)]))
            m = builder.select(builder.fcmp_ordered("<", other, m), other, m)
        splat = builder.shuffle_vector(m, m, ir.Constant(ir.VectorType(_I32, GROUP), [0] * GROUP))
        first = cgutils.alloca_once_value(builder, ir.Constant(I64, -1))
        with cgutils.for_range_slice(builder, ir.Constant(I64, 0), k, eight) as (c0, _):
            bits = builder.bitcast(builder.fcmp_ordered("==", values(c0), splat), ir.IntType(GROUP))
            at = builder.add(c0, builder.zext(builder.cttz(bits, ir.Constant(ir.IntType(1), 0)), I64))
            take = builder.and_(builder.icmp_unsigned("!=", bits, ir.Constant(ir.IntType(GROUP), 0)),
                                builder.icmp_signed("<", builder.load(first), ir.Constant(I64, 0)))
            builder.store(builder.select(take, at, builder.load(first)), first)
        best = builder.load(first)
        finite = builder.fcmp_ordered("<", builder.extract_element(m, ir.Constant(_I32, 0)),
                                      ir.Constant(ir.DoubleType(), float("inf")))
        ok = builder.and_(builder.and_(builder.not_(builder.load(nan)), finite),
                          builder.icmp_signed("<", best, k))
        return builder.select(ok, best, ir.Constant(I64, -1))

    return sig, codegen


@numba.njit(nogil=True, cache=True)
def _row_products(x: np.ndarray, i: int, table: np.ndarray, mt: np.ndarray, out: np.ndarray) -> int:  # pragma: no cover
    """``out[:k] = x[i] · mt[j]`` (float32; ``out`` has :data:`GROUP` spare entries, zeroed here)
    over the row's non-zero 8-feature groups (two mask words a walk, the centers in parts of
    at most :data:`PART`), the features past the last full group one by one; returns the row's
    exact squared norm."""
    prefer_wide_vectors()
    d = x.shape[1]
    groups, k, _ = table.shape  # k even: the centers, and a zero one when their number is odd
    for j in range(out.shape[0]):
        out[j] = 0.0
    q = 0
    for g0 in range(0, groups, 2 * WORD):
        span = min(2 * WORD, groups - g0)
        lo = block_groups(x, i, g0, min(span, WORD))
        hi = block_groups(x, i, g0 + WORD, span - WORD) if span > WORD else 0
        if lo == 0 and hi == 0:
            continue
        parts = -(-k // PART)
        pairs = k // 2
        for p in range(parts):
            k0 = 2 * (p * pairs // parts)
            s = _walk_products(x, i, g0, lo, hi, table, k0, 2 * ((p + 1) * pairs // parts) - k0, out)
            if p == 0:
                q += s
    for f in range(groups * GROUP, d):
        v = x[i, f]
        if v != 0:
            q += np.int64(v) * np.int64(v)
            a = np.float32(v)
            for j in range(mt.shape[0]):
                out[j] += a * mt[j, f]
    return q


@numba.njit(nogil=True, cache=True)
def row_products(x: np.ndarray, i: int, table: np.ndarray, mt: np.ndarray, out: np.ndarray) -> int:  # pragma: no cover
    """:func:`_row_products` for the compiled loops of other modules (the rows the Elkan bounds
    leave open, :mod:`daskcluster.kernels.elkan`): ``out[:k] = x[i] · mt[j]`` over the uint8 row's
    non-zero groups (``table``: :func:`group_table` of ``mt``; ``out`` with :data:`GROUP` spare
    entries); returns the row's exact squared norm."""
    return _row_products(x, i, table, mt, out)


@numba.njit(nogil=True, cache=True)
def _group_share(x: np.ndarray, rows: int) -> float:  # pragma: no cover - compiled
    """The share of non-zero 8-feature groups among the full groups of ``x``'s first ``rows`` rows."""
    groups = x.shape[1] // GROUP
    if rows == 0 or groups == 0:
        return 0.0
    nonzero = 0
    for i in range(rows):
        for g0 in range(0, groups, WORD):
            nonzero += bit_count(block_groups(x, i, g0, min(WORD, groups - g0)))
    return nonzero / (rows * groups)


def walks_pay(x: np.ndarray) -> bool:
    """Whether the uint8 rows ``x`` take the walks over their non-zero groups: at most
    :data:`WALK_SHARE` of the groups of their first :data:`SHARE_ROWS` rows hold a non-zero
    (rows of fewer than 8 features never do)."""
    return x.shape[1] >= GROUP and _group_share(x, min(SHARE_ROWS, x.shape[0])) <= WALK_SHARE


@numba.njit(nogil=True, cache=True)
def _bytes_products_groups(x: np.ndarray, table: np.ndarray, mt: np.ndarray, g: np.ndarray,
                           x_sq: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`products` of uint8 rows by :func:`_row_products`, row by row."""
    prefer_wide_vectors()
    k = mt.shape[0]
    out = np.zeros(k + GROUP, dtype=np.float32)
    for i in range(x.shape[0]):
        prefetch_row(x, i + _ROWS)
        x_sq[i] = _row_products(x, i, table, mt, out)
        for j in range(k):
            g[i, j] = out[j]


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
        better = v < bv  # selects, not branches: which center is nearest is not predictable
        bv = v if better else bv
        best = j if better else best
    return best, bv


@numba.njit(nogil=True, cache=True)
def distance(bv: float, x_sq: float) -> float:  # pragma: no cover - compiled
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
    return best, distance(bv, x_sq)


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
            prefetch_row(x, i + t + _ROWS)
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


@numba.njit(nogil=True, cache=True, inline="always")
def lloyd_row(x: np.ndarray, i: int, table: np.ndarray, mt: np.ndarray, out: np.ndarray, c_pad: np.ndarray,
              c_sq: np.ndarray) -> tuple[int, float, int]:  # pragma: no cover - compiled
    """Lloyd's rule for uint8 row ``i`` over its non-zero groups: its nearest center (the first of
    equals of ``float64(x·mt[j]) + c_sq[j]``, the products by :func:`_row_products`), that value
    and the row's exact squared norm. ``c_pad``: ``c_sq`` and :data:`GROUP` infinities. Inlined
    into its callers' loops (the Elkan steps' open rows, :mod:`.elkan`; as a call, 5 % of twenty
    bounded steps)."""
    k = mt.shape[0]
    q = _row_products(x, i, table, mt, out)
    lab = _first_min(out, c_pad, k)
    if lab < 0:
        lab, bv = _nearest_center(out.reshape(1, -1), 0, k, c_sq)
    else:
        bv = np.float64(out[lab]) + c_sq[lab]
    return lab, bv, q


@numba.njit(nogil=True, cache=True)
def _bytes_lloyd_groups(x: np.ndarray, table: np.ndarray, mt: np.ndarray, c_sq: np.ndarray, labels: np.ndarray,
                        min_sq: np.ndarray, w: np.ndarray, weighted: bool, sums: np.ndarray,
                        wic: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`lloyd_step` of uint8 rows, row by row, the products over each row's non-zero
    8-feature groups (:func:`_row_products`); unweighted rows summed in uint16 per cluster, each
    cluster's flushed after :data:`_FLUSH` of its rows."""
    prefer_wide_vectors()
    n, d = x.shape
    k = mt.shape[0]
    out = np.zeros(k + GROUP, dtype=np.float32)
    c_pad = np.full(k + GROUP, np.inf)
    c_pad[:k] = c_sq
    acc = np.zeros((k, d), dtype=np.uint16)
    count = np.zeros(k, dtype=np.int64)
    for i in range(n):
        prefetch_row(x, i + _ROWS)
        lab, bv, q = lloyd_row(x, i, table, mt, out, c_pad, c_sq)
        labels[i] = lab
        min_sq[i] = distance(bv, float(q))
        if weighted:
            wic[lab] += w[i]
            _add_weighted(x, i, w[i], sums, lab)
            continue
        add_byte_row(x, i, acc, count, lab, sums)
    if not weighted:
        for j in range(k):
            wic[j] += np.float64(count[j])
            flush_bytes(acc, j, sums)


@numba.njit(nogil=True, cache=True, inline="always")
def add_byte_row(x: np.ndarray, i: int, acc: np.ndarray, count: np.ndarray, lab: int,
                 sums: np.ndarray) -> None:  # pragma: no cover - compiled
    """uint8 row ``i`` added to cluster ``lab``'s uint16 sums ``acc[lab]``, which go to the float64
    ``sums`` after every :data:`_FLUSH` of its rows (:func:`flush_bytes`); ``count[lab] += 1``.
    Inlined into its callers' loops (as a call, its row views cost ~40 ns a row)."""
    for f in range(x.shape[1]):
        acc[lab, f] = np.uint16(acc[lab, f] + np.uint16(x[i, f]))
    count[lab] += 1
    if count[lab] % _FLUSH == 0:
        flush_bytes(acc, lab, sums)


@numba.njit(nogil=True, cache=True)
def flush_bytes(acc: np.ndarray, j: int, sums: np.ndarray) -> None:  # pragma: no cover - compiled
    """``sums[j] += acc[j]`` in float64, ``acc[j]`` zeroed."""
    prefer_wide_vectors()
    for f in range(acc.shape[1]):
        sums[j, f] += np.float64(acc[j, f])
        acc[j, f] = 0


@numba.njit(nogil=True, cache=True)
def _add_weighted(x: np.ndarray, i: int, wt: float, sums: np.ndarray, lab: int) -> None:  # pragma: no cover
    """``sums[lab] += wt x[i]`` in float64, as :func:`~daskcluster.kernels.assign.add_rows` adds a
    weighted row."""
    prefer_wide_vectors()
    row = sums[lab]
    for f in range(x.shape[1]):
        row[f] += wt * np.float64(x[i, f])


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
            min_sq[i + t] = distance(bv, q)
            prefetch_row(x, i + t + _ROWS)


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
    if x.dtype == np.uint8 and walks_pay(x):
        _bytes_lloyd_groups(x, group_table(minus2), minus2, c_sq, labels, min_sq, w, weighted, sums, wic)
        return
    widths = center_groups(minus2.shape[0])
    step = _bytes_lloyd if x.dtype == np.uint8 else _float_lloyd
    step(x, minus2, widths, c_sq, labels, min_sq, w, weighted, sums, wic)
