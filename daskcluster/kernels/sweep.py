"""Kernels that serve many k-means models in one pass: one stacked GEMM, then per-model work.

A sweep over the number of clusters runs every model's seeding and Lloyd iterations in
lockstep. In each pass, every row slice is cast once, its squared norms computed once, and
multiplied once by the centers of *all* models still running, stacked into one matrix; each
model then takes its own column segment of that product (its arg-min and minimum), and does
what a single model's kernel in :mod:`daskcluster.kernels.kmeans` does with it. The per-model
statistics are the same objects, combined by the same functions, so the client-side code of a
single fit applies unchanged.

The other kernels here compute, for many labelings of the rows at once (nearest center of a
k-means model, or most probable component of a mixture), the per-label counts and sums and
then the dispersion around the per-label means: what the Calinski-Harabasz and
Davies-Bouldin indices need, for every model of a sweep in two passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from . import kmeans as K
from . import mixture as M
from .blocks import (
    Affine,
    ChunkInfo,
    check_finite_rows,
    iter_compute_slices,
    row_sq_norms,
    slice_rows,
)

#: What a member of a sweep pass computes: a k-means|| round, a Lloyd step, an assignment.
ROUND, LLOYD, PLUSPLUS = "round", "lloyd", "plusplus"

#: Up to this many clusters in all, the Lloyd members' per-cluster sums are one dense product
#: (one-hot of the labels, transposed, times the slice: one GEMM); above, one sparse product per
#: member (whose cost does not grow with the number of clusters).
DENSE_SUMS_MAX = 256


@dataclass(frozen=True)
class Member:
    """One model's part of a sweep pass.

    kind : ``'round'`` (k-means|| oversampling: :class:`~daskcluster.kernels.kmeans.Candidates`),
        ``'plusplus'`` (a greedy k-means++ step: :class:`~daskcluster.kernels.kmeans.PlusPlusStats`)
        or ``'lloyd'`` (a Lloyd step: :class:`~daskcluster.kernels.kmeans.LloydStats`; with
        ``n_far=0`` an assignment pass giving counts, sums and inertia).
    centers : (k, n_features), compute dtype.
    ell, entropy, round : k-means|| and k-means++, as
        :class:`~daskcluster.kernels.kmeans.ParallelRoundParams` (``round`` is the k-means++ step).
    n_far : Lloyd only, the farthest points to keep for relocating empty clusters.
    trials, n_draws : k-means++ only, as :class:`~daskcluster.kernels.kmeans.PlusPlusParams`.
    """

    kind: str
    centers: np.ndarray
    ell: float = 0.0
    entropy: int = 0
    round: int = 0
    n_far: int = 0
    trials: np.ndarray | None = None
    n_draws: int = 0

    @property
    def stacked(self) -> np.ndarray:
        """The rows this member puts in the stacked GEMM: its centers, then its trials."""
        if self.kind == PLUSPLUS and self.trials is not None and len(self.trials):
            return np.concatenate([self.centers, self.trials])
        return self.centers


@dataclass(frozen=True)
class SweepParams:
    """The members of one pass, the scaling, and whether to return the data's moments."""

    members: tuple[Member, ...]
    affine: Affine
    moments: bool = False


@dataclass
class SweepStats:
    """One statistics object per member (in member order), and the moments if asked."""

    parts: list[K.Candidates | K.LloydStats | K.PlusPlusStats]
    moments: K.Moments | None = None


def _stack(members: tuple[Member, ...], affine: Affine) -> tuple[np.ndarray, np.ndarray, list[slice]]:
    """All members' centers in storage space, stacked and scaled by -2, their norms, the segments."""
    centers = [affine.to_storage_space(m.stacked) for m in members]
    stacked = np.concatenate(centers)
    bounds = np.cumsum([0] + [len(c) for c in centers])
    return -2 * stacked, row_sq_norms(stacked), [slice(a, b) for a, b in pairwise(bounds)]


def sweep_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo,
                 params: SweepParams) -> SweepStats:
    """Every member's statistics over one block, from one stacked GEMM per slice. One pass.

    Memory: one slice of rows, its (slice_rows, sum of k) product, and per member one float64
    and one int64 per row of the block (minimum distances and labels).
    """
    affine = params.affine
    members = params.members
    n, d = block.shape
    minus2c, c_sq, segments = _stack(members, affine)
    dtype = minus2c.dtype
    total_k = minus2c.shape[0]
    min_sq = [np.empty(n) for _ in members]
    pp_dist = {j: np.empty((n, max(1, len(m.stacked) - len(m.centers)))) for j, m in enumerate(members)
               if m.kind == PLUSPLUS}
    labels = [np.empty(n, dtype=np.int64) for _ in members]
    wic = [np.zeros(seg.stop - seg.start) for seg in segments]
    lloyd = [j for j, m in enumerate(members) if m.kind == LLOYD]
    # the Lloyd members' clusters side by side: their per-cluster sums are one product
    offsets = np.cumsum([0] + [segments[j].stop - segments[j].start for j in lloyd])
    dense = offsets[-1] <= DENSE_SUMS_MAX
    all_sums = np.zeros((offsets[-1], d))
    moments = K.Moments(0, np.zeros(d), np.zeros(d)) if params.moments else None
    for start, stop, x in iter_compute_slices(block, dtype, Affine(), slice_rows(d, total_k)):
        x_sq = row_sq_norms(x)
        check_finite_rows(x, x_sq, chunk, start)
        g = x @ minus2c.T
        g += c_sq
        w = K.slice_weights(sample_weight, start, stop)
        for j, seg in enumerate(segments):
            part = g[:, seg]
            if members[j].kind == PLUSPLUS:
                t = len(members[j].centers)
                pp_dist[j][start:stop] = _plusplus_distances(part, t, x_sq)
                continue
            lab = np.argmin(part, axis=1)
            sq = np.take_along_axis(part, lab[:, None], axis=1)[:, 0].astype(np.float64)
            sq += x_sq
            np.maximum(sq, 0.0, out=sq)
            min_sq[j][start:stop] = sq
            labels[j][start:stop] = lab
        if lloyd and dense:
            rows = np.arange(stop - start)
            onehot = np.zeros((stop - start, offsets[-1]), dtype=dtype)
            for i, j in enumerate(lloyd):
                onehot[rows, offsets[i] + labels[j][start:stop]] = 1 if w is None else w
            all_sums += onehot.T @ x
        elif lloyd:
            for i, j in enumerate(lloyd):
                k = offsets[i + 1] - offsets[i]
                all_sums[offsets[i]:offsets[i + 1]] += K.cluster_sums(x, labels[j][start:stop], w, k)
        for i, j in enumerate(lloyd):
            wic[j] += np.bincount(labels[j][start:stop], weights=w, minlength=offsets[i + 1] - offsets[i])
        if moments is not None:
            moments = moments.merge(K.Moments.of(x))
    parts: list[K.Candidates | K.LloydStats] = []
    for j, m in enumerate(members):
        if m.kind == PLUSPLUS:
            dist = pp_dist[j]
            dist *= affine.sq_scale
            parts.append(K.plusplus_part(block, sample_weight, chunk, dist, m.n_draws, m.entropy, m.round, dtype,
                                         affine))
            continue
        sq = min_sq[j] * affine.sq_scale
        if m.kind == ROUND:
            parts.append(K.draw_candidates(block, sample_weight, chunk, sq, m.ell, m.entropy, m.round, dtype, affine))
            continue
        w_all = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        inertia = float(sq.sum()) if w_all is None else float(sq @ w_all)
        far = K.far_points(block, sample_weight, chunk, sq, labels[j], m.n_far, dtype, affine)
        i = lloyd.index(j)
        sums = all_sums[offsets[i]:offsets[i + 1]]
        s = sums if affine.is_identity else affine.scale * sums + affine.offset * wic[j][:, None]
        parts.append(K.LloydStats(wic[j], s, inertia, far, None))
    if moments is not None and not affine.is_identity:
        moments = K.Moments(moments.n, affine.scale * moments.mean + affine.offset, affine.sq_scale * moments.m2)
    return SweepStats(parts, moments)


def _plusplus_distances(part: np.ndarray, n_centers: int, x_sq: np.ndarray) -> np.ndarray:
    """A k-means++ member's (rows, h) squared distances from its segment of the product (minus
    the rows' norms): the nearest chosen center's, or a trial's when nearer, as
    :func:`~daskcluster.kernels.kmeans.plusplus_kernel` computes them."""
    chosen = part[:, :n_centers]
    lab = np.argmin(chosen, axis=1)
    base = np.take_along_axis(chosen, lab[:, None], axis=1)[:, 0].astype(np.float64)
    base += x_sq
    np.maximum(base, 0.0, out=base)
    if part.shape[1] == n_centers:
        return base[:, None]
    trial = part[:, n_centers:] + x_sq[:, None]
    np.maximum(trial, 0, out=trial)
    return np.minimum(base[:, None], trial)


def combine_sweep(parts: list[SweepStats], members: tuple[tuple[str, float, int], ...]) -> SweepStats:
    """Merge sweep statistics in chunk order, member by member.

    ``members`` gives each member's ``(kind, ell, n_far)``, what its own combine needs.
    """
    merged: list[K.Candidates | K.LloydStats] = []
    for j, (kind, ell, n_far) in enumerate(members):
        mine = [p.parts[j] for p in parts]
        if kind == ROUND:
            merged.append(K.combine_candidates(mine, ell))  # type: ignore[arg-type]
        elif kind == PLUSPLUS:
            merged.append(K.combine_plusplus(mine))  # type: ignore[arg-type]
        else:
            merged.append(K.combine_lloyd(mine, n_far))  # type: ignore[arg-type]
    moments = parts[0].moments
    for p in parts[1:]:
        if moments is not None and p.moments is not None:
            moments = moments.merge(p.moments)
    return SweepStats(merged, moments)


# --------------------------------------------------------------------------- many labelings


@dataclass(frozen=True)
class Labelings:
    """How to label the rows, once per model.

    centers : k-means models, (k_m, n_features) each in the compute dtype: a row's label is its
        nearest center (as ``KMeans.predict``).
    mixtures : Gaussian mixtures: a row's label is its most probable component (as
        ``GaussianMixture.predict``).
    dtype : compute dtype of the k-means assignment.
    centroids : per model, (k_m, n_features) float64 means of the labels (second pass only).
    """

    centers: tuple[np.ndarray, ...]
    mixtures: tuple[M.GaussianParams, ...]
    affine: Affine
    dtype: np.dtype
    centroids: tuple[np.ndarray, ...] = field(default=())

    @property
    def sizes(self) -> list[int]:
        return [len(c) for c in self.centers] + [g.n_components for g in self.mixtures]


@dataclass
class LabelStats:
    """Per model and label: number of rows and sums of rows (first pass), or the sum of
    squared distances and of distances to the label's centroid (second pass)."""

    counts: list[np.ndarray]
    sums: list[np.ndarray]


def _label_rows(block: np.ndarray, chunk: ChunkInfo, params: Labelings) -> list[np.ndarray]:
    """Each model's label of every row of the block: one stacked GEMM for the k-means models,
    one E-step per mixture."""
    n, d = block.shape
    out = [np.empty(n, dtype=np.int64) for _ in params.centers]
    if params.centers:
        minus2c, c_sq, segments = _stack(tuple(Member(LLOYD, c) for c in params.centers), params.affine)
        for start, stop, x in iter_compute_slices(block, params.dtype, Affine(), slice_rows(d, minus2c.shape[0])):
            check_finite_rows(x, row_sq_norms(x), chunk, start)
            g = x @ minus2c.T
            g += c_sq
            for j, seg in enumerate(segments):
                out[j][start:stop] = np.argmin(g[:, seg], axis=1)
    out += [M.predict_block(block, params.affine, gp, chunk) for gp in params.mixtures]
    return out


def label_sums_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo,
                      params: Labelings) -> LabelStats:
    """Per model: rows and float64 sums of rows of each label. One pass over the block."""
    labels = _label_rows(block, chunk, params)
    d = block.shape[1]
    counts = [np.zeros(k) for k in params.sizes]
    sums = [np.zeros((k, d)) for k in params.sizes]
    for start, stop, x in iter_compute_slices(block, np.dtype(np.float64), params.affine, slice_rows(d)):
        for j, k in enumerate(params.sizes):
            lab = labels[j][start:stop]
            counts[j] += np.bincount(lab, minlength=k)
            sums[j] += K.cluster_sums(x, lab, None, k)
    return LabelStats(counts, sums)


def dispersion_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo,
                      params: Labelings) -> LabelStats:
    """Per model and label: sum of squared distances (``counts``) and of distances (``sums``)
    of the rows to their label's centroid. One pass over the block.

    The distances come in float64 from one GEMM of each slice against every model's centroids,
    stacked: ``||x - m||² = ||x||² - 2 x·m + ||m||²``. Its rounding error is about
    ``1e-16 * ||x||²``, far below the distances of rows to their centroids in data that
    clusters at all (the single-model metrics compute differences instead).
    """
    labels = _label_rows(block, chunk, params)
    d = block.shape[1]
    stacked = np.concatenate(params.centroids)
    m_sq = row_sq_norms(stacked)
    offsets = np.cumsum([0] + params.sizes[:-1])
    sq = [np.zeros(k) for k in params.sizes]
    dist = [np.zeros(k) for k in params.sizes]
    for start, stop, x in iter_compute_slices(block, np.dtype(np.float64), params.affine,
                                              slice_rows(d, stacked.shape[0])):
        g = x @ stacked.T
        x_sq = row_sq_norms(x)
        rows = np.arange(stop - start)
        for j, k in enumerate(params.sizes):
            lab = labels[j][start:stop]
            col = offsets[j] + lab
            r2 = x_sq + m_sq[col] - 2 * g[rows, col]
            np.maximum(r2, 0.0, out=r2)
            sq[j] += np.bincount(lab, weights=r2, minlength=k)
            dist[j] += np.bincount(lab, weights=np.sqrt(r2), minlength=k)
    return LabelStats(sq, dist)


def combine_label_stats(parts: list[LabelStats]) -> LabelStats:
    """Merge in chunk order, model by model."""
    n_models = len(parts[0].counts)
    return LabelStats(
        [np.sum([p.counts[j] for p in parts], axis=0) for j in range(n_models)],
        [np.sum([p.sums[j] for p in parts], axis=0) for j in range(n_models)],
    )
