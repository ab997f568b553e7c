"""The EM pass of the diagonal types over rows that are mostly zeros, on their non-zeros only.

For rows stored with many exact zeros (images as ``uint8``: MNIST's rows are 75 % zero bytes)
and an affine map without offset (``y = stored * scale``), the diagonal E-step is taken in the
form scikit-learn itself computes (``_estimate_log_gaussian_prob``: ``sum(mu^2 P) - 2 y (mu P)^T
+ y^2 P^T``), whose data terms vanish where ``y_j = 0``::

    log p_k(y) = log_const_k - (c_k + sum_{j: y_j != 0} y_j (y_j P_kj + A_kj)) / 2,
    c_k = sum_j mu_kj^2 P_kj,   A_kj = -2 mu_kj P_kj   (both once per block),

and the M-step's sums ``sum r y`` and ``sum r y^2`` take the non-zeros only, around 0. A block
is taken :data:`TILE_ROWS` rows at a time (its statistics :data:`SPAN_ROWS` rows at a time):

1. **E-step's log-densities** (:mod:`.nonzero_groups`): a row's features 8 at a time as the
   lanes of one vector, a group skipped when its stored values are all zero, two multiply-adds
   per group and component (parameters laid out (K, d)), the components' accumulators in
   registers through a walk of the set bits of the row's group mask; the tile's rows read each
   block of the features' parameters in turn. For 8- and 16-bit rows, every component first in
   float32, then in float64 only those that may hold the row above their floor
   (:func:`.nonzero_groups.screened_tile_distances`); a ``uint8`` row with one such component
   takes none (it is held with ``r = 1``; step 3 sums it in integers and the ``log p(x)`` of those
   rows comes from the integer sums, :func:`_add_byte_sums`).
2. **Row E-step.** The log-sum-exp, responsibilities and ``sum r log r`` of
   :func:`.estep.responsibilities_above` (the floor rule of the dense loop of :mod:`.diag_rows`),
   its bits, with the exponentials of the components above their floor only: a row whose best
   component is the only one (73-76 % of MNIST8M's rows after EM iteration 3) takes none, its
   ``r = exp(0) / 1 = 1``, ``log p = top + log(1) = top`` and ``r log r = 0``.
3. **Statistics**, per span of :data:`SPAN_ROWS` rows (four tiles), component by component and
   64-feature block by block: a component's rows of the span summed in registers, then one
   read-modify-write of its sums per block. ``r_k`` is kept where it is non-zero and at least
   ``min_resp_k`` (as in :mod:`.diag_rows`). At 784 dimensions most rows are held by one component
   with ``r = 1`` exactly, alone or beside others whose responsibilities are below ``2^-53``
   (MNIST8M chunks under the benchmark's model: 46 % and 20 % of the rows after EM iteration 1,
   73-76 % and 11-12 % after iterations 3-5); for ``uint8`` rows, that component's sums are taken
   in integers, ``sum v`` and ``sum v^2`` of the bytes ``v`` (the span's ``sum v`` in 16-bit
   lanes, ``SPAN_ROWS x 255 < 2^16``; ``v^2`` in 16-bit lanes, ``255^2 < 2^16``, summed in 32-bit
   ones), into (K, d) ``uint32`` sums that become ``s1 += scale sum v`` and ``s2 += scale^2 sum
   v^2`` every :data:`FLUSH_ROWS` rows and at the end (``65,536 x 255^2 < 2^32``: no sum wraps),
   and its ``n_k`` takes 1 per row. Any other component holding a row adds ``r_k v`` and
   ``(r_k v) v`` (``v`` the stored value as float64) to its sums of the span, which enter ``s1``
   and ``s2`` times ``scale`` and ``scale^2`` by one multiply-add; a row held by very many
   components (``BLOCK_COST x components > vectors``, :data:`BLOCK_COST`) adds its non-zeros
   once for those instead, ``S[j] += r y_j`` and ``(r y_j) y_j`` for the vectors of components
   holding it as lanes, into sums (d, Kpad).

The vector code is LLVM's portable vector IR (``<64 x i8>`` compares, ``<8 x double>`` and
``<4 x double>`` loads, broadcasts, ``uitofp`` and ``llvm.fmuladd``, from :mod:`daskcluster.kernels.vector_ir`)
emitted by Numba intrinsics, as in :mod:`.whitened`: 512-bit registers on AVX-512 CPUs
(:func:`~daskcluster.kernels.vectorwidth.prefer_wide_vectors`), narrower instructions
elsewhere; no instruction set is assumed. The sums are :func:`~daskcluster.kernels.vector_ir.aligned_zeros` (on a
cache line: fewer 8-lane loads and stores spanning two lines than where NumPy happens to place
them).

**Measured** (``benchmarks/gmm_stats_ab.py`` against the commit before each change and
``benchmarks/bench_gmm_mnist8m.py --variants``, MNIST8M chunks of 32,768 rows, the benchmark's
models of EM iterations 1, 3, 5, one thread, least CPU time a chunk, see
``benchmarks/RESULTS-gmm.md``): 19.7, 16.2 and 14.9 ms a chunk against 31-36 ms for the dense
loop, of which the log-densities 11.4-11.8 ms (13.5-13.8 ms with the E-step this module had
before :mod:`.nonzero_groups`, which walked each non-zero with the components as vector lanes:
21.0, 17.7 and 17.1 ms a chunk), the row E-step 1.3-2.3 ms and the statistics 2.5-5 ms. The pass
and the dense loop cost the same where 96.5 % or more of the rows' 8-feature groups hold a
non-zero (10 components; ``benchmarks/gmm_crossover.py``), hence :func:`.diag_rows.nonzero_share`.

**The statistics and the row E-step, measured** (``benchmarks/gmm_stats_ab.py``, the same chunks
and models, least CPU time a chunk; ``benchmarks/RESULTS-gmm.md``): the pass went from 26.3, 24.9
and 23.1 ms to 21.2, 18.8 and 17.4 ms (models of EM iterations 1, 3, 5), the E-step's
log-densities unchanged: the rows held with responsibility 1 summed in integers (1.3-1.6 ms less
than the same rows through the float sums), the other rows' sums per component in registers
over a span (instead of 16 read-modify-writes per row, block and component), spans of 256 rows
rather than tiles of 64 (0.4 ms), the last ``d mod 64`` features by masked vector loads (0.3-0.5
ms) and the row E-step's exponentials for the components above their floor only, its maximum by
selects (0.5-0.8 ms). At EM iteration 3, of the 18.8 ms: 13.6-14.1 the log-densities, 1.3-1.6 the
row E-step, ~1.1 the integer sums and ~1.5-2 the other rows' sums (4.5 at iteration 1, where 54 %
of the rows are held by several components, 2.9 on average). Tried and not kept: each span's
block of the rows held by several components converted once into float64 ``v`` and ``v^2``
buffers (on a cache line) that each component's multiply-adds then read (25.7 and 20.2 ms against
21.3 and 18.0 ms: the stores and loads cost more than the conversions they save), or into a
``v`` buffer of 64 rows that stays in L1 (23.0 and 18.6 ms against 21.1 and 17.5 ms); a row's
all-zero blocks skipped in the integer and float sums (a compare and a branch per row and block:
the integer sums 0.5-1 ms slower, the others unchanged); the exponential of the best component not
taken in a row of several (``exp(0) = 1``: unchanged, the C library returns early there); bytes
converted through 64-bit lanes (``vpmovzxbq``, ``vcvtqq2pd``: two instructions per 8 values
against three), which LLVM narrows back to 32-bit lanes.

**Rounding of the statistics.** The integer sums are exact (no lane can wrap, above). With
``F`` conversions (``F = 1`` up to :data:`FLUSH_ROWS` rows), an entry of ``s1`` from them is
within ``gamma_{2F}`` of the exact ``sum_i v_i scale`` (one rounding of each product, ``F - 1``
additions of non-negative parts; ``gamma_n = n eps / (1 - n eps)``, ``eps = 2^-53``) and one of
``s2`` within ``gamma_{3F}`` of the exact ``sum_i (v_i scale)^2`` (``scale^2`` rounded once
more); a float64 running sum of the same ``m`` rows, as before, is within ``gamma_{m + 2}``. The
other rows' terms take one rounding each (``r v``; ``(r v) v`` two), their span's sum ``m``
additions and the multiply-add into ``s1``, ``s2`` one more (with ``scale``'s or ``scale^2``'s):
within ``gamma_{m + 4}`` of the exact sum of their non-negative terms
(``tests/test_mixture_diag_nonzeros.py`` checks both against exact rationals, across a
conversion).

**Statistics around the block's reference point.** The sums are taken around 0 (``S1 = sum r
y``, ``S2 = sum r y^2``, scikit-learn's ``resp^T X`` and ``resp^T X^2``) and handed to the block's
:class:`~.stats.Accumulator` around its ``ref`` as ``S1 - n ref`` and ``S2 - 2 ref S1 + n ref^2``
(per component, ``n = sum r``): each entry within ``3 eps (S2 + 2 |ref S1| + n ref^2)`` of the
exact conversion (``eps = 2^-53``), an absolute error of the size of the rounding of ``S2``
itself when ``|ref|`` is of the order of the data (``ref`` is the mean of the block's first 256
rows). The centred second moment ``S2 - S1^2 / n`` then cancels as scikit-learn's
``avg_X2 - 2 avg_X_means + avg_means2`` does (the same order of error); data far from the
origin relative to their spread lose digits here as in scikit-learn, which is one reason a
block must be mostly exact zeros to take this pass.

**Rounding of the E-step**: see :mod:`.nonzero_groups` (``D_k`` within ``gamma_{m + 14} (c_k +
S_k) + gamma_{ceil(log2 d) + 3} c_k`` of the exact distance, ``m`` the row's non-zeros, where the
dense loop of :mod:`.diag_rows` is within ``gamma_{d + 3} D_k``: the two agree to the
cancellation's ratio ``(c_k + S_k) / D_k`` times ``eps``, as scikit-learn's form does).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ..vectorwidth import prefer_wide_vectors
from .estep import responsibilities_above
from .nonzero_groups import GROUP, TILE_ROWS, WORD, screened_tile_distances, tile_distances
from ..vector_ir import (
    F64,
    I64,
    MASK_WIDTH,
    bit_count,
    f64_array,
    fma,
    nonzero_bits,
    splat,
    stored_rows,
    tail_bits,
    to_double,
    vector,
    vector_ptr,
    walk_bits,
)
from .whitened import LANES

#: Lanes of the narrow vector that ends a padded width of 4 mod 8.
HALF = 4
#: Components up to which the non-zero pass applies (its vector layouts are compiled per width).
MAX_COMPONENTS = 32
#: The padded widths (lanes of the (d, Kpad) lane sums) the compiled loops have a layout for.
WIDTHS = tuple(range(HALF, MAX_COMPONENTS + 1, HALF))
#: Rows whose statistics are added together, component by component (consecutive tiles): each
#: component's rows of a span summed in registers, then one read-modify-write of its sums per
#: 64-feature block; a span's bytes sum in 16-bit lanes (``SPAN_ROWS x 255 < 2^16``).
SPAN_ROWS = 4 * TILE_ROWS
#: A row's statistics are added per component holding it (its span's sums in registers) while
#: ``BLOCK_COST x components <= vectors`` (the vectors of :data:`LANES` components that hold it),
#: else its non-zeros once with the components as lanes: at 1/6, only rows whose components fill
#: at least 6 of each 8 lanes go as lanes. Measured (one thread, least CPU time a chunk of 32,768
#: MNIST8M rows; none as lanes / this rule / all as lanes): the benchmark's model of EM iteration
#: 1, 23.1 / 23.3 / 26.2 ms (iterations 3 and 5 alike); 16 components, four alike each (4.7
#: holding a row), 32.1 / 31.9 / 30.4 ms; 32 components (4.5 holding a row, over 4 vectors),
#: 40.8 / 40.6 / 55.2 ms.
BLOCK_COST = 1 / 6
#: Rows whose bytes and squared bytes the 32-bit sums take before they are added to the float64
#: statistics: ``65,536 x 255^2 < 2^32``, so no sum can wrap.
FLUSH_ROWS = 65536


def padded_components(n_components: int) -> int:
    """Lanes of the (d, Kpad) lane sums: ``n_components`` rounded up to a multiple of :data:`HALF`."""
    return -(-n_components // HALF) * HALF


def _chunks(width: int) -> list[int]:
    """The vectors (their lanes) of a padded width: 8-lane ones, then a 4-lane one for ``width = 4 mod 8``."""
    return [LANES] * (width // LANES) + ([HALF] if width % LANES else [])


def _switch_width(builder: ir.IRBuilder, width: ir.Value, emit: Any) -> None:
    """Emit ``emit(chunks)`` once per padded width of :data:`WIDTHS` (compile-time vector
    layouts, so that accumulators stay in registers) and run the one equal to ``width``; nothing
    for another width."""
    end = builder.append_basic_block("width.end")
    switch = builder.switch(width, end)
    for w in WIDTHS:
        case = builder.append_basic_block(f"width.{w}")
        switch.add_case(ir.Constant(I64, w), case)
        builder.position_at_end(case)
        emit(_chunks(w))
        builder.branch(end)
    builder.position_at_end(end)


def _stored_value(context: Any, builder: ir.IRBuilder, tx: Any, data: ir.Value, at: ir.Value, scale: ir.Value,
                  table: ir.Value, valid: ir.Value | None = None) -> ir.Value:
    """``float64(x.flat[at]) * scale``, or 0 where ``valid`` is false; for bytes, the entry of
    ``table`` (``table[v] = v * scale``, the same value) that the byte indexes (index 0 where not
    valid): one load instead of a conversion and a multiplication."""
    raw = builder.load(builder.gep(data, [at]))
    if tx.dtype == types.uint8:
        index = builder.zext(raw, I64)
        if valid is not None:
            index = builder.select(valid, index, ir.Constant(I64, 0))
        return builder.load(builder.gep(table, [index]))
    y = builder.fmul(context.cast(builder, raw, tx.dtype, types.float64), scale)
    return y if valid is None else builder.select(valid, y, ir.Constant(F64, 0.0))


@intrinsic
def _add_block_lanes(typingctx: Any, x: Any, i: Any, j0: Any, bits: Any, table: Any, scale: Any, r: Any,
                     row: Any, held: Any, t1: Any, t2: Any) -> Any:  # pragma: no cover - compiled
    """``t1[j, k] += r[row, k] y_j`` and ``t2[j, k] += (r[row, k] y_j) y_j`` for the bits ``b`` of
    ``bits`` (``j = j0 + b``, ``y_j = x[i, j] * scale``) and the lanes ``k`` of the vectors set in
    ``held`` (bit ``c`` for lanes ``8c ..``): one vector read-modify-write per non-zero and
    vector, whatever the number of components holding the row; ``r`` (rows, Kpad), ``t1``,
    ``t2`` (d, Kpad) float64 C-contiguous."""
    if not (stored_rows(x) and f64_array(table, 1) and f64_array(r, 2) and f64_array(t1, 2)
            and f64_array(t2, 2)):
        return None
    sig = types.void(x, i, j0, bits, table, scale, r, row, held, t1, t2)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        a_x, a_i, a_j0, a_bits, a_table, a_scale, a_r, a_row, a_held, a_t1, a_t2 = args
        tx, ti, tj, tb, tt, ts, tr, trow, th, tt1, tt2 = signature.args
        vx = context.make_array(tx)(context, builder, a_x)
        table = context.make_array(tt)(context, builder, a_table).data
        vr = context.make_array(tr)(context, builder, a_r)
        v1 = context.make_array(tt1)(context, builder, a_t1)
        v2 = context.make_array(tt2)(context, builder, a_t2)
        d = cgutils.unpack_tuple(builder, vx.shape, 2)[1]
        padded = cgutils.unpack_tuple(builder, v1.shape, 2)[1]
        i = context.cast(builder, a_i, ti, types.intp)
        j0 = context.cast(builder, a_j0, tj, types.intp)
        bits = context.cast(builder, a_bits, tb, types.int64)
        scale = context.cast(builder, a_scale, ts, types.float64)
        row = context.cast(builder, a_row, trow, types.intp)
        held = context.cast(builder, a_held, th, types.int64)
        x_row = builder.add(builder.mul(i, d), j0)

        def emit(chunks: list[int]) -> None:
            width = ir.Constant(I64, sum(chunks))
            r_row = builder.mul(row, width)
            offsets = [ir.Constant(I64, LANES * c) for c in range(len(chunks))]
            resp = [builder.load(vector_ptr(builder, vr.data, builder.add(r_row, offsets[c]), n), align=8)
                    for c, n in enumerate(chunks)]
            keeps = [builder.icmp_unsigned("!=", builder.and_(held, ir.Constant(I64, 1 << c)), ir.Constant(I64, 0))
                     for c in range(len(chunks))]

            def body(u: int, b: ir.Value, valid: ir.Value) -> None:
                y = _stored_value(context, builder, tx, vx.data, builder.add(x_row, b), scale, table)
                s_row = builder.mul(builder.add(j0, b), width)
                for c, n in enumerate(chunks):
                    with builder.if_then(keeps[c]):
                        ys = splat(builder, y, n)
                        rx = builder.fmul(resp[c], ys)
                        at_c = builder.add(s_row, offsets[c])
                        p1 = vector_ptr(builder, v1.data, at_c, n)
                        p2 = vector_ptr(builder, v2.data, at_c, n)
                        builder.store(builder.fadd(builder.load(p1, align=8), rx), p1, align=8)
                        builder.store(fma(builder, rx, ys, builder.load(p2, align=8), n), p2, align=8)

            walk_bits(builder, bits, 1, body)

        _switch_width(builder, padded, emit)
        return context.get_dummy_value()

    return sig, codegen


def _mangled(vec: ir.VectorType) -> str:
    """The type suffix of a vector in LLVM intrinsic names (``v64i8``, ``v64f64``)."""
    elem = vec.element
    name = {ir.DoubleType: "f64", ir.FloatType: "f32"}.get(type(elem), f"i{getattr(elem, 'width', 0)}")
    return f"v{vec.count}{name}"


def _lanes_below(builder: ir.IRBuilder, width: ir.Value, lanes: int) -> ir.Value:
    """The ``<lanes x i1>`` mask of the lanes ``< width`` (an ``i64``)."""
    index = ir.VectorType(I64, lanes)
    one = builder.insert_element(ir.Constant(index, ir.Undefined), width, ir.Constant(ir.IntType(32), 0))
    widths = builder.shuffle_vector(one, ir.Constant(index, ir.Undefined),
                                    ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))
    return builder.icmp_signed("<", ir.Constant(index, list(range(lanes))), widths)


def _load_lanes(builder: ir.IRBuilder, ptr: ir.Value, vec: ir.VectorType, mask: ir.Value | None,
                align: int) -> ir.Value:
    """A vector from ``ptr`` (``vec*``); with ``mask``, the lanes outside it are 0 and not read
    (``llvm.masked.load``)."""
    if mask is None:
        return builder.load(ptr, align=align)
    name = _mangled(vec)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vec, [vec.as_pointer(), ir.IntType(32), mask.type, vec]),
        f"llvm.masked.load.{name}.p0{name}")
    zero = ir.Constant(vec, [0.0 if isinstance(vec.element, (ir.DoubleType, ir.FloatType)) else 0] * vec.count)
    return builder.call(fn, [ptr, ir.Constant(ir.IntType(32), align), mask, zero])


def _store_lanes(builder: ir.IRBuilder, value: ir.Value, ptr: ir.Value, mask: ir.Value | None, align: int) -> None:
    """``value`` to ``ptr``; with ``mask``, its lanes outside it are not written (``llvm.masked.store``)."""
    if mask is None:
        builder.store(value, ptr, align=align)
        return
    vec = value.type
    name = _mangled(vec)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), ir.IntType(32), mask.type]),
        f"llvm.masked.store.{name}.p0{name}")
    builder.call(fn, [value, ptr, ir.Constant(ir.IntType(32), align), mask])


def _full_or_masked(builder: ir.IRBuilder, width: ir.Value, emit: Any) -> None:
    """``emit(None)`` where ``width`` is :data:`MASK_WIDTH` (plain loads and stores), else
    ``emit(mask)`` with the mask of the lanes below ``width`` (the block that ends the row)."""
    full = builder.icmp_signed("==", width, ir.Constant(I64, MASK_WIDTH))
    with builder.if_else(full, likely=True) as (whole, tail):
        with whole:
            emit(None)
        with tail:
            emit(_lanes_below(builder, width, MASK_WIDTH))


class _Span(NamedTuple):
    """The arguments the statistics' intrinsics share, as LLVM values: the rows ``x`` and the lists
    ``rows`` (their arrays), ``x``'s columns ``d``, the lists' row length ``stride``, the span's
    first row ``t0``, the component ``k``, its ``n`` rows, the block's first feature ``j0`` and its
    ``width``."""

    x: Any
    rows: Any
    d: ir.Value
    stride: ir.Value
    t0: ir.Value
    k: ir.Value
    n: ir.Value
    j0: ir.Value
    width: ir.Value


def _row_lists(t: Any) -> bool:
    """Whether ``t`` types the (K, SPAN_ROWS) int64 C-contiguous lists of a span's rows."""
    return isinstance(t, types.Array) and t.ndim == 2 and t.dtype == types.int64 and t.layout == "C"


def _span(context: Any, builder: ir.IRBuilder, x: tuple[Any, ir.Value], rows: tuple[Any, ir.Value],
          t0: tuple[Any, ir.Value], k: tuple[Any, ir.Value], n: tuple[Any, ir.Value], j0: tuple[Any, ir.Value],
          width: tuple[Any, ir.Value]) -> _Span:
    """:class:`_Span` from ``(type, value)`` pairs of the intrinsic's arguments."""
    vx = context.make_array(x[0])(context, builder, x[1])
    vr = context.make_array(rows[0])(context, builder, rows[1])

    def index(arg: tuple[Any, ir.Value]) -> ir.Value:
        return context.cast(builder, arg[1], arg[0], types.intp)

    return _Span(vx, vr, cgutils.unpack_tuple(builder, vx.shape, 2)[1], cgutils.unpack_tuple(builder, vr.shape, 2)[1],
                 index(t0), index(k), index(n), index(j0), context.cast(builder, width[1], width[0], types.int64))


@intrinsic
def _add_rows_bytes(typingctx: Any, x: Any, t0: Any, rows: Any, k: Any, n: Any, j0: Any, width: Any, sv: Any,
                    sq: Any) -> Any:  # pragma: no cover - compiled
    """``sv[k, j] += sum_q x[i_q, j]`` and ``sq[k, j] += sum_q x[i_q, j]^2``, ``i_q = t0 + rows[k, q]``
    for ``q < n`` (at most :data:`SPAN_ROWS`), for the features ``j0 .. j0 + width - 1``
    (``width <=`` :data:`MASK_WIDTH`; below it, the block that ends the rows: masked loads and
    stores), in integers: ``x`` (rows, d) ``uint8``, ``rows`` (K, SPAN_ROWS) int64, ``sv``, ``sq``
    (K, d) ``uint32`` C-contiguous. Per row, one 64-byte load widened to 16-bit lanes (summed
    there: at most ``SPAN_ROWS x 255 < 2^16``), squared in them (``255^2 < 2^16``) and widened to
    32-bit lanes; one read-modify-write of ``sv`` and ``sq`` per call. For rows of another dtype
    (whose loops never call it, see :func:`_stored_bytes`) it compiles to nothing."""
    u32 = types.Array(types.uint32, 2, "C")
    if not (stored_rows(x) and _row_lists(rows) and sv == u32 and sq == u32):
        return None
    sig = types.void(x, t0, rows, k, n, j0, width, sv, sq)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        a_x, a_t0, a_rows, a_k, a_n, a_j0, a_w, a_sv, a_sq = args
        tx, tt0, tr, tk, tn, tj, tw, tv, tq = signature.args
        if tx.dtype != types.uint8:
            return context.get_dummy_value()
        vx, vr, d, stride, t0, k, n, j0, width = _span(context, builder, (tx, a_x), (tr, a_rows), (tt0, a_t0),
                                                       (tk, a_k), (tn, a_n), (tj, a_j0), (tw, a_w))
        vv = context.make_array(tv)(context, builder, a_sv)
        vq = context.make_array(tq)(context, builder, a_sq)
        v8 = ir.VectorType(ir.IntType(8), MASK_WIDTH)
        v16 = ir.VectorType(ir.IntType(16), MASK_WIDTH)
        v32 = ir.VectorType(ir.IntType(32), MASK_WIDTH)
        r_row = builder.mul(k, stride)
        s_at = builder.add(builder.mul(k, cgutils.unpack_tuple(builder, vv.shape, 2)[1]), j0)

        def emit(mask: ir.Value | None) -> None:
            sums = cgutils.alloca_once_value(builder, ir.Constant(v16, [0] * MASK_WIDTH))
            squares = cgutils.alloca_once_value(builder, ir.Constant(v32, [0] * MASK_WIDTH))
            with cgutils.for_range(builder, n) as loop:
                b = builder.load(builder.gep(vr.data, [builder.add(r_row, loop.index)]))
                at = builder.add(builder.mul(builder.add(t0, b), d), j0)
                ptr = builder.bitcast(builder.gep(vx.data, [at]), v8.as_pointer())
                v = builder.zext(_load_lanes(builder, ptr, v8, mask, 1), v16)
                builder.store(builder.add(builder.load(sums), v), sums)
                builder.store(builder.add(builder.load(squares), builder.zext(builder.mul(v, v), v32)), squares)
            for data, add in ((vv.data, builder.zext(builder.load(sums), v32)), (vq.data, builder.load(squares))):
                ptr = builder.bitcast(builder.gep(data, [s_at]), v32.as_pointer())
                _store_lanes(builder, builder.add(_load_lanes(builder, ptr, v32, mask, 4), add), ptr, mask, 4)

        _full_or_masked(builder, width, emit)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _add_rows_weighted(typingctx: Any, x: Any, t0: Any, rows: Any, resp: Any, k: Any, n: Any, j0: Any,
                       width: Any, scale: Any, square: Any, s1: Any, s2: Any) -> Any:  # pragma: no cover - compiled
    """``s1[k, j] += scale sum_q r_q v_qj`` and ``s2[k, j] += square sum_q (r_q v_qj) v_qj``,
    ``v_qj = x[t0 + rows[k, q], j]`` as float64 and ``r_q = resp[k, q]``, for ``q < n`` and the
    features ``j0 .. j0 + width - 1`` (``width <=`` :data:`MASK_WIDTH`; below it, masked loads
    and stores): the sums of the ``n`` rows in registers (one multiplication and two
    multiply-adds per 8 features and row), then one read-modify-write of ``s1`` and ``s2``;
    ``rows`` (K, SPAN_ROWS) int64, ``resp`` (K, SPAN_ROWS), ``s1``, ``s2`` (K, d) float64
    C-contiguous."""
    if not (stored_rows(x) and _row_lists(rows) and f64_array(resp, 2) and f64_array(s1, 2) and f64_array(s2, 2)):
        return None
    sig = types.void(x, t0, rows, resp, k, n, j0, width, scale, square, s1, s2)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        a_x, a_t0, a_rows, a_resp, a_k, a_n, a_j0, a_w, a_scale, a_square, a_s1, a_s2 = args
        tx, tt0, tr, tp, tk, tn, tj, tw, ts, tq, t1, t2 = signature.args
        vx, vr, d, stride, t0, k, n, j0, width = _span(context, builder, (tx, a_x), (tr, a_rows), (tt0, a_t0),
                                                       (tk, a_k), (tn, a_n), (tj, a_j0), (tw, a_w))
        vp = context.make_array(tp)(context, builder, a_resp)
        v1 = context.make_array(t1)(context, builder, a_s1)
        v2 = context.make_array(t2)(context, builder, a_s2)
        lanes = MASK_WIDTH
        stored = ir.VectorType(context.get_data_type(tx.dtype), lanes)
        zero = ir.Constant(vector(lanes), [0.0] * lanes)
        r_row = builder.mul(k, stride)
        s_at = builder.add(builder.mul(k, cgutils.unpack_tuple(builder, v1.shape, 2)[1]), j0)

        def emit(mask: ir.Value | None) -> None:
            sums = cgutils.alloca_once_value(builder, zero)
            squares = cgutils.alloca_once_value(builder, zero)
            with cgutils.for_range(builder, n) as loop:
                at = builder.add(r_row, loop.index)
                b = builder.load(builder.gep(vr.data, [at]))
                rk = splat(builder, builder.load(builder.gep(vp.data, [at])), lanes)
                ptr = builder.gep(vx.data, [builder.add(builder.mul(builder.add(t0, b), d), j0)])
                raw = _load_lanes(builder, builder.bitcast(ptr, stored.as_pointer()), stored, mask, 1)
                v = to_double(builder, raw, tx.dtype, lanes)
                u = builder.fmul(rk, v)
                builder.store(builder.fadd(builder.load(sums), u), sums)
                builder.store(fma(builder, u, v, builder.load(squares), lanes), squares)
            for data, total, factor, tf in ((v1.data, sums, a_scale, ts), (v2.data, squares, a_square, tq)):
                f = splat(builder, context.cast(builder, factor, tf, types.float64), lanes)
                ptr = vector_ptr(builder, data, s_at, lanes)
                old = _load_lanes(builder, ptr, vector(lanes), mask, 8)
                _store_lanes(builder, fma(builder, f, builder.load(total), old, lanes), ptr, mask, 8)

        _full_or_masked(builder, width, emit)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _stored_bytes(typingctx: Any, x: Any) -> Any:  # pragma: no cover - compiled
    """Whether ``x`` holds ``uint8`` values: a constant of the compiled loop."""
    if not isinstance(x, types.Array):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        return ir.Constant(ir.IntType(1), int(x.dtype == types.uint8))

    return types.boolean(x), codegen


@numba.njit(nogil=True, cache=True)
def byte_values(scale: float) -> np.ndarray:  # pragma: no cover (compiled)
    """``v * scale`` in float64 for every byte ``v`` (the values of ``uint8`` rows, by lookup)."""
    table = np.empty(256)
    for v in range(256):
        table[v] = float(v) * scale
    return table


@numba.njit(nogil=True, cache=True)
def _span_stats(x: np.ndarray, t0: int, rows: int, scale: float, table: np.ndarray, n_whole: np.ndarray,
                whole: np.ndarray, n_part: np.ndarray, part: np.ndarray, part_r: np.ndarray, lanes: np.ndarray,
                r: np.ndarray, sv: np.ndarray, sq: np.ndarray, s1: np.ndarray, s2: np.ndarray, t1: np.ndarray,
                t2: np.ndarray) -> None:  # pragma: no cover (compiled)
    """The statistics of the rows ``i = t0 + b`` of a span (at most :data:`SPAN_ROWS`), by blocks
    of :data:`MASK_WIDTH` features (the sums of the block in L1 for the span; the last block of
    ``d mod 64`` features by masked loads and stores), per component ``k``: the rows
    ``whole[k, :n_whole[k]]`` (``uint8`` rows that ``k`` holds with responsibility 1) add
    their bytes and squared bytes to ``sv[k]``, ``sq[k]`` (K, d) in integers; the rows
    ``part[k, :n_part[k]]`` add ``r v`` and ``r v^2`` (``r`` from ``part_r``, ``v`` the stored
    values), summed over the span, to ``s1[k]``, ``s2[k]`` (K, d) times ``scale`` and
    ``scale^2``. Rows with ``lanes[b] != 0`` add their non-zeros to ``t1``, ``t2`` (d, Kpad), the
    vectors of components ``lanes[b]`` as lanes (responsibilities ``r[b]``), a block skipped
    where the row is zero."""
    d = x.shape[1]
    full = d - d % MASK_WIDTH
    k_n = n_whole.shape[0]
    square = scale * scale
    many = 0
    for b in range(rows):
        many += lanes[b] != 0
    for j0 in range(0, d, MASK_WIDTH):
        width = min(MASK_WIDTH, d - j0)
        for k in range(k_n):
            if n_whole[k] != 0:
                _add_rows_bytes(x, t0, whole, k, n_whole[k], j0, width, sv, sq)
            if n_part[k] != 0:
                _add_rows_weighted(x, t0, part, part_r, k, n_part[k], j0, width, scale, square, s1, s2)
        if many != 0 and j0 < full:
            for b in range(rows):
                if lanes[b] != 0:
                    bits = nonzero_bits(x, t0 + b, j0)
                    if bits != 0:
                        _add_block_lanes(x, t0 + b, j0, bits, table, scale, r, b, lanes[b], t1, t2)
    if full == d or many == 0:
        return
    for b in range(rows):
        if lanes[b] != 0:
            bits = tail_bits(x, t0 + b, full)
            if bits != 0:
                _add_block_lanes(x, t0 + b, full, bits, table, scale, r, b, lanes[b], t1, t2)


@numba.njit(nogil=True, cache=True)
def _add_byte_sums(sv: np.ndarray, sq: np.ndarray, scale: float, s1: np.ndarray, s2: np.ndarray,
                   whole_rows: np.ndarray, p: np.ndarray, a: np.ndarray, c: np.ndarray,
                   log_const: np.ndarray) -> float:  # pragma: no cover (compiled)
    """``s1 += scale sv`` and ``s2 += scale^2 sq`` (the float64 sums of ``y = v scale`` and ``y^2``
    from the exact integer sums of the bytes ``v`` and of ``v^2``), then ``sv``, ``sq`` and
    ``whole_rows`` zeroed. Returns the ``sum log p(x)`` of those rows (``whole_rows[k]`` of them
    held by ``k`` with responsibility 1, so ``k`` their best and ``log p(x)`` its ``w``):
    ``n_k (log_const_k - c_k / 2) - sum_j (P_kj sum y_j^2 + A_kj sum y_j) / 2``, the sum of the
    rows' ``log_const_k - (c_k + D_k) / 2`` in another order (within ``gamma_{d + 4}`` of the
    exact sum of the rows' ``S_k``, ``gamma_3 n_k (|log_const_k| + c_k)``; a row's own ``D_k`` is
    within ``gamma_{m + 14} (c_k + S_k)``, :mod:`.nonzero_groups`)."""
    square = scale * scale
    d = sv.shape[1]
    log_lik = 0.0
    for k in range(sv.shape[0]):
        t = 0.0
        for j in range(d):
            y1 = scale * float(sv[k, j])
            y2 = square * float(sq[k, j])
            s1[k, j] += y1
            s2[k, j] += y2
            t += y2 * p[k, j] + y1 * a[k, j]
            sv[k, j] = 0
            sq[k, j] = 0
        if whole_rows[k] != 0:
            log_lik += whole_rows[k] * (log_const[k] - 0.5 * c[k]) - 0.5 * t
        whole_rows[k] = 0
    return log_lik


@numba.njit(nogil=True, cache=True)
def _tile_responsibilities(dist: np.ndarray, rows: int, base: int, c: np.ndarray, log_const: np.ndarray,
                           min_resp: np.ndarray, floor: np.ndarray, block_cost: float,
                           bytes_whole: bool, w: np.ndarray, held: np.ndarray, totals: np.ndarray,
                           nk: np.ndarray, n_whole: np.ndarray, whole: np.ndarray, n_part: np.ndarray,
                           part: np.ndarray, part_r: np.ndarray, lanes: np.ndarray,
                           r: np.ndarray) -> tuple[int, float]:  # pragma: no cover (compiled)
    """The row E-step of a tile from its distances ``dist`` (rows, Kpad): per row, ``log p(x)``
    and ``sum r log r`` (added to ``totals`` (2,) row by row), ``n_k`` and the lists by which
    :func:`_span_stats` adds its statistics (the tile's row ``b`` is the span's ``base + b``;
    the lists go on from the span's earlier tiles, ``nk`` takes a ``whole`` row when it joins):
    with ``bytes_whole``, a component holding the row with responsibility 1 takes it into its
    ``whole`` (its ``n_k`` plus 1); of the other components holding it, when many
    (``block_cost``, :data:`BLOCK_COST`), the row takes ``lanes``, ``r``, else it joins the
    ``part`` (with ``part_r``) of each. The responsibilities are
    :func:`.estep.responsibilities_above`'s bits, its exponentials taken for the components
    above their ``floor`` only; a row whose best component is the only one takes none: its
    responsibility is 1, ``log p(x)`` the best ``w`` and ``r log r`` 0.
    ``w``, ``held`` (K,) are work space. Returns ``(first row of the tile whose log p(x) is not
    finite or -1, its value)``; the rows before it are done."""
    k_n = log_const.shape[0]
    for b in range(rows):
        lanes[base + b] = 0
        top = -np.inf
        best = 0
        for k in range(k_n):
            wk = log_const[k] - 0.5 * (c[k] + dist[b, k])
            w[k] = wk
            better = wk > top  # a NaN is passed over, as in responsibilities_above (selects, not branches)
            top = wk if better else top
            best = k if better else best
        if math.isfinite(top) and floor[best] < 0.0:
            m = 0  # the components above their floor, in order (responsibilities_above's exponentials)
            for k in range(k_n):
                held[m] = k
                m += w[k] - top > floor[k]
            if m == 1:  # the best alone: exp(0) = 1, log(1) = 0, the same bits without them
                log_p = top
                w[best] = 1.0
                h = 1 if min_resp[best] <= 1.0 else 0
            else:  # responsibilities_above on the m components (the others' terms are 0)
                total = 0.0
                weighted = 0.0
                for q in range(m):
                    k = held[q]
                    s = w[k] - top
                    e = math.exp(s)
                    total += e
                    weighted += e * s
                    w[k] = e
                log_total = math.log(total)
                inv = 1.0 / total
                log_p = top + log_total
                totals[1] += weighted / total - log_total
                h = 0
                for q in range(m):
                    k = held[q]
                    rk = w[k] * inv
                    w[k] = rk
                    if rk != 0.0 and rk >= min_resp[k]:
                        held[h] = k
                        h += 1
        else:  # no finite best (a non-finite row), or a floor it would not pass
            log_norm, ent = responsibilities_above(w, floor)
            if not math.isfinite(log_norm):
                return b, log_norm
            log_p = log_norm
            totals[1] += ent
            h = 0
            for k in range(k_n):
                if w[k] != 0.0 and w[k] >= min_resp[k]:
                    held[h] = k
                    h += 1
        if bytes_whole:  # a component holding the row with responsibility 1 takes it in integers
            kept = 0
            for q in range(h):
                k = held[q]
                if w[k] == 1.0:  # k is the best, log p(x) its w: added from the integer sums
                    whole[k, n_whole[k]] = base + b
                    n_whole[k] += 1
                    nk[k] += 1.0
                    log_p = 0.0
                else:
                    held[kept] = k
                    kept += 1
            h = kept
        totals[0] += log_p
        if h == 0:
            continue
        vectors = 0
        for q in range(h):
            k = held[q]
            nk[k] += w[k]
            vectors |= 1 << (k // LANES)
        if block_cost * h <= bit_count(vectors):
            for q in range(h):
                k = held[q]
                part[k, n_part[k]] = base + b
                part_r[k, n_part[k]] = w[k]
                n_part[k] += 1
        else:  # many components hold the row: its non-zeros once, the components as lanes
            lanes[base + b] = vectors
            for k in range(r.shape[1]):
                r[base + b, k] = 0.0
            for q in range(h):
                r[base + b, held[q]] = w[held[q]]
    return -1, 0.0


@numba.njit(nogil=True, cache=True)
def diag_em_nonzeros(x: np.ndarray, scale: float, p: np.ndarray, a: np.ndarray, c: np.ndarray,
                     log_const: np.ndarray, min_resp: np.ndarray, floor: np.ndarray, nk: np.ndarray,
                     s1: np.ndarray, s2: np.ndarray, t1: np.ndarray, t2: np.ndarray,
                     block_cost: float, p32: np.ndarray, a32: np.ndarray, coef: float,
                     slack: float) -> tuple[float, float, int, float]:  # pragma: no cover (compiled)
    """E-step and statistics of the stored rows ``x`` (n, d), C-contiguous, read as ``x * scale``,
    on their non-zeros (see the module). ``p`` = ``P`` and ``a`` = ``-2 mu P`` (K, dp), ``c`` (K,)
    ``sum_j mu_kj^2 P_kj``, ``p32``, ``a32`` as :class:`.nonzero_groups.GroupParams` lays them out;
    ``log_const``, ``min_resp``, ``floor`` (K,); ``nk`` (K,), ``s1`` and ``s2`` (K, d) take ``sum
    r``, ``sum r x`` and ``sum r x^2`` (around 0); ``t1``, ``t2`` (d, Kpad) the sums of the rows
    taken with the components as lanes (:func:`padded_components`). ``coef``, ``slack``: the
    float32 screen's bound (:func:`.nonzero_groups.screen_bound`; ``coef < 0``: every distance in
    float64, :func:`.nonzero_groups.tile_distances`). One read of the rows. Returns ``(sum log
    p(x), sum r log r, first row whose log p(x) is not finite or -1, its value)``; the statistics
    are incomplete after a non-finite row."""
    prefer_wide_vectors()
    n = x.shape[0]
    k_n = log_const.shape[0]
    kp = t1.shape[1]  # the lanes' padded width
    dist = np.empty((TILE_ROWS, k_n))
    acc = np.empty((TILE_ROWS, k_n, GROUP))
    acc32 = np.empty((TILE_ROWS, k_n, GROUP), dtype=np.float32)
    bits = np.empty((TILE_ROWS, max(1, -(-(x.shape[1] // GROUP) // WORD))), dtype=np.int64)
    table = byte_values(scale)
    w = np.empty(k_n)
    held = np.zeros(k_n, dtype=np.int64)
    bytes_whole = _stored_bytes(x)
    n_whole = np.zeros(k_n, dtype=np.int64)
    whole_rows = np.zeros(k_n, dtype=np.int64)
    whole = np.zeros((k_n, SPAN_ROWS), dtype=np.int64)
    n_part = np.zeros(k_n, dtype=np.int64)
    part = np.zeros((k_n, SPAN_ROWS), dtype=np.int64)
    part_r = np.zeros((k_n, SPAN_ROWS))
    lanes = np.zeros(SPAN_ROWS, dtype=np.int64)
    r = np.zeros((SPAN_ROWS, kp))
    sv = np.zeros((k_n, x.shape[1]) if bytes_whole else (0, 0), dtype=np.uint32)
    sq = np.zeros_like(sv)
    in_sums = 0
    totals = np.zeros(2)
    for s0 in range(0, n, SPAN_ROWS):
        span = min(SPAN_ROWS, n - s0)
        for t0 in range(s0, s0 + span, TILE_ROWS):
            rows = min(TILE_ROWS, s0 + span - t0)
            if coef >= 0.0:
                screened_tile_distances(x, t0, rows, scale, p, a, p32, a32, c, log_const, floor, min_resp, coef,
                                        slack, bytes_whole, dist, acc, acc32, bits)
            else:
                tile_distances(x, t0, rows, scale, p, a, dist, acc)
            bad, value = _tile_responsibilities(dist, rows, t0 - s0, c, log_const, min_resp, floor, block_cost,
                                                bytes_whole, w, held, totals, nk, n_whole, whole, n_part,
                                                part, part_r, lanes, r)
            if bad >= 0:
                return totals[0], totals[1], t0 + bad, value
        if in_sums + span > FLUSH_ROWS:
            totals[0] += _add_byte_sums(sv, sq, scale, s1, s2, whole_rows, p, a, c, log_const)
            in_sums = 0
        in_sums += span
        _span_stats(x, s0, span, scale, table, n_whole, whole, n_part, part, part_r, lanes, r, sv, sq, s1, s2, t1,
                    t2)
        for k in range(k_n):
            whole_rows[k] += n_whole[k]
            n_whole[k] = 0
            n_part[k] = 0
    if bytes_whole:
        totals[0] += _add_byte_sums(sv, sq, scale, s1, s2, whole_rows, p, a, c, log_const)
    return totals[0], totals[1], -1, 0.0
