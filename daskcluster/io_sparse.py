"""Sparse sources: SciPy sparse matrices and stores of CSR row blocks, as row-chunked Dask arrays.

A sparse source becomes a Dask array of shape ``(n_samples, n_features)`` whose chunks are
``scipy.sparse.csr_matrix`` row blocks (one chunk along the features), in the storage dtype:

* a SciPy sparse matrix or array in memory (CSR, CSC, COO, ...) is converted to CSR once
  (integers and booleans to float64, as scikit-learn does) and cut into row blocks sized by
  their *stored* bytes (values, column indices, row pointers) with the rule of
  :func:`daskcluster.io.chunk_rows`;
* a Dask array with sparse chunks keeps its row chunks; its chunks are made CSR;
* a **sparse store**, written by :func:`write_sparse_zarr`: a Zarr v3 group holding, for each
  row block ``i``, three 1-D arrays ``data_i``, ``indices_i`` and ``indptr_i`` (the block's
  CSR arrays, ``indptr`` starting at 0), and a manifest in the group's attributes (key
  ``"daskcluster"``, format ``"daskcluster-sparse-csr"``: shape, dtype, rows and stored values
  of each block, SHA-256 of each block). Each task of a pass reads one block's three arrays. The
  store is written under a hidden temporary name and moved into place only when complete, like
  :func:`daskcluster.io.write_zarr`'s stores; :func:`daskcluster.io.open_array` opens it by its
  path or URL.

Opening costs no pass over the data; writing costs one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from itertools import pairwise
from typing import Any

import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize
from scipy import sparse

from .errors import DataTypeError, InvalidDataError, StoreIntegrityError
from .io import (
    DEFAULT_CHUNK_BYTES,
    MANIFEST_KEY,
    MinChunks,
    chunk_rows,
    resolve_min_chunks,
    writable_target,
)
from .kernels.blocks import ChunkInfo

__all__ = ["SPARSE_FORMAT", "is_sparse_array", "open_sparse", "open_sparse_store", "write_sparse_zarr"]

logger = logging.getLogger(__name__)

#: The ``format`` of a sparse store's manifest.
SPARSE_FORMAT = "daskcluster-sparse-csr"


def is_sparse_array(x: Any) -> bool:
    """Whether ``x`` is a Dask array whose chunks are SciPy sparse matrices."""
    return isinstance(x, da.Array) and bool(sparse.issparse(getattr(x, "_meta", None)))


def _csr(x: Any) -> sparse.csr_matrix:
    csr = x if isinstance(x, sparse.csr_matrix) else sparse.csr_matrix(x)
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    return csr


def _checked_dtype(dtype: np.dtype, label: str) -> np.dtype:
    """The storage dtype of a sparse source: floats kept, integers and booleans as float64."""
    if dtype.kind == "f":
        return dtype
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    raise DataTypeError(f"{label} has dtype {dtype}; sparse input must hold bool, int, uint or float values.")


def _check_shape(shape: tuple[int, ...], label: str) -> None:
    if len(shape) != 2:
        raise InvalidDataError(f"Expected 2D array, got {label} with shape {shape}.")


def stored_nbytes(x: sparse.csr_matrix) -> int:
    """Bytes a CSR matrix holds: values, column indices and row pointers."""
    return int(x.data.nbytes + x.indices.nbytes + x.indptr.nbytes)


def _row_chunks(n_samples: int, stored: int, chunk_bytes: int, min_chunks: int) -> tuple[int, ...]:
    """Row chunks of a sparse matrix of ``stored`` bytes: :func:`~daskcluster.io.chunk_rows`
    with the mean stored bytes of a row as its size."""
    row_bytes = max(1, math.ceil(stored / max(n_samples, 1)))
    rows = chunk_rows(n_samples, 1, row_bytes, chunk_bytes, min_chunks=min_chunks)
    if n_samples == 0:
        return (0,)
    return tuple(min(rows, n_samples - s) for s in range(0, n_samples, rows))


def _to_csr_block(block: Any, dtype: np.dtype) -> sparse.csr_matrix:
    out = _csr(block)
    return out if out.dtype == dtype else out.astype(dtype)


def csr_input(source: Any) -> sparse.csr_matrix:
    """An in-memory sparse matrix or array as the CSR matrix :func:`open_sparse` chunks: canonical
    (duplicates summed), floats kept, integers and booleans as float64; no copy when it already
    is one."""
    _check_shape(source.shape, "X")
    return _to_csr_block(source, _checked_dtype(np.dtype(source.dtype), "X"))


def open_sparse(source: Any, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, min_chunks: MinChunks = None) -> da.Array:
    """A SciPy sparse matrix or array, or a Dask array with sparse chunks, as a row-chunked Dask
    array of CSR blocks. Data passes: 0 (an in-memory matrix is converted to CSR once).

    Parameters
    ----------
    source : scipy.sparse matrix or array, or dask.array.Array with sparse chunks
        Of shape (n_samples, n_features).
    chunk_bytes, min_chunks
        As in :func:`daskcluster.io.open_array`, applied to the stored bytes; a Dask array
        keeps its row chunks.

    Returns
    -------
    dask.array.Array of shape (n_samples, n_features), chunks ``scipy.sparse.csr_matrix``.
    """
    if isinstance(source, da.Array):
        _check_shape(source.shape, "X")
        if any(math.isnan(s) for s in source.shape):
            raise InvalidDataError(
                f"X has unknown chunk sizes (shape {source.shape}); call X.compute_chunk_sizes() first."
            )
        dtype = _checked_dtype(np.dtype(source.dtype), "X")
        x = source.rechunk({1: -1}) if source.numblocks[1] > 1 else source
        meta = sparse.csr_matrix((0, 0), dtype=dtype)
        return x.map_blocks(_to_csr_block, dtype, dtype=dtype, meta=meta)
    csr = csr_input(source)
    dtype = csr.dtype
    chunks = _row_chunks(csr.shape[0], stored_nbytes(csr), chunk_bytes, resolve_min_chunks(min_chunks))
    logger.debug("sparse X %s (%d stored values) in %d row chunks", csr.shape, csr.nnz, len(chunks))
    return _from_blocks(csr, chunks)


def _from_blocks(csr: sparse.csr_matrix, chunks: tuple[int, ...]) -> da.Array:
    """A CSR matrix cut once into row blocks, each a key of the graph: a pass reads a block as
    it is, where slicing the matrix in every task would copy its rows on every pass."""
    # imported on use: the engine reads its data through this layer
    from .engine.arrays import held_rows

    starts = np.concatenate(([0], np.cumsum(chunks)))
    parts = [csr[a:b] for a, b in pairwise(starts)]
    return held_rows(parts, chunks, csr.shape[1], csr.dtype, f"csr-{tokenize(csr, chunks)}",
                     meta=sparse.csr_matrix((0, 0), dtype=csr.dtype))


# --------------------------------------------------------------------------- the store


def _digest(block: sparse.csr_matrix) -> str:
    h = hashlib.sha256()
    for a in (block.data, block.indices, block.indptr):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _write_block(block: Any, store: str, storage_options: dict[str, Any] | None, dtype: np.dtype,
                 block_info: dict[Any, Any] | None = None) -> np.ndarray:
    """Write row block ``i`` (from ``block_info``) as three arrays of the group; return, as a
    one-element object array, its rows, stored values and digest."""
    assert block_info is not None
    index = block_info[0]["chunk-location"][0]
    csr = _to_csr_block(block, dtype)
    group = zarr.open_group(store, mode="r+", storage_options=storage_options)
    for name, values in (("data", csr.data), ("indices", csr.indices.astype(np.int32)),
                         ("indptr", csr.indptr.astype(np.int64))):
        a = group.create_array(f"{name}_{index}", shape=values.shape, dtype=values.dtype,
                               chunks=(max(1, len(values)),))
        if len(values):
            a[:] = values
    out = np.empty(1, dtype=object)
    out[0] = (csr.shape[0], int(csr.nnz), _digest(csr))
    return out


def write_sparse_zarr(
    source: Any,
    path: str | os.PathLike[str],
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    min_chunks: MinChunks = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Write a sparse source as a store of CSR row blocks (see the module's notes), atomically.

    Data passes: 1 (each block read once and written once, one task per block).

    Parameters
    ----------
    source : scipy.sparse matrix or array, or dask.array.Array with sparse chunks
    path : str or os.PathLike
        A local directory path or an fsspec URL.
    chunk_bytes, min_chunks
        Row blocks as :func:`open_sparse` makes them (a Dask array keeps its row chunks).
    overwrite : bool, default=False
        Replace an existing store at ``path`` once the new one is complete.
    storage_options : dict, optional
        fsspec options for ``path``.

    Returns
    -------
    str
        ``path``; open it with :func:`daskcluster.io.open_array`.

    Examples
    --------
    >>> import os, tempfile
    >>> from scipy import sparse
    >>> from daskcluster.io import open_array
    >>> path = write_sparse_zarr(sparse.random(100, 20, density=0.1, format="csr", random_state=0),
    ...                          os.path.join(tempfile.mkdtemp(), "x.zarr"))
    >>> X = open_array(path)
    >>> X.shape, type(X.blocks[0].compute()).__name__
    ((100, 20), 'csr_matrix')
    """
    X = open_sparse(source, chunk_bytes=chunk_bytes, min_chunks=min_chunks)
    target, options = writable_target(path, storage_options, overwrite, "write_sparse_zarr")
    target.prepare()
    try:
        zarr.open_group(target.store, mode="w-", storage_options=options, zarr_format=3)
        written = da.map_blocks(_write_block, X, target.store, options, X.dtype, dtype=object, drop_axis=1,
                                chunks=((1,) * X.numblocks[0],), meta=np.empty((0,), dtype=object)).compute()
        group = zarr.open_group(target.store, mode="r+", storage_options=options)
        group.attrs[MANIFEST_KEY] = {
            "format": SPARSE_FORMAT,
            "shape": [int(s) for s in X.shape],
            "dtype": str(X.dtype),
            "rows": [w[0] for w in written],
            "nnz": [w[1] for w in written],
            "sha256": [w[2] for w in written],
        }
        target.commit(overwrite)
    except BaseException:
        target.discard()
        raise
    logger.info("Wrote the sparse store '%s' (%d row blocks)", target.final, X.numblocks[0])
    return str(target.final)


def sparse_manifest(group: Any) -> dict[str, Any] | None:
    """The manifest of a sparse store's group, or None if the group is not one."""
    doc = group.attrs.get(MANIFEST_KEY) if hasattr(group, "attrs") else None
    return doc if isinstance(doc, dict) and doc.get("format") == SPARSE_FORMAT else None


def _read_block(n_rows: int, store: str, storage_options: dict[str, Any] | None, nnz: tuple[int, ...],
                n_features: int, dtype: str, chunk: ChunkInfo) -> sparse.csr_matrix:
    """Row block ``chunk.index`` of a sparse store, of ``n_rows`` rows and ``nnz[chunk.index]``
    stored values, checked against the manifest."""
    index, nnz_i = chunk.index, nnz[chunk.index]
    group = zarr.open_group(store, mode="r", storage_options=storage_options)
    try:
        data, indices, indptr = (group[f"{name}_{index}"][:] for name in ("data", "indices", "indptr"))
    except KeyError as exc:
        raise StoreIntegrityError(f"The sparse store '{store}' lacks row block {index} ({exc}); rewrite it.") from exc
    if len(data) != nnz_i or len(indices) != nnz_i or len(indptr) != n_rows + 1 or (n_rows and indptr[-1] != nnz_i):
        raise StoreIntegrityError(
            f"Row block {index} of the sparse store '{store}' does not match its manifest "
            f"({n_rows} rows, {nnz_i} values; found {len(indptr) - 1} rows, {len(data)} values); rewrite it."
        )
    return sparse.csr_matrix((data.astype(dtype, copy=False), indices, indptr), shape=(n_rows, n_features))


def open_sparse_store(store: str, doc: dict[str, Any], storage_options: dict[str, Any] | None = None) -> da.Array:
    """The sparse store at ``store`` (its manifest ``doc``) as a Dask array of CSR row blocks,
    one task per block. Data passes: 0."""
    n_samples, n_features = (int(s) for s in doc["shape"])
    rows, nnz = [int(r) for r in doc["rows"]], tuple(int(v) for v in doc["nnz"])
    if sum(rows) != n_samples or len(rows) != len(nnz):
        raise StoreIntegrityError(f"The manifest of the sparse store '{store}' is inconsistent; rewrite the store.")
    dtype = np.dtype(doc["dtype"])
    # imported on use: the engine reads its data through this layer
    from .engine.arrays import generated_rows

    return generated_rows(rows, _read_block, (store, storage_options, nnz, n_features, str(dtype)), dtype=dtype,
                          n_columns=n_features, label="sparse-store", meta=sparse.csr_matrix((0, 0), dtype=dtype))
