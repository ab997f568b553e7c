"""Lloyd's step of ``uint8`` rows from 8-bit integer products, certified against the float32 walk.

On CPUs with AVX-512 VNNI, ``vpdpbusd`` multiplies 64 unsigned bytes by 64 signed bytes and adds
each four adjacent products into one of 16 int32 lanes: one instruction takes a row's 8-feature
group (its 8 bytes in all 8 quadwords) against 8 *slots* of 8 bytes each, where the float32 walk
of :mod:`.rowproducts` converts the bytes and takes one multiply-add per two centers. The walk
over a row's non-zero groups is the same (the group masks of
:func:`~daskcluster.kernels.vector_ir.block_groups`), two groups a turn into two sets of
accumulators.

**The centers in two bytes** (:class:`ByteCenters`). Each center ``m_j = -2 c_j`` (float32) is
``hi_j / s_j + lo_j / (256 s_j) + e_j`` with ``hi_j``, ``lo_j`` int8 and ``s_j`` the power of two
with ``63.5 < s_j max|m_j| <= 127``: the scales are exact, and so are ``e_j`` (float64) and the
integer products ``x·hi_j``, ``x·lo_j`` (no int32 lane can wrap below :data:`MAX_FEATURES`). The
``2k`` slots (``hi`` then ``lo``) are packed 8 to a 64-byte vector: 10 centers take three
multiply-adds a group. A row's ``P_j = (x·hi_j) / s_j + (x·lo_j) / (256 s_j)`` (one float64
rounding) differs from ``x·m_j`` by ``x·e_j``, at most ``‖x‖ ‖e_j‖`` with ``|e_jf| <= 1 / (256
s_j)`` (about ``2⁻¹⁴ max|m_j|``).

**Certified labels.** Lloyd's products (the float32 walk, :func:`.rowproducts.lloyd_row`) are
within ``γ_d ‖x‖ ‖m_j‖`` of ``x·m_j``. A row takes the nearest center of ``P_j + ‖c_j‖²`` when it
beats every other by more than twice both bounds and the float64 roundings (``2 (‖x‖ k1 + k0)``,
:class:`ByteCenters`): the float32 walk then chooses the same center, strictly, so its
first-of-equals rule has no tie to break. Every other row takes the float32 walk itself
(0.15-0.34 % of MNIST8M's rows at k = 10). The labels, and so the clusters' sums (uint16 sums
flushed to float64 sums: exact integers, whatever their order), are the float32 walk's, bit for
bit.

**Distances and inertia.** A row's squared distance is ``‖x‖² + ‖c_j‖² + P_j``, within ``‖x‖
‖e_j‖`` and float64 rounding of the exact one (relative up to 2e-5 on MNIST8M against ~1e-7 for the
float32 walk's), clipped at 0; the rows farthest from their centers (kept for empty clusters)
are chosen by them. The inertia is corrected to the exact one, but for float64 rounding: the
rows' values summed unclipped, plus ``Σ_j e_j·S_j`` (``S_j`` the cluster's sum of rows, since
``Σ_i x_i·e_j`` over its rows is ``e_j·S_j``): on MNIST8M chunks within 2e-13 of the exact sum,
against 1e-9-4e-9 for the float32 walk's distances.

**Where it runs.** :func:`serves`: unweighted ``uint8`` rows that take the walks
(:func:`.rowproducts.walks_pay`), ``k <=`` :data:`MAX_CENTERS`, finite centers, and a CPU the
compiler targets with AVX-512 VNNI (the instruction is LLVM's x86 intrinsic, compiled only
there); elsewhere the float32 walk, with the same labels and sums.

**Measured** (a 32,768-row MNIST8M chunk, k = 10, one thread, AMD EPYC Zen 4, least CPU time,
load ~2): the Lloyd step 6.7-7.0 -> 4.2-4.4 ms, of which the walk 2.7-3.0 (reading the rows
from memory and their masks 1.2 of it), the arg-min and its certificate 0.3, the sums 1.0
(their stores: 1,568 bytes a row). The sums are then taken :data:`SPAN` rows at a time, cluster
by cluster, each cluster's uint16 sums held in registers over its rows (:func:`_add_span`, no
store a row): 4.5-4.95 -> 4.3-4.6 ms at load 3.6; the :class:`ByteCenters` made once per pass
and process rather than per chunk: the pass's kernel 4.54 -> 4.26 ms a chunk. Not kept: one set of accumulators (3.19 against 3.01 ms for
the walk alone), ``hi`` and ``lo`` in separate vectors (four multiply-adds a group at k = 10:
the step 6.2-6.5 ms), the sums row by row as a call rather than inlined (1.3 ms more: the row views of a
call), the squared norm outside the walk (no gain). The features past the last vector of 32 (16 of
784) summed by one vector of 16 and one of 8 rather than one by one: 3.99-4.04 -> 3.73-3.75 ms a
chunk (least of 7, alternated, load 4.6).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from . import rowproducts as P
from .vector_ir import GROUP, I64, WORD, aligned_zeros, block_groups
from .vectorwidth import prefer_wide_vectors

#: Centers one 64-byte vector holds (8 bytes, one group, each).
LANE_CENTERS = 8
#: Most centers the integer walk takes: their ``2k`` slots in at most four 64-byte vectors a group.
MAX_CENTERS = 16
#: Most features for which no int32 lane of ``x·hi`` or ``x·lo`` can wrap (``255 · 127 · d < 2^31``).
MAX_FEATURES = (2**31 - 1) // (255 * 127)

_I32 = ir.IntType(32)
_I8 = ir.IntType(8)
_V16 = ir.VectorType(_I32, 16)
_INTRINSIC = "llvm.x86.avx512.vpdpbusd.512"


def _emit_walk(builder: ir.IRBuilder, nz: int, x_data: ir.Value, x_at: ir.Value, words: list[ir.Value],
               t_data: ir.Value, t_at: ir.Value, out_data: ir.Value, sq: ir.Value) -> None:
    """``out[8 t + c] +=`` the sum over the set bits ``q`` of the two mask ``words`` (groups
    0-63 and 64-127) of slot ``c``'s two lanes of ``vpdpbusd(x[8q ..] in all 8 quadwords,
    table[q, t])``, for the ``nz`` vectors ``t``, and ``sq += Σ_q Σ x[8q ..]²`` (int32 lanes). Two
    groups a turn into two sets of accumulators, so that no accumulator waits for the previous
    multiply-add into it."""
    dp = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16, _V16, _V16]), _INTRINSIC)
    ivec = ir.VectorType(_I32, GROUP)
    bytes_ = ir.VectorType(_I8, GROUP)
    wv = ir.VectorType(I64, GROUP)
    sets = [[cgutils.alloca_once_value(builder, ir.Constant(_V16, [0] * 16)) for _ in range(nz)] for _ in range(2)]
    squares = [cgutils.alloca_once_value(builder, ir.Constant(ivec, [0] * GROUP)) for _ in range(2)]
    one = ir.Constant(I64, 1)
    zero = ir.Constant(I64, 0)

    def take(q: ir.Value, s: int) -> None:
        ptr = builder.gep(x_data, [builder.add(x_at, builder.mul(q, ir.Constant(I64, GROUP)))])
        raw = builder.load(builder.bitcast(ptr, bytes_.as_pointer()), align=1)
        one_word = builder.bitcast(raw, ir.VectorType(I64, 1))
        xv = builder.bitcast(builder.shuffle_vector(one_word, one_word, ir.Constant(ir.VectorType(_I32, GROUP),
                                                                                     [0] * GROUP)), _V16)
        wide = builder.zext(raw, ivec)
        builder.store(builder.add(builder.load(squares[s]), builder.mul(wide, wide)), squares[s])
        at = builder.add(t_at, builder.mul(q, ir.Constant(I64, 64 * nz)))
        for t in range(nz):
            tp = builder.bitcast(builder.gep(t_data, [builder.add(at, ir.Constant(I64, 64 * t))]), _V16.as_pointer())
            builder.store(builder.call(dp, [builder.load(sets[s][t]), xv, builder.load(tp, align=64)]), sets[s][t])

    for w, word in enumerate(words):
        state = cgutils.alloca_once_value(builder, word)
        base = ir.Constant(I64, WORD * w)
        pair = builder.append_basic_block(f"bwalk{w}.pair")
        body = builder.append_basic_block(f"bwalk{w}.body")
        last = builder.append_basic_block(f"bwalk{w}.last")
        single = builder.append_basic_block(f"bwalk{w}.single")
        done = builder.append_basic_block(f"bwalk{w}.end")
        builder.branch(pair)
        builder.position_at_end(pair)
        m = builder.load(state)
        rest = builder.and_(m, builder.sub(m, one))
        builder.cbranch(builder.icmp_unsigned("!=", rest, zero), body, last)
        builder.position_at_end(body)
        m = builder.load(state)
        rest = builder.and_(m, builder.sub(m, one))
        q1 = builder.add(base, builder.cttz(m, ir.Constant(ir.IntType(1), 1)))
        q2 = builder.add(base, builder.cttz(rest, ir.Constant(ir.IntType(1), 1)))
        builder.store(builder.and_(rest, builder.sub(rest, one)), state)
        take(q1, 0)
        take(q2, 1)
        builder.branch(pair)
        builder.position_at_end(last)
        m = builder.load(state)
        builder.cbranch(builder.icmp_unsigned("!=", m, zero), single, done)
        builder.position_at_end(single)
        take(builder.add(base, builder.cttz(m, ir.Constant(ir.IntType(1), 1))), 0)
        builder.branch(done)
        builder.position_at_end(done)
    for t in range(nz):  # each slot's two lanes summed: out[8 t + c]
        op = builder.bitcast(builder.gep(out_data, [ir.Constant(I64, GROUP * t)]), ivec.as_pointer())
        both = builder.add(builder.load(sets[0][t]), builder.load(sets[1][t]))
        pairs = [builder.shuffle_vector(both, both, ir.Constant(ivec, list(range(h, 16, 2)))) for h in (0, 1)]
        builder.store(builder.add(builder.load(op, align=4), builder.add(*pairs)), op, align=4)
    squares_ = builder.add(builder.load(squares[0]), builder.load(squares[1]))
    total = builder.load(sq)
    for lane in range(GROUP):
        total = builder.add(total, builder.zext(builder.extract_element(squares_, ir.Constant(_I32, lane)), I64))
    builder.store(total, sq)


@intrinsic
def _byte_walk(typingctx: Any, x: Any, i: Any, g0: Any, lo: Any, hi: Any, table: Any,
               out: Any) -> Any:  # pragma: no cover - compiled
    """``out[8 t + c] += Σ_q x[i, 8 (g0 + q) ..] · table[g0 + q, t, 8c ..]`` (int32) over the set
    bits ``q`` of ``lo`` (groups ``g0 ..``) and ``hi`` (groups ``g0 + 64 ..``), for the ``nv``
    vectors of ``table`` (int8, (groups, nv, 64), ``1 <= nv <= 4``, on a cache line); returns the
    groups' exact sum of squares."""
    if not (isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C" and x.dtype == types.uint8
            and isinstance(table, types.Array) and table.ndim == 3 and table.layout == "C"
            and table.dtype == types.int8 and isinstance(out, types.Array) and out.dtype == types.int32):
        return None
    sig = types.int64(x, i, g0, lo, hi, table, out)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        a_x, a_i, a_g0, a_lo, a_hi, a_t, a_out = args
        tx, ti, tg, tlo, thi, tt, to = signature.args
        cast = context.cast
        vx = context.make_array(tx)(context, builder, a_x)
        vt = context.make_array(tt)(context, builder, a_t)
        vo = context.make_array(to)(context, builder, a_out)
        d = cgutils.unpack_tuple(builder, vx.shape, 2)[1]
        nz = cgutils.unpack_tuple(builder, vt.shape, 3)[1]
        g0 = cast(builder, a_g0, tg, types.intp)
        x_at = builder.add(builder.mul(cast(builder, a_i, ti, types.intp), d), builder.mul(g0, ir.Constant(I64, GROUP)))
        t_at = builder.mul(builder.mul(g0, nz), ir.Constant(I64, 64))
        words = [cast(builder, a_lo, tlo, types.int64), cast(builder, a_hi, thi, types.int64)]
        sq = cgutils.alloca_once_value(builder, ir.Constant(I64, 0))
        end = builder.append_basic_block("bpart.end")
        switch = builder.switch(nz, end)
        for n in range(1, MAX_CENTERS // 4 + 1):
            case = builder.append_basic_block(f"bpart.{n}")
            switch.add_case(ir.Constant(I64, n), case)
            builder.position_at_end(case)
            _emit_walk(builder, n, vx.data, x_at, words, vt.data, t_at, vo.data, sq)
            builder.branch(end)
        builder.position_at_end(end)
        return builder.load(sq)

    return sig, codegen


@numba.njit(nogil=True, cache=True)
def _row_bytes(x: np.ndarray, i: int, table: np.ndarray, acc: np.ndarray) -> int:  # pragma: no cover - compiled
    """``acc`` (8 nv,) int32: row ``i``'s products over its full groups with each slot of
    ``table`` (:class:`ByteCenters`); returns their exact sum of squares."""
    for t in range(acc.shape[0]):
        acc[t] = 0
    groups = table.shape[0]
    q = 0
    for g0 in range(0, groups, 2 * WORD):  # the words as rowproducts._row_products takes them: written
        span = min(2 * WORD, groups - g0)  # out in both, since one compiled helper cost 0.4 ms a chunk
        lo = block_groups(x, i, g0, min(span, WORD))
        hi = block_groups(x, i, g0 + WORD, span - WORD) if span > WORD else 0
        if lo == 0 and hi == 0:
            continue
        q += _byte_walk(x, i, g0, lo, hi, table, acc)
    return q


#: Rows whose labels are taken before they are added to their clusters' sums, cluster by cluster.
SPAN = 128
#: Features of one vector of uint16 sums; the sums take 8 such vectors (256 features) at a time.
_SUM_LANES = 32
_SUM_VECTORS = 8


def _emit_sum_block(builder: ir.IRBuilder, width: int, x_data: ir.Value, d: ir.Value, rows: ir.Value,
                    n_rows: ir.Value, acc_at: ir.Value, f0: ir.Value, lanes: int = _SUM_LANES) -> None:
    """``acc_at[f0 + f] += Σ_t x[rows[t], f0 + f]`` for ``f < lanes width`` in uint16 lanes, the
    sums held in ``width`` registers of ``lanes`` lanes over the rows."""
    bytes_ = ir.VectorType(_I8, lanes)
    words = ir.VectorType(ir.IntType(16), lanes)
    ptrs = [builder.bitcast(builder.gep(acc_at, [builder.add(f0, ir.Constant(I64, lanes * v))]),
                            words.as_pointer()) for v in range(width)]
    regs = [cgutils.alloca_once_value(builder, builder.load(p, align=2)) for p in ptrs]
    with cgutils.for_range(builder, n_rows) as loop:
        r = builder.load(builder.gep(rows, [loop.index]))
        base = builder.add(builder.mul(r, d), f0)
        for v in range(width):
            xp = builder.bitcast(builder.gep(x_data, [builder.add(base, ir.Constant(I64, lanes * v))]),
                                 bytes_.as_pointer())
            builder.store(builder.add(builder.load(regs[v]), builder.zext(builder.load(xp, align=1), words)), regs[v])
    for v in range(width):
        builder.store(builder.load(regs[v]), ptrs[v], align=2)


@intrinsic
def _sum_rows(typingctx: Any, x: Any, rows: Any, n_rows: Any, acc: Any, j: Any) -> Any:  # pragma: no cover - compiled
    """``acc[j, f] += Σ_{t < n_rows} x[rows[t], f]`` (uint16, wrapping) for the features ``f`` of
    whole 32-feature vectors, then of one 16- and one 8-feature vector where they fit; returns
    their number (the caller adds the rest, fewer than 8)."""
    if not (isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C" and x.dtype == types.uint8
            and isinstance(acc, types.Array) and acc.ndim == 2 and acc.layout == "C" and acc.dtype == types.uint16
            and isinstance(rows, types.Array) and rows.dtype == types.int64):
        return None
    sig = types.int64(x, rows, n_rows, acc, j)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        tx, tr, tn, ta, tj = signature.args
        vx = context.make_array(tx)(context, builder, args[0])
        vr = context.make_array(tr)(context, builder, args[1])
        va = context.make_array(ta)(context, builder, args[3])
        d = cgutils.unpack_tuple(builder, vx.shape, 2)[1]
        n_rows = context.cast(builder, args[2], tn, types.int64)
        j = context.cast(builder, args[4], tj, types.int64)
        acc_at = builder.gep(va.data, [builder.mul(j, d)])
        lanes = ir.Constant(I64, _SUM_LANES)
        full = builder.mul(builder.udiv(d, lanes), lanes)
        block = ir.Constant(I64, _SUM_LANES * _SUM_VECTORS)
        blocks = builder.mul(builder.udiv(full, block), block)
        with cgutils.for_range_slice(builder, ir.Constant(I64, 0), blocks, block) as (f0, _):
            _emit_sum_block(builder, _SUM_VECTORS, vx.data, d, vr.data, n_rows, acc_at, f0)
        with cgutils.for_range_slice(builder, blocks, full, lanes) as (f0, _):
            _emit_sum_block(builder, 1, vx.data, d, vr.data, n_rows, acc_at, f0)
        done = cgutils.alloca_once_value(builder, full)
        for narrow in (_SUM_LANES // 2, _SUM_LANES // 4):  # the rest: one vector of 16, then of 8
            at = builder.load(done)
            fits = builder.icmp_unsigned("<=", builder.add(at, ir.Constant(I64, narrow)), d)
            with builder.if_then(fits):
                _emit_sum_block(builder, 1, vx.data, d, vr.data, n_rows, acc_at, at, narrow)
                builder.store(builder.add(at, ir.Constant(I64, narrow)), done)
        return builder.load(done)

    return sig, codegen


@numba.njit(nogil=True, cache=True)
def _add_span(x: np.ndarray, labels: np.ndarray, s0: int, s1: int, order: np.ndarray, starts: np.ndarray,
              acc: np.ndarray, count: np.ndarray, sums: np.ndarray, wic: np.ndarray) -> None:  # pragma: no cover
    """Rows ``s0 .. s1`` (at most :data:`SPAN`) added to their clusters' uint16 sums ``acc``
    cluster by cluster (``wic[j]`` += their number), each cluster's flushed to the float64
    ``sums`` once it holds :data:`SPAN` rows or more (``count``: its rows since; so at most
    ``2 SPAN - 1`` rows of 255 between flushes: no lane wraps)."""
    prefer_wide_vectors()
    k, d = acc.shape
    for j in range(k + 1):
        starts[j] = 0
    for i in range(s0, s1):
        starts[labels[i] + 1] += 1
    for j in range(k):
        starts[j + 1] += starts[j]
    for i in range(s0, s1):
        lab = labels[i]
        order[starts[lab]] = i
        starts[lab] += 1
    at = 0
    for j in range(k):
        m = starts[j] - at
        if m == 0:
            continue
        rows = order[at : starts[j]]
        full = _sum_rows(x, rows, m, acc, j)
        for f in range(full, d):
            v = acc[j, f]
            for t in range(m):
                v = np.uint16(v + np.uint16(x[rows[t], f]))
            acc[j, f] = v
        at = starts[j]
        wic[j] += np.float64(m)
        count[j] += m
        if count[j] >= SPAN:
            P.flush_bytes(acc, j, sums)
            count[j] = 0


class ByteCenters:
    """``-2 C`` (k, d) float32 as two int8 tables for :func:`lloyd_step` (see the module).

    Attributes
    ----------
    table : ndarray of shape (d // 8, ceil(2k / 8), 64), int8
        ``table[q, t, 8c + f]``: slot ``s = 8t + c`` at feature ``8q + f``, the slots ``hi_0 ..
        hi_{k-1}, lo_0 .. lo_{k-1}`` (zeros past them); on a cache line.
    tail : ndarray of shape (2k, d mod 8), int64
        The slots at the features past the last full group.
    inv_hi, inv_lo : ndarray of shape (k,), float64
        ``1 / s_j`` and ``1 / (256 s_j)``, powers of two.
    residual : ndarray of shape (k, d), float64
        ``e_j = m_j - hi_j / s_j - lo_j / (256 s_j)``, exact.
    k1, k0 : float
        A row's labels are certified when its two nearest values differ by more than
        ``2 (‖x‖ k1 + k0)``.
    minus2, c_sq, walk_table
        The centers as given, and :func:`.rowproducts.group_table` of them for the rows the
        float32 walk labels.

    Made once per pass and process (0.25 ms at 10 x 784: a tenth of a chunk's step), kept on
    the pass's center table by its caller.
    """

    def __init__(self, minus2: np.ndarray, c_sq: np.ndarray) -> None:
        self.minus2 = minus2
        self.c_sq = c_sq
        self.walk_table = P.group_table(minus2)
        k, d = minus2.shape
        m = minus2.astype(np.float64)
        amax = np.abs(m).max(axis=1) if d else np.zeros(k)
        scale = np.ones(k)
        positive = amax > 0
        scale[positive] = np.exp2(np.floor(np.log2(127.0 / amax[positive])))
        scale[positive & (scale * amax > 127.0)] /= 2.0  # log2 rounded up at a power of two
        hi = np.rint(m * scale[:, None])
        rest = m - hi / scale[:, None]
        lo = np.clip(np.rint(rest * (256.0 * scale)[:, None]), -127, 127)
        self.residual = rest - lo / (256.0 * scale)[:, None]
        self.inv_hi = 1.0 / scale
        self.inv_lo = 1.0 / (256.0 * scale)
        groups = d // GROUP
        slots = np.concatenate([hi, lo])  # slot j: hi_j, slot k + j: lo_j
        nv = -(-2 * k // LANE_CENTERS)
        self.table = aligned_zeros((groups, nv, 64), np.int8)
        for s_ in range(2 * k):
            t, c = divmod(s_, LANE_CENTERS)
            self.table[:, t, GROUP * c : GROUP * (c + 1)] = slots[s_, : groups * GROUP].reshape(groups, GROUP)
        self.tail = np.ascontiguousarray(slots[:, groups * GROUP :], dtype=np.int64)
        up = 1.0 + 2.0**-40
        e_norm = np.sqrt((self.residual**2).sum(axis=1)) * up
        m_norm = np.sqrt((m**2).sum(axis=1)) * up
        u = 2.0**-24
        gamma = max(d, 1) * u / (1.0 - max(d, 1) * u)
        eps = 2.0**-53
        self.k1 = float((e_norm + gamma * m_norm).max() + 8.0 * eps * m_norm.max()) if k else 0.0
        self.k0 = float(8.0 * eps * np.abs(c_sq).max()) if k else 0.0


@numba.njit(nogil=True, cache=True)
def _lloyd(x: np.ndarray, table: np.ndarray, tail: np.ndarray, inv_hi: np.ndarray, inv_lo: np.ndarray, k1: float,
           k0: float, gtable: np.ndarray, mt: np.ndarray, c_sq: np.ndarray, labels: np.ndarray, min_sq: np.ndarray,
           sums: np.ndarray, wic: np.ndarray) -> float:  # pragma: no cover - compiled
    """The rows' Lloyd step by the integer products (see :func:`lloyd_step`); returns the sum of
    the rows' unclipped values ``‖x‖² + ‖c‖² + P``."""
    prefer_wide_vectors()
    n, d = x.shape
    k = mt.shape[0]
    full = table.shape[0] * GROUP
    acc = np.zeros(GROUP * table.shape[1], dtype=np.int32)
    out = np.zeros(k + GROUP, dtype=np.float32)
    c_pad = np.full(k + GROUP, np.inf)
    c_pad[:k] = c_sq
    vals = np.empty(k)
    sacc = np.zeros((k, d), dtype=np.uint16)
    count = np.zeros(k, dtype=np.int64)
    order = np.empty(SPAN, dtype=np.int64)
    starts = np.zeros(k + 1, dtype=np.int64)
    total = 0.0
    up = 1.0 + 2.0**-50
    for i in range(n):
        P.prefetch_row(x, i + 4)
        q = _row_bytes(x, i, table, acc)
        for f in range(full, d):
            v = np.int64(x[i, f])
            q += v * v
            for s_ in range(2 * k):
                acc[s_] += np.int32(v * tail[s_, f - full])
        for j in range(k):
            vals[j] = (np.float64(acc[j]) * inv_hi[j] + np.float64(acc[k + j]) * inv_lo[j]) + c_sq[j]
        best = 0
        v1 = vals[0]
        v2 = np.inf
        for j in range(1, k):  # selects, not branches
            v = vals[j]
            lt = v < v1
            v2 = v1 if lt else min(v2, v)
            best = j if lt else best
            v1 = v if lt else v1
        if not (v2 - v1 > 2.0 * (math.sqrt(np.float64(q)) * up * k1 + k0)):
            best, _, _ = P.lloyd_row(x, i, gtable, mt, out, c_pad, c_sq)
        bv = vals[best]
        total += bv + np.float64(q)
        labels[i] = best
        min_sq[i] = P.distance(bv, np.float64(q))
        if (i + 1) % SPAN == 0 or i + 1 == n:
            _add_span(x, labels, i + 1 - (i % SPAN + 1), i + 1, order, starts, sacc, count, sums, wic)
    for j in range(k):
        P.flush_bytes(sacc, j, sums)
    return total


def available() -> bool:
    """Whether this CPU (as the compiler targets it) has AVX-512 VNNI."""
    return _HAS_VNNI


def _has_vnni() -> bool:
    from numba.core import config
    import llvmlite.binding as llvm

    if config.CPU_NAME not in (None, "host"):
        return "+avx512vnni" in (config.CPU_FEATURES or "")
    return bool(llvm.get_host_cpu_features().get("avx512vnni"))


_HAS_VNNI = _has_vnni()


def serves(x: np.ndarray, minus2: np.ndarray, c_sq: np.ndarray, weighted: bool) -> bool:
    """Whether :func:`lloyd_step` takes the uint8 rows ``x`` against ``-2 C`` = ``minus2`` (k, d):
    the CPU has AVX-512 VNNI, the rows are unweighted, ``k <=`` :data:`MAX_CENTERS`, ``8 <= d <=``
    :data:`MAX_FEATURES`, and the centers and their squared norms are finite."""
    k, d = minus2.shape
    return (_HAS_VNNI and not weighted and x.dtype == np.uint8 and 0 < k <= MAX_CENTERS
            and GROUP <= d <= MAX_FEATURES and bool(np.isfinite(minus2).all()) and bool(np.isfinite(c_sq).all()))


def lloyd_step(x: np.ndarray, centers: ByteCenters, labels: np.ndarray, min_sq: np.ndarray, sums: np.ndarray,
               wic: np.ndarray) -> float:
    """A Lloyd step over unweighted uint8 rows by the integer products (see the module); where
    :func:`serves`.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_features), uint8, C-contiguous
    centers : ByteCenters
        ``-2 C`` (float32, C-contiguous) and ``‖c‖²`` (float64) as :class:`ByteCenters`.
    labels : ndarray of shape (n_rows,), int64
        Filled with each row's nearest center: the label of
        :func:`daskcluster.kernels.rowproducts.lloyd_step`'s float32 products (first of equals).
    min_sq : ndarray of shape (n_rows,), float64
        Filled with each row's squared distance to it, within ``‖x‖ ‖e_j‖`` (plus float64
        rounding) of the exact one, clipped at 0.
    sums : ndarray of shape (n_centers, n_features), float64
        ``sums[labels[i]] += x[i]``: the block's integer sums added once (exact below 2⁵³, so the
        float32 walk's bits).
    wic : ndarray of shape (n_centers,), float64
        ``wic[labels[i]] += 1``.

    Returns
    -------
    inertia : float
        ``Σ_i ‖x_i - c_{labels[i]}‖²``, exact but for float64 rounding (relative ~1e-13 on
        MNIST), not the sum of ``min_sq``.
    """
    block = np.zeros_like(sums)
    total = _lloyd(x, centers.table, centers.tail, centers.inv_hi, centers.inv_lo, centers.k1, centers.k0,
                   centers.walk_table, centers.minus2, centers.c_sq, labels, min_sq, block, wic)
    sums += block
    return max(0.0, total + float(np.einsum("kd,kd->", centers.residual, block)))
