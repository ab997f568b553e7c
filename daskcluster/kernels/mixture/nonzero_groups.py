"""The diagonal E-step's log-densities over the non-zero 8-feature groups of each row.

The distances of :mod:`.diag_nonzeros` (``D_k = c_k + sum_{j: y_j != 0} y_j (y_j P_kj + A_kj)``,
scikit-learn's expanded form, ``A = -2 mu P``) taken with the **features as vector lanes**:
a row's features go 8 at a time (one ``<8 x double>``), a group being skipped when its 8 stored
values are all zero, and each component's ``P_k`` and ``A_k`` (laid out (K, d), rows on a cache
line) give two multiply-adds per group into that component's 8-lane accumulator, up to
:data:`PART` components' accumulators held in registers for a walk of the groups. Per row:

1. **Blocks.** The groups are taken in about equal blocks of at most 64 (two blocks of 49 at 784
   features), the tile's 64 rows in turn per block, so that a block's parameters (61 KB at 10
   components) are read from L2 by all of them.
2. **Group masks.** A row's mask of a block (bit ``q`` set iff group ``q`` holds a non-zero
   value; a NaN is non-zero) is taken just before its walk: for bytes, 64 bytes as 8 ``i64``
   compared with zero; for wider types, 64 values compared and the ``<64 x i1>`` folded into one
   bit per 8 in integer registers. Taken there, its reads of the row overlap the arithmetic of
   the previous walk.
3. **Walk.** The set bits are walked with ``cttz`` and ``m & (m - 1)``: per group, one load of
   the 8 stored values, their conversion (``uitofp``/``sitofp``/``fpext``) and the
   multiplication by ``scale``, then per component ``t = y P + A`` and ``acc += y t``, up to
   :data:`PART` components' accumulators in registers (more components: one walk per part).
4. The 8 lanes of each accumulator are summed pairwise; the features past the last full group
   (``d mod 8``) are added one by one.

A zero value of a taken group adds ``0 * (0 P + A) = 0`` exactly (``A`` finite), so the walk
computes the same sum as one over the non-zeros, in another order.

**Rounding.** Each non-zero's term carries three roundings (``y``, ``t``, the accumulation); a
lane sums at most ``m`` terms in turn, then the 8 lanes 3 levels, the tail at most 7 more and the
caller adds ``c``: the computed ``D_k`` is within ``gamma_{m + 14} (c_k + S_k) +
gamma_{ceil(log2 d) + 3} c_k`` of the exact ``sum_j P_kj (y_j - mu_kj)^2`` (``S_k = sum_{nz}
|y| (|y| P + |A|)``, ``gamma_n = n eps / (1 - n eps)``), the bound of :mod:`.diag_nonzeros`
with a longer chain (checked against exact rationals in ``tests/test_mixture_diag_nonzeros.py``).

**Measured** (MNIST8M chunks of 32,768 rows, 25 % non-zero bytes, 46 % non-zero groups, the
benchmark's models of EM iterations 1, 3, 5, one thread, least CPU time a chunk; A/B in one
process, ``benchmarks/RESULTS-gmm.md``): 11.4-11.8 ms against 13.5-13.8 ms for the walk it
replaced (each non-zero with the components as vector lanes, (d, Kpad) parameters: ~9 instructions
and a broadcast per non-zero and vector of components, a mispredicted exit per 64 features). Two
blocks of 49 groups beat four of 25 (14.6-15.7 ms: whose parameters fit L1, but each block of a
row costs its accumulators' loads and stores, its mask and a mispredicted exit) and one of 98
(15.4 ms: one walk over both mask words of a row, all the parameters from L2). Not kept either: the masks of a tile taken before its
walks (12.4 ms: the reads of the rows no longer overlap the arithmetic), two rows a walk sharing
the parameters' loads (over the union of their groups, 59 % of the groups, the components in
parts of 5 or 6 to stay in registers: 12.8 ms), more parts (5 or 7 components a walk: 14.0-14.3
ms) and ``P`` and ``A`` interleaved by group (within noise). The rows of ``P`` and ``A`` must start on a cache line
(:class:`GroupParams`): 48 bytes into one, each 8-lane load spans two and the log-densities
cost 20.8 against 12.7 ms (``bench_gmm_mnist8m.py --variants``).

**The float32 screen** (:func:`screened_tile_distances`, the EM pass's E-step for rows stored as
8- or 16-bit integers): the same walk with every vector ``<8 x float>`` and the parameters
rounded to float32 (``p32``, ``a32``: half the bytes a group), each distance within
:func:`screen_bound` of the exact one; the components that may hold the row above their floor
are then taken in float64 by this walk, component by component, the others left out (their
responsibility is 0 there). Measured (AMD EPYC, MNIST8M chunks of 32,768 rows, one thread,
least CPU time; the E-step alone): 19.0 ms a chunk for every component in float64, 10.0 ms for
the float32 walk, 14.2-14.8 ms with the float64 values of the 1.08-1.16 components a row keeps,
11.5-12.0 ms when a ``uint8`` row with one component kept takes none (the pass's integer sums
give its ``log p(x)``, :mod:`.diag_nonzeros`). Not kept: blocks of 32 or 25 groups (the float32
parameters of a block in a 32 KiB L1: 11.4 and 14.8 ms for the float32 walk, each block of a
row costing its own setup), the components in parts of 3-5 walked over the whole row
(12.6-13.7 ms against 11.5-12.0).
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
from ..vector_ir import (
    F32,
    F64,
    GROUP,
    I64,
    WORD,
    aligned_zeros,
    block_groups,
    f64_array,
    fma,
    splat,
    stored_rows,
    to_double,
    vector,
    vector_ptr,
    walk_bits,
)

#: Components whose accumulators one walk of a row's groups holds in registers.
PART = 12
#: Rows of a tile: each block's parameters are read by them in turn (the pass's statistics take
#: the same tiles, see :mod:`.diag_nonzeros`).
TILE_ROWS = 64


class GroupParams:
    """A diagonal mixture's parameters laid out for :func:`tile_distances`: ``p`` (K, dp) the
    precisions, ``a`` (K, dp) ``-2 mu P`` (``dp`` = d rounded up to :data:`GROUP`, zeros beyond;
    both :func:`~daskcluster.kernels.vector_ir.aligned_zeros`, so each row starts on a cache line when ``dp`` is
    a multiple of 8), ``c`` (K,) ``sum_j mu_kj^2 P_kj`` (means whose square underflows set to 0,
    as :func:`.diag_rows.flush_tiny` does); ``p32``, ``a32`` the same rounded to float32 for
    :func:`screened_tile_distances`."""

    def __init__(self, means: np.ndarray, prec: np.ndarray) -> None:
        k_n, d = prec.shape
        dp = -(-d // GROUP) * GROUP
        mu = np.where(np.abs(means) < math.sqrt(np.finfo(np.float64).tiny), 0.0, means)
        a = -2.0 * mu * prec
        a[np.abs(a) < np.finfo(np.float64).tiny] = 0.0
        self.p = aligned_zeros((k_n, dp))
        self.p[:, :d] = prec
        self.a = aligned_zeros((k_n, dp))
        self.a[:, :d] = a
        self.c = np.ascontiguousarray((mu * mu * prec).sum(axis=1))
        with np.errstate(over="ignore", under="ignore"):  # an infinity or a lost tiny value: see screen_bound
            self.p32 = aligned_zeros((k_n, dp), np.float32)
            self.p32[:] = self.p
            self.a32 = aligned_zeros((k_n, dp), np.float32)
            self.a32[:] = self.a


def _emit_walk(context: Any, builder: ir.IRBuilder, tx: Any, n: int, x_data: ir.Value, x_at: ir.Value,
               bits: ir.Value, scale: ir.Value, p_data: ir.Value, a_data: ir.Value, p_at: ir.Value, dp: ir.Value,
               acc_data: ir.Value, acc_at: ir.Value, elem: ir.Type) -> None:
    """``acc[acc_at + 8c ..] += sum_q y (y P + A)`` for ``n`` components ``c`` and the set bits
    ``q`` of ``bits``: ``y`` the 8 stored values at ``x_at + 8q``, times ``scale``; ``P``, ``A``
    the 8 values at ``p_at + c dp + 8q``; every vector of ``elem`` (:data:`~daskcluster.kernels.vector_ir.F64` or
    :data:`~daskcluster.kernels.vector_ir.F32`)."""
    vec = vector(GROUP, elem)
    width = elem.get_abi_size(context.target_data)
    stored = ir.VectorType(context.get_data_type(tx.dtype), GROUP)
    regs = []
    for c in range(n):
        reg = cgutils.alloca_once(builder, vec)
        builder.store(builder.load(vector_ptr(builder, acc_data, builder.add(acc_at, ir.Constant(I64, GROUP * c)),
                                              GROUP, elem), align=width), reg)
        regs.append(reg)

    def body(u: int, q: ir.Value, valid: ir.Value) -> None:  # one bit a turn: always valid
        off = builder.mul(q, ir.Constant(I64, GROUP))
        ptr = builder.bitcast(builder.gep(x_data, [builder.add(x_at, off)]), stored.as_pointer())
        y = builder.fmul(to_double(builder, builder.load(ptr, align=1), tx.dtype, GROUP, elem), scale)
        at = builder.add(p_at, off)
        for c in range(n):
            at_c = builder.add(at, builder.mul(ir.Constant(I64, c), dp))
            p = builder.load(vector_ptr(builder, p_data, at_c, GROUP, elem), align=width)
            a = builder.load(vector_ptr(builder, a_data, at_c, GROUP, elem), align=width)
            builder.store(fma(builder, y, fma(builder, y, p, a, GROUP, elem), builder.load(regs[c]), GROUP, elem),
                          regs[c])

    walk_bits(builder, bits, 1, body)
    for c in range(n):
        builder.store(builder.load(regs[c]),
                      vector_ptr(builder, acc_data, builder.add(acc_at, ir.Constant(I64, GROUP * c)), GROUP, elem),
                      align=width)


@intrinsic
def _add_groups(typingctx: Any, x: Any, i: Any, g0: Any, bits: Any, scale: Any, p: Any, a: Any, acc: Any,
                b: Any, k0: Any, n: Any) -> Any:  # pragma: no cover - compiled
    """``acc[b, k0 + c] += sum_q y (y p[k0 + c, f] + a[k0 + c, f])`` (8 lanes, ``f = 8 (g0 + q) ..``)
    for ``c < n`` (``1 <= n <=`` :data:`PART`) and the set bits ``q`` of ``bits``, ``y =
    x[i, f] * scale``; ``x`` 2-D C-contiguous (the groups must exist), ``p``, ``a`` (K, dp) and
    ``acc`` (rows, K, 8) C-contiguous, all float64 or all float32 (then ``y`` the stored value
    in float32 times ``scale`` rounded to float32, every operation in float32)."""
    if not stored_rows(x) or p.dtype not in (types.float64, types.float32):
        return None
    if not (f64_array(p, 2, p.dtype) and f64_array(a, 2, p.dtype) and f64_array(acc, 3, p.dtype)):
        return None
    sig = types.void(x, i, g0, bits, scale, p, a, acc, b, k0, n)
    single = p.dtype == types.float32

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        a_x, a_i, a_g0, a_bits, a_scale, a_p, a_a, a_acc, a_b, a_k0, a_n = args
        tx, ti, tg, tb, ts, tp, ta, tacc, tr, tk, tn = signature.args
        vx = context.make_array(tx)(context, builder, a_x)
        vp = context.make_array(tp)(context, builder, a_p)
        va = context.make_array(ta)(context, builder, a_a)
        vacc = context.make_array(tacc)(context, builder, a_acc)
        d = cgutils.unpack_tuple(builder, vx.shape, 2)[1]
        dp = cgutils.unpack_tuple(builder, vp.shape, 2)[1]
        k_n = cgutils.unpack_tuple(builder, vacc.shape, 3)[1]
        cast = context.cast
        g8 = builder.mul(cast(builder, a_g0, tg, types.intp), ir.Constant(I64, GROUP))
        k0 = cast(builder, a_k0, tk, types.intp)
        x_at = builder.add(builder.mul(cast(builder, a_i, ti, types.intp), d), g8)
        p_at = builder.add(builder.mul(k0, dp), g8)
        acc_at = builder.mul(builder.add(builder.mul(cast(builder, a_b, tr, types.intp), k_n), k0),
                             ir.Constant(I64, GROUP))
        bits = cast(builder, a_bits, tb, types.int64)
        elem = F32 if single else F64
        scale = splat(builder, cast(builder, a_scale, ts, types.float32 if single else types.float64), GROUP, elem)
        end = builder.append_basic_block("part.end")
        switch = builder.switch(cast(builder, a_n, tn, types.int64), end)
        for count in range(1, PART + 1):
            case = builder.append_basic_block(f"part.{count}")
            switch.add_case(ir.Constant(I64, count), case)
            builder.position_at_end(case)
            _emit_walk(context, builder, tx, count, vx.data, x_at, bits, scale, vp.data, va.data, p_at, dp, vacc.data,
                       acc_at, elem)
            builder.branch(end)
        builder.position_at_end(end)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(nogil=True, cache=True, inline="always")
def _distance(v: np.ndarray, x: np.ndarray, i: int, k: int, scale: float, p: np.ndarray,
              a: np.ndarray) -> float:  # pragma: no cover (compiled)
    """A row's distance to component ``k`` from its walk's 8 lanes ``v`` (summed pairwise in their
    own dtype) and, in float64, the features past the last full group of ``x[i]``."""
    total = float(((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])))
    for j in range(x.shape[1] - x.shape[1] % GROUP, x.shape[1]):
        if x[i, j] != 0:
            y = x[i, j] * scale
            total += y * (y * p[k, j] + a[k, j])
    return total


@numba.njit(nogil=True, cache=True)
def tile_distances(x: np.ndarray, t0: int, rows: int, scale: float, p: np.ndarray, a: np.ndarray,
                   dist: np.ndarray, acc: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``dist[b, k] = sum_{j: x_ij != 0} y_ij (y_ij p[k, j] + a[k, j])`` for the rows ``i = t0 + b``,
    ``b < rows`` (``y = x * scale``; ``dist`` (rows, >= K)); ``acc`` (rows, K, 8) float64 is
    scratch. The groups are taken in about equal blocks of at most 64 (a row's mask of a block
    just before its walk, whose arithmetic its reads overlap)."""
    d = x.shape[1]
    k_n = p.shape[0]
    groups = d // GROUP
    for b in range(rows):
        for k in range(k_n):
            for lane in range(GROUP):
                acc[b, k, lane] = 0.0
    n_blocks = max(1, -(-groups // WORD))
    size = max(1, -(-groups // n_blocks))
    for g0 in range(0, groups, size):
        span = min(size, groups - g0)
        for k0 in range(0, k_n, PART):
            n = min(PART, k_n - k0)
            for b in range(rows):
                bits = block_groups(x, t0 + b, g0, span)
                if bits != 0:
                    _add_groups(x, t0 + b, g0, bits, scale, p, a, acc, b, k0, n)
    for b in range(rows):
        for k in range(k_n):
            dist[b, k] = _distance(acc[b, k], x, t0 + b, k, scale, p, a)


#: Stored dtypes whose rows :func:`screened_tile_distances` takes (exact in float32), and the
#: largest magnitude of their values.
SCREENED_DTYPES = {np.dtype(t): max(abs(int(np.iinfo(t).min)), int(np.iinfo(t).max))
                   for t in (np.uint8, np.int8, np.uint16, np.int16)}
_U32 = 2.0 ** -24
#: The float32 subnormals' spacing times 8: an operation whose result is subnormal errs by at
#: most half the spacing (no flush to zero), far below this.
_TINY32 = 2.0 ** -146


def screen_bound(dtype: np.dtype, scale: float, n_features: int) -> tuple[float, float] | None:
    """``(coef, slack)`` such that the float32 distance ``D~`` of :func:`screened_tile_distances`
    is within ``coef max(2 D~ + 17 c, 0) + slack`` of the exact ``D = sum_{nz} y (y P + A)`` (the
    float64 ``P``, ``A``, ``c`` of :class:`GroupParams`), or None for a ``dtype`` it does not take.

    Each term ``y (y P + A)`` takes at most 6 float32 roundings (``scale``, ``v scale``, ``P``,
    ``A``, the inner multiply-add, the product in the accumulating one), its lane's sum at most
    ``m = d // 8`` and the 8 lanes' pairwise sum 3 more, so ``|D~ - D| <= gamma_{m + 10} S +
    slack`` (``S = sum_{nz} |y| (|y| P + |A|)``; the tail of ``d mod 8`` features in float64;
    ``gamma_n = n u / (1 - n u)``, ``u = 2^-24``; ``slack`` bounds what subnormal results lose).
    With ``mu' = -A / (2P)``, ``S - D <= 4 sum P |y| |mu'| <= S / 2 + 8 c'`` (``4ab <= a^2 / 2 +
    8 b^2``) and ``c' = sum P mu'^2 <= c (1 + 2^-40)``: ``S <= 2 D + 17 c``, hence ``S <= (2 D~ +
    17 c + 2 slack) / (1 - 2 gamma)``. The factor 1.01 covers the float64 steps (the lanes'
    conversion is exact)."""
    top = SCREENED_DTYPES.get(np.dtype(dtype))
    if top is None or not math.isfinite(scale):
        return None
    m = n_features // GROUP + 10
    gamma = m * _U32 / (1.0 - m * _U32)
    vs = top * abs(scale) * (1.0 + 2 * _U32)
    slack = (n_features + 8 * GROUP) * (vs * vs + vs + 1.0) * _TINY32
    coef = 1.01 * gamma / (1.0 - 2.0 * gamma)
    return coef, slack + coef * 2.0 * slack


@numba.njit(nogil=True, cache=True)
def screened_tile_distances(x: np.ndarray, t0: int, rows: int, scale: float, p: np.ndarray, a: np.ndarray,
                            p32: np.ndarray, a32: np.ndarray, c: np.ndarray, log_const: np.ndarray,
                            floor: np.ndarray, min_resp: np.ndarray, coef: float, slack: float,
                            single_whole: bool, dist: np.ndarray, acc: np.ndarray, acc32: np.ndarray,
                            bits: np.ndarray) -> int:  # pragma: no cover (compiled)
    """:func:`tile_distances`' ``dist[b, k]`` for the components ``k`` that may hold row ``t0 + b``
    with a responsibility above their ``floor`` (:func:`.estep.exp_floor`), ``+inf`` for the
    others; the values given are :func:`tile_distances`' bits, but for a row with one such
    component under ``single_whole``: there its float32 value. Returns the number of float64
    (row, component) values taken.

    All components' distances are first taken in float32 (``p32``, ``a32``; half the bytes a
    group of :func:`tile_distances`), each within ``e = coef max(2 D~ + 17 c, 0) + slack``
    (:func:`screen_bound`) of the exact ``D``; in log-density ``w = log_const - (c + D) / 2``
    each is then within ``e / 2`` of the exact one, as is the float64 one within far less.
    Component ``k`` is left out when even its upper value ``w~_k + e_k / 2 + 1`` lies below
    ``L + floor_k``, ``L = max_j (w~_j - e_j / 2 - 1)``: its float64 ``w_k`` then lies below the
    float64 best's plus its floor, where :func:`.estep.responsibilities_above` takes no
    exponential and sets ``r_k = 0`` (the margin 1, and ``1e-9`` of the magnitudes, cover the
    float64 roundings of ``w`` and of the test; a non-finite float32 value keeps its component).

    The components kept are then taken in float64 as :func:`tile_distances` takes them (the same
    operations on each lane in the same order: a component's sum does not depend on the others),
    component by component (its parameters stay in L1 for the tile's rows). Under
    ``single_whole`` (``uint8`` rows, whose rows held with responsibility 1 the pass sums in
    integers, their ``log p(x)`` from those sums), a row with one component kept, whose
    ``min_resp`` is at most 1 and ``floor`` negative, takes none: the row E-step gives it ``r = 1``
    from any finite value. ``acc`` (rows, K, 8) float64, ``acc32`` (rows, K, 8) float32, ``bits``
    (rows, blocks) int64 scratch."""
    d = x.shape[1]
    k_n = p.shape[0]
    groups = d // GROUP
    n_blocks = max(1, -(-groups // WORD))
    size = max(1, -(-groups // n_blocks))
    for b in range(rows):
        for k in range(k_n):
            for lane in range(GROUP):
                acc32[b, k, lane] = 0.0
    for bi in range(n_blocks):
        g0 = bi * size
        span = min(size, groups - g0)
        for b in range(rows):
            bits[b, bi] = block_groups(x, t0 + b, g0, span) if span > 0 else 0
        for k0 in range(0, k_n, PART):
            n = min(PART, k_n - k0)
            for b in range(rows):
                if bits[b, bi] != 0:
                    _add_groups(x, t0 + b, g0, bits[b, bi], scale, p32, a32, acc32, b, k0, n)
    given = 0
    for b in range(rows):
        low = -np.inf
        for k in range(k_n):
            s32 = _distance(acc32[b, k], x, t0 + b, k, scale, p, a)
            w = log_const[k] - 0.5 * (c[k] + s32)
            e = 0.5 * (coef * max(2.0 * s32 + 17.0 * c[k], 0.0) + slack) + 1.0 + 1e-9 * (abs(w) + abs(log_const[k]))
            finite = math.isfinite(w) and math.isfinite(e)
            acc[b, k, 0] = w + e if finite else np.inf  # the upper value, for now
            acc[b, k, 1] = s32
            if finite:
                low = max(low, w - e)
        kept = 0
        last = 0
        for k in range(k_n):
            keep = not (acc[b, k, 0] + 1e-9 * abs(low) < low + floor[k])  # a NaN keeps it
            dist[b, k] = 0.0 if keep else np.inf
            kept += keep
            last = k if keep else last
        if kept == 1 and single_whole and min_resp[last] <= 1.0 and floor[last] < 0.0 \
                and math.isfinite(acc[b, last, 1]):
            dist[b, last] = acc[b, last, 1]
            continue
        given += kept
        for k in range(k_n):
            if dist[b, k] == 0.0:
                for lane in range(GROUP):
                    acc[b, k, lane] = 0.0
    for k in range(k_n):  # a component's parameters (12.5 KB at 784 features) stay in L1 for its rows
        for bi in range(n_blocks):
            g0 = bi * size
            for b in range(rows):
                if dist[b, k] == 0.0 and bits[b, bi] != 0:
                    _add_groups(x, t0 + b, g0, bits[b, bi], scale, p, a, acc, b, k, 1)
    for b in range(rows):
        for k in range(k_n):
            if dist[b, k] != 0.0:
                continue
            dist[b, k] = _distance(acc[b, k], x, t0 + b, k, scale, p, a)
    return given


@numba.njit(nogil=True, cache=True)
def nonzero_log_densities(x: np.ndarray, scale: float, p: np.ndarray, a: np.ndarray, c: np.ndarray,
                          log_const: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``out[i, k] = log_const_k - (c_k + sum_{j: x_ij != 0} y_ij (y_ij p[k, j] + a[k, j])) / 2``,
    ``y = x * scale``, for the rows of ``x`` (n, d) and ``out`` (n, K) (``p``, ``a``, ``c`` of
    :class:`GroupParams`): the E-step's log-densities alone."""
    prefer_wide_vectors()
    n = x.shape[0]
    k_n = p.shape[0]
    dist = np.empty((TILE_ROWS, k_n))
    acc = np.empty((TILE_ROWS, k_n, GROUP))
    for t0 in range(0, n, TILE_ROWS):
        rows = min(TILE_ROWS, n - t0)
        tile_distances(x, t0, rows, scale, p, a, dist, acc)
        for b in range(rows):
            for k in range(k_n):
                out[t0 + b, k] = log_const[k] - 0.5 * (c[k] + dist[b, k])
