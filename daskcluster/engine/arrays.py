"""Dask arrays of rows made without an input array, or from row blocks already computed; the
distinct values and non-zero positions of a 1-D array.

Both are built with public Dask API only (``map_blocks`` and the collection protocol's
``__dask_postpersist__``), so that they work on both of Dask's array backends, the classic
graph one and the query-planning (expression) one, where ``da.Array(graph, ...)`` and
``from_delayed`` are not available.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.core import flatten

from ..kernels.blocks import ChunkInfo
from .schedule import row_block

__all__ = ["generated_rows", "held_rows", "nonzero_index", "rows_at", "unique_values"]


def _run_generator(func: Callable[..., Any], params: tuple[Any, ...], n_columns: int | None,
                   dtype: np.dtype, dense: bool = True, block_info: dict[Any, Any] | None = None) -> Any:
    assert block_info is not None
    where = block_info[None]
    start, stop = where["array-location"][0]
    chunk = ChunkInfo(where["chunk-location"][0], start)
    out = func(stop - start, *params, chunk)
    if dense:
        out = np.asarray(out, dtype=dtype)
    expected = (stop - start,) if n_columns is None else (stop - start, n_columns)
    if out.shape != expected:
        raise ValueError(f"{getattr(func, '__name__', func)!r} made a block of shape {out.shape} for chunk "
                         f"{chunk.index}; expected {expected}.")
    return out


def generated_rows(
    lengths: Sequence[int],
    func: Callable[..., np.ndarray],
    params: Sequence[Any],
    *,
    dtype: np.dtype | type | str,
    n_columns: int | None = None,
    label: str = "rows",
    meta: Any = None,
) -> da.Array:
    """A lazy array whose row block ``i`` is ``func(n_rows_i, *params, ChunkInfo(i, start_i))``.

    Parameters
    ----------
    lengths : sequence of int
        Rows of each block (zero-length blocks are kept).
    func : callable
        A module-level function (it is pickled by reference) returning the block, of shape
        (n_rows,) when ``n_columns`` is None, else (n_rows, n_columns). It reads no Dask array:
        random draws from per-chunk seeds, a block read from a file.
    params : sequence
        Passed to every call; part of the array's name (tokenized), so equal arguments give
        equal keys.
    dtype : numpy dtype
    n_columns : int, optional
    label : str
        Prefix of the graph keys.
    meta : array-like, optional
        An empty block of the type ``func`` returns when it is not a NumPy array (e.g. a
        ``scipy.sparse.csr_matrix``): blocks are then kept as returned (their shape checked);
        by default they are converted to NumPy arrays of ``dtype``.

    Returns
    -------
    dask.array.Array of shape (sum(lengths),) or (sum(lengths), n_columns)
        Costs nothing until computed; then one task per block, each independent.
    """
    lengths = tuple(int(n) for n in lengths)
    dtype = np.dtype(dtype)
    params = tuple(params)
    chunks: tuple[tuple[int, ...], ...] = (lengths,) if n_columns is None else (lengths, (int(n_columns),))
    name = f"{label}-{tokenize(func, params, chunks, dtype)}"
    dense = meta is None
    if dense:
        meta = np.empty((0,) * len(chunks), dtype=dtype)
    return da.map_blocks(_run_generator, func, params, n_columns, dtype, dense, chunks=chunks, dtype=dtype,
                         meta=meta, name=name)


def _never(block_info: dict[Any, Any] | None = None) -> np.ndarray:  # pragma: no cover - never computed
    raise RuntimeError("a held_rows template was computed")


def held_rows(parts: Sequence[Any], lengths: Sequence[int], n_columns: int, dtype: np.dtype, name: str,
              meta: Any = None) -> da.Array:
    """A Dask array of row blocks already computed: NumPy arrays (or blocks of the type of
    ``meta``, e.g. ``scipy.sparse.csr_matrix``), or futures of a distributed Client holding
    them (then the array's chunks stay in cluster memory, as after ``persist``).

    ``parts[i]`` has shape (lengths[i], n_columns); ``name`` must be unique to these parts (on
    Dask's classic backend it names the array's keys). Built by Dask's collection protocol
    (``__dask_postpersist__`` of a template with these chunks), as ``persist`` builds its
    result, so no graph is made by hand.
    """
    chunks = (tuple(int(n) for n in lengths), (int(n_columns),))
    meta = np.empty((0, 0), dtype=dtype) if meta is None else meta
    template = da.map_blocks(_never, chunks=chunks, dtype=dtype, meta=meta, name=name)
    keys = list(flatten(template.__dask_keys__()))  # type: ignore[no-untyped-call]
    if len(keys) != len(parts):
        raise ValueError(f"held_rows: {len(parts)} parts for {len(keys)} blocks")
    rebuild, args = template.__dask_postpersist__()
    return rebuild(dict(zip(keys, parts)), *args)  # type: ignore[no-any-return]


def _per_block(block: np.ndarray, func: Callable[[np.ndarray, int], np.ndarray],
               block_info: dict[Any, Any] | None = None) -> np.ndarray:
    assert block_info is not None
    out = np.empty(1, dtype=object)
    out[0] = func(block, block_info[0]["array-location"][0][0])
    return out


def _gather_per_block(array: da.Array, func: Callable[[np.ndarray, int], np.ndarray], dtype: np.dtype) -> np.ndarray:
    """``func(block, start)`` of every block of the 1-D ``array``, concatenated in order on the
    client: one task per block (what comes back is only what ``func`` keeps)."""
    if array.ndim != 1:
        raise ValueError(f"expected a 1-D array; got shape {array.shape}")
    if array.shape[0] == 0:
        return np.empty(0, dtype=dtype)
    parts = da.map_blocks(_per_block, array, func, dtype=object, chunks=((1,) * array.numblocks[0],),
                          meta=np.empty((0,), dtype=object)).compute()
    return np.concatenate(list(parts)).astype(dtype, copy=False)


def _unique(block: np.ndarray, start: int) -> np.ndarray:
    return np.unique(block)


def _nonzero(block: np.ndarray, start: int) -> np.ndarray:
    return np.flatnonzero(block) + start


def unique_values(array: da.Array) -> np.ndarray:
    """The sorted distinct values of a 1-D Dask array (``numpy.unique`` of it), from the
    distinct values of each block merged on the client (``da.unique`` is not on every Dask
    array backend). Passes over ``array``: 1."""
    return np.unique(_gather_per_block(array, _unique, array.dtype))


def nonzero_index(array: da.Array) -> np.ndarray:
    """The global positions of the non-zero (True) entries of a 1-D Dask array, ascending
    (``numpy.flatnonzero`` of it; ``da.flatnonzero`` and boolean indexing are not on every Dask
    array backend). Passes over ``array``: 1."""
    return _gather_per_block(array, _nonzero, np.dtype(np.int64))



def _rows_of_block(block: Any, rows: np.ndarray) -> Any:
    return block[rows]


def rows_at(array: da.Array, index: np.ndarray) -> da.Array:
    """The rows of a row-chunked Dask array (features in one chunk) at the ascending global
    positions ``index``, lazy and of known chunk sizes (``array[index]``; integer and boolean
    indexing are not on every Dask array backend, and an array of unknown chunk sizes cannot be
    computed on the query-planning one): one block for each block of ``array`` holding selected
    rows, each reading only its block and carrying only its own positions. Passes: none until
    computed; then the blocks holding selected rows are read once.

    Parameters
    ----------
    array : dask.array.Array of shape (n_samples,) or (n_samples, n_features)
    index : ndarray of int of shape (n_selected,)
        Ascending, in [0, n_samples), e.g. from :func:`nonzero_index`.

    Returns
    -------
    dask.array.Array of shape (n_selected,) or (n_selected, n_features)
    """
    index = np.asarray(index, dtype=np.int64)
    if index.size and (np.any(np.diff(index) <= 0) or index[0] < 0 or index[-1] >= array.shape[0]):
        raise ValueError(f"rows_at: the positions must be ascending and in [0, {array.shape[0]})")
    lengths = np.asarray(array.chunks[0], dtype=np.int64)
    bounds = np.cumsum(lengths)
    cuts = np.concatenate(([0], np.searchsorted(index, bounds, side="left")))
    meta = np.empty((0,) * array.ndim, dtype=array.dtype)
    parts = [row_block(array, c).map_blocks(_rows_of_block, index[a:b] - (bounds[c] - lengths[c]),
                                            chunks=((int(b - a),), *array.chunks[1:]), dtype=array.dtype, meta=meta)
             for c, (a, b) in enumerate(pairwise(cuts)) if b > a]
    if not parts:
        return da.zeros((0, *array.shape[1:]), dtype=array.dtype, chunks=((0,), *array.chunks[1:]))
    return da.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
