"""Micro-cluster summaries: each row's nearest center, and per center the count and the sum of its
rows (the first two moments of BIRCH's clustering features), in one read of the block.

The two-phase estimators (agglomerative and spectral clustering on data too large for one
machine) summarise the rows by many k-means centers; this pass gives, for the partition of the
rows by their nearest center, the exact count and mean of every part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .assign import CenterTable, add_rows, iter_nearest, weights_arg
from .blocks import Affine, ChunkInfo


@dataclass(frozen=True)
class SummaryParams:
    """Broadcast parameters: the centers (n_centers, n_features) in the compute dtype and space."""

    centers: np.ndarray
    affine: Affine


@dataclass
class MicroSummary:
    """Per center: the number of rows nearest it (n_centers,) and the float64 sum of those rows
    in the storage space (n_centers, n_features)."""

    counts: np.ndarray
    sums: np.ndarray

    def means(self, affine: Affine) -> np.ndarray:
        """Mean of each non-empty part in the compute space; shape (n_nonempty, n_features)."""
        keep = self.counts > 0
        means: np.ndarray = self.sums[keep] / self.counts[keep, None] * affine.scale + affine.offset
        return means


def summary_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo,
                   params: SummaryParams) -> MicroSummary:
    """Counts and sums of the rows nearest each center; one read of the block, tile by tile.

    Rows are assigned exactly as :func:`~daskcluster.kernels.kmeans.labels_kernel` assigns
    them (same tiles, same arg-min), so the summary describes the partition that the labels
    give. Sums are added in row order in float64.
    """
    table = CenterTable.of(params.affine.to_storage_space(params.centers))
    k, d = table.n_centers, block.shape[1]
    n = block.shape[0]
    labels = np.empty(n, dtype=np.int64)
    min_sq = np.empty(n)
    sums = np.zeros((k, d))
    counts = np.zeros(k)
    w, weighted = weights_arg(sample_weight)
    for start, stop, x in iter_nearest(block, table, chunk, labels, min_sq):
        add_rows(x, labels[start:stop], w[start:stop] if weighted else w, weighted, sums, counts)
    return MicroSummary(counts, sums)


def combine_summaries(parts: list[MicroSummary]) -> MicroSummary:
    """Add summaries in chunk order."""
    return MicroSummary(np.sum([p.counts for p in parts], axis=0), np.sum([p.sums for p in parts], axis=0))


def lookup_labels(block: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[block]``: each row's micro-cluster index mapped to its cluster label."""
    return np.asarray(table[block], dtype=table.dtype)
