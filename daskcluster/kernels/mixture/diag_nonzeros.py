"""The EM pass of the diagonal types over rows that are mostly zeros, on their non-zeros only.

For rows stored with many exact zeros (images as ``uint8``: MNIST's rows are 75 % zero bytes)
and an affine map without offset (``y = stored * scale``), the diagonal E-step is taken in the
form scikit-learn itself computes (``_estimate_log_gaussian_prob``: ``sum(mu^2 P) - 2 y (mu P)^T
+ y^2 P^T``), whose data terms vanish where ``y_j = 0``::

    log p_k(y) = log_const_k - (c_k + sum_{j: y_j != 0} y_j (y_j P_kj + A_kj)) / 2,
    c_k = sum_j mu_kj^2 P_kj,   A_kj = -2 mu_kj P_kj   (both once per block),

and the M-step's sums ``sum r y`` and ``sum r y^2`` take the non-zeros only, around 0. A block
is taken :data:`TILE_ROWS` rows at a time, and a tile :data:`MASK_WIDTH` features at a time, so
that the parameters (or the sums) of those features stay in L1 while the tile's rows use them:

1. **Non-zeros without a compaction pass.** A row's 64 features of the block are compared with
   zero by one vector compare (``icmp ne <64 x i8>`` for bytes, ``fcmp une`` for floats, so a NaN
   counts as non-zero) whose ``<64 x i1>`` is read as one ``i64`` bit mask, walked with ``cttz``
   and ``m & (m - 1)``; nothing is written. A byte's value ``v * scale`` is read from a table of
   the 256 (one load instead of a conversion and a multiplication; the same value). The last
   ``d mod 64`` features are tested one by one.
2. **E-step, the components as vector lanes.** The parameters are laid out (d, Kpad), ``Kpad``
   the components rounded up to a multiple of 4 (zero lanes beyond ``K``), as 8-lane vectors and
   one 4-lane vector for ``Kpad = 4 mod 8`` (one loop compiled per width of :data:`WIDTHS`, so
   that the accumulators stay in registers); per non-zero and vector, one load of ``P[j]`` and
   one of ``A[j]`` and two multiply-adds, ``t = y P + A`` and ``acc += y t``, consecutive
   non-zeros taken in turn by :data:`ACCUMULATORS` sets of accumulators (to overlap the
   multiply-adds' latency). Then the log-sum-exp, responsibilities and ``sum r log r`` of
   :func:`.estep.responsibilities_above` (the floor rule of the dense loop of :mod:`.diag_rows`).
3. **Statistics.** ``r_k`` is kept where it is non-zero and at least ``min_resp_k`` (as in
   :mod:`.diag_rows`). A row held by few components adds ``r_k y`` and ``r_k y^2`` to the sums
   (K, d) of each, 8 features per vector over each 64-feature block where the row is not all zero
   (zeros add nothing: 16 read-modify-writes a block, whatever its non-zeros); a row held by many
   (``BLOCK_COST x components x blocks > non-zeros x vectors``, :data:`BLOCK_COST`) adds its
   non-zeros once, ``S[j] += r y_j`` and ``(r y_j) y_j`` for the vectors of components holding it
   as lanes, into sums (d, Kpad). Measured on MNIST8M chunks (one thread), a row is held by 1.4
   components on average, and 87 % of the rows by components of one vector.

The vector code is LLVM's portable vector IR (``<64 x i8>`` compares, ``<8 x double>`` and
``<4 x double>`` loads, broadcasts, ``uitofp`` and ``llvm.fmuladd``) emitted by Numba intrinsics,
as in :mod:`.whitened`: 512-bit registers on AVX-512 CPUs
(:func:`~daskcluster.kernels.vectorwidth.prefer_wide_vectors`), narrower instructions
elsewhere; no instruction set is assumed.

The (d, Kpad) parameters and the sums are :func:`aligned_zeros` (on a cache line: fewer 8-lane
loads and stores spanning two lines than where NumPy happens to place them).

**Measured** (``benchmarks/bench_gmm_mnist8m.py --variants``, MNIST8M chunks of 32,768 rows, the
benchmark's model at EM iterations 1-5, one thread, CPU time, see ``benchmarks/RESULTS-gmm.md``):
23-26 ms a chunk against 31-36 ms for the dense loop (24-27 ms with the parameters and sums 32
bytes into a cache line), of which the E-step (its masks, walks and multiply-adds) 13.4-13.7 ms
(14.9-15.2 ms with ``pt``, ``at`` 48 bytes into a line), the log-sum-exp ~3-4 ms and the statistics
~6 ms; the pass costs the same
as the dense loop at 45-50 % non-zero values (MNIST rows with non-zeros added), hence
:data:`.diag_rows.NONZERO_SHARE`. The E-step's log-densities cost 10 ms a chunk for 1-4
components (one 4-lane vector) and 13.7 ms for 10: the walk of the masks and the ~330,000
non-empty blocks a chunk (masks, accumulators, mispredicted loop exits) dominate, not the
multiply-adds. The same rows with each row's non-zeros moved to its first columns (the same
non-zeros in 2.8 times fewer blocks) cost 1.3 ms less: the blocks' setups and exits are ~2-3 ms of
the E-step, the rest is per non-zero (~1.5 ns each, ~9 instructions for a 4-lane vector of
components). Tried and not kept: each row's non-zeros compacted by ``llvm.masked.compressstore``
(``vpcompressb``) into per-tile lists of 64, 128 or 256 features, then walked two a turn with a
known count (``benchmarks/gmm_compacted_walk.py``; E-step 17.4-17.6, 15.6-15.7 and 13.5-13.8 ms against 13.4-13.7 ms:
the compaction costs what the fewer exits save); a compaction
of each row's non-zeros with the parameters read from L2, 4 sets of accumulators, turns of the walk without selects, a loop over the tile's rows
inside one intrinsic per block, the terms as ``y^2 P`` and ``y A`` (scikit-learn's split) into
separate accumulators, walking only the non-zero 8-feature groups for the statistics.

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

**Rounding of the E-step.** The expanded form cancels where ``y`` is near ``mu`` with a large
``P``. Each term ``y (y P + A)`` carries at most three roundings and the ``m`` non-zero terms of a
row are summed along chains of at most ``m + 3`` additions, so with ``c_k`` (``d`` products of
two roundings, summed pairwise) the computed distance ``D_k = c_k + sum_{nz} y (y P + A)`` is
within ``gamma_{m + 6} (c_k + S_k) + gamma_{ceil(log2 d) + 3} c_k`` of the exact
``sum_j P_kj (y_j - mu_kj)^2`` (``S_k = sum_{nz} |y| (|y| P + |A|)``, ``gamma_n = n eps / (1 - n
eps)``), where the dense loop of :mod:`.diag_rows` is within ``gamma_{d + 3} D_k``: the two agree
to the cancellation's ratio ``(c_k + S_k) / D_k`` times ``eps``, as scikit-learn's form does
(``tests/test_mixture_diag_nonzeros.py`` checks the bound against exact rational arithmetic,
also 10 digits into the cancellation).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ..vectorwidth import prefer_wide_vectors
from .estep import responsibilities_above
from .whitened import LANES

#: Features compared with zero by one vector compare (one ``i64`` bit mask).
MASK_WIDTH = 64
#: Bytes to which the (d, Kpad) parameters and the sums the vector loops read and write are
#: aligned (a cache line: an 8-lane load of a row that starts on one never spans two lines).
ALIGNMENT = 64
#: Sets of accumulators the E-step's consecutive non-zeros take in turn, each set one vector per
#: vector of components (a power of 2; measured on MNIST8M chunks, one thread: 2 and 4 within noise
#: of each other, 2 wasting fewer multiply-adds past a block's last non-zero).
ACCUMULATORS = 2
#: Lanes of the narrow vector that ends a padded width of 4 mod 8.
HALF = 4
#: Components up to which the non-zero pass applies (its vector layouts are compiled per width).
MAX_COMPONENTS = 32
#: The padded widths (lanes of the (d, Kpad) parameters) the compiled loops have a layout for.
WIDTHS = tuple(range(HALF, MAX_COMPONENTS + 1, HALF))
#: Rows of a tile: their distances, then their statistics, feature block by feature block.
TILE_ROWS = 64
#: A row's statistics are added 64 features at a time per component holding it while that
#: costs no more than its non-zeros once per vector of components: ``BLOCK_COST x components x
#: blocks <= non-zeros x vectors`` (measured on MNIST8M chunks, one thread: a 64-feature block of
#: one component 21 ns, a non-zero's vector update 1.9 ns).
BLOCK_COST = 11
_I64 = ir.IntType(64)
_F64 = ir.DoubleType()
_VECTOR = ir.VectorType(_F64, LANES)


def aligned_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """A C-contiguous float64 array of zeros whose first element starts on :data:`ALIGNMENT` bytes.

    NumPy aligns a large array to 16 bytes only, so rows of 64 or 96 bytes would start anywhere
    in a cache line and half or all of their 8-lane loads span two lines (measured on MNIST8M
    chunks, one thread, 10 components: the E-step 13.4-13.7 ms a chunk aligned against 14.9-15.2 ms with
    ``pt`` and ``at`` starting 48 bytes into a line)."""
    size = math.prod(shape)
    per_line = ALIGNMENT // np.dtype(np.float64).itemsize
    buf = np.zeros(size + per_line)
    start = (-buf.ctypes.data % ALIGNMENT) // np.dtype(np.float64).itemsize
    return buf[start : start + size].reshape(shape)


def padded_components(n_components: int) -> int:
    """Lanes of the (d, Kpad) parameters: ``n_components`` rounded up to a multiple of :data:`HALF`."""
    return -(-n_components // HALF) * HALF


@intrinsic
def _nonzero_bits(typingctx: Any, x: Any, i: Any, j0: Any) -> Any:  # pragma: no cover - compiled
    """Bit ``b`` of the ``int64`` result set iff ``x[i, j0 + b] != 0`` (a NaN is non-zero), for
    ``b <`` :data:`MASK_WIDTH`; ``x`` 2-D C-contiguous of an integer or float dtype, columns
    ``j0 .. j0 + 63`` must exist. One vector load and compare."""
    if not (isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C"
            and isinstance(x.dtype, (types.Integer, types.Float))):
        return None
    sig = types.int64(x, i, j0)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        arr, row, col = args
        tx = signature.args[0]
        va = context.make_array(tx)(context, builder, arr)
        d = cgutils.unpack_tuple(builder, va.shape, 2)[1]
        row = context.cast(builder, row, signature.args[1], types.intp)
        col = context.cast(builder, col, signature.args[2], types.intp)
        elem = context.get_data_type(tx.dtype)
        vec = ir.VectorType(elem, MASK_WIDTH)
        ptr = builder.gep(va.data, [builder.add(builder.mul(row, d), col)])
        values = builder.load(builder.bitcast(ptr, vec.as_pointer()), align=1)
        zero = ir.Constant(vec, [0] * MASK_WIDTH if isinstance(tx.dtype, types.Integer) else [0.0] * MASK_WIDTH)
        if isinstance(tx.dtype, types.Integer):
            nonzero = builder.icmp_unsigned("!=", values, zero)
        else:
            nonzero = builder.fcmp_unordered("!=", values, zero)
        return builder.bitcast(nonzero, _I64)

    return sig, codegen


def _vector(lanes: int) -> ir.VectorType:
    return ir.VectorType(_F64, lanes)


def _chunks(width: int) -> list[int]:
    """The vectors (their lanes) of a padded width: 8-lane ones, then a 4-lane one for ``width = 4 mod 8``."""
    return [LANES] * (width // LANES) + ([HALF] if width % LANES else [])


def _vector_ptr(builder: ir.IRBuilder, base: ir.Value, offset: ir.Value, lanes: int) -> ir.Value:
    return builder.bitcast(builder.gep(base, [offset]), _vector(lanes).as_pointer())


def _splat(builder: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    """``value`` in every lane."""
    vec = _vector(lanes)
    one = builder.insert_element(ir.Constant(vec, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
    return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined), mask)


def _fma(builder: ir.IRBuilder, a: ir.Value, b: ir.Value, c: ir.Value, lanes: int) -> ir.Value:
    """``a * b + c`` lane by lane (``llvm.fmuladd``: fused where the CPU has it, never a library call)."""
    vec = _vector(lanes)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fmuladd.v{lanes}f64")
    return builder.call(fn, [a, b, c])


def _switch_width(builder: ir.IRBuilder, width: ir.Value, emit: Any) -> None:
    """Emit ``emit(chunks)`` once per padded width of :data:`WIDTHS` (compile-time vector
    layouts, so that accumulators stay in registers) and run the one equal to ``width``; nothing
    for another width."""
    end = builder.append_basic_block("width.end")
    switch = builder.switch(width, end)
    for w in WIDTHS:
        case = builder.append_basic_block(f"width.{w}")
        switch.add_case(ir.Constant(_I64, w), case)
        builder.position_at_end(case)
        emit(_chunks(w))
        builder.branch(end)
    builder.position_at_end(end)


def _walk_bits(builder: ir.IRBuilder, bits: ir.Value, unroll: int, body: Any) -> None:
    """Call ``body(u, b, valid)`` for the set bits ``b`` of ``bits`` (an ``i64``), lowest first,
    ``unroll`` per turn of the loop (``u`` the position in the turn; past the last set bit,
    ``valid`` is false and ``b`` is 0): ``cttz`` and ``m & (m - 1)``, branch-free within a turn."""
    zero = ir.Constant(_I64, 0)
    one = ir.Constant(_I64, 1)
    state = cgutils.alloca_once(builder, _I64)
    builder.store(bits, state)
    cond = builder.append_basic_block("walk.cond")
    turn = builder.append_basic_block("walk.body")
    end = builder.append_basic_block("walk.end")
    builder.branch(cond)
    builder.position_at_end(cond)
    builder.cbranch(builder.icmp_unsigned("!=", builder.load(state), zero), turn, end)
    builder.position_at_end(turn)
    m = builder.load(state)
    for u in range(unroll):
        valid = ir.Constant(ir.IntType(1), 1) if u == 0 else builder.icmp_unsigned("!=", m, zero)
        low = builder.cttz(m, ir.Constant(ir.IntType(1), 0))
        body(u, builder.select(valid, low, zero), valid)
        m = builder.and_(m, builder.sub(m, one))
    builder.store(m, state)
    builder.branch(cond)
    builder.position_at_end(end)


def start_accumulators(builder: ir.IRBuilder, dist: ir.Value, d_row: ir.Value, offsets: list[ir.Value],
                       chunks: list[int]) -> list[list[ir.Value]]:
    """:data:`ACCUMULATORS` sets of vector accumulators (one per vector of ``chunks`` lanes), the
    first holding the row ``d_row`` of ``dist`` (a ``double*``), the others zero."""
    accs = [[cgutils.alloca_once(builder, _vector(n)) for n in chunks] for _ in range(ACCUMULATORS)]
    for c, n in enumerate(chunks):
        builder.store(builder.load(_vector_ptr(builder, dist, builder.add(d_row, offsets[c]), n), align=8), accs[0][c])
        for u in range(1, ACCUMULATORS):
            builder.store(ir.Constant(_vector(n), [0.0] * n), accs[u][c])
    return accs


def add_term(builder: ir.IRBuilder, y: ir.Value, p_row: ir.Value, offsets: list[ir.Value], chunks: list[int],
             pt: ir.Value, at: ir.Value, acc: list[ir.Value]) -> None:
    """``acc += y (y P + A)`` lane by lane, ``P`` and ``A`` the rows at ``p_row`` of ``pt`` and
    ``at`` (``double*``): one non-zero's term of the E-step, two multiply-adds per vector."""
    for c, n in enumerate(chunks):
        at_c = builder.add(p_row, offsets[c])
        p = builder.load(_vector_ptr(builder, pt, at_c, n), align=8)
        a = builder.load(_vector_ptr(builder, at, at_c, n), align=8)
        ys = _splat(builder, y, n)
        t = _fma(builder, ys, p, a, n)
        builder.store(_fma(builder, ys, t, builder.load(acc[c]), n), acc[c])


def store_accumulators(builder: ir.IRBuilder, accs: list[list[ir.Value]], dist: ir.Value, d_row: ir.Value,
                       offsets: list[ir.Value], chunks: list[int]) -> None:
    """The sets of accumulators summed pairwise into the row ``d_row`` of ``dist``."""
    for c, n in enumerate(chunks):
        sums = [builder.load(accs[u][c]) for u in range(ACCUMULATORS)]
        while len(sums) > 1:
            sums = [builder.fadd(sums[u], sums[u + 1]) for u in range(0, len(sums), 2)]
        builder.store(sums[0], _vector_ptr(builder, dist, builder.add(d_row, offsets[c]), n), align=8)


def _stored_value(context: Any, builder: ir.IRBuilder, tx: Any, data: ir.Value, at: ir.Value, scale: ir.Value,
                  table: ir.Value, valid: ir.Value | None = None) -> ir.Value:
    """``float64(x.flat[at]) * scale``, or 0 where ``valid`` is false; for bytes, the entry of
    ``table`` (``table[v] = v * scale``, the same value) that the byte indexes (index 0 where not
    valid): one load instead of a conversion and a multiplication."""
    raw = builder.load(builder.gep(data, [at]))
    if tx.dtype == types.uint8:
        index = builder.zext(raw, _I64)
        if valid is not None:
            index = builder.select(valid, index, ir.Constant(_I64, 0))
        return builder.load(builder.gep(table, [index]))
    y = builder.fmul(context.cast(builder, raw, tx.dtype, types.float64), scale)
    return y if valid is None else builder.select(valid, y, ir.Constant(_F64, 0.0))


def _stored_rows(x: Any) -> bool:
    return (isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C"
            and isinstance(x.dtype, (types.Integer, types.Float)))


def _f64_array(t: Any, ndim: int) -> bool:
    return isinstance(t, types.Array) and t.ndim == ndim and t.dtype == types.float64 and t.layout == "C"


@intrinsic
def _add_block_terms(typingctx: Any, x: Any, i: Any, j0: Any, bits: Any, scale: Any, table: Any, pt: Any,
                     at: Any, dist: Any, row: Any) -> Any:  # pragma: no cover - compiled
    """``dist[row, k] += sum_{b in bits} y_j (y_j pt[j, k] + at[j, k])``, ``j = j0 + b``,
    ``y_j = x[i, j] * scale``, for every lane ``k`` of the padded width ``Kpad`` (one of
    :data:`WIDTHS`; ``pt``, ``at`` (d, Kpad) and ``dist`` (rows, Kpad) float64 C-contiguous):
    :data:`ACCUMULATORS` sets of vector accumulators (the first starts at ``dist[row]``), summed
    pairwise."""
    if not (_stored_rows(x) and _f64_array(table, 1) and _f64_array(pt, 2) and _f64_array(at, 2)
            and _f64_array(dist, 2)):
        return None
    sig = types.void(x, i, j0, bits, scale, table, pt, at, dist, row)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        a_x, a_i, a_j0, a_bits, a_scale, a_table, a_pt, a_at, a_dist, a_row = args
        tx, ti, tj, tb, ts, tt, tp, ta, td, tr = signature.args
        vx = context.make_array(tx)(context, builder, a_x)
        table = context.make_array(tt)(context, builder, a_table).data
        vp = context.make_array(tp)(context, builder, a_pt)
        va = context.make_array(ta)(context, builder, a_at)
        vd = context.make_array(td)(context, builder, a_dist)
        d = cgutils.unpack_tuple(builder, vx.shape, 2)[1]
        padded = cgutils.unpack_tuple(builder, vp.shape, 2)[1]
        i = context.cast(builder, a_i, ti, types.intp)
        j0 = context.cast(builder, a_j0, tj, types.intp)
        bits = context.cast(builder, a_bits, tb, types.int64)
        scale = context.cast(builder, a_scale, ts, types.float64)
        row = context.cast(builder, a_row, tr, types.intp)
        x_row = builder.add(builder.mul(i, d), j0)

        def emit(chunks: list[int]) -> None:
            width = ir.Constant(_I64, sum(chunks))  # a constant in each layout's loop
            d_row = builder.mul(row, width)
            offsets = [ir.Constant(_I64, LANES * c) for c in range(len(chunks))]
            accs = start_accumulators(builder, vd.data, d_row, offsets, chunks)

            def body(u: int, b: ir.Value, valid: ir.Value) -> None:
                y = _stored_value(context, builder, tx, vx.data, builder.add(x_row, b), scale, table,
                                  None if u == 0 else valid)
                add_term(builder, y, builder.mul(builder.add(j0, b), width), offsets, chunks, vp.data, va.data,
                         accs[u])

            _walk_bits(builder, bits, ACCUMULATORS, body)
            store_accumulators(builder, accs, vd.data, d_row, offsets, chunks)

        _switch_width(builder, padded, emit)
        return context.get_dummy_value()

    return sig, codegen


def _to_double(builder: ir.IRBuilder, values: ir.Value, dtype: Any, lanes: int) -> ir.Value:
    """A vector of stored values as float64 lanes (each lane the value's own scalar conversion)."""
    vec = _vector(lanes)
    if isinstance(dtype, types.Integer):
        return builder.sitofp(values, vec) if dtype in types.signed_domain else builder.uitofp(values, vec)
    return values if dtype == types.float64 else builder.fpext(values, vec)


@intrinsic
def _add_block_held(typingctx: Any, x: Any, i: Any, j0: Any, scale: Any, rk: Any, k: Any, s1: Any,
                    s2: Any) -> Any:  # pragma: no cover - compiled
    """``s1[k, j] += u_j`` and ``s2[k, j] += u_j y_j``, ``u_j = rk y_j``, ``y_j = x[i, j] * scale``,
    for the :data:`MASK_WIDTH` features ``j0 ..`` (which must exist), :data:`LANES` at a time
    (a zero adds nothing); ``s1``, ``s2`` (K, d) float64 C-contiguous."""
    if not (_stored_rows(x) and _f64_array(s1, 2) and _f64_array(s2, 2)):
        return None
    sig = types.void(x, i, j0, scale, rk, k, s1, s2)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        a_x, a_i, a_j0, a_scale, a_rk, a_k, a_s1, a_s2 = args
        tx, ti, tj, ts, tr, tk, t1, t2 = signature.args
        vx = context.make_array(tx)(context, builder, a_x)
        v1 = context.make_array(t1)(context, builder, a_s1)
        v2 = context.make_array(t2)(context, builder, a_s2)
        d = cgutils.unpack_tuple(builder, vx.shape, 2)[1]
        i = context.cast(builder, a_i, ti, types.intp)
        j0 = context.cast(builder, a_j0, tj, types.intp)
        k = context.cast(builder, a_k, tk, types.intp)
        scale = _splat(builder, context.cast(builder, a_scale, ts, types.float64), LANES)
        resp = _splat(builder, context.cast(builder, a_rk, tr, types.float64), LANES)
        stored = ir.VectorType(context.get_data_type(tx.dtype), LANES)
        x_at = builder.add(builder.mul(i, d), j0)
        s_at = builder.add(builder.mul(k, cgutils.unpack_tuple(builder, v1.shape, 2)[1]), j0)
        for g in range(MASK_WIDTH // LANES):
            step = ir.Constant(_I64, LANES * g)
            ptr = builder.bitcast(builder.gep(vx.data, [builder.add(x_at, step)]), stored.as_pointer())
            y = builder.fmul(_to_double(builder, builder.load(ptr, align=1), tx.dtype, LANES), scale)
            u = builder.fmul(resp, y)
            p1 = _vector_ptr(builder, v1.data, builder.add(s_at, step), LANES)
            p2 = _vector_ptr(builder, v2.data, builder.add(s_at, step), LANES)
            builder.store(builder.fadd(builder.load(p1, align=8), u), p1, align=8)
            builder.store(_fma(builder, u, y, builder.load(p2, align=8), LANES), p2, align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _add_block_lanes(typingctx: Any, x: Any, i: Any, j0: Any, bits: Any, table: Any, scale: Any, r: Any,
                     row: Any, held: Any, t1: Any, t2: Any) -> Any:  # pragma: no cover - compiled
    """``t1[j, k] += r[row, k] y_j`` and ``t2[j, k] += (r[row, k] y_j) y_j`` for the bits ``b`` of
    ``bits`` (``j = j0 + b``, ``y_j = x[i, j] * scale``) and the lanes ``k`` of the vectors set in
    ``held`` (bit ``c`` for lanes ``8c ..``): one vector read-modify-write per non-zero and
    vector, whatever the number of components holding the row; ``r`` (rows, Kpad), ``t1``,
    ``t2`` (d, Kpad) float64 C-contiguous."""
    if not (_stored_rows(x) and _f64_array(table, 1) and _f64_array(r, 2) and _f64_array(t1, 2)
            and _f64_array(t2, 2)):
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
            width = ir.Constant(_I64, sum(chunks))
            r_row = builder.mul(row, width)
            offsets = [ir.Constant(_I64, LANES * c) for c in range(len(chunks))]
            resp = [builder.load(_vector_ptr(builder, vr.data, builder.add(r_row, offsets[c]), n), align=8)
                    for c, n in enumerate(chunks)]
            keeps = [builder.icmp_unsigned("!=", builder.and_(held, ir.Constant(_I64, 1 << c)), ir.Constant(_I64, 0))
                     for c in range(len(chunks))]

            def body(u: int, b: ir.Value, valid: ir.Value) -> None:
                y = _stored_value(context, builder, tx, vx.data, builder.add(x_row, b), scale, table)
                s_row = builder.mul(builder.add(j0, b), width)
                for c, n in enumerate(chunks):
                    with builder.if_then(keeps[c]):
                        ys = _splat(builder, y, n)
                        rx = builder.fmul(resp[c], ys)
                        at_c = builder.add(s_row, offsets[c])
                        p1 = _vector_ptr(builder, v1.data, at_c, n)
                        p2 = _vector_ptr(builder, v2.data, at_c, n)
                        builder.store(builder.fadd(builder.load(p1, align=8), rx), p1, align=8)
                        builder.store(_fma(builder, rx, ys, builder.load(p2, align=8), n), p2, align=8)

            _walk_bits(builder, bits, 1, body)

        _switch_width(builder, padded, emit)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _bit_count(typingctx: Any, bits: Any) -> Any:  # pragma: no cover - compiled
    """The set bits of an ``int64`` (``llvm.ctpop``)."""
    if bits != types.int64:
        return None

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return types.int64(bits), codegen


@numba.njit(nogil=True, cache=True)
def byte_values(scale: float) -> np.ndarray:  # pragma: no cover (compiled)
    """``v * scale`` in float64 for every byte ``v`` (the values of ``uint8`` rows, by lookup)."""
    table = np.empty(256)
    for v in range(256):
        table[v] = float(v) * scale
    return table


@numba.njit(nogil=True, cache=True)
def _tail_bits(x: np.ndarray, i: int, j0: int) -> int:  # pragma: no cover (compiled)
    """:func:`_nonzero_bits` of the last ``d - j0 < 64`` columns, one by one."""
    bits = 0
    for j in range(j0, x.shape[1]):
        if x[i, j] != 0:
            bits |= 1 << (j - j0)
    return bits


@numba.njit(nogil=True, cache=True)
def _tile_distances(x: np.ndarray, t0: int, rows: int, scale: float, table: np.ndarray, pt: np.ndarray,
                    at: np.ndarray, dist: np.ndarray, counts: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``dist[b] = sum_{j: x_ij != 0} y_ij (y_ij pt[j] + at[j])`` for the rows ``i = t0 + b``,
    ``b < rows``, by blocks of :data:`MASK_WIDTH` features (their parameters stay in L1 for the
    tile); ``counts[b]`` = (the row's non-zeros, its full blocks holding one)."""
    d = x.shape[1]
    full = d - d % MASK_WIDTH
    for b in range(rows):
        counts[b, 0] = 0
        counts[b, 1] = 0
        for k in range(dist.shape[1]):
            dist[b, k] = 0.0
    for j0 in range(0, full, MASK_WIDTH):
        for b in range(rows):
            bits = _nonzero_bits(x, t0 + b, j0)
            if bits != 0:
                counts[b, 0] += _bit_count(bits)
                counts[b, 1] += 1
                _add_block_terms(x, t0 + b, j0, bits, scale, table, pt, at, dist, b)
    if full < d:
        for b in range(rows):
            bits = _tail_bits(x, t0 + b, full)
            if bits != 0:
                counts[b, 0] += _bit_count(bits)
                _add_block_terms(x, t0 + b, full, bits, scale, table, pt, at, dist, b)


@numba.njit(nogil=True, cache=True)
def _tile_stats(x: np.ndarray, t0: int, rows: int, scale: float, table: np.ndarray, n_held: np.ndarray,
                held_k: np.ndarray, held_r: np.ndarray, lanes: np.ndarray, r: np.ndarray, s1: np.ndarray,
                s2: np.ndarray, t1: np.ndarray, t2: np.ndarray) -> None:  # pragma: no cover (compiled)
    """The statistics of the rows ``i = t0 + b`` of the tile, by blocks of :data:`MASK_WIDTH`
    features (the sums of the block in L1 for the tile), a block skipped where the row is zero:
    rows with ``lanes[b] == 0`` add ``r_k y`` and ``r_k y^2`` to ``s1[k]``, ``s2[k]`` (K, d), 64
    features at a time, for the components ``held_k[b, :n_held[b]]`` (responsibilities
    ``held_r``) that hold them; the others add their non-zeros to ``t1``, ``t2`` (d, Kpad), the
    vectors of components ``lanes[b]`` as lanes (responsibilities ``r[b]``)."""
    d = x.shape[1]
    full = d - d % MASK_WIDTH
    for j0 in range(0, full, MASK_WIDTH):
        for b in range(rows):
            bits = _nonzero_bits(x, t0 + b, j0)
            if bits != 0:
                if lanes[b] != 0:
                    _add_block_lanes(x, t0 + b, j0, bits, table, scale, r, b, lanes[b], t1, t2)
                for q in range(n_held[b]):
                    _add_block_held(x, t0 + b, j0, scale, held_r[b, q], held_k[b, q], s1, s2)
    for b in range(rows):
        if lanes[b] != 0:
            bits = _tail_bits(x, t0 + b, full)
            if bits != 0:
                _add_block_lanes(x, t0 + b, full, bits, table, scale, r, b, lanes[b], t1, t2)
        for q in range(n_held[b]):
            k = held_k[b, q]
            rk = held_r[b, q]
            for j in range(full, d):
                if x[t0 + b, j] != 0:
                    y = x[t0 + b, j] * scale
                    u = rk * y
                    s1[k, j] += u
                    s2[k, j] += u * y


@numba.njit(nogil=True, cache=True)
def nonzero_log_densities(x: np.ndarray, scale: float, pt: np.ndarray, at: np.ndarray, c: np.ndarray,
                          log_const: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``out[i, k] = log_const_k - (c_k + sum_{j: x_ij != 0} y_ij (y_ij pt[j, k] + at[j, k])) / 2``,
    ``y = x * scale``, for the rows of ``x`` (n, d) and ``out`` (n, K): the log-densities of
    :func:`diag_em_nonzeros` alone."""
    prefer_wide_vectors()
    n = x.shape[0]
    k_n = log_const.shape[0]
    dist = np.empty((TILE_ROWS, pt.shape[1]))
    counts = np.zeros((TILE_ROWS, 2), dtype=np.int64)
    table = byte_values(scale)
    for t0 in range(0, n, TILE_ROWS):
        rows = min(TILE_ROWS, n - t0)
        _tile_distances(x, t0, rows, scale, table, pt, at, dist, counts)
        for b in range(rows):
            for k in range(k_n):
                out[t0 + b, k] = log_const[k] - 0.5 * (c[k] + dist[b, k])


@numba.njit(nogil=True, cache=True)
def diag_em_nonzeros(x: np.ndarray, scale: float, pt: np.ndarray, at: np.ndarray, c: np.ndarray,
                     log_const: np.ndarray, min_resp: np.ndarray, floor: np.ndarray, nk: np.ndarray,
                     s1: np.ndarray, s2: np.ndarray, t1: np.ndarray, t2: np.ndarray,
                     block_cost: float) -> tuple[float, float, int, float]:  # pragma: no cover (compiled)
    """E-step and statistics of the stored rows ``x`` (n, d), C-contiguous, read as ``x * scale``,
    on their non-zeros (see the module). ``pt`` = ``P^T`` and ``at`` = ``(-2 mu P)^T`` (d, Kpad),
    ``c`` (Kpad,) ``sum_j mu_kj^2 P_kj``, zero beyond the K components; ``log_const``,
    ``min_resp``, ``floor`` (K,); ``nk`` (K,), ``s1`` and ``s2`` (K, d) take ``sum r``, ``sum r
    x`` and ``sum r x^2`` (around 0). One read of the rows. Returns ``(sum log p(x), sum r log r,
    first row whose log p(x) is not finite or -1, its value)``; the statistics are incomplete
    after a non-finite row."""
    prefer_wide_vectors()
    n = x.shape[0]
    k_n = log_const.shape[0]
    kp = pt.shape[1]
    dist = np.empty((TILE_ROWS, kp))
    counts = np.zeros((TILE_ROWS, 2), dtype=np.int64)
    table = byte_values(scale)
    n_held = np.zeros(TILE_ROWS, dtype=np.int64)
    held_k = np.zeros((TILE_ROWS, k_n), dtype=np.int64)
    held_r = np.zeros((TILE_ROWS, k_n))
    lanes = np.zeros(TILE_ROWS, dtype=np.int64)
    r = np.zeros((TILE_ROWS, kp))
    w = np.empty(k_n)
    log_lik = 0.0
    entropy = 0.0
    for t0 in range(0, n, TILE_ROWS):
        rows = min(TILE_ROWS, n - t0)
        _tile_distances(x, t0, rows, scale, table, pt, at, dist, counts)
        for b in range(rows):
            for k in range(k_n):
                w[k] = log_const[k] - 0.5 * (c[k] + dist[b, k])
            log_norm, ent = responsibilities_above(w, floor)
            if not math.isfinite(log_norm):
                return log_lik, entropy, t0 + b, log_norm
            log_lik += log_norm
            entropy += ent
            h = 0
            vectors = 0
            for k in range(k_n):
                rk = w[k]
                if rk != 0.0 and rk >= min_resp[k]:
                    held_k[b, h] = k
                    held_r[b, h] = rk
                    nk[k] += rk
                    h += 1
                    vectors |= 1 << (k // LANES)
            if block_cost * h * counts[b, 1] <= counts[b, 0] * _bit_count(vectors):
                n_held[b] = h
                lanes[b] = 0
            else:  # many components hold the row: its non-zeros once, the components as lanes
                n_held[b] = 0
                lanes[b] = vectors
                for k in range(k_n):
                    r[b, k] = w[k] if w[k] != 0.0 and w[k] >= min_resp[k] else 0.0
        _tile_stats(x, t0, rows, scale, table, n_held, held_k, held_r, lanes, r, s1, s2, t1, t2)
    return log_lik, entropy, -1, 0.0


class NonzeroParams:
    """A diagonal mixture's parameters laid out for :func:`diag_em_nonzeros`: ``pt`` (d, Kpad)
    the precisions, ``at`` (d, Kpad) ``-2 mu P`` (both :func:`aligned_zeros`), ``c`` (Kpad,) ``sum_j mu_kj^2 P_kj`` (means
    whose square underflows set to 0, as :func:`.diag_rows.flush_tiny` does)."""

    def __init__(self, means: np.ndarray, prec: np.ndarray) -> None:
        k_n, d = prec.shape
        kp = padded_components(k_n)
        mu = np.where(np.abs(means) < math.sqrt(np.finfo(np.float64).tiny), 0.0, means)
        a = -2.0 * mu * prec
        a[np.abs(a) < np.finfo(np.float64).tiny] = 0.0
        self.pt = aligned_zeros((d, kp))
        self.pt[:, :k_n] = prec.T
        self.at = aligned_zeros((d, kp))
        self.at[:, :k_n] = a.T
        self.c = np.zeros(kp)
        self.c[:k_n] = (mu * mu * prec).sum(axis=1)
