"""Kernels of orthonormal projective NMF (OPNMF): the Gram pass, the NNDSVD columns and the
update of a factor that lives beside the data, one row chunk at a time.

OPNMF fits ``X' ~ W Wᵀ X'`` with ``W >= 0`` and ``WᵀW ~ I`` by the multiplicative rule of
Yang & Oja (2010), ``W <- W * (X'X'ᵀW) / (W WᵀX'X'ᵀW)``. With ``X`` of shape
(n_samples, n_features) it is used both ways:

* over the features (``X' = Xᵀ``, ``W`` of shape (n_features, k)): ``X'X'ᵀ = XᵀX`` is the
  (n_features, n_features) Gram matrix, summed in one pass by :func:`gram_kernel`; the
  iterations then need no data.
* over the samples (``X' = X``, ``W`` of shape (n_samples, k), row-chunked like ``X``): with
  ``A = XᵀW`` (n_features, k), ``X'X'ᵀW = X A`` and ``WᵀX'X'ᵀW = AᵀA``, so an iteration
  updates each chunk's rows of ``W`` from ``A`` and returns the next ``XᵀW`` and ``WᵀW``
  (:func:`factor_step_kernel`); no (n_samples, n_samples) matrix is ever formed.

Each ``*_kernel`` takes one block of rows in its storage dtype, a
:class:`~daskcluster.kernels.blocks.ChunkInfo` and a parameters object; each ``combine_*``
merges a list of statistics, in chunk order, into one of the same kind (the map-reduce law:
the combined statistics of any split of the rows equal those of the whole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocks import (
    Affine,
    ChunkInfo,
    check_finite_rows,
    iter_compute_slices,
    row_sq_norms,
    slice_rows,
)
from .kmeans import chunk_rng
from .nonnegative import EMPTY, MinEntry, combine_min, min_entry

#: The update floors ``W`` at this value, as the ``opnmf`` package does.
FLOOR = 1e-16

#: NNDSVD sets entries below this to zero, as scikit-learn's initialization does.
NNDSVD_EPS = 1e-6

#: Spawn keys of the per-chunk random streams, one per use.
STREAM_PERMUTE = 1
STREAM_RANDOM_INIT = 2
STREAM_NNDSVDAR = 3
STREAM_SAMPLE = 4


def multiplicative_step(W: np.ndarray, enum: np.ndarray, denom: np.ndarray) -> np.ndarray:
    """The OPNMF update ``W * enum / denom`` floored at :data:`FLOOR`; a new float64 array.

    Where ``denom`` is 0 the new entry is 0 before the floor (then :data:`FLOOR`): this only
    happens where ``W * enum`` is 0 too (a row of ``W`` that is all zero, e.g. for an all-zero
    feature or sample), where the ``opnmf`` package computes ``0 / 0`` and fills ``W`` with NaN.
    Elsewhere the result is the package's, operation for operation.
    """
    num = np.asarray(W, dtype=np.float64) * enum
    out: np.ndarray = np.zeros_like(num)
    np.divide(num, denom, out=out, where=denom > 0)
    out[out < FLOOR] = FLOOR
    return out


def sum_in_order(arrays: list[np.ndarray]) -> np.ndarray:
    """``arrays[0] + arrays[1] + ...`` in that order, into one new array (no stacked copy:
    Gram matrices may be large)."""
    out = np.array(arrays[0], dtype=np.float64)
    for a in arrays[1:]:
        out += a
    return out


def _nonnegative_guaranteed(block: np.ndarray, affine: Affine) -> bool:
    """Whether every value of ``block`` maps to a non-negative one (unsigned storage, positive
    scale, non-negative offset): the smallest-entry search can then be skipped."""
    return block.dtype.kind in "ub" and affine.scale > 0 and affine.offset >= 0


# --------------------------------------------------------------------------- the Gram pass


@dataclass(frozen=True)
class GramParams:
    """Broadcast parameters of the Gram pass.

    affine : the scaling applied to the stored values.
    sample_prob : probability with which each row is also kept in a sample (1: every row),
        drawn from ``(seed, STREAM_SAMPLE, chunk index)``; NNDSVD measures the parts of the
        left singular vectors on it.
    seed : int
    """

    affine: Affine
    sample_prob: float = 0.0
    seed: int = 0


@dataclass
class DataSummary:
    """What the first pass learns about the data besides its statistics proper.

    Attributes
    ----------
    n_rows : int
    sq_norm : float
        Squared Frobenius norm ``sum(x**2)``.
    col_sums : ndarray of shape (n_features,), float64
    min : MinEntry
        The smallest entry and its global position (``EMPTY`` when the storage dtype and the
        scaling make every value non-negative).
    """

    n_rows: int
    sq_norm: float
    col_sums: np.ndarray
    min: MinEntry

    @property
    def total(self) -> float:
        """Sum of all entries."""
        return float(self.col_sums.sum())

    @staticmethod
    def combine(parts: list[DataSummary]) -> DataSummary:
        """The summary of the rows of all ``parts``."""
        return DataSummary(
            sum(p.n_rows for p in parts),
            float(sum(p.sq_norm for p in parts)),
            sum_in_order([p.col_sums for p in parts]),
            combine_min([p.min for p in parts]),
        )


@dataclass
class GramStats:
    """The Gram matrix ``XᵀX`` of some rows, (n_features, n_features) float64, with the first
    pass's summary and the rows sampled (m, n_features), in the storage dtype, in row order."""

    gram: np.ndarray
    summary: DataSummary
    sample: np.ndarray


def _check_slice(x: np.ndarray, chunk: ChunkInfo, start: int, with_min: bool) -> MinEntry:
    """Raise on NaN or infinity in ``x``; return its smallest entry (``EMPTY`` if not asked)."""
    check_finite_rows(x, row_sq_norms(x), chunk, start)
    return min_entry(x, chunk, start) if with_min else EMPTY


def gram_kernel(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, params: GramParams) -> GramStats:
    """``XᵀX`` of the block, its squared norm, column sums, smallest entry and sampled rows.
    Raises :class:`~daskcluster.errors.NonFiniteDataError` on NaN or infinity.
    O(rows x features²): one SYRK per slice in the compute dtype, summed in float64."""
    d = block.shape[1]
    dtype = np.dtype(np.float64) if block.dtype == np.float64 else np.dtype(np.float32)
    gram = np.zeros((d, d), dtype=np.float64)
    col_sums = np.zeros(d, dtype=np.float64)
    with_min = not _nonnegative_guaranteed(block, params.affine)
    smallest = EMPTY
    for start, _, x in iter_compute_slices(block, dtype, params.affine, slice_rows(d)):
        g = x.T @ x
        if not np.isfinite(np.trace(g)):
            _check_slice(x, chunk, start, with_min=False)  # raises, naming the row
        gram += g
        col_sums += x.sum(axis=0)
        if with_min:
            smallest = combine_min([smallest, min_entry(x, chunk, start)])
    summary = DataSummary(block.shape[0], float(np.trace(gram)), col_sums, smallest)
    return GramStats(gram, summary, sample_rows(block, params.sample_prob, params.seed, chunk))


def sample_rows(block: np.ndarray, prob: float, seed: int, chunk: ChunkInfo) -> np.ndarray:
    """The block's rows kept with probability ``prob`` each (all of them when ``prob >= 1``),
    in order, as a copy in the storage dtype; the draws come from ``(seed, STREAM_SAMPLE,
    chunk index)``."""
    if prob >= 1:
        return np.array(block)
    if prob <= 0:
        return np.array(block[:0])
    keep = chunk_rng(seed, STREAM_SAMPLE, chunk.index).random(block.shape[0]) < prob
    return np.array(block[keep])


def combine_gram(parts: list[GramStats]) -> GramStats:
    """Sum of the Gram matrices (in the order given), the combined summary, the samples
    concatenated."""
    return GramStats(sum_in_order([p.gram for p in parts]), DataSummary.combine([p.summary for p in parts]),
                     np.concatenate([p.sample for p in parts]))


# --------------------------------------------------------------------------- NNDSVD


#: Which part of a singular vector makes an NNDSVD column: |u|, max(u, 0) or max(-u, 0).
PART_ABS, PART_POS, PART_NEG = 0, 1, -1


def nndsvd_columns(u: np.ndarray, parts: np.ndarray, coefs: np.ndarray) -> np.ndarray:
    """NNDSVD columns ``coefs[j] * part_j(u[:, j])`` with entries below :data:`NNDSVD_EPS` set
    to 0, as scikit-learn's NNDSVD does; ``u`` (m, k), ``parts`` and ``coefs`` (k,)."""
    W: np.ndarray = np.where(parts == PART_NEG, np.maximum(-u, 0), np.where(parts == PART_POS, np.maximum(u, 0), np.abs(u)))
    W = W * coefs
    W[W < NNDSVD_EPS] = 0
    return W


def fill_zeros(W: np.ndarray, fill: str | None, mean: float, rng: np.random.Generator | None) -> np.ndarray:
    """The NNDSVD variants: ``None`` ('nndsvd') leaves zeros, ``'mean'`` ('nndsvda') fills them
    with the data's mean, ``'random'`` ('nndsvdar') with ``|mean * N(0, 1) / 100|``."""
    if fill is None:
        return W
    zero = W == 0
    if fill == "mean":
        W[zero] = mean
    elif fill == "random":
        assert rng is not None
        W[zero] = np.abs(mean * rng.standard_normal(size=int(zero.sum())) / 100)
    else:
        raise ValueError(f"unknown fill {fill!r}")
    return W


# --------------------------------------------------------------------------- a factor beside the data


@dataclass(frozen=True)
class FactorInit:
    """How the first pass over the samples makes the rows of the initial ``W`` (n_samples, k).

    mode : ``'custom'`` (the rows of the aligned array given), ``'random'`` (``|N(0, 1)|``
        draws from ``(seed, STREAM_RANDOM_INIT, chunk index)``; the estimator scales them), or
        ``'nndsvd'`` (from ``U = X vectors * inv_values``: ``nndsvd_columns(U, parts, coefs)``
        then ``fill_zeros`` with ``fill``, ``mean`` and the stream ``(seed, STREAM_NNDSVDAR,
        chunk index)``).
    summary : whether this is the first pass (also return :class:`DataSummary`, and check
        for NaN, infinity and, unless the storage guarantees it, negative values).
    """

    affine: Affine
    n_components: int
    mode: str
    summary: bool = False
    seed: int = 0
    vectors: np.ndarray | None = None
    inv_values: np.ndarray | None = None
    parts: np.ndarray | None = None
    coefs: np.ndarray | None = None
    fill: str | None = None
    mean: float = 0.0


@dataclass
class FactorStats:
    """What the next update of a factor ``V`` beside the data needs.

    xtv : (n_features, k) float64, ``XᵀV``.
    vtv : (k, k) float64, ``VᵀV``.
    summary : DataSummary or None (first pass only).
    change_sq, prev_sq : float
        ``||W_prev - W||_F²`` and ``||W_prev||_F²`` of the factor before and after the
        previous update (the package's stopping rule), when the pass was given both.
    """

    xtv: np.ndarray
    vtv: np.ndarray
    summary: DataSummary | None = None
    change_sq: float = 0.0
    prev_sq: float = 0.0


def combine_factor(parts: list[FactorStats]) -> FactorStats:
    """Sums of ``XᵀV``, ``VᵀV`` and the squared norms (in the order given) and the combined summary."""
    summary = None
    if parts and parts[0].summary is not None:
        summary = DataSummary.combine([p.summary for p in parts if p.summary is not None])
    return FactorStats(
        sum_in_order([p.xtv for p in parts]),
        sum_in_order([p.vtv for p in parts]),
        summary,
        float(sum(p.change_sq for p in parts)),
        float(sum(p.prev_sq for p in parts)),
    )


def _initial_rows(x: np.ndarray, given: np.ndarray | None, params: FactorInit,
                  rng: np.random.Generator | None) -> np.ndarray:
    if params.mode == "custom":
        assert given is not None
        return np.array(given, dtype=np.float64)
    if params.mode == "random":
        assert rng is not None
        return np.abs(rng.standard_normal(size=(x.shape[0], params.n_components)))
    assert params.vectors is not None and params.inv_values is not None
    assert params.parts is not None and params.coefs is not None
    u = (x @ params.vectors.astype(x.dtype)).astype(np.float64) * params.inv_values
    return fill_zeros(nndsvd_columns(u, params.parts, params.coefs), params.fill, params.mean, rng)


def factor_init_kernel(
    block: np.ndarray, aligned: tuple[np.ndarray, ...], chunk: ChunkInfo, params: FactorInit
) -> tuple[np.ndarray, FactorStats]:
    """The initial rows ``V`` (rows, k) of the block and ``XᵀV``, ``VᵀV`` (and the first pass's
    summary if asked). ``aligned`` holds the block's rows of the custom ``W`` for ``'custom'``.
    O(rows x features x k)."""
    d, k = block.shape[1], params.n_components
    dtype = np.dtype(np.float64) if block.dtype == np.float64 else np.dtype(np.float32)
    rng = None
    if params.mode == "random":
        rng = chunk_rng(params.seed, STREAM_RANDOM_INIT, chunk.index)
    elif params.fill == "random":
        rng = chunk_rng(params.seed, STREAM_NNDSVDAR, chunk.index)
    with_min = params.summary and not _nonnegative_guaranteed(block, params.affine)
    given = aligned[0] if aligned else None
    V = np.empty((block.shape[0], k), dtype=np.float64)
    xtv = np.zeros((d, k))
    vtv = np.zeros((k, k))
    sq_norm = 0.0
    col_sums = np.zeros(d)
    smallest = EMPTY
    for start, stop, x in iter_compute_slices(block, dtype, params.affine, slice_rows(d, k)):
        if params.summary:
            smallest = combine_min([smallest, _check_slice(x, chunk, start, with_min)])
            sq_norm += float(np.einsum("ij,ij->", x, x, dtype=np.float64))
            col_sums += x.sum(axis=0)
        v = _initial_rows(x, None if given is None else given[start:stop], params, rng)
        V[start:stop] = v
        xtv += x.T @ v.astype(dtype)
        vtv += v.T @ v
    summary = DataSummary(block.shape[0], sq_norm, col_sums, smallest) if params.summary else None
    return V, FactorStats(xtv, vtv, summary)


@dataclass(frozen=True)
class StepParams:
    """One update of ``W = V / scale`` over the samples.

    scale : the spectral norm that normalises the stored rows ``V``.
    xtw : (n_features, k), ``A = XᵀW``.
    gram_w : (k, k), ``AᵀA = WᵀXXᵀW``.
    prev_scale : the spectral norm of the factor ``V_prev`` before the last update, when the
        pass is given its rows too (then it also returns the relative change of that update).
    """

    affine: Affine
    scale: float
    xtw: np.ndarray
    gram_w: np.ndarray
    prev_scale: float | None = None


def factor_step_kernel(
    block: np.ndarray, aligned: tuple[np.ndarray, ...], chunk: ChunkInfo, params: StepParams
) -> tuple[np.ndarray, FactorStats]:
    """The block's rows of the next (unnormalised) ``V = step(W, X A, W AᵀA)`` and their
    ``XᵀV``, ``VᵀV``. ``aligned`` is the block's rows of the current ``V`` and, optionally, of
    the previous one: then ``||V_prev / prev_scale - W||²`` and ``||V_prev / prev_scale||²``
    come back too. O(rows x features x k)."""
    d = block.shape[1]
    k = params.xtw.shape[1]
    dtype = np.dtype(np.float64) if block.dtype == np.float64 else np.dtype(np.float32)
    xtw = params.xtw.astype(dtype)
    V_cur = aligned[0]
    V_prev = aligned[1] if len(aligned) > 1 else None
    V = np.empty((block.shape[0], k), dtype=np.float64)
    xtv = np.zeros((d, k))
    vtv = np.zeros((k, k))
    change_sq = prev_sq = 0.0
    for start, stop, x in iter_compute_slices(block, dtype, params.affine, slice_rows(d, k)):
        W = V_cur[start:stop] / params.scale
        if V_prev is not None:
            assert params.prev_scale is not None
            W_prev = V_prev[start:stop] / params.prev_scale
            change_sq += float(np.sum((W_prev - W) ** 2))
            prev_sq += float(np.sum(W_prev**2))
        enum = (x @ xtw).astype(np.float64)
        v = multiplicative_step(W, enum, W @ params.gram_w)
        V[start:stop] = v
        xtv += x.T @ v.astype(dtype)
        vtv += v.T @ v
    return V, FactorStats(xtv, vtv, None, change_sq, prev_sq)


def permute_block(block: np.ndarray, seed: int, axis: int, chunk: ChunkInfo) -> np.ndarray:
    """The block with its values permuted at random along ``axis``, independently per line:
    ``axis=1`` shuffles each row's values among the features, ``axis=0`` each column's values
    among the block's rows. The permutation comes from ``(seed, STREAM_PERMUTE, chunk index)``,
    so a chunk is permuted the same way on every pass. Storage dtype kept. O(rows x features)."""
    return chunk_rng(seed, STREAM_PERMUTE, chunk.index).permuted(np.asarray(block), axis=axis)


def scaled_columns(block: np.ndarray, idx: np.ndarray, scale: float) -> np.ndarray:
    """A block's rows of the fitted ``W`` from those of the last update ``V``: its columns ``idx``
    (the components in their sorted order) divided by ``scale`` (``V``'s spectral norm)."""
    return block[:, idx] / scale


def project_rows(block: np.ndarray, components: np.ndarray, affine: Affine, chunk: ChunkInfo) -> np.ndarray:
    """``X W`` for the block's rows, ``components`` being ``W`` (n_features, k): (rows, k), float64."""
    d, k = components.shape
    dtype = np.dtype(np.float64) if block.dtype == np.float64 else np.dtype(np.float32)
    W = components.astype(dtype)
    out = np.empty((block.shape[0], k), dtype=np.float64)
    for start, stop, x in iter_compute_slices(block, dtype, affine, slice_rows(d, k)):
        out[start:stop] = x @ W
        # a NaN or infinity in a row makes its projections non-finite (0 * inf is NaN): one O(rows) test
        check_finite_rows(x, out[start:stop].sum(axis=1), chunk, start)
    return out
