"""Level-3 BLAS products for compiled kernels, without the GIL.

SciPy's Python wrappers of BLAS (``scipy.linalg.blas``) hold the GIL for the whole call, so
the threads of a pass that call them run one at a time. These are the same routines, taken from
``scipy.linalg.cython_blas`` (the BLAS NumPy and SciPy link) and called from Numba code compiled
with ``nogil=True``: a kernel passes the routine (:data:`DTRMM`, :data:`DSYRK`, :data:`DGEMM`) to its compiled
function, which calls the helpers below (the routine is an argument, not a global, so that the
compiled code can be cached).

Arrays are C-ordered float64; BLAS sees them transposed (Fortran order), which the helpers
account for.
"""

from __future__ import annotations

import ctypes

import numba
import numpy as np
from numba.extending import get_cython_function_address

_P = ctypes.c_void_p

#: ``dtrmm(side, uplo, transa, diag, m, n, alpha, a, lda, b, ldb)``, every argument a pointer.
DTRMM = ctypes.CFUNCTYPE(None, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P)(
    get_cython_function_address("scipy.linalg.cython_blas", "dtrmm"))
#: ``dsyrk(uplo, trans, n, k, alpha, a, lda, beta, c, ldc)``, every argument a pointer.
DSYRK = ctypes.CFUNCTYPE(None, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P)(
    get_cython_function_address("scipy.linalg.cython_blas", "dsyrk"))
#: ``dgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)``, every argument a pointer.
DGEMM = ctypes.CFUNCTYPE(None, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P)(
    get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))


@numba.njit(nogil=True, cache=True)
def _char(c: str) -> np.ndarray:  # pragma: no cover (compiled)
    return np.array([ord(c)], dtype=np.uint8)


@numba.njit(nogil=True, cache=True)
def trmm_upper(trmm, y: np.ndarray, factor: np.ndarray) -> None:  # type: ignore[no-untyped-def]  # pragma: no cover
    """``y := y @ factor`` in place, ``factor`` (d, d) upper triangular, ``y`` (n, d); both
    C-contiguous. ``d (d + 1) / 2`` multiply-adds per row (BLAS ``dtrmm``: in Fortran order
    ``y^T := factor^T y^T``, ``factor^T`` lower triangular)."""
    n, d = y.shape
    if n == 0:
        return
    rows = np.array([d], dtype=np.int32)
    cols = np.array([n], dtype=np.int32)
    one = np.ones(1)
    trmm(_char("L").ctypes, _char("L").ctypes, _char("N").ctypes, _char("N").ctypes, rows.ctypes, cols.ctypes,
         one.ctypes, factor.ctypes, rows.ctypes, y.ctypes, rows.ctypes)


@numba.njit(nogil=True, cache=True)
def syrk_lower_add(syrk, x: np.ndarray, out: np.ndarray) -> None:  # type: ignore[no-untyped-def]  # pragma: no cover
    """``out += x^T x`` on the lower triangle of ``out`` (d, d) only, ``x`` (m, d); both
    C-contiguous (BLAS ``dsyrk`` on the upper triangle in Fortran order). The upper triangle
    of ``out`` is left as it was."""
    m, d = x.shape
    if m == 0:
        return
    n_ = np.array([d], dtype=np.int32)
    k_ = np.array([m], dtype=np.int32)
    one = np.ones(1)
    syrk(_char("U").ctypes, _char("N").ctypes, n_.ctypes, k_.ctypes, one.ctypes, x.ctypes, n_.ctypes, one.ctypes,
         out.ctypes, n_.ctypes)


@numba.njit(nogil=True, cache=True)
def gemm_tn_add(gemm, w: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:  # type: ignore[no-untyped-def]  # pragma: no cover
    """``out += w^T x``, ``w`` (m, k), ``x`` (m, d), ``out`` (k, d); all C-contiguous. ``m k d``
    multiply-adds (BLAS ``dgemm``: in Fortran order ``out^T += x^T (w^T)^T``)."""
    m, d = x.shape
    k = w.shape[1]
    if m == 0 or k == 0 or d == 0:
        return
    d_ = np.array([d], dtype=np.int32)
    k_ = np.array([k], dtype=np.int32)
    m_ = np.array([m], dtype=np.int32)
    one = np.ones(1)
    gemm(_char("N").ctypes, _char("T").ctypes, d_.ctypes, k_.ctypes, m_.ctypes, one.ctypes, x.ctypes, d_.ctypes,
         w.ctypes, k_.ctypes, one.ctypes, out.ctypes, d_.ctypes)
