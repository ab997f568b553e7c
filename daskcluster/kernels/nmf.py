"""Kernels of non-negative matrix factorization by multiplicative updates (Frobenius loss).

One iteration of scikit-learn's ``NMF(solver="mu")`` updates ``W`` then ``H``. The ``W``
update of a row needs only that row of ``X``, the row of ``W`` and ``H``; the ``H`` update needs
``WᵀX`` and ``WᵀW`` of the *new* ``W``. So one pass does both: each chunk updates its block of
``W`` (:func:`mu_step_kernel`) and returns ``WᵀX`` and ``WᵀW`` of the new block, whose sums
over chunks give the ``H`` update on the client. The reconstruction error comes from the same
statistics: ``‖X − WH‖² = ‖X‖² − 2⟨H, WᵀX⟩ + ⟨WᵀW, HHᵀ⟩``.

Every kernel casts a slice of rows at a time to the compute dtype (float64 for float64
storage, float32 otherwise) and applies the affine scaling; statistics accumulate in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocks import (
    Affine,
    ChunkInfo,
    check_finite_rows,
    compute_dtype_for,
    iter_compute_slices,
    row_sq_norms,
    slice_rows,
)
from .kmeans import chunk_rng
from .nonnegative import EMPTY, MinEntry, combine_min, min_entry

#: Guard against division by zero, as in scikit-learn's NMF.
EPSILON = float(np.finfo(np.float32).eps)

#: Random initial rows are drawn in blocks of this many rows, each from its own seed, so that
#: they do not depend on how the data are chunked.
SEED_BLOCK_ROWS = 4096


def mu_update_w(w: np.ndarray, xht: np.ndarray, hht: np.ndarray, l1_reg: float, l2_reg: float) -> np.ndarray:
    """One multiplicative update of the rows ``w`` (n_rows, n_components), as scikit-learn.

    ``xht`` is ``X Hᵀ`` of the same rows (n_rows, n_components), ``hht`` is ``H Hᵀ``
    (n_components, n_components). Returns the new rows (a new array).
    """
    return _multiplicative(w, xht, w @ hht, l1_reg, l2_reg)


def mu_update_h(h: np.ndarray, wtx: np.ndarray, wtw: np.ndarray, l1_reg: float, l2_reg: float) -> np.ndarray:
    """One multiplicative update of ``H`` (n_components, n_features) from ``WᵀX`` and ``WᵀW``.

    As scikit-learn: ``H * WᵀX / ((WᵀW) H + l1 + l2 H)``, zeros of the denominator replaced by
    :data:`EPSILON`. Computed in the dtype of ``h``.
    """
    return _multiplicative(h, wtx.astype(h.dtype), wtw.astype(h.dtype) @ h, l1_reg, l2_reg)


def _multiplicative(factor: np.ndarray, numerator: np.ndarray, product: np.ndarray, l1_reg: float,
                    l2_reg: float) -> np.ndarray:
    """``factor * numerator / (product + l1 + l2 * factor)``, zeros of the denominator replaced by
    :data:`EPSILON` (``product`` is modified)."""
    denominator = product
    if l1_reg > 0:
        denominator += l1_reg
    if l2_reg > 0:
        denominator = denominator + l2_reg * factor
    denominator[denominator == 0] = EPSILON
    out: np.ndarray = factor * (numerator / denominator)
    return out


def squared_error(x_sq: float, h: np.ndarray, wtx: np.ndarray, wtw: np.ndarray) -> float:
    """``‖X − WH‖²`` from ``‖X‖²``, ``H``, ``WᵀX`` and ``WᵀW`` (no pass over the data); at least 0."""
    h64 = h.astype(np.float64)
    value = x_sq - 2.0 * float(np.einsum("ij,ij->", h64, wtx)) + float(np.einsum("ij,ij->", wtw, h64 @ h64.T))
    return max(value, 0.0)


# --------------------------------------------------------------------------- data statistics


@dataclass
class DataStats:
    """What the first pass learns of the data: size, sums, squared norm, smallest entry."""

    n_rows: int
    sum: float
    sq: float
    col_sum: np.ndarray  # (n_features,) float64
    min: MinEntry


def data_stats_kernel(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, affine: Affine) -> DataStats:
    """Sum, squared norm, column sums and smallest entry of a block (scaled). One read of the block."""
    d = block.shape[1]
    total = 0.0
    sq = 0.0
    col_sum = np.zeros(d)
    smallest = EMPTY
    for start, _stop, x in iter_compute_slices(block, compute_dtype_for(block.dtype), affine, slice_rows(d)):
        x_sq = row_sq_norms(x)
        check_finite_rows(x, x_sq, chunk, start)
        sq += float(x_sq.sum(dtype=np.float64))
        cs = x.sum(axis=0, dtype=np.float64)
        col_sum += cs
        total += float(cs.sum())
        smallest = combine_min([smallest, min_entry(x, chunk, start)])
    return DataStats(block.shape[0], total, sq, col_sum, smallest)


def combine_data_stats(parts: list[DataStats]) -> DataStats:
    """Merge data statistics in chunk order."""
    return DataStats(
        sum(p.n_rows for p in parts),
        float(sum(p.sum for p in parts)),
        float(sum(p.sq for p in parts)),
        np.sum([p.col_sum for p in parts], axis=0),
        combine_min([p.min for p in parts]),
    )


# --------------------------------------------------------------------------- one MU iteration


@dataclass(frozen=True)
class StepParams:
    """Broadcast parameters of one iteration's pass.

    components : ``H`` (n_components, n_features) in the compute dtype.
    hht : ``H Hᵀ`` (n_components, n_components) in the compute dtype.
    l1_reg, l2_reg : the scaled regularization of ``W``.
    first : also return ``‖X‖²``, the smallest entry and ``W₀ᵀX``, ``W₀ᵀW₀`` of the initial
        ``W`` read beside the data (for the error at initialization).
    """

    components: np.ndarray
    hht: np.ndarray
    l1_reg: float
    l2_reg: float
    affine: Affine
    first: bool = False


@dataclass
class StepStats:
    """Statistics of the new ``W`` over some rows (float64), and first-pass extras."""

    wtx: np.ndarray  # (k, d)
    wtw: np.ndarray  # (k, k)
    x_sq: float = float("nan")
    min: MinEntry = EMPTY
    wtx0: np.ndarray | None = None
    wtw0: np.ndarray | None = None


def mu_step_kernel(
    block: np.ndarray, aligned: tuple[np.ndarray, ...], chunk: ChunkInfo, params: StepParams
) -> tuple[np.ndarray, StepStats]:
    """Update this block's rows of ``W`` (``aligned[0]``, shape (n_rows, n_components)) and
    return them with ``WᵀX`` and ``WᵀW`` of the new rows. One read of the block.
    """
    (w_old,) = aligned
    h = params.components
    dtype = h.dtype
    k, d = h.shape
    w_new = np.empty((block.shape[0], k), dtype=dtype)
    wtx = np.zeros((k, d))
    wtw = np.zeros((k, k))
    first = params.first
    x_sq_total = 0.0
    smallest = EMPTY
    wtx0 = np.zeros((k, d)) if first else None
    wtw0 = np.zeros((k, k)) if first else None
    for start, stop, x in iter_compute_slices(block, dtype, params.affine, slice_rows(d, k)):
        w = np.asarray(w_old[start:stop], dtype=dtype)
        xht = x @ h.T
        wn = mu_update_w(w, xht, params.hht, params.l1_reg, params.l2_reg)
        w_new[start:stop] = wn
        wtx += wn.T @ x
        wtw += wn.T @ wn
        if first:
            assert wtx0 is not None and wtw0 is not None
            x_sq = row_sq_norms(x)
            check_finite_rows(x, x_sq, chunk, start)
            x_sq_total += float(x_sq.sum(dtype=np.float64))
            smallest = combine_min([smallest, min_entry(x, chunk, start)])
            wtx0 += w.T @ x
            wtw0 += w.T @ w
    return w_new, StepStats(wtx, wtw, x_sq_total if first else float("nan"), smallest, wtx0, wtw0)


def combine_step(parts: list[StepStats]) -> StepStats:
    """Merge iteration statistics in chunk order."""
    first = parts[0].wtx0 is not None
    return StepStats(
        np.sum([p.wtx for p in parts], axis=0),
        np.sum([p.wtw for p in parts], axis=0),
        float(sum(p.x_sq for p in parts)),
        combine_min([p.min for p in parts]),
        _sum_optional([p.wtx0 for p in parts]) if first else None,
        _sum_optional([p.wtw0 for p in parts]) if first else None,
    )


def _sum_optional(arrays: list[np.ndarray | None]) -> np.ndarray:
    out: np.ndarray = np.sum([a for a in arrays if a is not None], axis=0)
    return out


# --------------------------------------------------------------------------- transform (H fixed)


@dataclass(frozen=True)
class SolveParams:
    """Broadcast parameters of ``transform``: solve for ``W`` with ``H`` fixed.

    w_init : the initial value of every entry of ``W`` (scikit-learn: ``sqrt(mean(X) / k)``).
    n_iter : multiplicative updates to run.
    check_every : the error is recorded after every ``check_every`` updates.
    """

    components: np.ndarray
    hht: np.ndarray
    l1_reg: float
    l2_reg: float
    affine: Affine
    w_init: float
    n_iter: int
    check_every: int = 10


def _solve_block(block: np.ndarray, params: SolveParams, record: bool) -> tuple[np.ndarray, np.ndarray]:
    h = params.components
    dtype = h.dtype
    k, d = h.shape
    out = np.empty((block.shape[0], k), dtype=dtype)
    trace = np.zeros(params.n_iter // params.check_every if record else 0)
    hht64 = params.hht.astype(np.float64)
    for start, stop, x in iter_compute_slices(block, dtype, params.affine, slice_rows(d, k)):
        xht = x @ h.T
        x_sq = float(np.einsum("ij,ij->", x, x, dtype=np.float64)) if record else 0.0
        w = np.full((stop - start, k), params.w_init, dtype=dtype)
        for t in range(1, params.n_iter + 1):
            w = mu_update_w(w, xht, params.hht, params.l1_reg, params.l2_reg)
            if record and t % params.check_every == 0:
                cross = float(np.einsum("ij,ij->", w, xht, dtype=np.float64))
                gram = (w.T @ w).astype(np.float64)
                trace[t // params.check_every - 1] += x_sq - 2.0 * cross + float(np.einsum("ij,ij->", gram, hht64))
        out[start:stop] = w
    return out, trace


def solve_trace_kernel(
    block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, params: SolveParams
) -> np.ndarray:
    """``‖X − WH‖²`` of the block after every ``check_every`` updates of ``W`` (H fixed):
    shape (n_iter // check_every,), float64. One read of the block."""
    return _solve_block(block, params, True)[1]


def combine_trace(parts: list[np.ndarray]) -> np.ndarray:
    """Sum error traces in chunk order."""
    out: np.ndarray = np.sum(parts, axis=0)
    return out


def solve_rows_kernel(block: np.ndarray, params: SolveParams, chunk: ChunkInfo) -> np.ndarray:
    """``W`` of the block after ``n_iter`` updates with ``H`` fixed: (n_rows, n_components)."""
    return _solve_block(block, params, False)[0]


# --------------------------------------------------------------------------- initial W


def random_rows(start: int, stop: int, n_components: int, entropy: int, scale: float, dtype: np.dtype) -> np.ndarray:
    """Rows ``start:stop`` of ``|scale · N(0, 1)|``, shape (stop - start, n_components).

    Row ``r`` comes from the generator of seed block ``r // SEED_BLOCK_ROWS``, so the rows are
    the same whatever the chunking.
    """
    out = np.empty((stop - start, n_components), dtype=dtype)
    if stop <= start:
        return out
    for b in range(start // SEED_BLOCK_ROWS, (stop - 1) // SEED_BLOCK_ROWS + 1):
        g = chunk_rng(entropy, b).standard_normal((SEED_BLOCK_ROWS, n_components))
        lo, hi = max(start, b * SEED_BLOCK_ROWS), min(stop, (b + 1) * SEED_BLOCK_ROWS)
        out[lo - start : hi - start] = g[lo - b * SEED_BLOCK_ROWS : hi - b * SEED_BLOCK_ROWS]
    np.multiply(out, dtype.type(scale), out=out)
    return np.abs(out, out=out)


@dataclass(frozen=True)
class NNDSVDRows:
    """How rows of ``W`` are built from the left singular vectors ``U`` (NNDSVD).

    first_scale : ``sqrt(s₀)``: column 0 is ``sqrt(s₀) |U₀|``.
    signs : (n_components,) ``+1`` to keep the positive part of ``Uⱼ``, ``-1`` the negative part.
    scales : (n_components,) ``sqrt(sⱼ σⱼ) / ‖part of Uⱼ‖`` for ``j ≥ 1``.
    eps : entries below it become 0.
    fill : ``"zeros"`` (nndsvd), ``"mean"`` (nndsvda: zeros become ``avg``), ``"random"``
        (nndsvdar: zeros become ``|avg · N(0, 1) / 100|``, drawn per seed block from ``entropy``).
    """

    first_scale: float
    signs: np.ndarray
    scales: np.ndarray
    eps: float
    fill: str
    avg: float
    entropy: int


def nndsvd_rows(u: np.ndarray, start: int, params: NNDSVDRows, dtype: np.dtype) -> np.ndarray:
    """Rows of the NNDSVD initial ``W`` from the same rows of ``U``: shape (n_rows, n_components)."""
    u = np.asarray(u, dtype=np.float64)
    w = np.empty_like(u)
    w[:, 0] = params.first_scale * np.abs(u[:, 0])
    for j in range(1, u.shape[1]):
        part = np.maximum(params.signs[j] * u[:, j], 0.0)
        w[:, j] = params.scales[j] * part
    w[w < params.eps] = 0
    if params.fill == "mean":
        w[w == 0] = params.avg
    elif params.fill == "random":
        zero = w == 0
        noise = random_rows(start, start + w.shape[0], w.shape[1], params.entropy, params.avg / 100, np.dtype(np.float64))
        w[zero] = noise[zero]
    return w.astype(dtype)
