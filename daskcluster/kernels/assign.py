"""Nearest centers, tile by tile: the assignment step of every center-based kernel.

A block of rows (in its storage dtype) is worked through in *tiles* of a few hundred rows,
small enough that a tile, its products with the centers and the per-cluster sums it feeds
stay in the core's L2 cache. Each tile is

1. cast into one reused buffer of the compute dtype (the only read of the rows from memory),
2. multiplied once by ``-2 Cᵀ`` (one BLAS GEMM of shape (tile, d) × (d, k)),
3. scanned once by a compiled loop that takes each row's arg-min of ``‖c‖² - 2 x·c``, adds
   the row's squared norm (computed in float64 in the same loop, never stored per block), and
   — for a Lloyd step — adds the row to its cluster's float64 sums, while the row is in cache.

So a Lloyd pass reads each row once and makes one GEMM per tile: its speed no longer depends
on how fast a BLAS build runs one large skinny product or how fast memory streams a
many-megabyte slice four times. The compiled loops are Numba functions (``nogil``, cached on
disk), so Dask's threads run them in parallel.

For few centers (at most :data:`~daskcluster.kernels.rowproducts.MAX_CENTERS`) and uint8 or
float32 rows, steps 1 and 2 and the norms are one compiled loop over the block's own rows
(:mod:`daskcluster.kernels.rowproducts`): there the GEMM's packing of a float copy of the tile
cost more than the multiplications, and the loop costs about half as much. A Lloyd step there
(:func:`assign_and_sum`) is one compiled loop over the whole block: products, arg-min and sums
of each group of four rows while they are in L1; for unweighted uint8 rows on CPUs with AVX-512
VNNI, from 8-bit integer products with the same labels and sums
(:mod:`daskcluster.kernels.byteproducts`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from . import byteproducts as BP
from . import rowproducts as P
from . import sparse as S
from .blocks import ChunkInfo, check_finite_rows

#: Bytes of one cast tile of rows (compute dtype): tiles of about this size stay in L2. Only the
#: rows count: the tile's product with the centers is streamed through once, and a GEMM with
#: many centers wants tall tiles (at k = 1,000 on MNIST, 128-row tiles cost 16 % more than 334).
TILE_BYTES = 2**20


def tile_rows(n_features: int, itemsize: int) -> int:
    """Rows per tile: ``TILE_BYTES`` of rows in the compute dtype, a multiple of 32 in [64, 4096]."""
    rows = TILE_BYTES // max(1, n_features * itemsize)
    return int(min(4096, max(64, rows - rows % 32)))


def block_tile_rows(block: Any, n_columns: int, itemsize: int) -> int:
    """Rows per tile of ``block``: :func:`tile_rows` of its features for a dense block, in the
    compute dtype (``itemsize`` bytes, ``n_columns`` products a row), or in its storage dtype
    where the compiled products read the rows in place
    (:func:`daskcluster.kernels.rowproducts.serves`: no cast tile; uint8 rows of MNIST's 784
    features in tiles of 1,312 rather than 320 rows, the first Elkan pass of a 32,768-row chunk
    8.5 -> 7.3 ms, one thread); rows sized by their stored values and ``n_columns`` products for
    a sparse block (:func:`daskcluster.kernels.sparse.tile_rows`)."""
    if S.is_sparse(block):
        return S.tile_rows(block, n_columns, itemsize)
    if itemsize == 4 and P.serves(block, n_columns, np.float32):
        return tile_rows(block.shape[1], block.dtype.itemsize)
    return tile_rows(block.shape[1], itemsize)


@dataclass(frozen=True)
class CenterTable:
    """Centers ready for the assignment GEMM.

    minus2_t : (n_features, n_centers), compute dtype, ``-2 Cᵀ``.
    sq_norms : (n_centers,), float64, ``‖c‖²`` computed in float64.

    Build with :meth:`of` from centers already mapped to the storage space.
    """

    minus2_t: np.ndarray
    sq_norms: np.ndarray

    @classmethod
    def of(cls, centers: np.ndarray) -> CenterTable:
        c64 = centers.astype(np.float64)
        return cls(np.ascontiguousarray((-2 * centers).T), np.einsum("ij,ij->i", c64, c64))

    @property
    def n_centers(self) -> int:
        return int(self.minus2_t.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self.minus2_t.dtype


# --------------------------------------------------------------------------- compiled loops


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def row_sq_norms64(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[i] = ‖x[i]‖²`` accumulated in float64."""
    n, d = x.shape
    for i in range(n):
        s = 0.0
        for f in range(d):
            v = np.float64(x[i, f])
            s += v * v
        out[i] = s


@numba.njit(nogil=True, cache=True)
def shifted_sums(x: np.ndarray, shift: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> None:  # pragma: no cover
    """``s1 += Σ (x - shift)`` and ``s2 += Σ (x - shift)²`` per feature, in float64 (the
    moments of :func:`daskcluster.kernels.kmeans.block_moments`)."""
    n, d = x.shape
    for i in range(n):
        for f in range(d):
            v = np.float64(x[i, f]) - shift[f]
            s1[f] += v
            s2[f] += v * v


#: uint8 rows summed in uint32 lanes between flushes: 65,536 squares of 255 stay below 2^32.
_BYTE_FLUSH = 65_536


@numba.njit(nogil=True, cache=True)
def byte_sums(x: np.ndarray, t1: np.ndarray, t2: np.ndarray) -> None:  # pragma: no cover - compiled
    """``t1 += Σ x`` and ``t2 += Σ x²`` per feature of ``uint8`` rows, exactly (int64 totals of
    uint32 lanes flushed every :data:`_BYTE_FLUSH` rows)."""
    n, d = x.shape
    a1 = np.zeros(d, dtype=np.uint32)
    a2 = np.zeros(d, dtype=np.uint32)
    for i0 in range(0, n, _BYTE_FLUSH):
        for i in range(i0, min(n, i0 + _BYTE_FLUSH)):
            for f in range(d):
                v = np.uint32(x[i, f])
                a1[f] += v
                a2[f] += v * v
        for f in range(d):
            t1[f] += np.int64(a1[f])
            t2[f] += np.int64(a2[f])
            a1[f] = 0
            a2[f] = 0


@numba.njit(nogil=True, cache=True)
def nearest_in_product(g: np.ndarray, c_sq: np.ndarray, x_sq: np.ndarray, labels: np.ndarray,
                       min_sq: np.ndarray) -> None:  # pragma: no cover - compiled
    """From ``g = x·(-2Cᵀ)`` (rows, k): each row's nearest center (first of equals, as
    ``numpy.argmin``) and squared distance ``‖x‖² + min(‖c‖² - 2x·c)``, clipped at 0.

    A row whose minimum is not finite (NaN or infinity in the row, or an overflow of the
    product) gets a NaN distance, so the caller's finiteness check sees it.
    """
    n, k = g.shape
    for i in range(n):
        best = 0
        bv = np.float64(g[i, 0]) + c_sq[0]
        for j in range(1, k):
            v = np.float64(g[i, j]) + c_sq[j]
            if v < bv:
                bv = v
                best = j
        labels[i] = best
        m = bv + x_sq[i]
        if not np.isfinite(bv):
            m = np.nan
        elif m < 0.0:
            m = 0.0
        min_sq[i] = m


def add_rows(x: np.ndarray, labels: np.ndarray, w: np.ndarray, weighted: bool, sums: np.ndarray,
             wic: np.ndarray) -> None:
    """``sums[labels[i]] += w[i] x[i]`` and ``wic[labels[i]] += w[i]`` in float64 (``w`` = 1
    when not ``weighted``), in row order.

    Unweighted uint8 rows (more than four per cluster) are summed per cluster in uint16 first
    (:func:`_add_byte_rows`): when ``sums`` holds sums of such rows (integers below 2⁵³, which
    float64 holds exactly) the result is the same bits as the float64 loop's
    (:func:`_add_rows`), at a fraction of its cost.
    """
    if x.dtype == np.uint8 and not weighted and x.ndim == 2 and 4 * sums.shape[0] <= x.shape[0]:
        _add_byte_rows(x, labels, sums, wic)
    else:
        _add_rows(x, labels, w, weighted, sums, wic)


#: Rows summed in uint16 before a flush to float64: 255 * this stays below 2**16.
_BYTE_ROWS = 256


@numba.njit(nogil=True, cache=True)
def _add_byte_rows(x: np.ndarray, labels: np.ndarray, sums: np.ndarray,
                   wic: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`add_rows` of unweighted uint8 rows: uint16 sums per cluster over
    :data:`_BYTE_ROWS` rows at a time (sixteen lanes a vector), each block's added to the
    float64 sums (exact: see :func:`add_rows`)."""
    n, d = x.shape
    k = sums.shape[0]
    acc = np.zeros((k, d), dtype=np.uint16)
    count = np.zeros(k, dtype=np.int64)
    for b0 in range(0, n, _BYTE_ROWS):
        acc[:] = 0
        for i in range(b0, min(n, b0 + _BYTE_ROWS)):
            lab = labels[i]
            count[lab] += 1
            row = acc[lab]
            xr = x[i]
            for f in range(d):
                row[f] = np.uint16(row[f] + np.uint16(xr[f]))
        for j in range(k):
            for f in range(d):
                sums[j, f] += np.float64(acc[j, f])
    for j in range(k):
        wic[j] += np.float64(count[j])


@numba.njit(nogil=True, cache=True)
def _add_rows(x: np.ndarray, labels: np.ndarray, w: np.ndarray, weighted: bool, sums: np.ndarray,
              wic: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`add_rows` in float64, row by row."""
    n, d = x.shape
    for i in range(n):
        lab = labels[i]
        wi = w[i] if weighted else 1.0
        wic[lab] += wi
        if weighted:
            for f in range(d):
                sums[lab, f] += wi * np.float64(x[i, f])
        else:
            for f in range(d):
                sums[lab, f] += np.float64(x[i, f])


@numba.njit(nogil=True, cache=True)
def distances_from_product(g: np.ndarray, c_sq: np.ndarray, x_sq: np.ndarray,
                           out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[i, j] = max(‖x_i‖² + ‖c_j‖² - 2 x_i·c_j, 0)`` from ``g = x·(-2Cᵀ)``."""
    n, k = g.shape
    for i in range(n):
        for j in range(k):
            v = np.float64(g[i, j]) + c_sq[j] + x_sq[i]
            out[i, j] = v if v > 0.0 else (v if np.isnan(v) else 0.0)


@numba.njit(nogil=True, cache=True)
def _farthest(sq: np.ndarray, m: int, top: np.ndarray) -> None:  # pragma: no cover - compiled
    """``top`` (m,) the rows of the ``m`` largest ``sq``, the lower row first among equals (NaN
    never taken), any order: one pass keeping the ``m`` so far and the least of them."""
    best = np.full(m, -np.inf)
    top[:] = -1
    low = 0  # the slot of the least kept value (the latest row among equals)
    for i in range(sq.shape[0]):
        v = sq[i]
        if v > best[low] or (top[low] < 0 and v == v):
            best[low] = v
            top[low] = i
            for j in range(m):
                if best[j] < best[low] or (best[j] == best[low] and top[j] > top[low]):
                    low = j


def farthest(sq: np.ndarray, m: int) -> np.ndarray:
    """The rows (int64, ascending) of the ``m`` largest values of ``sq`` (n,), the lower row
    first among equal values; all rows when ``m >= n``."""
    n = sq.shape[0]
    if m >= n:
        return np.arange(n)
    top = np.empty(max(m, 0), dtype=np.int64)
    if m > 0:
        _farthest(np.ascontiguousarray(sq, dtype=np.float64), m, top)
    return np.sort(top[top >= 0])


_NO_WEIGHTS = np.zeros(0)


def add_tile_rows(x: Any, labels: np.ndarray, w: np.ndarray, weighted: bool, sums: np.ndarray,
                  wic: np.ndarray) -> None:
    """:func:`add_rows` for a tile of either kind: dense rows, or a
    :class:`~daskcluster.kernels.sparse.CsrTile`."""
    if isinstance(x, S.CsrTile):
        S.add_rows(x, labels, w, weighted, sums, wic)
    else:
        add_rows(x, labels, w, weighted, sums, wic)


def check_finite(x: Any, x_sq: np.ndarray, chunk: ChunkInfo, start: int) -> None:
    """:func:`~daskcluster.kernels.blocks.check_finite_rows` for a tile of either kind."""
    if isinstance(x, S.CsrTile):
        S.check_finite_tile(x, x_sq, chunk, start)
    else:
        check_finite_rows(x, x_sq, chunk, start)


def weights_arg(w: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """The ``(w, weighted)`` pair the compiled loops take."""
    return (_NO_WEIGHTS, False) if w is None else (np.ascontiguousarray(w, dtype=np.float64), True)


# --------------------------------------------------------------------------- tile iterators


def iter_products(
    block: Any, minus2_t: np.ndarray, chunk: ChunkInfo, rows: int | None = None
) -> Iterator[tuple[int, int, Any, np.ndarray, np.ndarray]]:
    """Yield ``(start, stop, x, x_sq, g)`` per tile of ``block``.

    ``x`` (tile, d) is the tile's rows, ``x_sq`` (tile,) their float64 squared norms,
    ``g = x @ minus2_t`` (tile, k) in ``minus2_t``'s dtype. ``x_sq`` and ``g`` are views of
    buffers reused by the next tile; so is ``x`` when it is the tile cast to ``minus2_t``'s dtype
    (one GEMM per tile), while for few centers and uint8 or float32 rows ``x`` is a view of the
    block itself, in its storage dtype, and one compiled loop makes ``x_sq`` and ``g`` from it
    (:mod:`daskcluster.kernels.rowproducts`, no float copy of the tile); the values are the
    same numbers either way. Rows holding NaN or infinity raise
    :class:`~daskcluster.errors.NonFiniteDataError` naming the chunk, row and feature.

    A sparse block (CSR) yields :class:`~daskcluster.kernels.sparse.CsrTile` tiles and one
    sparse × dense product per tile (:func:`daskcluster.kernels.sparse.iter_products`); ``rows``
    defaults to :func:`block_tile_rows`.
    """
    n, d = block.shape
    if n == 0:
        return
    dtype = minus2_t.dtype
    if S.is_sparse(block):
        yield from S.iter_products(block, minus2_t, chunk, rows or block_tile_rows(block, minus2_t.shape[1],
                                                                                   dtype.itemsize))
        return
    rows = max(1, min(rows or tile_rows(d, dtype.itemsize), n))
    gbuf = np.empty((rows, minus2_t.shape[1]), dtype=dtype)
    sq_buf = np.empty(rows)
    if P.applies(block, minus2_t):
        tiles = P.BlockProducts(block, np.ascontiguousarray(minus2_t.T))
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            x, g, x_sq = block[start:stop], gbuf[: stop - start], sq_buf[: stop - start]
            tiles(x, g, x_sq)
            if not np.isfinite(x_sq).all():
                check_finite_rows(x, x_sq, chunk, start)
            yield start, stop, x, x_sq, g
        return
    buf = np.empty((rows, d), dtype=dtype)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        x, g, x_sq = buf[: stop - start], gbuf[: stop - start], sq_buf[: stop - start]
        np.copyto(x, block[start:stop], casting="unsafe")
        row_sq_norms64(x, x_sq)
        if not np.isfinite(x_sq).all():
            check_finite_rows(x, x_sq, chunk, start)
        np.matmul(x, minus2_t, out=g)
        yield start, stop, x, x_sq, g


def iter_nearest(
    block: Any, table: CenterTable, chunk: ChunkInfo, labels: np.ndarray, min_sq: np.ndarray,
    rows: int | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Fill ``labels`` (n_rows,) and ``min_sq`` (n_rows,) with each row's nearest center and
    squared distance to it (storage space, float64), a tile at a time; yield
    ``(start, stop, x)`` after each tile, ``x`` the cast tile (a reused buffer), so the caller
    can use the rows while they are in cache."""
    for start, stop, x, x_sq, g in iter_products(block, table.minus2_t, chunk, rows):
        lab, sq = labels[start:stop], min_sq[start:stop]
        nearest_in_product(g, table.sq_norms, x_sq, lab, sq)
        if not np.isfinite(sq).all():
            check_finite(x, sq, chunk, start)
        yield start, stop, x


def assign_and_sum(block: Any, table: CenterTable, chunk: ChunkInfo, labels: np.ndarray, min_sq: np.ndarray,
                   w: np.ndarray, weighted: bool, sums: np.ndarray, wic: np.ndarray,
                   rows: int | None = None) -> float | None:
    """A Lloyd step over ``block``: each row's nearest center and squared distance, and the rows
    added to their clusters' sums. One read of the block.

    Parameters
    ----------
    block : ndarray or sparse matrix of shape (n_rows, n_features)
        The rows in their storage dtype.
    table : CenterTable
        The centers, ``k`` of them.
    chunk : ChunkInfo
        Where the block is, to name a row holding NaN or infinity
        (:class:`~daskcluster.errors.NonFiniteDataError`).
    labels, min_sq : ndarray of shape (n_rows,), int64 and float64
        Filled as by :func:`iter_nearest`.
    w, weighted : see :func:`weights_arg`; ``w`` of shape (n_rows,) or (0,).
    sums : ndarray of shape (k, n_features), float64
        ``sums[labels[i]] += w[i] x[i]`` (compute dtype of ``x``), in row order.
    wic : ndarray of shape (k,), float64
        ``wic[labels[i]] += w[i]``.
    rows : int, optional
        Rows per tile where the block is worked through in tiles (:func:`iter_nearest`).

    Returns
    -------
    inertia : float or None
        The block's inertia (storage space) where the step computed it more exactly than the
        sum of ``min_sq``; None where that sum is it.

    Notes
    -----
    Few centers and uint8 or float32 rows (:func:`daskcluster.kernels.rowproducts.applies`):
    one compiled loop, :func:`daskcluster.kernels.rowproducts.lloyd_step`, whose labels,
    distances and sums are those of :func:`iter_nearest` and :func:`add_rows` (the sums the same
    bits for the same labels). Unweighted uint8 rows on a CPU with 8-bit integer multiply-adds
    (:func:`daskcluster.kernels.byteproducts.serves`): its labels and sums from integer products,
    the distances within a bound and the inertia exact to float64 rounding
    (:func:`daskcluster.kernels.byteproducts.lloyd_step`). Otherwise :func:`iter_nearest`, then
    :func:`add_tile_rows` of each tile while it is in cache.
    """
    if P.applies(block, table.minus2_t):
        minus2 = np.ascontiguousarray(table.minus2_t.T)
        if BP.serves(block, minus2, table.sq_norms, weighted) and P.walks_pay(block):
            return BP.lloyd_step(block, _byte_centers(table, minus2), labels, min_sq, sums, wic)
        P.lloyd_step(block, minus2, table.sq_norms, labels, min_sq, w, weighted, sums, wic)
        if not np.isfinite(min_sq).all():
            check_finite_rows(block, min_sq, chunk, 0)
        return None
    for start, stop, x in iter_nearest(block, table, chunk, labels, min_sq, rows):
        add_tile_rows(x, labels[start:stop], w[start:stop] if weighted else w, weighted, sums, wic)
    return None


def _byte_centers(table: CenterTable, minus2: np.ndarray) -> BP.ByteCenters:
    """``table``'s :class:`~daskcluster.kernels.byteproducts.ByteCenters`, made once and kept on
    it (a pass's table is shared by its chunks' tasks in a process)."""
    cache = table.__dict__
    if "_bytes" not in cache:
        cache["_bytes"] = BP.ByteCenters(minus2, table.sq_norms)
    return cache["_bytes"]  # type: ignore[no-any-return]


def nearest(block: Any, table: CenterTable, chunk: ChunkInfo) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest center (int64) and squared distance to it (float64, storage space):
    shapes (n_rows,). One read of the block."""
    n = block.shape[0]
    labels = np.empty(n, dtype=np.int64)
    min_sq = np.empty(n)
    for _ in iter_nearest(block, table, chunk, labels, min_sq):
        pass
    return labels, min_sq
