"""The engine: one pass over row-chunked data, as a map and a fixed-order tree reduction.

    params ──broadcast──▶ kernel(chunk_i, weights_i, ChunkInfo(i, start_i), params)
                                       │ small statistics
                                       ▼
                 combine(groups of ``split_every``, in chunk order) ──▶ result

The parameters are one key of the graph (shipped once to each worker that needs them, not
once per task); every task function is a module-level function and every argument plain
NumPy data, so graphs pickle cleanly on any cluster. The reduction tree has depth
``ceil(log_split_every(n_chunks))`` and always combines the same chunks in the same order,
so a pass gives the same result on the threaded scheduler, on one worker or on many, and
after a worker was lost and its tasks recomputed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from ..blas import blas_for_tasks
from ..data import RowData
from ..kernels.blocks import ChunkInfo

logger = logging.getLogger(__name__)

S = TypeVar("S")

#: Statistics of this many parts are combined by one task.
SPLIT_EVERY = 8


class _Broadcast:
    """Parameters stored once in a graph; an opaque object, so Dask never looks inside it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple[type, tuple[Any]]:
        return (_Broadcast, (self.value,))


def _run_kernel(
    kernel: Callable[..., Any], block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, params: _Broadcast
) -> Any:
    return kernel(block, weights, chunk, params.value)


def _run_combine(combine: Callable[[list[Any]], Any], parts: list[Any]) -> Any:
    return combine(list(parts))


def _run_map(kernel: Callable[..., np.ndarray], block: np.ndarray, params: _Broadcast, chunk: ChunkInfo) -> np.ndarray:
    return kernel(block, *params.value, chunk)


@dataclass
class PassCounter:
    """Counts the passes over the data made inside :func:`count_passes`."""

    passes: int = 0
    rows: int = 0


_counters: list[PassCounter] = []


@contextmanager
def count_passes() -> Iterator[PassCounter]:
    """Count the full passes (:func:`tree_reduce` and :func:`tree_reduce_rows` calls) made inside
    the ``with`` block."""
    counter = PassCounter()
    _counters.append(counter)
    try:
        yield counter
    finally:
        _counters.remove(counter)


def _params_key(name: str) -> tuple[str]:
    return (f"params-{name}",)


def _reduction_tree(dsk: dict[Any, Any], name: str, keys: list[Any], combine: Callable[[list[Any]], Any],
                    split_every: int) -> tuple[Any, int]:
    """Add to ``dsk`` the fixed-order tree combining ``keys`` (in chunk order) ``split_every`` at a
    time; returns the root's key and the tree's depth."""
    level = 0
    while len(keys) > 1:
        level += 1
        keys_next = []
        for j in range(0, len(keys), split_every):
            key = (name, level, j // split_every)
            dsk[key] = (_run_combine, combine, list(keys[j : j + split_every]))
            keys_next.append(key)
        keys = keys_next
    return keys[0], level


def tree_reduce(
    data: RowData,
    kernel: Callable[[np.ndarray, np.ndarray | None, ChunkInfo, Any], S],
    params: Any,
    combine: Callable[[list[S]], S],
    *,
    weights: da.Array | None = None,
    split_every: int = SPLIT_EVERY,
    label: str | None = None,
) -> S:
    """One pass over ``data``: ``kernel`` on every chunk, ``combine`` in a fixed tree.

    Parameters
    ----------
    data : RowData
        ``data.array`` has shape (n_samples, n_features), rows chunked.
    kernel : callable
        ``kernel(block, weights_block_or_None, ChunkInfo, params) -> statistics``; a
        module-level function (it is pickled by reference).
    params : object
        Broadcast to every task through one graph key.
    combine : callable
        ``combine(list_of_statistics) -> statistics``, associative, given parts in chunk order.
    weights : dask.array.Array of shape (n_samples,), optional
        Chunked like ``data.array``'s rows.
    split_every : int, default=8
        Fan-in of the reduction tree.
    label : str, optional
        Name used in the graph keys and the log.

    Returns
    -------
    The combined statistics, on the client. Data passes: 1.
    """
    array = data.array
    label = label or getattr(kernel, "__name__", "pass")
    token = tokenize(label, array.name, None if weights is None else weights.name, params, split_every)
    name = f"{label}-{token}"
    pkey = _params_key(name)
    dsk: dict[Any, Any] = {pkey: _Broadcast(params)}
    keys: list[Any] = []
    for i, start in enumerate(data.starts):
        wkey = None if weights is None else (weights.name, i)
        key = (name, 0, i)
        dsk[key] = (_run_kernel, kernel, (array.name, i, 0), wkey, ChunkInfo(i, start), pkey)
        keys.append(key)
    root, level = _reduction_tree(dsk, name, keys, combine, split_every)
    deps = [array] if weights is None else [array, weights]
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
    t0 = time.perf_counter()
    with blas_for_tasks(data.n_chunks):
        (result,) = dask.compute(Delayed(root, graph, layer=name))
    for c in _counters:
        c.passes += 1
        c.rows += data.n_samples
    logger.debug("%s: %d chunks, depth %d, %.3fs", label, data.n_chunks, level, time.perf_counter() - t0)
    return result  # type: ignore[no-any-return]


def _run_rows_kernel(
    kernel: Callable[..., tuple[np.ndarray, Any]],
    block: np.ndarray,
    aligned: list[np.ndarray],
    chunk: ChunkInfo,
    params: _Broadcast,
    n_columns: int,
    dtype: np.dtype,
) -> tuple[np.ndarray, Any]:
    rows, stats = kernel(block, tuple(aligned), chunk, params.value)
    rows = np.asarray(rows, dtype=dtype)
    if rows.shape != (block.shape[0], n_columns):
        raise ValueError(
            f"The kernel {getattr(kernel, '__name__', kernel)!r} returned rows of shape {rows.shape} for chunk "
            f"{chunk.index}; expected ({block.shape[0]}, {n_columns})."
        )
    return rows, stats


def _part(pair: tuple[Any, Any], which: int) -> Any:
    return pair[which]


def _aligned_like(data: RowData, a: da.Array) -> da.Array:
    """``a`` chunked like ``data``'s rows, with its other axis in one chunk."""
    if a.shape[0] != data.n_samples:
        raise ValueError(f"An aligned array has {a.shape[0]} rows; the data have {data.n_samples}.")
    target = (data.array.chunks[0],) + tuple((n,) for n in a.shape[1:])
    return a if a.chunks == target else a.rechunk(target)


def tree_reduce_rows(
    data: RowData,
    kernel: Callable[[np.ndarray, tuple[np.ndarray, ...], ChunkInfo, Any], tuple[np.ndarray, S]],
    params: Any,
    combine: Callable[[list[S]], S],
    *,
    aligned: Sequence[da.Array] = (),
    n_columns: int,
    dtype: np.dtype | type,
    label: str | None = None,
) -> tuple[da.Array, S]:
    """One pass over ``data`` that makes a new row-aligned array and small statistics.

    Every chunk runs ``kernel(block, aligned_blocks, ChunkInfo, params)`` and returns its new
    rows and its statistics; the statistics are combined as in :func:`tree_reduce` (fixed tree
    of fan-in :data:`SPLIT_EVERY`, chunk order) and the new rows are kept where they were made:
    persisted in cluster memory under a distributed Client, in this process's memory on the
    local schedulers. Used by iterative factorizations whose per-row factor (e.g. NMF's ``W``)
    lives beside the data and is updated by each pass.

    Parameters
    ----------
    data : RowData
        ``data.array`` has shape (n_samples, n_features), rows chunked.
    kernel : callable
        ``kernel(block, aligned_blocks, ChunkInfo, params) -> (new_rows, statistics)``, a
        module-level function. ``block`` is the chunk of ``data.array`` in its storage dtype;
        ``aligned_blocks`` is a tuple with the same rows of every array of ``aligned``;
        ``new_rows`` has shape (block_rows, n_columns).
    params : object
        Broadcast to every task through one graph key.
    combine : callable
        ``combine(list_of_statistics) -> statistics``, associative, given parts in chunk order.
    aligned : sequence of dask.array.Array, default=()
        Arrays of shape (n_samples,) or (n_samples, m) read beside the data (e.g. the previous
        ``W``); rechunked like ``data``'s rows if they are not already.
    n_columns : int
        Width of the new rows. ``0`` when the kernel stores its rows itself (e.g. writes them
        to a Zarr store) and only the statistics matter.
    dtype : numpy dtype
        Dtype of the new rows.
    label : str, optional
        Name used in the graph keys and the log.

    Returns
    -------
    rows : dask.array.Array of shape (n_samples, n_columns)
        Chunked like ``data``'s rows, already computed: its chunks are held in (cluster)
        memory until the array is dropped.
    statistics : object
        The combined statistics, on the client.

    Data passes: 1 (the kernel runs once per chunk; rows and statistics come from the same
    tasks).
    """
    array = data.array
    dtype = np.dtype(dtype)
    aligned = [_aligned_like(data, a) for a in aligned]
    label = label or getattr(kernel, "__name__", "rows")
    token = tokenize(label, array.name, [a.name for a in aligned], params, n_columns, str(dtype))
    name = f"{label}-{token}"
    rows_name = f"{label}-rows-{token}"
    pkey = _params_key(name)
    dsk: dict[Any, Any] = {pkey: _Broadcast(params)}
    rows_dsk: dict[Any, Any] = {}
    keys: list[Any] = []
    for i, start in enumerate(data.starts):
        blocks = [(a.name, i) if a.ndim == 1 else (a.name, i, 0) for a in aligned]
        part = (name, "part", i)
        dsk[part] = (_run_rows_kernel, kernel, (array.name, i, 0), blocks, ChunkInfo(i, start), pkey, n_columns, dtype)
        dsk[(name, 0, i)] = (_part, part, 1)
        rows_dsk[(rows_name, i, 0)] = (_part, part, 0)
        keys.append((name, 0, i))
    root, level = _reduction_tree(dsk, name, keys, combine, SPLIT_EVERY)
    stats_graph = HighLevelGraph.from_collections(name, dsk, dependencies=[array, *aligned])
    layers = {**stats_graph.layers, rows_name: rows_dsk}
    dependencies = {**stats_graph.dependencies, rows_name: {name}}
    graph = HighLevelGraph(layers, dependencies)
    rows = da.Array(graph, rows_name, (array.chunks[0], (n_columns,)), dtype=dtype)
    stats = Delayed(root, graph, layer=name)
    t0 = time.perf_counter()
    with blas_for_tasks(data.n_chunks):
        # no graph optimisation: fusing the rows getter into the kernel task would run the kernel twice
        rows, stats = dask.persist(rows, stats, optimize_graph=False)
        # persisting on a Client returns at once: wait for the rows, then fetch the statistics
        _wait_persisted(rows)
        (result,) = dask.compute(stats)
    for c in _counters:
        c.passes += 1
        c.rows += data.n_samples
    logger.debug("%s: %d chunks, depth %d, rows kept, %.3fs", label, data.n_chunks, level, time.perf_counter() - t0)
    return rows, result  # type: ignore[return-value]


def _wait_persisted(array: da.Array) -> None:
    """Block until a persisted array's chunks are in cluster memory (no-op without a Client)."""
    try:
        from distributed import futures_of, wait
    except ImportError:  # pragma: no cover - distributed is a dependency
        return
    futures = futures_of(array)
    if futures:
        wait(futures)


def map_rows(
    data: RowData,
    kernel: Callable[..., np.ndarray],
    params: Sequence[Any],
    *,
    dtype: np.dtype | type,
    n_columns: int | None = None,
    label: str | None = None,
) -> da.Array:
    """A lazy row-wise map: ``kernel(block, *params, ChunkInfo)`` for every chunk.

    Returns a Dask array of shape (n_samples,) when ``n_columns`` is None, else
    (n_samples, n_columns), chunked like ``data``'s rows. Costs nothing until computed;
    then 1 pass.
    """
    array = data.array
    label = label or getattr(kernel, "__name__", "map")
    name = f"{label}-{tokenize(label, array.name, params, n_columns)}"
    pkey = _params_key(name)
    dsk: dict[Any, Any] = {pkey: _Broadcast(tuple(params))}
    for i, start in enumerate(data.starts):
        key = (name, i) if n_columns is None else (name, i, 0)
        dsk[key] = (_run_map, kernel, (array.name, i, 0), pkey, ChunkInfo(i, start))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[array])
    chunks: tuple[tuple[int, ...], ...] = (array.chunks[0],) if n_columns is None else (array.chunks[0], (n_columns,))
    return da.Array(graph, name, chunks, dtype=dtype)


def take_rows(data: RowData, index: np.ndarray) -> np.ndarray:
    """The rows at the (global) ``index`` positions, in compute dtype with scaling applied.

    Reads only the chunks that hold those rows, one small task per chunk; shape
    (len(index), n_features), in the order given.
    """
    index = np.asarray(index, dtype=np.int64)
    bounds = np.cumsum(data.array.chunks[0])
    which = np.searchsorted(bounds, index, side="right")
    starts = np.asarray(data.starts)
    parts = []
    order = []
    for c in np.unique(which):
        sel = np.flatnonzero(which == c)
        block = data.array.blocks[int(c)]
        parts.append(block[index[sel] - starts[c]])
        order.append(sel)
    if not parts:
        return np.zeros((0, data.n_features), dtype=data.dtype)
    rows = np.concatenate(dask.compute(*parts))
    out = np.empty_like(rows)
    out[np.concatenate(order)] = rows
    return data.to_compute(out)
