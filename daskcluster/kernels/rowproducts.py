"""The product of a tile of rows with a few centers, straight from the block's rows.

For few centers (``k`` up to :data:`MAX_CENTERS`), casting a tile to the compute dtype and
multiplying it by ``-2 Cᵀ`` with one BLAS GEMM spends most of its time moving the tile, not
multiplying: the cast writes a float copy of the tile, and the GEMM reads it again to pack it
(on MNIST, 784 uint8 features and 10 centers: cast 4.7 ms, GEMM 10.7 ms, float64 row norms
2.7 ms per chunk of 32,768 rows, and the GEMM costs as much for 16 centers as for 10). Here one
compiled loop reads the rows from the block, in their storage dtype, converts a group of four
rows into a small buffer that stays in L1, sums each row's squares in a loop of its own (fused
with the conversion, both loops vectorized half as well), and takes the dot products of the
four rows with the centers four centers at a time (sixteen independent float32 accumulators,
vectorized over the features by the compiler: plain Numba, no instruction-set intrinsics). Its
cost grows with ``k``; below the crossover it is about half of cast + GEMM + norms (see
``benchmarks/RESULTS-codecs.md``, "The compiled product of few centers").

Exact where it matters:

* ``uint8`` rows: the squared norms are sums of integer squares in int32 (int64 beyond 33,025
  features), exact (as the float64 loop's are for such rows); ``float32`` rows: float64 sums, as
  :func:`~daskcluster.kernels.assign.row_sq_norms64`.
* the products are float32 dot products of length ``d`` like the GEMM's, summed in another
  order: each is within the same worst-case bound ``γ_d Σ |2 x_f c_f|`` (``γ_d ≈ d ε``) of the
  exact product as the GEMM's, a bound the Elkan bounds' ``slack``
  (:func:`daskcluster.kernels.bounds.slack`) already covers, so labels can differ from the
  GEMM path's only between centers whose distances tie within that rounding.

Rows holding NaN or infinity make their norm non-finite; the caller's check then names them
(:func:`~daskcluster.kernels.blocks.check_finite_rows`).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

#: Centers up to which the compiled product costs less than cast + GEMM + norms on a 784-feature
#: uint8 tile (measured crossover between 30 and 50 centers on OpenBLAS SkylakeX, one thread).
MAX_CENTERS = 32

#: Rows and centers of one register block of the compiled product.
_ROWS, _CENTERS = 4, 4

_STORAGE = (np.dtype(np.uint8), np.dtype(np.float32))


def applies(block: Any, minus2_t: np.ndarray) -> bool:
    """Whether :func:`products` serves ``block`` against ``minus2_t`` (d, k): a C-contiguous
    NumPy block of ``uint8`` or ``float32`` rows, a float32 table of at most
    :data:`MAX_CENTERS` centers."""
    return (
        type(block) is np.ndarray
        and block.ndim == 2
        and block.dtype in _STORAGE
        and block.flags.c_contiguous
        and minus2_t.dtype == np.float32
        and 0 < minus2_t.shape[1] <= MAX_CENTERS
    )


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _dot_group(r: np.ndarray, nr: int, mt: np.ndarray, g: np.ndarray, i: int) -> None:  # pragma: no cover
    """``g[i + t, j] = r[t] · mt[j]`` for the ``nr`` rows of ``r`` (4, d) and every center of
    ``mt`` (k, d), four centers at a time (a tail block repeats the last center, not stored)."""
    k, d = mt.shape
    for j0 in range(0, k, _CENTERS):
        j1 = min(j0 + 1, k - 1)
        j2 = min(j0 + 2, k - 1)
        j3 = min(j0 + 3, k - 1)
        s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = np.float32(0.0)
        s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = np.float32(0.0)
        for f in range(d):
            m0 = mt[j0, f]
            m1 = mt[j1, f]
            m2 = mt[j2, f]
            m3 = mt[j3, f]
            a0 = r[0, f]
            a1 = r[1, f]
            a2 = r[2, f]
            a3 = r[3, f]
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
        block = ((s00, s01, s02, s03), (s10, s11, s12, s13), (s20, s21, s22, s23), (s30, s31, s32, s33))
        for t in range(nr):
            row = block[t]
            g[i + t, j0] = row[0]
            if j0 + 1 < k:
                g[i + t, j0 + 1] = row[1]
            if j0 + 2 < k:
                g[i + t, j0 + 2] = row[2]
            if j0 + 3 < k:
                g[i + t, j0 + 3] = row[3]


#: Features up to which a uint8 row's squared norm fits int32 (``255² d < 2³¹``).
_INT32_FEATURES = (2**31 - 1) // 255**2


@numba.njit(nogil=True, cache=True)
def _byte_sq_norm(xr: np.ndarray) -> int:  # pragma: no cover - compiled
    """``Σ xr_f²`` of a uint8 row of at most :data:`_INT32_FEATURES` features, in int32 (exact;
    eight lanes a vector where int64 has four)."""
    q = np.int32(0)
    for f in range(xr.shape[0]):
        a = np.int32(xr[f])
        q = np.int32(q + np.int32(a * a))
    return int(q)


@numba.njit(nogil=True, cache=True)
def _byte_sq_norm_wide(xr: np.ndarray) -> int:  # pragma: no cover - compiled
    """``Σ xr_f²`` of a uint8 row of any length, in int64."""
    q = np.int64(0)
    for f in range(xr.shape[0]):
        a = np.int64(xr[f])
        q += a * a
    return int(q)


@numba.njit(nogil=True, cache=True)
def _bytes_products(x: np.ndarray, mt: np.ndarray, g: np.ndarray, x_sq: np.ndarray) -> None:  # pragma: no cover
    """:func:`products` of uint8 rows: exact integer squared norms."""
    n, d = x.shape
    r = np.zeros((_ROWS, d), dtype=np.float32)
    for i in range(0, n, _ROWS):
        nr = min(_ROWS, n - i)
        for t in range(nr):
            for f in range(d):
                r[t, f] = np.float32(x[i + t, f])
            x_sq[i + t] = _byte_sq_norm(x[i + t]) if d <= _INT32_FEATURES else _byte_sq_norm_wide(x[i + t])
        for t in range(nr, _ROWS):
            r[t, :] = 0.0
        _dot_group(r, nr, mt, g, i)


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _float_products(x: np.ndarray, mt: np.ndarray, g: np.ndarray, x_sq: np.ndarray) -> None:  # pragma: no cover
    """:func:`products` of float32 rows: float64 squared norms."""
    n, d = x.shape
    r = np.zeros((_ROWS, d), dtype=np.float32)
    for i in range(0, n, _ROWS):
        nr = min(_ROWS, n - i)
        for t in range(nr):
            for f in range(d):
                r[t, f] = x[i + t, f]
            q = 0.0
            for f in range(d):
                v = np.float64(x[i + t, f])
                q += v * v
            x_sq[i + t] = q
        for t in range(nr, _ROWS):
            r[t, :] = 0.0
        _dot_group(r, nr, mt, g, i)


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
    if x.dtype == np.uint8:
        _bytes_products(x, minus2, g, x_sq)
    else:
        _float_products(x, minus2, g, x_sq)
