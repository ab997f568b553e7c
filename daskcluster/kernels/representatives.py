"""Kernels of the representatives workflow: the row nearest each center, and per-cluster
percentiles of a per-row value (each row's distance to its center) by radix selection.

Both are map-reduce statistics in the engine's sense: a kernel of one block returns a small
object, and ``combine_*`` of the objects of any split of the rows, given in row order, equals
the kernel's result on the whole.

* :func:`nearest_rows_kernel` / :func:`combine_nearest`: for each center, the least squared
  distance seen and the global index of its row; ties go to the lowest row.
* :func:`radix_kernel` / :func:`combine_radix`: one step of a radix selection of an order
  statistic in every cluster at once. Values are mapped to unsigned 64-bit keys that sort as
  the values do (:func:`order_keys`); each step fixes the next ``bits`` bits of the key of the
  wanted order statistic from a per-cluster histogram, and a last step gathers the values
  left in the selected key range (or, when all 64 bits are fixed, only what lies above it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidDataError, NonFiniteDataError
from .assign import CenterTable, iter_products, tile_rows
from .blocks import (
    Affine,
    ChunkInfo,
)

# --------------------------------------------------------------------------- nearest rows


@dataclass(frozen=True)
class NearestParams:
    """Broadcast parameters of a nearest-row pass.

    centers : (n_clusters, n_features) float64, in the scaled space the estimator sees (the
        block is read through ``affine``).
    dtype : the compute dtype of the arg-min GEMM.
    """

    centers: np.ndarray
    affine: Affine
    dtype: np.dtype


@dataclass
class NearestRows:
    """For each center, the nearest row seen so far.

    sq_dist : (n_clusters,) float64, squared Euclidean distance in the scaled space (``inf``
        when no row was seen).
    index : (n_clusters,) int64, global row index (-1 when no row was seen).
    """

    sq_dist: np.ndarray
    index: np.ndarray

    @staticmethod
    def empty(n_clusters: int) -> NearestRows:
        return NearestRows(np.full(n_clusters, np.inf), np.full(n_clusters, -1, dtype=np.int64))

    def merge(self, other: NearestRows) -> NearestRows:
        """The better of the two per center: smaller distance, then lower row index."""
        take = (other.sq_dist < self.sq_dist) | (
            (other.sq_dist == self.sq_dist) & (other.index >= 0) & ((self.index < 0) | (other.index < self.index))
        )
        return NearestRows(np.where(take, other.sq_dist, self.sq_dist), np.where(take, other.index, self.index))


def nearest_rows_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: NearestParams
) -> NearestRows:
    """For each center, the row of ``block`` nearest to it. One pass over the block.

    A tile at a time (:mod:`daskcluster.kernels.assign`), the candidate of each center is the
    arg-min over the tile's rows of ``||x||^2 - 2 x.c`` (one GEMM in the compute dtype; the
    first row among equals); the
    candidate's distance is then recomputed exactly, in float64, from the row itself, so that
    candidates of different slices and chunks compare without rounding of the expansion.
    ``sample_weight`` is not used (a row's weight does not move it).
    """
    affine = params.affine
    centers64 = np.asarray(params.centers, dtype=np.float64)
    centers = affine.to_storage_space(centers64).astype(params.dtype)
    k, d = centers.shape
    best = NearestRows.empty(k)
    table = CenterTable.of(centers)
    for start, _stop, _x, x_sq, g in iter_products(block, table.minus2_t, chunk, tile_rows(d, centers.dtype.itemsize)):
        part = g + x_sq.astype(g.dtype)[:, None]
        rows = np.argmin(part, axis=0)
        chosen = affine.apply(np.asarray(block[start + rows], dtype=np.float64))
        diff = chosen - centers64
        sq = np.einsum("ij,ij->i", diff, diff)
        best = best.merge(NearestRows(sq, (chunk.start + start + rows).astype(np.int64)))
    return best


def combine_nearest(parts: list[NearestRows]) -> NearestRows:
    """Merge nearest rows in chunk order (least distance, then lowest row, per center)."""
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p)
    return out


# --------------------------------------------------------------------------- radix selection

_SIGN = np.uint64(1 << 63)


def order_keys(values: np.ndarray) -> np.ndarray:
    """Unsigned 64-bit keys that sort as the float64 ``values`` do (-0.0 counts as 0.0).

    Non-negative values get their sign bit set; negative values have every bit flipped.
    """
    v = np.asarray(values, dtype=np.float64) + 0.0
    u = v.view(np.uint64)
    return np.where(u & _SIGN, ~u, u | _SIGN)


def key_value(key: int) -> float:
    """The float64 whose :func:`order_keys` key is ``key`` (the inverse map)."""
    k = np.uint64(key)
    u = k ^ _SIGN if k & _SIGN else ~k
    return float(np.array([u], dtype=np.uint64).view(np.float64)[0])


@dataclass(frozen=True)
class RadixParams:
    """One step of the per-cluster radix selection.

    prefix : (n_clusters,) uint64, the key bits fixed so far (right-aligned).
    fixed : (n_clusters,) int64, how many leading key bits are fixed (0..64).
    gather : (n_clusters,) bool, clusters whose rows in the key range are gathered this step
        instead of counted by their next ``bits`` bits.
    bits : bits resolved per histogram step.
    """

    prefix: np.ndarray
    fixed: np.ndarray
    gather: np.ndarray
    bits: int

    @property
    def n_clusters(self) -> int:
        return int(self.prefix.shape[0])


@dataclass
class RadixStats:
    """What a radix step found over some rows.

    counts : (n_clusters,) int64, rows of each cluster.
    hist : (n_clusters, 2**bits) int64, rows in the cluster's key range by their next bits
        (zero for gathering clusters).
    gathered_label, gathered_value : (m,) the rows in the key range of gathering clusters.
    min_above : (n_clusters,) float64, least value above the key range (``inf`` if none).
    """

    counts: np.ndarray
    hist: np.ndarray
    gathered_label: np.ndarray
    gathered_value: np.ndarray
    min_above: np.ndarray


def _labels_values(block: np.ndarray, n_clusters: int, chunk: ChunkInfo) -> tuple[np.ndarray, np.ndarray]:
    labels_f = np.asarray(block[:, 0], dtype=np.float64)
    values = np.asarray(block[:, 1], dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise NonFiniteDataError(
            f"The values to rank contain {values[row]:g} in chunk {chunk.index} at row {chunk.start + row}; "
            "give finite distances."
        )
    labels = labels_f.astype(np.int64)
    wrong = (labels != labels_f) | (labels < 0) | (labels >= n_clusters)
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        raise InvalidDataError(
            f"cluster_labels holds {labels_f[row]:g} at row {chunk.start + row}; expected integers in "
            f"[0, {n_clusters}) (one per representative label)."
        )
    return labels, values


def radix_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: RadixParams) -> RadixStats:
    """One radix step over a block of (cluster label, value) rows, shape (n_rows, 2).

    Each row counts in its cluster; a row whose key starts with its cluster's fixed prefix is
    either counted in the histogram of its next ``bits`` key bits, or (gathering clusters)
    returned; gathering clusters also keep the least value whose key is above the prefix range.
    ``sample_weight`` is not used.
    """
    k, b = params.n_clusters, params.bits
    labels, values = _labels_values(block, k, chunk)
    keys = order_keys(values)
    fixed = params.fixed[labels]
    shift = np.where(fixed > 0, 64 - fixed, 0).astype(np.uint64)
    high = keys >> shift
    prefix = params.prefix[labels]
    free = fixed == 0
    inside = free | (high == prefix)
    above = ~free & (high > prefix)
    gather = params.gather[labels]
    counts = np.bincount(labels, minlength=k).astype(np.int64)
    hist = np.zeros((k, 1 << b), dtype=np.int64)
    count_rows = inside & ~gather
    if count_rows.any():
        f = fixed[count_rows]
        width = np.minimum(b, 64 - f)
        nxt = (keys[count_rows] >> (64 - f - width).astype(np.uint64)) & ((np.uint64(1) << width.astype(np.uint64)) - np.uint64(1))
        flat = labels[count_rows] * (1 << b) + nxt.astype(np.int64)
        hist += np.bincount(flat, minlength=k << b).reshape(k, 1 << b)
    take = inside & gather & (fixed < 64)  # with 64 bits fixed the range is one value, known
    min_above = np.full(k, np.inf)
    up = above & gather
    if up.any():
        np.minimum.at(min_above, labels[up], values[up])
    return RadixStats(counts, hist, labels[take], values[take], min_above)


def combine_radix(parts: list[RadixStats]) -> RadixStats:
    """Merge radix steps in chunk order: counts add, gathered rows concatenate, minima take the least."""
    return RadixStats(
        np.sum([p.counts for p in parts], axis=0),
        np.sum([p.hist for p in parts], axis=0),
        np.concatenate([p.gathered_label for p in parts]),
        np.concatenate([p.gathered_value for p in parts]),
        np.min([p.min_above for p in parts], axis=0),
    )


# --------------------------------------------------------------------------- propagation


def lookup_block(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[labels]``, with a clear error for a label outside ``[0, len(table))``."""
    lab = np.asarray(labels)
    if lab.size and (lab.min() < 0 or lab.max() >= len(table)):
        bad = int(lab[(lab < 0) | (lab >= len(table))][0])
        raise InvalidDataError(
            f"cluster_labels holds {bad}; expected integers in [0, {len(table)}) (one per representative label)."
        )
    return np.asarray(table[lab])


def propagate_block(labels: np.ndarray, values: np.ndarray, table: np.ndarray, thresholds: np.ndarray,
                    unlabeled: int) -> np.ndarray:
    """``table[labels]`` where ``values <= thresholds[labels]``, else ``unlabeled``."""
    out = lookup_block(labels, table)
    keep = np.asarray(values, dtype=np.float64) <= thresholds[np.asarray(labels)]
    return np.where(keep, out, np.asarray(unlabeled, dtype=out.dtype))
