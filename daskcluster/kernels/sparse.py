"""Sparse blocks: compressed sparse rows (CSR) worked through tile by tile.

A block of a sparse source is a ``scipy.sparse.csr_matrix`` in its storage dtype. The k-means
kernels see it through the same tile iterator as a dense block
(:func:`daskcluster.kernels.assign.iter_products`): each tile of rows is a :class:`CsrTile`
whose values are cast to the compute dtype (the only read of the values), and

* its rows' squared norms come from the stored values alone (float64, :func:`csr_sq_norms`),
* its product with ``-2 Cᵀ`` is one sparse × dense product (:func:`csr_times_dense`):
  ``O(nnz · k)`` work, accumulated in float64 per row,
* its rows are added to their clusters' float64 sums from the CSR structure
  (:func:`csr_add_rows`), ``O(nnz)``.

The compiled loops are Numba functions (``nogil``, cached on disk), so Dask's threads run them
in parallel. Nothing here makes a block dense: only the few rows a kernel hands back to the
client (far points, seeding candidates and draws) are gathered densely
(:func:`dense_rows`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from scipy import sparse

from ..errors import NonFiniteDataError
from .blocks import Affine, ChunkInfo

#: Bytes of a tile's working set (its values, column indices and product with the centers):
#: tiles of about this size stay in L2, as the dense tiles of :mod:`daskcluster.kernels.assign`.
SPARSE_TILE_BYTES = 2**20


def is_sparse(block: Any) -> bool:
    """Whether ``block`` is a SciPy sparse matrix or array."""
    return bool(sparse.issparse(block))


def as_csr(block: Any) -> sparse.csr_matrix:
    """``block`` as a ``csr_matrix`` (no copy when it already is one)."""
    return block if isinstance(block, sparse.csr_matrix) else sparse.csr_matrix(block)


def as_block(block: Any) -> Any:
    """A computed chunk as a kernel takes it: a sparse chunk as CSR, anything else as NumPy."""
    return as_csr(block) if is_sparse(block) else np.asarray(block)


def dense_rows(block: Any, index: Any) -> np.ndarray:
    """Rows ``index`` (positions or a slice) of a dense or sparse block, as a dense array in
    the block's dtype: shape (n_picked, n_features)."""
    if is_sparse(block):
        return np.asarray(as_csr(block)[index].toarray())
    return np.asarray(block[index])


@dataclass(frozen=True)
class CsrTile:
    """Rows of a CSR block: values in the compute dtype, column indices, row pointers from 0."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    n_features: int

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.indptr) - 1, self.n_features)

    def toarray(self) -> np.ndarray:
        return np.asarray(sparse.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape).toarray())


# --------------------------------------------------------------------------- compiled loops


@numba.njit(nogil=True, cache=True)
def csr_sq_norms(data: np.ndarray, indptr: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[i] = ‖x_i‖²`` from the stored values of row ``i``, accumulated in float64."""
    for i in range(len(indptr) - 1):
        s = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[p])
            s += v * v
        out[i] = s


@numba.njit(nogil=True, cache=True)
def csr_times_dense(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, b: np.ndarray,
                    out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out = x · b`` for CSR rows ``x`` (rows, d) and a dense ``b`` (d, k): each row's
    products accumulated in float64, in the order of its stored values, then stored in
    ``out``'s dtype."""
    k = b.shape[1]
    acc = np.zeros(k)
    for i in range(len(indptr) - 1):
        acc[:] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[p])
            row = indices[p]
            for j in range(k):
                acc[j] += v * b[row, j]
        for j in range(k):
            out[i, j] = acc[j]


@numba.njit(nogil=True, cache=True)
def csr_add_rows(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, labels: np.ndarray, w: np.ndarray,
                 weighted: bool, sums: np.ndarray, wic: np.ndarray) -> None:  # pragma: no cover - compiled
    """``sums[labels[i]] += w[i] x_i`` and ``wic[labels[i]] += w[i]`` in float64 from the stored
    values (``w`` = 1 when not ``weighted``), in row order."""
    for i in range(len(indptr) - 1):
        lab = labels[i]
        wi = w[i] if weighted else 1.0
        wic[lab] += wi
        for p in range(indptr[i], indptr[i + 1]):
            sums[lab, indices[p]] += wi * np.float64(data[p])


@numba.njit(nogil=True, cache=True)
def _column_moments(data: np.ndarray, indices: np.ndarray, n_rows: int, mean: np.ndarray, m2: np.ndarray,
                    stored: np.ndarray) -> None:  # pragma: no cover - compiled
    """Per column: the mean over ``n_rows`` rows and the centred sum of squares, the implicit
    zeros counted as ``(n_rows - stored) · mean²`` (two sweeps of the values, float64)."""
    for p in range(len(data)):
        mean[indices[p]] += np.float64(data[p])
        stored[indices[p]] += 1
    for f in range(len(mean)):
        mean[f] /= n_rows
    for p in range(len(data)):
        t = np.float64(data[p]) - mean[indices[p]]
        m2[indices[p]] += t * t
    for f in range(len(mean)):
        m2[f] += (n_rows - stored[f]) * mean[f] * mean[f]


# --------------------------------------------------------------------------- tiles


def tile_rows(block: Any, n_columns: int, itemsize: int) -> int:
    """Rows per tile of a CSR block: :data:`SPARSE_TILE_BYTES` of values, indices and the
    tile's ``n_columns`` products per row, a multiple of 32 in [64, 16384]."""
    csr = as_csr(block)
    per_row = (csr.nnz / max(1, csr.shape[0])) * (itemsize + 4) + n_columns * itemsize
    rows = int(SPARSE_TILE_BYTES // max(1.0, per_row))
    return int(min(16384, max(64, rows - rows % 32)))


def iter_tiles(block: Any, dtype: np.dtype, rows: int) -> Iterator[tuple[int, int, CsrTile]]:
    """Yield ``(start, stop, tile)`` for each tile of ``rows`` rows of a CSR block, the values
    cast to ``dtype`` (a new array per tile, or a view when the block already has ``dtype``;
    indices are views)."""
    csr = as_csr(block)
    n, d = csr.shape
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        p0, p1 = int(csr.indptr[start]), int(csr.indptr[stop])
        indptr = csr.indptr[start : stop + 1] - csr.indptr[start]
        yield start, stop, CsrTile(csr.data[p0:p1].astype(dtype, copy=False), csr.indices[p0:p1], indptr, d)


def iter_products(block: Any, minus2_t: np.ndarray, chunk: ChunkInfo,
                  rows: int) -> Iterator[tuple[int, int, CsrTile, np.ndarray, np.ndarray]]:
    """The sparse counterpart of :func:`daskcluster.kernels.assign.iter_products`: per tile,
    ``(start, stop, x, x_sq, g)`` with ``x`` a :class:`CsrTile`, ``x_sq`` its rows' float64
    squared norms and ``g = x · minus2_t`` (tile, k) in ``minus2_t``'s dtype (a reused buffer)."""
    n = block.shape[0]
    if n == 0:
        return
    rows = max(1, min(rows, n))
    gbuf = np.empty((rows, minus2_t.shape[1]), dtype=minus2_t.dtype)
    sq_buf = np.empty(rows)
    for start, stop, x in iter_tiles(block, minus2_t.dtype, rows):
        g, x_sq = gbuf[: stop - start], sq_buf[: stop - start]
        csr_sq_norms(x.data, x.indptr, x_sq)
        if not np.isfinite(x_sq).all():
            check_finite_tile(x, x_sq, chunk, start)
        csr_times_dense(x.data, x.indices, x.indptr, minus2_t, g)
        yield start, stop, x, x_sq, g


def check_finite_tile(x: CsrTile, x_sq: np.ndarray, chunk: ChunkInfo, start: int) -> None:
    """Raise if a stored value of the tile is NaN or infinity, naming the chunk, the global row
    and the feature (as :func:`daskcluster.kernels.blocks.check_finite_rows` for dense rows)."""
    if np.isfinite(x_sq).all():
        return
    bad = np.flatnonzero(~np.isfinite(x.data))
    if not len(bad):
        from .blocks import check_finite_rows

        row = int(np.flatnonzero(~np.isfinite(x_sq))[0])
        check_finite_rows(np.zeros((1, 1), dtype=x.data.dtype), x_sq[row : row + 1], chunk, start + row)
        return
    p = int(bad[0])
    row = int(np.searchsorted(x.indptr, p, side="right") - 1)
    raise NonFiniteDataError(
        f"X contains a non-finite value ({x.data[p]!r}) in chunk {chunk.index} at row "
        f"{chunk.start + start + row}, feature {int(x.indices[p])}. Remove or impute NaN and "
        "infinity before fitting."
    )


def add_rows(x: CsrTile, labels: np.ndarray, w: np.ndarray, weighted: bool, sums: np.ndarray,
             wic: np.ndarray) -> None:
    """Add the tile's rows to their clusters' float64 sums (see :func:`csr_add_rows`)."""
    csr_add_rows(x.data, x.indices, x.indptr, labels, w, weighted, sums, wic)


def sq_norms(x: Any) -> np.ndarray:
    """Squared norms (float64) of the rows of a CSR block or tile: shape (n_rows,)."""
    tile = x if isinstance(x, CsrTile) else as_csr(x)
    out = np.empty(tile.shape[0])
    csr_sq_norms(tile.data, tile.indptr, out)
    return out


def cluster_sums(x: Any, labels: np.ndarray, w: np.ndarray | None, n_clusters: int) -> np.ndarray:
    """Per-cluster (weighted) float64 sums of the rows of a CSR block: shape (n_clusters, d)."""
    csr = as_csr(x)
    sums = np.zeros((n_clusters, csr.shape[1]))
    weights, weighted = (np.zeros(0), False) if w is None else (np.ascontiguousarray(w, dtype=np.float64), True)
    csr_add_rows(csr.data, csr.indices, csr.indptr, np.asarray(labels, dtype=np.int64), weights, weighted, sums,
                 np.zeros(n_clusters))
    return sums


def nearest_center(x: Any, x_sq: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each CSR row's nearest center (int64) and squared distance to it (float64, clipped at 0):
    one sparse x dense product and the compiled arg-min of
    :func:`daskcluster.kernels.assign.nearest_in_product`."""
    from .assign import CenterTable, nearest_in_product

    csr = as_csr(x)
    table = CenterTable.of(centers)
    g = np.empty((csr.shape[0], table.n_centers), dtype=table.dtype)
    csr_times_dense(csr.data, csr.indices, csr.indptr, table.minus2_t, g)
    labels = np.empty(csr.shape[0], dtype=np.int64)
    min_sq = np.empty(csr.shape[0])
    nearest_in_product(g, table.sq_norms, np.asarray(x_sq, dtype=np.float64), labels, min_sq)
    return labels, min_sq


def block_moments(block: Any, affine: Affine) -> tuple[int, np.ndarray, np.ndarray]:
    """Per-feature count, mean and centred sum of squares of a CSR block's rows (implicit zeros
    included), mapped through ``affine``: what
    :func:`daskcluster.kernels.kmeans.block_moments` gives for a dense block."""
    csr = as_csr(block)
    n, d = csr.shape
    mean, m2 = np.zeros(d), np.zeros(d)
    if n:
        _column_moments(csr.data, csr.indices, n, mean, m2, np.zeros(d, dtype=np.int64))
    if affine.is_identity:
        return n, mean, m2
    return n, affine.scale * mean + affine.offset, affine.sq_scale * m2
