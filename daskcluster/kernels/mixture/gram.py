"""The lower triangle of ``z^T z`` for a buffer of gathered rows, by compiled register blocks.

``'full'``'s second moments add, per component, ``z^T z`` over a buffer of up to a few hundred
gathered rows ``z = sqrt(r) (x - mu_k)`` (:func:`.covariance.full._second_moments`). BLAS
``dsyrk`` spends much of such a call packing the small operands; here the buffer's rows are
stored with the zero columns that pad ``d`` to a multiple of :data:`~.whitened.LANES` first
(as :mod:`.whitened` pads its factors), and for each block of 8 columns ``l`` (one 512-bit vector
of float64) and :data:`ROWS` entries ``j >= l`` of the triangle at a time, one vector
accumulator per ``j`` takes ``z[i, j] * z[i, l:l + 8]`` (a broadcast, a vector load, a
multiply-add) over the buffer's rows ``i``; the lanes of the triangle (``l <= j``) are then added
into the output's lower triangle, the upper one left as it was (as :func:`~..blas_nogil.syrk_lower_add`).
Measured per full buffer of 256 rows, one thread, OpenBLAS SkylakeX: 1.3 against 4.4 us at 16
features, 18 against 26 at 50, 37 against 49 at 80, 48 against 70 at 100.

**Rounding.** Each entry is a sum of the buffer's ``m`` products in order of the rows, by
multiply-adds (fused where the CPU has them): within ``gamma_{m+1} sum_i |z_ij z_il|`` of the
exact sum, the bound of any order of summation, BLAS's included.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ..vectorwidth import prefer_wide_vectors
from .whitened import INT64, LANES, VECTOR, fma, splat, vector_load

#: Entries ``j`` of the triangle per register block (one accumulator each).
ROWS = 8


@intrinsic
def _products(typingctx: Any, z: Any, m: Any, j0: Any, c0: Any, y: Any) -> Any:  # pragma: no cover - compiled
    """``y[r, :] = sum_{i < m} z[i, j0 + r] * z[i, c0:c0 + 8]`` for ``r <`` :data:`ROWS` (``z``
    (cap, D) and ``y`` (ROWS, 8) C-contiguous float64, ``j0 + ROWS <= D``, ``c0 + 8 <= D``)."""
    if not all(isinstance(t, types.Array) and t.layout == "C" and t.dtype == types.float64 for t in (z, y)):
        return None
    sig = types.void(z, m, j0, c0, y)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        arr_z, rows, first, col, arr_y = args
        tz, tm, tj, tc, ty = signature.args
        vz = context.make_array(tz)(context, builder, arr_z)
        vy = context.make_array(ty)(context, builder, arr_y)
        width = cgutils.unpack_tuple(builder, vz.shape, 2)[1]
        rows = context.cast(builder, rows, tm, types.intp)
        first = context.cast(builder, first, tj, types.intp)
        col = context.cast(builder, col, tc, types.intp)
        accs = [cgutils.alloca_once(builder, VECTOR) for _ in range(ROWS)]
        for acc in accs:
            builder.store(ir.Constant(VECTOR, [0.0] * LANES), acc)
        with cgutils.for_range(builder, rows) as loop:
            base = builder.mul(loop.index, width)
            u = vector_load(builder, vz.data, builder.add(base, col))
            row = builder.gep(vz.data, [builder.add(base, first)])
            for r in range(ROWS):
                x = splat(builder, builder.load(builder.gep(row, [ir.Constant(INT64, r)])))
                builder.store(fma(builder, x, u, builder.load(accs[r])), accs[r])
        for r in range(ROWS):
            ptr = builder.bitcast(builder.gep(vy.data, [ir.Constant(INT64, r * LANES)]), VECTOR.as_pointer())
            builder.store(builder.load(accs[r]), ptr, align=8)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(nogil=True, cache=True)
def gram_lower_add(z: np.ndarray, m: int, out: np.ndarray, y: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``out[j, l] += sum_{i < m} z[i, p + j] z[i, p + l]`` for ``l <= j`` (the lower triangle of
    ``out`` (d, d); the upper one is left as it was), ``z`` (cap, D) the buffer with its ``p = D - d``
    zero columns first, ``D`` a multiple of :data:`~.whitened.LANES` and ``d >=`` :data:`ROWS`;
    ``y`` (:data:`ROWS`, LANES) scratch."""
    prefer_wide_vectors()
    if m == 0:
        return
    width = z.shape[1]
    d = out.shape[0]
    pad = width - d
    for c0 in range(0, width, LANES):
        j = max(0, c0 - pad)  # the block's first real column: the triangle's rows from there
        while j < d:
            first = min(j, d - ROWS)  # the last group ends at d (its first rows were done)
            _products(z, m, pad + first, c0, y)
            for r in range(j - first, ROWS):
                row = first + r
                for t in range(LANES):
                    col = c0 + t - pad
                    if 0 <= col <= row:
                        out[row, col] += y[r, t]
            j = first + ROWS
