"""Kernels of k-means: the statistics of a Lloyd step and of the seeding draws, assignment.

The statistics objects (:class:`LloydStats`, :class:`Candidates`, :class:`PlusPlusStats`) are
made per member by the one k-means pass, :func:`daskcluster.kernels.sweep.sweep_kernel`, from
the helpers here (:func:`far_points`, :func:`draw_candidates`, :func:`plusplus_part`). Each
``*_kernel`` function takes one block of rows in its storage dtype, the row-aligned sample
weights of that block (or ``None``), a :class:`~daskcluster.kernels.blocks.ChunkInfo` and one
parameters object, and returns a small statistics object. Each ``combine_*`` function merges a
list of such objects (in chunk order) into one of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .blocks import Affine, ChunkInfo
from .compiled import compiled
from .moments import pairwise_update

if TYPE_CHECKING:  # the real modules, for type checkers
    from . import assign as A
    from . import sparse as S
else:
    A = compiled("assign")
    S = compiled("sparse")


def chunk_rng(entropy: int, *spawn_key: int) -> np.random.Generator:
    """The random generator of one chunk in one pass: a pure function of the seed and position."""
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=tuple(spawn_key)))


def slice_weights(sample_weight: np.ndarray | None, start: int, stop: int) -> np.ndarray | None:
    return None if sample_weight is None else np.asarray(sample_weight[start:stop], dtype=np.float64)


def cluster_sums(x: np.ndarray, labels: np.ndarray, w: np.ndarray | None, n_clusters: int) -> np.ndarray:
    """Per-cluster (weighted) sums of the rows of ``x``: shape (n_clusters, n_features), float64,
    added in row order by a compiled loop (:func:`~daskcluster.kernels.assign.add_rows`)."""
    sums = np.zeros((n_clusters, x.shape[1]))
    weights, weighted = A.weights_arg(w)
    A.add_rows(x, np.asarray(labels, dtype=np.int64), weights, weighted, sums, np.zeros(n_clusters))
    return sums


@dataclass
class Moments:
    """Count, mean and centred sum of squares per feature (Chan's parallel form)."""

    n: int
    mean: np.ndarray
    m2: np.ndarray

    def merge(self, other: Moments) -> Moments:
        return Moments(*pairwise_update(self.n, self.mean, self.m2, other.n, other.mean, other.m2))

    @property
    def var(self) -> np.ndarray:
        return self.m2 / max(self.n, 1)


@dataclass
class FarPoints:
    """The points farthest from their assigned centers, farthest first (ties: lower index)."""

    sq_dist: np.ndarray  # (m,) float64
    index: np.ndarray  # (m,) int64, global row
    label: np.ndarray  # (m,) int64
    weight: np.ndarray  # (m,) float64
    rows: np.ndarray  # (m, n_features), compute dtype

    @staticmethod
    def empty(n_features: int, dtype: np.dtype) -> FarPoints:
        """No points (from a pass that did not measure every row's distance)."""
        return FarPoints(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0),
                         np.zeros((0, n_features), dtype=dtype))

    @staticmethod
    def concat(parts: list[FarPoints], keep: int) -> FarPoints:
        sq = np.concatenate([p.sq_dist for p in parts])
        idx = np.concatenate([p.index for p in parts])
        order = np.lexsort((idx, -sq))[:keep]
        # gather the kept rows only: the parts' rows are (n_far, d) each, megabytes for wide data
        ends = np.cumsum([len(p.sq_dist) for p in parts])
        part = np.searchsorted(ends, order, side="right")
        starts = ends - [len(p.sq_dist) for p in parts]
        rows = np.empty((len(order),) + parts[0].rows.shape[1:], dtype=parts[0].rows.dtype)
        for r, (j, i) in enumerate(zip(part, order - starts[part])):
            rows[r] = parts[j].rows[i]
        return FarPoints(
            sq[order],
            idx[order],
            np.concatenate([p.label for p in parts])[order],
            np.concatenate([p.weight for p in parts])[order],
            rows,
        )


@dataclass
class LloydStats:
    """Sufficient statistics of one Lloyd step over some rows."""

    weight_in_clusters: np.ndarray  # (k,) float64
    sums: np.ndarray  # (k, d) float64
    inertia: float
    far: FarPoints
    moments: Moments | None


def block_moments(block: np.ndarray, dtype: np.dtype, affine: Affine) -> Moments:
    """Per-feature count, mean and centred sum of squares of the block's rows, mapped through
    ``affine`` (for scikit-learn's relative ``tol``; first pass only). One compiled sweep of
    the block in float64, shifted by its first row (so no cancellation unless that row lies
    millions of standard deviations from the mean); ``uint8`` rows summed in integers, whose
    shifted sums are those float64 sums exactly (every partial sum an integer below 2^53)."""
    n, d = block.shape
    if n == 0:
        return Moments(0, np.zeros(d), np.zeros(d))
    shift = np.asarray(block[0], dtype=dtype).astype(np.float64)
    if block.dtype == np.uint8:  # integers: the float64 sums below are exact, so these are their bits
        t1, t2, si = np.zeros(d, dtype=np.int64), np.zeros(d, dtype=np.int64), shift.astype(np.int64)
        A.byte_sums(np.asarray(block), t1, t2)
        s1, s2 = (t1 - n * si).astype(np.float64), (t2 - 2 * si * t1 + n * si * si).astype(np.float64)
    else:
        s1, s2 = np.zeros(d), np.zeros(d)
        A.shifted_sums(np.asarray(block), shift, s1, s2)
    moments = Moments(n, shift + s1 / n, np.maximum(s2 - s1 * s1 / n, 0.0))
    if affine.is_identity:
        return moments
    return Moments(moments.n, affine.scale * moments.mean + affine.offset, affine.sq_scale * moments.m2)


def far_points(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, sq: np.ndarray,
               labels: np.ndarray, n_far: int, dtype: np.dtype, affine: Affine) -> FarPoints:
    """The ``n_far`` rows of the block farthest from their centers (squared distances ``sq`` and
    ``labels`` of shape (n_rows,)), farthest first, their rows mapped to the compute space."""
    n = block.shape[0]
    m = min(n_far, n)
    top = A.farthest(sq, m)  # one compiled pass (np.argpartition: 0.3 ms a 32,768-row chunk)
    far = FarPoints(
        sq[top],
        chunk.start + top,
        labels[top],
        np.ones(m) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)[top],
        affine.apply(S.dense_rows(block, top).astype(dtype)),
    )
    return FarPoints.concat([far], n_far)


def _add_in_order(arrays: list[np.ndarray]) -> np.ndarray:
    """``arrays[0] + arrays[1] + ...`` added in that order into one new array: the value of
    ``np.sum(arrays, axis=0)`` without stacking the arrays first (for (k, d) sums of wide data
    the stacked copy cost more than the additions)."""
    out = np.array(arrays[0], dtype=np.result_type(*arrays), copy=True)
    for a in arrays[1:]:
        out += a
    return out


def combine_lloyd(parts: list[LloydStats], n_far: int) -> LloydStats:
    """Merge Lloyd statistics in the given (chunk) order, keeping the ``n_far`` farthest points."""
    first = parts[0]
    moments = first.moments
    for p in parts[1:]:
        if moments is not None and p.moments is not None:
            moments = moments.merge(p.moments)
    return LloydStats(
        _add_in_order([p.weight_in_clusters for p in parts]),
        _add_in_order([p.sums for p in parts]),
        float(sum(p.inertia for p in parts)),
        FarPoints.concat([p.far for p in parts], n_far),
        moments,
    )


# --------------------------------------------------------------------------- assignment


@dataclass(frozen=True)
class AssignParams:
    """Broadcast parameters of an assignment pass (labels, distances, inertia, counts)."""

    centers: np.ndarray
    affine: Affine


@dataclass
class AssignStats:
    """Per-center weight (points closest to each center) and the total inertia."""

    weight_in_clusters: np.ndarray
    inertia: float


def assign_stats_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: AssignParams
) -> AssignStats:
    """Weight of the rows nearest each center, and their inertia. One read of the block."""
    table = A.CenterTable.of(params.affine.to_storage_space(params.centers))
    labels, min_sq = A.nearest(block, table, chunk)
    k = table.n_centers
    if sample_weight is None:
        return AssignStats(np.bincount(labels, minlength=k).astype(np.float64),
                           float(min_sq.sum()) * params.affine.sq_scale)
    w = np.asarray(sample_weight, dtype=np.float64)
    return AssignStats(np.bincount(labels, weights=w, minlength=k), float(min_sq @ w) * params.affine.sq_scale)


def combine_assign(parts: list[AssignStats]) -> AssignStats:
    """Merge assignment statistics in chunk order."""
    return AssignStats(np.sum([p.weight_in_clusters for p in parts], axis=0), float(sum(p.inertia for p in parts)))


def labels_kernel(block: np.ndarray, centers: np.ndarray, affine: Affine, chunk: ChunkInfo) -> np.ndarray:
    """Index of the nearest center for each row: shape (n_rows,), int32."""
    return A.nearest(block, A.CenterTable.of(affine.to_storage_space(centers)), chunk)[0].astype(np.int32)


def transform_kernel(block: np.ndarray, centers: np.ndarray, affine: Affine, chunk: ChunkInfo) -> np.ndarray:
    """Euclidean distance of each row to each center: shape (n_rows, n_clusters)."""
    table = A.CenterTable.of(affine.to_storage_space(centers))
    out = np.empty((block.shape[0], table.n_centers), dtype=table.dtype)
    for start, stop, _, x_sq, g in A.iter_products(block, table.minus2_t, chunk):
        dist = np.empty(g.shape)
        A.distances_from_product(g, table.sq_norms, x_sq, dist)
        dist *= affine.sq_scale
        out[start:stop] = np.sqrt(dist)
    return out


# --------------------------------------------------------------------------- k-means||


@dataclass
class Candidates:
    """Rows sampled in one k-means|| round, and the cost (weighted inertia) of the rows seen.

    A row is finally kept iff ``key < ell / cost_total`` with ``key = u / (w d^2)``: exactly
    Bernoulli sampling with probability ``min(1, ell w d^2 / cost_total)``. A part of the data
    keeps only rows with ``key < ell / cost_part``, a superset, since ``cost_part <= cost_total``.
    """

    cost: float
    key: np.ndarray  # (m,)
    index: np.ndarray  # (m,) int64
    rows: np.ndarray  # (m, n_features) compute dtype

    def pruned(self, ell: float) -> Candidates:
        if self.cost <= 0:
            return Candidates(self.cost, self.key[:0], self.index[:0], self.rows[:0])
        keep = self.key < ell / self.cost
        return Candidates(self.cost, self.key[keep], self.index[keep], self.rows[keep])


def draw_candidates(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, d2: np.ndarray,
                    ell: float, entropy: int, round: int, dtype: np.dtype, affine: Affine) -> Candidates:
    """A k-means|| round's draw over a block, from each row's squared distance ``d2`` (n_rows,)
    to its nearest candidate (in the compute space): see :class:`Candidates`."""
    wd2 = d2 if sample_weight is None else d2 * np.asarray(sample_weight, dtype=np.float64)
    u = chunk_rng(entropy, round, chunk.index).random(block.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        key = np.where(wd2 > 0, u / wd2, np.inf)
    cost = float(wd2.sum())
    sel = np.flatnonzero(key < ell / cost) if cost > 0 else np.zeros(0, dtype=np.int64)
    rows = S.dense_rows(block, sel).astype(dtype)
    affine.apply(rows)
    return Candidates(cost, key[sel], sel.astype(np.int64) + chunk.start, rows)


def combine_candidates(parts: list[Candidates], ell: float) -> Candidates:
    """Merge candidates in chunk order, dropping those the combined cost already rules out."""
    return Candidates(
        float(sum(p.cost for p in parts)),
        np.concatenate([p.key for p in parts]),
        np.concatenate([p.index for p in parts]),
        np.concatenate([p.rows for p in parts]),
    ).pruned(ell)


# --------------------------------------------------------------------------- k-means++


@dataclass
class PlusPlusStats:
    """Potential of each trial and, per trial, ``n_draws`` rows drawn with probability
    proportional to ``w * D^2`` (exponential clocks: a draw is the row of least
    ``E / (w D^2)``, ``E ~ Exp(1)``), with replacement."""

    potential: np.ndarray  # (h,)
    key: np.ndarray  # (h, n_draws)
    index: np.ndarray  # (h, n_draws) int64
    rows: np.ndarray  # (h, n_draws, d)


def plusplus_part(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, dist: np.ndarray,
                  n_draws: int, entropy: int, step: int, dtype: np.dtype, affine: Affine) -> PlusPlusStats:
    """A k-means++ step's statistics over a block from ``dist`` (n_rows, h): each row's squared
    distance (compute space) to its nearest center under each of the ``h`` trials' hypotheses.
    Modifies ``dist`` in place (weights)."""
    n, d = block.shape
    h = dist.shape[1]
    if sample_weight is not None:
        dist *= np.asarray(sample_weight, dtype=np.float64)[:, None]
    potential = dist.sum(axis=0)
    m = n_draws
    key = np.full((h, m), np.inf)
    index = np.zeros((h, m), dtype=np.int64)
    rows = np.zeros((h, m, d), dtype=dtype)
    if m and n:
        e = chunk_rng(entropy, step, chunk.index).standard_exponential((n, m))
        with np.errstate(divide="ignore", invalid="ignore"):
            for j in range(h):
                lam = dist[:, j]
                keys = np.where(lam[:, None] > 0, e / lam[:, None], np.inf)
                best = np.argmin(keys, axis=0)
                key[j] = keys[best, np.arange(m)]
                index[j] = best
        picked = S.dense_rows(block, index.ravel()).astype(dtype)
        affine.apply(picked)
        rows = picked.reshape(h, m, d)
        index = index + chunk.start
    return PlusPlusStats(potential, key, index, rows)


def combine_plusplus(parts: list[PlusPlusStats]) -> PlusPlusStats:
    """Merge k-means++ step statistics: potentials add, each draw keeps its least key."""
    out = parts[0]
    potential = out.potential.copy()
    key, index, rows = out.key.copy(), out.index.copy(), out.rows.copy()
    for p in parts[1:]:
        potential += p.potential
        better = p.key < key
        key[better] = p.key[better]
        index[better] = p.index[better]
        rows[better] = p.rows[better]
    return PlusPlusStats(potential, key, index, rows)


# --------------------------------------------------------------------------- weighted sampling


@dataclass(frozen=True)
class SampleParams:
    """Draw ``n`` rows without replacement, with probability proportional to the weights."""

    n: int
    affine: Affine
    dtype: np.dtype
    entropy: int
    tag: int


@dataclass
class SampleStats:
    """The rows of least key ``E / w`` (``E ~ Exp(1)``) seen so far, least first."""

    key: np.ndarray
    index: np.ndarray
    rows: np.ndarray

    def smallest(self, n: int) -> SampleStats:
        order = np.lexsort((self.index, self.key))[:n]
        return SampleStats(self.key[order], self.index[order], self.rows[order])


def sample_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: SampleParams
) -> SampleStats:
    """Weighted sampling without replacement (Efraimidis-Spirakis keys) over one block."""
    n = block.shape[0]
    e = chunk_rng(params.entropy, params.tag, chunk.index).standard_exponential(n)
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        with np.errstate(divide="ignore"):
            e = np.where(w > 0, e / w, np.inf)
    m = min(params.n, n)
    top = np.argpartition(e, m - 1)[:m] if 0 < m < n else np.arange(m)
    top = top[np.isfinite(e[top])]
    rows = S.dense_rows(block, np.sort(top)).astype(params.dtype)
    top = np.sort(top)
    params.affine.apply(rows)
    return SampleStats(e[top], top.astype(np.int64) + chunk.start, rows).smallest(params.n)


def combine_samples(parts: list[SampleStats], n: int) -> SampleStats:
    """Merge weighted samples, keeping the ``n`` least keys."""
    return SampleStats(
        np.concatenate([p.key for p in parts]),
        np.concatenate([p.index for p in parts]),
        np.concatenate([p.rows for p in parts]),
    ).smallest(n)
