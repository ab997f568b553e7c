"""The E-step of ``kernels/mixture/diag_nonzeros.py`` on compacted non-zeros: measured, not used.

Instead of walking each row's 64-feature bit mask with ``cttz`` and ``m & (m - 1)``, a tile's
rows are first compacted, ``group`` masks (64 x ``group`` features) at a time: the non-zero
bytes and their offsets in the group go to two small per-tile buffers by LLVM's portable
``llvm.masked.compressstore.v64i8`` (``vpcompressb`` on AVX-512 VBMI2, a scalar sequence
elsewhere), each row's list followed by a zero entry; then each row's list is walked two entries
a turn with a known count (no selects, one loop exit per row and group instead of one per row and
64-feature block), the components as vector lanes as in the module. Same parameters, same
terms in the same order (``group = 1``: the same bits as the module).

Run by ``bench_gmm_mnist8m.py --variants`` (its "log-densities" table).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from daskcluster.kernels.mixture.diag_nonzeros import (
    _I64,
    ACCUMULATORS,
    MASK_WIDTH,
    TILE_ROWS,
    _add_block_terms,
    _bit_count,
    _nonzero_bits,
    _switch_width,
    _tail_bits,
    add_term,
    byte_values,
    start_accumulators,
    store_accumulators,
)
from daskcluster.kernels.mixture.whitened import LANES
from daskcluster.kernels.vectorwidth import prefer_wide_vectors

_I8 = ir.IntType(8)
#: Most masks compacted into one list (offsets in a group must fit a byte).
MAX_GROUP = 4


@intrinsic
def _compact_mask(typingctx: Any, x: Any, i: Any, j0: Any, vals: Any, offs: Any, pos: Any,
                  base: Any) -> Any:  # pragma: no cover - compiled
    """``vals[pos:pos + m]`` = the non-zero bytes of ``x[i, j0:j0 + 64]`` (uint8 rows), ``offs``
    their offsets plus ``base``, and a zero entry at ``pos + m``; returns ``m``."""
    if not (isinstance(x, types.Array) and x.dtype == types.uint8 and x.ndim == 2 and x.layout == "C"):
        return None
    sig = types.int64(x, i, j0, vals, offs, pos, base)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        a_x, a_i, a_j0, a_v, a_o, a_p, a_b = args
        tx, ti, tj, tv, to, tp, tb = signature.args
        vx = context.make_array(tx)(context, builder, a_x)
        vv = context.make_array(tv)(context, builder, a_v)
        vo = context.make_array(to)(context, builder, a_o)
        d = cgutils.unpack_tuple(builder, vx.shape, 2)[1]
        i = context.cast(builder, a_i, ti, types.intp)
        j0 = context.cast(builder, a_j0, tj, types.intp)
        pos = context.cast(builder, a_p, tp, types.intp)
        base = builder.trunc(context.cast(builder, a_b, tb, types.intp), _I8)
        vec = ir.VectorType(_I8, MASK_WIDTH)
        mask = ir.VectorType(ir.IntType(1), MASK_WIDTH)
        ptr = builder.gep(vx.data, [builder.add(builder.mul(i, d), j0)])
        values = builder.load(builder.bitcast(ptr, vec.as_pointer()), align=1)
        nonzero = builder.icmp_unsigned("!=", values, ir.Constant(vec, [0] * MASK_WIDTH))
        compress = cgutils.get_or_insert_function(builder.module,
                                                  ir.FunctionType(ir.VoidType(), [vec, _I8.as_pointer(), mask]),
                                                  "llvm.masked.compressstore.v64i8")
        one = builder.insert_element(ir.Constant(vec, ir.Undefined), base, ir.Constant(ir.IntType(32), 0))
        bases = builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                       ir.Constant(ir.VectorType(ir.IntType(32), MASK_WIDTH), [0] * MASK_WIDTH))
        builder.call(compress, [values, builder.gep(vv.data, [pos]), nonzero])
        builder.call(compress, [builder.add(ir.Constant(vec, list(range(MASK_WIDTH))), bases),
                                builder.gep(vo.data, [pos]), nonzero])
        m = builder.ctpop(builder.bitcast(nonzero, _I64))
        end = builder.add(pos, m)
        builder.store(ir.Constant(_I8, 0), builder.gep(vv.data, [end]))
        builder.store(ir.Constant(_I8, 0), builder.gep(vo.data, [end]))
        return m

    return sig, codegen


@intrinsic
def _add_list_terms(typingctx: Any, vals: Any, offs: Any, pos: Any, m: Any, j0: Any, table: Any, pt: Any, at: Any,
                    dist: Any, row: Any) -> Any:  # pragma: no cover - compiled
    """``dist[row] += sum_q y (y pt[j0 + offs[q]] + at[j0 + offs[q]])``, ``y = table[vals[q]]``, over
    the entries ``pos .. pos + m`` (a zero entry at ``pos + m`` pads an odd count), two a turn."""
    sig = types.void(vals, offs, pos, m, j0, table, pt, at, dist, row)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        a_v, a_o, a_pos, a_m, a_j0, a_table, a_pt, a_at, a_dist, a_row = args
        tv, to, tpos, tm, tj, tt, tp, ta, td, tr = signature.args
        vv = context.make_array(tv)(context, builder, a_v).data
        vo = context.make_array(to)(context, builder, a_o).data
        table = context.make_array(tt)(context, builder, a_table).data
        vp = context.make_array(tp)(context, builder, a_pt)
        va = context.make_array(ta)(context, builder, a_at)
        vd = context.make_array(td)(context, builder, a_dist)
        padded = cgutils.unpack_tuple(builder, vp.shape, 2)[1]
        pos = context.cast(builder, a_pos, tpos, types.intp)
        m = context.cast(builder, a_m, tm, types.intp)
        j0 = context.cast(builder, a_j0, tj, types.intp)
        row = context.cast(builder, a_row, tr, types.intp)

        def emit(chunks: list[int]) -> None:
            width = ir.Constant(_I64, sum(chunks))
            d_row = builder.mul(row, width)
            offsets = [ir.Constant(_I64, LANES * c) for c in range(len(chunks))]
            accs = start_accumulators(builder, vd.data, d_row, offsets, chunks)
            end = builder.add(pos, m)
            q = cgutils.alloca_once(builder, _I64)
            builder.store(pos, q)
            cond = builder.append_basic_block("list.cond")
            body = builder.append_basic_block("list.body")
            done = builder.append_basic_block("list.end")
            builder.branch(cond)
            builder.position_at_end(cond)
            qv = builder.load(q)
            builder.cbranch(builder.icmp_signed("<", qv, end), body, done)
            builder.position_at_end(body)
            for u in range(ACCUMULATORS):
                e = builder.add(qv, ir.Constant(_I64, u))
                v = builder.zext(builder.load(builder.gep(vv, [e])), _I64)
                o = builder.zext(builder.load(builder.gep(vo, [e])), _I64)
                y = builder.load(builder.gep(table, [v]))
                add_term(builder, y, builder.mul(builder.add(j0, o), width), offsets, chunks, vp.data, va.data,
                         accs[u])
            builder.store(builder.add(qv, ir.Constant(_I64, ACCUMULATORS)), q)
            builder.branch(cond)
            builder.position_at_end(done)
            store_accumulators(builder, accs, vd.data, d_row, offsets, chunks)

        _switch_width(builder, padded, emit)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(nogil=True, cache=True)
def _tile_distances(x: np.ndarray, t0: int, rows: int, scale: float, table: np.ndarray, pt: np.ndarray,
                    at: np.ndarray, dist: np.ndarray, vals: np.ndarray, offs: np.ndarray, starts: np.ndarray,
                    counts: np.ndarray, group: int) -> None:  # pragma: no cover (compiled)
    """``_tile_distances`` of the module on the rows compacted ``group`` masks at a time."""
    d = x.shape[1]
    full = d - d % MASK_WIDTH
    width = MASK_WIDTH * group
    grouped = full - full % width
    for b in range(rows):
        for k in range(dist.shape[1]):
            dist[b, k] = 0.0
    for j0 in range(0, grouped, width):
        pos = 0
        for b in range(rows):
            m = 0
            for g in range(group):
                m += _compact_mask(x, t0 + b, j0 + MASK_WIDTH * g, vals, offs, pos + m, MASK_WIDTH * g)
            starts[b] = pos
            counts[b] = m
            pos += m + 1
        for b in range(rows):
            if counts[b] != 0:
                _add_list_terms(vals, offs, starts[b], counts[b], j0, table, pt, at, dist, b)
    for j0 in range(grouped, full, MASK_WIDTH):
        for b in range(rows):
            bits = _nonzero_bits(x, t0 + b, j0)
            if bits != 0:
                _add_block_terms(x, t0 + b, j0, bits, scale, table, pt, at, dist, b)
    if full < d:
        for b in range(rows):
            bits = _tail_bits(x, t0 + b, full)
            if bits != 0:
                _add_block_terms(x, t0 + b, full, bits, scale, table, pt, at, dist, b)


@numba.njit(nogil=True, cache=True)
def compacted_log_densities(x: np.ndarray, scale: float, pt: np.ndarray, at: np.ndarray, c: np.ndarray,
                            log_const: np.ndarray, out: np.ndarray, group: int) -> None:  # pragma: no cover (compiled)
    """``nonzero_log_densities`` of the module (uint8 rows) with the walk on compacted lists."""
    prefer_wide_vectors()
    n = x.shape[0]
    k_n = log_const.shape[0]
    dist = np.empty((TILE_ROWS, pt.shape[1]))
    table = byte_values(scale)
    vals = np.zeros(TILE_ROWS * (MASK_WIDTH * group + 1), dtype=np.uint8)
    offs = np.zeros(TILE_ROWS * (MASK_WIDTH * group + 1), dtype=np.uint8)
    starts = np.zeros(TILE_ROWS, dtype=np.int64)
    counts = np.zeros(TILE_ROWS, dtype=np.int64)
    for t0 in range(0, n, TILE_ROWS):
        rows = min(TILE_ROWS, n - t0)
        _tile_distances(x, t0, rows, scale, table, pt, at, dist, vals, offs, starts, counts, group)
        for b in range(rows):
            for k in range(k_n):
                out[t0 + b, k] = log_const[k] - 0.5 * (c[k] + dist[b, k])


@numba.njit(nogil=True, cache=True)
def compaction_only(x: np.ndarray, vals: np.ndarray, offs: np.ndarray) -> int:  # pragma: no cover (compiled)
    """The compaction of :func:`compacted_log_densities` (one mask a group) alone; the entries written."""
    total = 0
    full = x.shape[1] - x.shape[1] % MASK_WIDTH
    for t0 in range(0, x.shape[0], TILE_ROWS):
        for j0 in range(0, full, MASK_WIDTH):
            pos = 0
            for b in range(min(TILE_ROWS, x.shape[0] - t0)):
                pos += _compact_mask(x, t0 + b, j0, vals, offs, pos, 0) + 1
            total += pos
    return total


@numba.njit(nogil=True, cache=True)
def masks_only(x: np.ndarray) -> int:  # pragma: no cover (compiled)
    """The bit masks of the module's walk alone (their set bits, summed)."""
    total = 0
    full = x.shape[1] - x.shape[1] % MASK_WIDTH
    for t0 in range(0, x.shape[0], TILE_ROWS):
        for j0 in range(0, full, MASK_WIDTH):
            for b in range(min(TILE_ROWS, x.shape[0] - t0)):
                total += _bit_count(_nonzero_bits(x, t0 + b, j0))
    return total
