"""Kernels of clustering metrics: per-cluster sums and dispersions of rows with given labels."""

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
from .kmeans import cluster_sums


@dataclass(frozen=True)
class LabelSumsParams:
    """Sum rows per label: ``n_clusters`` labels, the scaling, the compute dtype."""

    n_clusters: int
    affine: Affine
    dtype: np.dtype


@dataclass
class LabelSums:
    """Rows and sums per label, and the number of rows."""

    counts: np.ndarray  # (k,)
    sums: np.ndarray  # (k, d) float64


def label_sums_kernel(block: np.ndarray, labels: np.ndarray, chunk: ChunkInfo, params: LabelSumsParams) -> LabelSums:
    """Counts and sums of the rows of each label. One pass over the block."""
    k, d = params.n_clusters, block.shape[1]
    counts = np.zeros(k)
    sums = np.zeros((k, d))
    for start, stop, x in iter_compute_slices(block, params.dtype, params.affine, slice_rows(d)):
        check_finite_rows(x, row_sq_norms(x), chunk, start)
        lab = np.asarray(labels[start:stop], dtype=np.int64)
        counts += np.bincount(lab, minlength=k)
        sums += cluster_sums(x, lab, None, k)
    return LabelSums(counts, sums)


def combine_label_sums(parts: list[LabelSums]) -> LabelSums:
    """Merge in chunk order."""
    return LabelSums(np.sum([p.counts for p in parts], axis=0), np.sum([p.sums for p in parts], axis=0))


@dataclass(frozen=True)
class DispersionParams:
    """Distances of rows to the center of their label (float64, computed as differences)."""

    centers: np.ndarray  # (k, d) float64
    affine: Affine
    dtype: np.dtype


@dataclass
class Dispersion:
    """Per label: sum of squared distances and sum of distances to the label's center."""

    sq: np.ndarray  # (k,)
    dist: np.ndarray  # (k,)


def dispersion_kernel(block: np.ndarray, labels: np.ndarray, chunk: ChunkInfo, params: DispersionParams) -> Dispersion:
    """Within-cluster dispersion, by differences in float64 (no cancellation). One pass."""
    k, d = params.centers.shape
    sq = np.zeros(k)
    dist = np.zeros(k)
    for start, stop, x in iter_compute_slices(block, np.dtype(np.float64), params.affine, slice_rows(d)):
        lab = np.asarray(labels[start:stop], dtype=np.int64)
        diff = x - params.centers[lab]
        r2 = np.einsum("ij,ij->i", diff, diff)
        sq += np.bincount(lab, weights=r2, minlength=k)
        dist += np.bincount(lab, weights=np.sqrt(r2), minlength=k)
    return Dispersion(sq, dist)


def combine_dispersion(parts: list[Dispersion]) -> Dispersion:
    """Merge in chunk order."""
    return Dispersion(np.sum([p.sq for p in parts], axis=0), np.sum([p.dist for p in parts], axis=0))
