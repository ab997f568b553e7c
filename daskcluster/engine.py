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

from .blas import blas_for_tasks
from .data import RowData
from .kernels.blocks import ChunkInfo

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
    """Count the full passes (:func:`tree_reduce` calls) made inside the ``with`` block."""
    counter = PassCounter()
    _counters.append(counter)
    try:
        yield counter
    finally:
        _counters.remove(counter)


def _params_key(name: str) -> tuple[str]:
    return (f"params-{name}",)


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
    level = 0
    while len(keys) > 1:
        level += 1
        keys_next = []
        for j in range(0, len(keys), split_every):
            key = (name, level, j // split_every)
            dsk[key] = (_run_combine, combine, list(keys[j : j + split_every]))
            keys_next.append(key)
        keys = keys_next
    deps = [array] if weights is None else [array, weights]
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
    t0 = time.perf_counter()
    with blas_for_tasks(data.n_chunks):
        (result,) = dask.compute(Delayed(keys[0], graph, layer=name))
    for c in _counters:
        c.passes += 1
        c.rows += data.n_samples
    logger.debug("%s: %d chunks, depth %d, %.3fs", label, data.n_chunks, level, time.perf_counter() - t0)
    return result  # type: ignore[no-any-return]


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
