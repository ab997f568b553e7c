"""LLVM vector code shared by the kernels that walk a row's non-zeros.

Bit masks of a row's non-zero values and 8-feature groups, vector pointers, broadcasts,
multiply-adds and conversions, in LLVM's portable vector IR (no instruction set assumed: 512-bit
registers where the compiled caller asks for them with
:func:`~daskcluster.kernels.vectorwidth.prefer_wide_vectors` and the CPU has them, narrower
instructions elsewhere), and arrays aligned on a cache line for their vector loads.

Its users: the k-means walks over a row's non-zero groups, by float32 products
(:mod:`.rowproducts`) and by 8-bit integer products (:mod:`.byteproducts`, whose AVX-512 VNNI
intrinsic is its own); the diagonal EM pass on non-zeros (:mod:`.mixture.diag_nonzeros`) and its
E-step (:mod:`.mixture.nonzero_groups`); and, for :func:`aligned_zeros` or :data:`GROUP` only,
:mod:`.mixture.diag_rows` and :mod:`.elkan`.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

#: Features compared with zero by one vector compare (one ``i64`` bit mask).
MASK_WIDTH = 64
#: Features of a group (one 8-lane vector); :func:`block_groups` gives a row's non-zero groups.
GROUP = 8
#: Groups of one mask word (an ``i64``): :func:`block_groups` gives at most this many.
WORD = 64
#: Bytes to which the parameters and sums the vector loops read and write are aligned (a cache
#: line: an 8-lane load of a row that starts on one never spans two lines).
ALIGNMENT = 64
I64 = ir.IntType(64)
F64 = ir.DoubleType()
F32 = ir.FloatType()


def aligned_zeros(shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """A C-contiguous array of zeros (float64 unless ``dtype``) whose first element starts on
    :data:`ALIGNMENT` bytes.

    NumPy aligns a large array to 16 bytes only, so rows of 64 or 96 bytes would start anywhere
    in a cache line and half or all of their 8-lane loads span two lines (measured on MNIST8M
    chunks, one thread, 10 components: the E-step 13.4-13.7 ms a chunk aligned against 14.9-15.2 ms with
    ``pt`` and ``at`` starting 48 bytes into a line)."""
    size = math.prod(shape)
    itemsize = np.dtype(dtype).itemsize
    per_line = ALIGNMENT // itemsize
    buf = np.zeros(size + per_line, dtype=dtype)
    start = (-buf.ctypes.data % ALIGNMENT) // itemsize
    return buf[start : start + size].reshape(shape)


@intrinsic
def nonzero_bits(typingctx: Any, x: Any, i: Any, j0: Any) -> Any:  # pragma: no cover - compiled
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
        return builder.bitcast(nonzero, I64)

    return sig, codegen


#: The multiplier that gathers bit 0 of each byte of a word into its top byte (bit ``8q`` to bit
#: ``56 + q``; no two partial products meet below bit 56 with a carry).
_GATHER = 0x0102040810204080
_LOW_BITS = 0x0101010101010101


def _gather_bytes(builder: ir.IRBuilder, m: ir.Value) -> ir.Value:
    """Bit ``q`` set iff byte ``q`` of the ``i64`` ``m`` is not zero: each byte's bits or-ed into
    its bit 0, then gathered by one multiplication, in integer registers (a vector compare of the
    word's bytes would pass the mask through memory, a store that the vector load cannot take
    forwarded)."""
    for shift in (4, 2, 1):
        m = builder.or_(m, builder.lshr(m, ir.Constant(I64, shift)))
    m = builder.and_(m, ir.Constant(I64, _LOW_BITS))
    return builder.lshr(builder.mul(m, ir.Constant(I64, _GATHER)), ir.Constant(I64, 56))


@intrinsic
def block_groups(typingctx: Any, x: Any, i: Any, g0: Any, span: Any) -> Any:  # pragma: no cover - compiled
    """Bit ``q`` of the result set iff the 8 values ``x[i, 8 (g0 + q) ..]`` are not all zero (a NaN
    is non-zero), for ``q < span <=`` :data:`WORD`; the groups must exist. Per 8 groups one vector load and
    compare (for bytes, the 64 bytes as 8 ``i64``), then per remaining group one."""
    if not stored_rows(x):
        return None
    sig = types.int64(x, i, g0, span)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        tx, ti, tg, ts = signature.args
        vx = context.make_array(tx)(context, builder, args[0])
        d = cgutils.unpack_tuple(builder, vx.shape, 2)[1]
        cast = context.cast
        g0 = cast(builder, args[2], tg, types.intp)
        span = cast(builder, args[3], ts, types.intp)
        base = builder.add(builder.mul(cast(builder, args[1], ti, types.intp), d),
                           builder.mul(g0, ir.Constant(I64, GROUP)))
        elem = context.get_data_type(tx.dtype)
        integer = isinstance(tx.dtype, types.Integer)
        byte = integer and tx.dtype.bitwidth == 8

        def nonzero(values: ir.Value, vec: ir.VectorType) -> ir.Value:
            if integer:
                return builder.icmp_unsigned("!=", values, ir.Constant(vec, [0] * vec.count))
            return builder.fcmp_unordered("!=", values, ir.Constant(vec, [0.0] * vec.count))  # a NaN is non-zero

        def load(at: ir.Value, vec: ir.VectorType) -> ir.Value:
            ptr = builder.gep(vx.data, [at])
            return builder.load(builder.bitcast(ptr, vec.as_pointer()), align=1)

        result = cgutils.alloca_once_value(builder, ir.Constant(I64, 0))
        eight = ir.Constant(I64, GROUP)
        full = builder.and_(span, ir.Constant(I64, ~(GROUP - 1)))
        with cgutils.for_range_slice(builder, ir.Constant(I64, 0), full, eight) as (q, _):
            at = builder.add(base, builder.mul(q, eight))
            if byte:  # 8 groups of bytes as 8 words
                words = ir.VectorType(I64, GROUP)
                bits = builder.bitcast(nonzero(load(at, words), words), ir.IntType(GROUP))
                bits = builder.zext(bits, I64)
            else:
                vec = ir.VectorType(elem, GROUP * GROUP)
                m = builder.bitcast(nonzero(load(at, vec), vec), I64)
                bits = _gather_bytes(builder, m)
            builder.store(builder.or_(builder.load(result), builder.shl(bits, q)), result)
        with cgutils.for_range_slice(builder, full, span, ir.Constant(I64, 1)) as (q, _):
            vec = ir.VectorType(elem, GROUP)
            m = builder.bitcast(nonzero(load(builder.add(base, builder.mul(q, eight)), vec), vec), ir.IntType(GROUP))
            any_ = builder.zext(builder.icmp_unsigned("!=", m, ir.Constant(ir.IntType(GROUP), 0)), I64)
            builder.store(builder.or_(builder.load(result), builder.shl(any_, q)), result)
        return builder.load(result)

    return sig, codegen


def vector(lanes: int, elem: ir.Type = F64) -> ir.VectorType:
    """``lanes`` of ``elem`` (:data:`F64` or :data:`F32`)."""
    return ir.VectorType(elem, lanes)


def vector_ptr(builder: ir.IRBuilder, base: ir.Value, offset: ir.Value, lanes: int, elem: ir.Type = F64) -> ir.Value:
    return builder.bitcast(builder.gep(base, [offset]), vector(lanes, elem).as_pointer())


def splat(builder: ir.IRBuilder, value: ir.Value, lanes: int, elem: ir.Type = F64) -> ir.Value:
    """``value`` in every lane."""
    vec = vector(lanes, elem)
    one = builder.insert_element(ir.Constant(vec, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
    return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined), mask)


def fma(builder: ir.IRBuilder, a: ir.Value, b: ir.Value, c: ir.Value, lanes: int, elem: ir.Type = F64) -> ir.Value:
    """``a * b + c`` lane by lane (``llvm.fmuladd``: fused where the CPU has it, never a library call)."""
    vec = vector(lanes, elem)
    name = "f64" if elem == F64 else "f32"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fmuladd.v{lanes}{name}")
    return builder.call(fn, [a, b, c])


def stored_rows(x: Any) -> bool:
    return (isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C"
            and isinstance(x.dtype, (types.Integer, types.Float)))


def f64_array(t: Any, ndim: int, dtype: Any = types.float64) -> bool:
    """Whether ``t`` is a C-contiguous ``ndim``-D array of ``dtype`` (float64 unless given)."""
    return isinstance(t, types.Array) and t.ndim == ndim and t.dtype == dtype and t.layout == "C"


def to_double(builder: ir.IRBuilder, values: ir.Value, dtype: Any, lanes: int, elem: ir.Type = F64) -> ir.Value:
    """A vector of stored values as float64 lanes (``elem`` :data:`F32`: float32 lanes; each lane
    the value's own scalar conversion)."""
    vec = vector(lanes, elem)
    if isinstance(dtype, types.Integer):
        return builder.sitofp(values, vec) if dtype in types.signed_domain else builder.uitofp(values, vec)
    bits = 64 if elem == F64 else 32
    if dtype.bitwidth == bits:
        return values
    return builder.fpext(values, vec) if dtype.bitwidth < bits else builder.fptrunc(values, vec)


@intrinsic
def bit_count(typingctx: Any, bits: Any) -> Any:  # pragma: no cover - compiled
    """The set bits of an ``int64`` (``llvm.ctpop``)."""
    if bits != types.int64:
        return None

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return types.int64(bits), codegen


@numba.njit(nogil=True, cache=True)
def tail_bits(x: np.ndarray, i: int, j0: int) -> int:  # pragma: no cover (compiled)
    """:func:`nonzero_bits` of the last ``d - j0 < 64`` columns, one by one."""
    bits = 0
    for j in range(j0, x.shape[1]):
        if x[i, j] != 0:
            bits |= 1 << (j - j0)
    return bits


def walk_bits(builder: ir.IRBuilder, bits: ir.Value, unroll: int, body: Any) -> None:
    """Call ``body(u, b, valid)`` for the set bits ``b`` of ``bits`` (an ``i64``), lowest first,
    ``unroll`` per turn of the loop (``u`` the position in the turn; past the last set bit,
    ``valid`` is false and ``b`` is 0): ``cttz`` and ``m & (m - 1)``, branch-free within a turn."""
    zero = ir.Constant(I64, 0)
    one = ir.Constant(I64, 1)
    state = cgutils.alloca_once(builder, I64)
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
