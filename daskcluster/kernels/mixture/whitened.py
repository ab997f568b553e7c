"""Squared whitened distances of a tile's rows to each component, without writing the whitened rows.

For component ``k`` with upper-triangular factor ``U_k`` (scikit-learn's
``precisions_cholesky_``, ``P_k = U_k U_k^T``) and ``m_k = delta_k U_k`` (``delta_k = mu_k - ref``,
one row per component, computed once per block), the squared distance of a tile row ``a = x - ref``
is ``sum_j (sum_{l <= j} a_l U_k[l, j] - m_k[j])^2`` -- scikit-learn's own
``sum((X @ U - mu @ U)^2, axis=1)``, here around the block's reference point.

**Register blocks.** The columns of ``U_k`` are taken in blocks of :data:`LANES` (one 512-bit
vector of float64); the factors are padded with zero columns to a multiple of it, and ``m_k``
likewise, the zero columns *first*, so that the partial block is the one whose triangle is
shortest. For :data:`ROWS` rows at a time and one block of columns ``c0 .. c0 + 7``, one vector
accumulator per row starts at ``-m_k[c0:c0 + 8]`` and takes ``a[i, l] * U_k[l, c0:c0 + 8]``
(one vector load of the factor's row, one broadcast per row, one multiply-add per row)
for the ``l`` up to the block's last real column only (below the diagonal block the factor is
zero: the triangle); its square is then added into a vector of partial distances per row,
summed across its lanes once per row and component. Nothing is written but the ``(rows, K)``
distances: no residuals, no whitened tile. Per row and component that is
``sum_b min(d, 8 (b + 1) - p)`` vector multiply-adds (``p`` the zero columns): 182 of 8 lanes
at 50 features, 1,456 multiply-adds against 1,275 for the exact triangle (218 with the zero
columns last), at the full vector width, all accumulators in registers. Measured at 50
features, 10 components, one thread: 0.39-0.40 us a row (0.43-0.54 with the zero columns
last) against 0.86-1.1 for the residuals whitened by ``dtrmm`` and their norms.

**Where it applies.** Up to :data:`MAX_FEATURES` features (measured crossover with BLAS
``dtrmm``); float64 rows of the tile whose last axis is contiguous, upper-triangular factors
(:class:`~.covariance.full.FullCovariance` keeps ``dtrmm`` for wider data and a dense product
for factors set by hand).

The loop is written in LLVM's portable vector operations (``<8 x double>``, ``llvm.fmuladd``) by a
Numba intrinsic, because Numba does not run LLVM's SLP vectorizer and its loop vectorizer
vectorizes the inner product along ``l`` (one horizontal sum per column). Under
:func:`~daskcluster.kernels.vectorwidth.prefer_wide_vectors` LLVM keeps the vectors 512 bits
wide on AVX-512 CPUs and splits them into two 256-bit halves elsewhere (AVX2), one instruction
each; no instruction set is assumed.

**Rounding.** Each whitened coordinate ``y_j = sum_{l <= j} a_l U[l, j] - m_j`` is summed by
multiply-adds in order of ``l``, starting at ``-m_j`` (each fused, one rounding, where the CPU
has them; else two): its computed value is within ``gamma_{2(j+2)} (|m_j| + sum_{l <= j}
|a_l U[l, j]|)`` of the exact one (``gamma_n = n eps / (1 - n eps)``, ``eps = 2^-53``), as for
BLAS's ``X @ U - mu @ U``; the squares and their sum add a relative ``gamma_{2 (d+4)}`` (the sum
takes ``ceil(d / 8)`` multiply-adds per lane and three additions across the lanes). So a
distance is within ``2 g sum_j |y_j| s_j + g^2 sum_j s_j^2 + g (1 + g) sum_j (|y_j| + g s_j)^2``
of the exact value, ``s_j = |m_j| + sum_l |a_l U[l, j]|`` and ``g = gamma_{2 (d+4)}``; BLAS's
``sum((X @ U - mu @ U)^2)`` carries a bound of the same form (``tests/test_mixture_whitened.py``
checks both against extended precision).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ..vectorwidth import prefer_wide_vectors

#: Columns of one register block: a 512-bit vector of float64.
LANES = 8
#: Rows of one register block (one accumulator per block of columns and one vector of partial
#: distances each).
ROWS = 8
#: Blocks of :data:`LANES` columns of one register block. Measured at 50 features, 10 components,
#: 923-row tiles, one thread (ns per row, within +-7 % of noise): 8 rows x 1 block 431-496,
#: 10 x 1 467-474, 12 x 1 473-488, 4 x 2 495-501, 5 x 2 515-520, 6 x 2 475 (two blocks load
#: fewer operands per multiply-add but take the triangle in steps of 16 columns: 242 vector
#: multiply-adds a row and component against 218; measured with the zero columns last).
BLOCKS = 1
#: Features up to which this loop costs no more than BLAS ``dtrmm`` on the residuals, their
#: squared norms included (one thread, 10 components, tiles of 64 KiElements, OpenBLAS SkylakeX;
#: ns per row, this loop against ``dtrmm``, load ~1: 979-992 / 1,115-1,134 at 80 features,
#: 1,218-1,254 / 1,302-1,344 at 90, 1,625-1,627 / 1,646-1,718 at 100, 2,520-2,560 /
#: 2,169-2,175 at 120; 400 / 860-1,100 at 50): beyond, the factors' rows, re-read once per
#: :data:`ROWS` rows, leave the L1 cache while BLAS blocks for it. (With the zero columns
#: last the crossover was between 80 and 90.)
MAX_FEATURES = 100
_F64 = ir.DoubleType()
VECTOR = ir.VectorType(_F64, LANES)
INT64 = ir.IntType(64)


def padded_width(n_features: int) -> int:
    """Columns of the padded factors: ``n_features`` rounded up to a multiple of :data:`LANES`."""
    return -(-n_features // LANES) * LANES


def pad_factors(delta: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The factors ``U_k`` (K, d, d), upper triangular, with zero columns up to
    :func:`padded_width`, (K, d, D), and ``m_k = delta_k U_k`` likewise, (K, D); ``delta``
    (K, d). One product per component (``d^2`` multiply-adds each)."""
    k_n, d, _ = factors.shape
    width = padded_width(d)
    up = np.zeros((k_n, d, width))
    up[:, :, width - d :] = factors
    m = np.zeros((k_n, width))
    m[:, width - d :] = np.einsum("kl,klj->kj", delta, factors)
    return up, m


def vector_load(builder: ir.IRBuilder, base: ir.Value, offset: ir.Value) -> ir.Value:
    """The 8 doubles at ``base + offset`` (a ``double*``), as one unaligned vector load."""
    ptr = builder.bitcast(builder.gep(base, [offset]), VECTOR.as_pointer())
    return builder.load(ptr, align=8)


def splat(builder: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """``value`` in every lane."""
    one = builder.insert_element(ir.Constant(VECTOR, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(VECTOR, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))


def fma(builder: ir.IRBuilder, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
    """``a * b + c`` lane by lane (``llvm.fmuladd`` on ``<8 x double>``: one fused multiply-add
    where the CPU has them, else a multiplication and an addition, never a library call)."""
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(VECTOR, [VECTOR] * 3), "llvm.fmuladd.v8f64")
    return builder.call(fn, [a, b, c])


def _lane_sum(builder: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """The sum of a vector's lanes, pairwise."""
    parts = [builder.extract_element(v, ir.Constant(ir.IntType(32), j)) for j in range(LANES)]
    while len(parts) > 1:
        parts = [builder.fadd(parts[j], parts[j + 1]) for j in range(0, len(parts), 2)]
    return parts[0]


@intrinsic
def _distances_of_rows(typingctx: Any, a: Any, i: Any, up: Any, m: Any, out: Any, k: Any) -> Any:  # pragma: no cover - compiled
    """``out[i + r, k] = sum_j (sum_{l <= j} a[i + r, l] up[l, j] - m[j])^2`` for ``r <`` :data:`ROWS`
    (``a`` (n, d) float64 with contiguous rows, ``up`` (d, D), ``m`` (D,) and ``out`` (n, K)
    C-contiguous float64, ``D`` a multiple of :data:`LANES`; rows ``i .. i + ROWS - 1`` must
    exist)."""
    arrays = (a, up, m, out)
    if not all(isinstance(t, types.Array) and t.ndim in (1, 2) and t.dtype == types.float64 for t in arrays):
        return None
    if not all(t.layout == "C" for t in (up, m, out)):
        return None
    sig = types.void(a, i, up, m, out, k)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        arr_a, row0, arr_u, arr_m, arr_o, comp = args
        ta, _, tu, tm, to, _ = signature.args
        va = context.make_array(ta)(context, builder, arr_a)
        vu = context.make_array(tu)(context, builder, arr_u)
        vm = context.make_array(tm)(context, builder, arr_m)
        vo = context.make_array(to)(context, builder, arr_o)
        d = cgutils.unpack_tuple(builder, va.shape, 2)[1]
        stride = builder.udiv(cgutils.unpack_tuple(builder, va.strides, 2)[0], ir.Constant(INT64, 8))
        width = cgutils.unpack_tuple(builder, vu.shape, 2)[1]
        k_n = cgutils.unpack_tuple(builder, vo.shape, 2)[1]
        pad = builder.sub(width, d)
        row0 = context.cast(builder, row0, signature.args[1], types.intp)
        comp = context.cast(builder, comp, signature.args[5], types.intp)
        zero = ir.Constant(VECTOR, [0.0] * LANES)
        accs = [[cgutils.alloca_once(builder, VECTOR) for _ in range(BLOCKS)] for _ in range(ROWS)]
        sums = [cgutils.alloca_once(builder, VECTOR) for _ in range(ROWS)]
        for s in sums:
            builder.store(zero, s)
        rows = [builder.gep(va.data, [builder.mul(builder.add(row0, ir.Constant(INT64, r)), stride)]) for r in range(ROWS)]

        def step(c0: ir.Value, n_blk: int) -> None:
            """The columns ``c0 .. c0 + 8 n_blk - 1`` of every row's whitened coordinates, their
            squares added into the rows' partial distances."""
            offsets = [builder.add(c0, ir.Constant(INT64, LANES * b)) for b in range(n_blk)]
            for b, c in enumerate(offsets):
                neg_m = builder.fsub(zero, vector_load(builder, vm.data, c))
                for r in range(ROWS):
                    builder.store(neg_m, accs[r][b])
            end = builder.sub(builder.add(c0, ir.Constant(INT64, LANES * n_blk)), pad)
            depth = builder.select(builder.icmp_signed("<", end, d), end, d)
            with cgutils.for_range(builder, depth) as terms:
                l = terms.index
                base = builder.mul(l, width)
                u = [vector_load(builder, vu.data, builder.add(base, c)) for c in offsets]
                for r in range(ROWS):
                    x = splat(builder, builder.load(builder.gep(rows[r], [l])))
                    for b in range(n_blk):
                        builder.store(fma(builder, x, u[b], builder.load(accs[r][b])), accs[r][b])
            for r in range(ROWS):
                for b in range(n_blk):
                    y = builder.load(accs[r][b])
                    builder.store(fma(builder, y, y, builder.load(sums[r])), sums[r])

        n_blocks = builder.udiv(width, ir.Constant(INT64, LANES))
        span = ir.Constant(INT64, LANES * BLOCKS)
        with cgutils.for_range(builder, builder.udiv(n_blocks, ir.Constant(INT64, BLOCKS))) as steps:
            step(builder.mul(steps.index, span), BLOCKS)
        if BLOCKS > 1:
            done = builder.mul(builder.udiv(n_blocks, ir.Constant(INT64, BLOCKS)), span)
            with cgutils.for_range(builder, builder.urem(n_blocks, ir.Constant(INT64, BLOCKS))) as rest:
                step(builder.add(done, builder.mul(rest.index, ir.Constant(INT64, LANES))), 1)
        for r in range(ROWS):
            at = builder.add(builder.mul(builder.add(row0, ir.Constant(INT64, r)), k_n), comp)
            builder.store(_lane_sum(builder, builder.load(sums[r])), builder.gep(vo.data, [at]))
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(nogil=True, cache=True)
def whitened_sq_norms(a: np.ndarray, up: np.ndarray, m: np.ndarray, work: np.ndarray,
                      out: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``out[i, k] = ||a[i] U_k - m_k||^2`` for the rows of ``a`` (n, d), float64 with contiguous rows,
    and every component of ``up`` (K, d, D) and ``m`` (K, D) (:func:`pad_factors`); ``work``
    (:data:`ROWS`, d) holds the last rows when ``n`` is not a multiple of :data:`ROWS`, and
    ``out`` (n, K) the distances. One read of the tile per component (from cache)."""
    prefer_wide_vectors()
    n, d = a.shape
    k_n = up.shape[0]
    full = n - n % ROWS
    tail = n - full
    if tail:
        for r in range(ROWS):
            for j in range(d):
                work[r, j] = a[full + min(r, tail - 1), j]
    spare = np.empty((ROWS, k_n))
    for k in range(k_n):
        uk = up[k]
        mk = m[k]
        for i in range(0, full, ROWS):
            _distances_of_rows(a, i, uk, mk, out, k)
        if tail:
            _distances_of_rows(work, 0, uk, mk, spare, k)
            for r in range(tail):
                out[full + r, k] = spare[r, k]

