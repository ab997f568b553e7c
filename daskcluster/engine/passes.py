"""The engine: one pass over row-chunked data, as a map and a fixed-order tree reduction.

    params ──broadcast──▶ kernel(chunk_i, weights_i, ChunkInfo(i, start_i), params)
                                       │ small statistics
                                       ▼
                 combine(groups of ``split_every``, in chunk order) ──▶ result

Every task function is a module-level function and every argument plain NumPy data (or an
opaque :class:`_Broadcast`), so graphs pickle cleanly on any cluster. The reduction tree
(:mod:`.tree`) has depth ``ceil(log_split_every(n_chunks))`` and always combines the same
chunks in the same order, so a pass gives the same result on the synchronous and threaded
schedulers, on one worker or on many, and after a worker was lost and its tasks recomputed;
only where each node is combined changes:

* the root is combined on the client: from at most ``split_every`` parts, or from every node the
  workers' tasks return when those are few and small (:func:`client_combines_all`: a round trip
  of combine tasks between the workers costs more than receiving them);
* under a distributed Client, when the data are persisted (the usual case of a fit), one task
  per worker runs the kernel over the chunks that worker holds and combines the subtrees it
  holds entirely, so a pass costs one task per worker instead of one per chunk plus a tree;
* under a distributed Client, when the data are streamed from their source, one task per
  worker thread over a run of consecutive chunks (their reads included), the same run on the
  same worker thread pass after pass: the task reads its next chunk in the background while it
  computes this one (:mod:`.readahead`), combines the subtrees its run covers as soon as they
  are complete, and kernels that keep state beside their chunk find it again
  (:mod:`.rowstate`); the whole pass is one graph, submitted at once;
* otherwise (local schedulers, data partly in cluster memory) one task per chunk and combine
  tasks below the root; the parameters are then one key of the graph, shipped once to each
  worker.

Nothing is kept on the workers between passes (but state a kernel asks to keep, see
:mod:`.rowstate`): a pass's tasks depend only on the data's chunks, which Dask recomputes if a
worker is lost (a streamed run lost with its worker is run again from its first chunk on
another); chunks read ahead and not used are dropped when their run ends, and a pass that
fails or is interrupted stops its runs still going.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from ..blas import blas_for_tasks
from ..data import RowData
from ..errors import InvalidDataError
from ..kernels.blocks import ChunkInfo
from . import readahead
from .arrays import held_rows
from .schedule import (
    block_keys,
    chunk_futures,
    client_of,
    current_get,
    low_level_graph,
    placement,
    row_block,
    unique_name,
)
from .tree import (
    Node,
    PartialTree,
    above_groups,
    children,
    combine_complete,
    combine_sources,
    evaluate,
    pick,
    tree_widths,
)

logger = logging.getLogger(__name__)

S = TypeVar("S")

#: Statistics of this many parts are combined by one task.
SPLIT_EVERY = 8

#: The client combines every node the workers' tasks return (no combine tasks between the
#: workers) when they are at most this many parts ...
CLIENT_PARTS = 64
#: ... and about this many bytes at most, estimated from the parameters (:func:`client_combines_all`).
CLIENT_BYTES = 8 * 2**20

class _Broadcast:
    """Parameters stored in a graph; an opaque object, so Dask never looks inside it.

    ``token`` names the value for Dask's ``tokenize`` (which the distributed Client applies
    to every graph it submits): the graph's own unique name, so megabytes of centers are
    never pickled and hashed just to name the graph.
    """

    __slots__ = ("token", "value")

    def __init__(self, value: Any, token: str) -> None:
        self.value = value
        self.token = token

    def __reduce__(self) -> tuple[type, tuple[Any, str]]:
        return (_Broadcast, (self.value, self.token))

    def __dask_tokenize__(self) -> str:
        return self.token


def payload_bytes(value: Any) -> int | None:
    """Bytes ``value`` takes on the wire: its pickle, NumPy buffers out of band (not copied); None
    when the standard pickle cannot write it (Dask ships it by cloudpickle: a local function)."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        head = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except (pickle.PicklingError, AttributeError, TypeError):
        return None
    return len(head) + sum(memoryview(b).nbytes for b in buffers)


def client_combines_all(n_parts: int, params: Any, split_every: int) -> bool:
    """Whether the client should combine all ``n_parts`` nodes the workers' tasks return, rather
    than have combine tasks on the workers hand it the root's children only.

    Always when ``n_parts <= split_every``. Up to :data:`CLIENT_PARTS` parts when their bytes,
    estimated as twice the parameters' each (:func:`payload_bytes`; never when it cannot tell),
    stay within :data:`CLIENT_BYTES`: a chunk's statistics are the size of the parameters or a
    small multiple (k-means: (k, d) sums in float64 and the k farthest rows, for (k, d) centers;
    1.5 times their pickle). The combine tasks would start after the last kernel and cost a
    round trip through the scheduler and a transfer between the workers; the client's combines
    are the same nodes in the same order, so the result is the same to the bit either way.
    Measured (``benchmarks/bench_pass_overhead.py``, 2 workers, k = 10, d = 784, loaded 2-core
    machine): 16 scattered chunks, 0-19 ms of a 90-200 ms iteration (within the load's noise);
    64 scattered chunks, which then stay one task per worker, an iteration 35-39 % shorter.
    """
    if n_parts <= split_every:
        return True
    if n_parts > CLIENT_PARTS:
        return False
    size = payload_bytes(params)
    return size is not None and 2 * n_parts * size <= CLIENT_BYTES


def _run_kernel(
    kernel: Callable[..., Any], block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, params: _Broadcast
) -> Any:
    return kernel(block, weights, chunk, params.value)


def _run_combine(combine: Callable[[list[Any]], Any], parts: list[Any]) -> Any:
    return combine(list(parts))


def _run_group(
    kernel: Callable[..., Any],
    combine: Callable[[list[Any]], Any],
    blocks: list[np.ndarray],
    weights: list[np.ndarray] | None,
    layout: _Broadcast,
    params: _Broadcast,
) -> dict[Node, Any]:
    """The kernel over some chunks held by one worker, and the subtrees of the reduction they
    cover entirely, combined."""
    chunks, n_parts, split_every = layout.value
    parts = {}
    for j, (block, chunk) in enumerate(zip(blocks, chunks)):
        parts[chunk.index] = kernel(block, None if weights is None else weights[j], chunk, params.value)
    return combine_complete(parts, n_parts, split_every, combine)


def _run_streamed(kernel: Callable[..., Any], combine: Callable[[list[Any]], Any], name: str, run: _Broadcast,
                  params: _Broadcast) -> dict[Node, Any]:
    """The kernel over a run of consecutive chunks read from their source in this task (the
    next ones read ahead in the background), and the subtrees of the reduction the run covers
    entirely, combined as soon as they are complete."""
    reads, chunks, n_parts, split_every, ahead = run.value
    tree = PartialTree(n_parts, split_every, combine)
    with readahead.RunReader(name, reads, ahead) as reader:
        for chunk in chunks:
            values = reader.next()
            part = kernel(values[0], values[1] if len(values) > 1 else None, chunk, params.value)
            del values  # the chunk is let go before the next one is waited for
            tree.add(chunk.index, part)
    return tree.values


#: A value of the source graph that several chunks' reads share and that holds more bytes than
#: this (an in-memory array the chunks are sliced from) is not shipped with every chunk's task.
SHARED_BYTES_LIMIT = 2**20


def _held_bytes(value: Any) -> int:
    """Bytes of an in-memory array a graph value is or wraps (0 for anything else)."""
    for v in (value, getattr(value, "value", None)):
        if isinstance(v, np.ndarray):
            return int(v.nbytes)
    return 0


def _chunk_reads(data: RowData, weights: da.Array | None) -> list[readahead.ChunkRead] | None:
    """Each chunk's read as its own small graph (the data's block, then the weights' one), or
    None when the chunks are not read from a source: part of the graph is already in cluster
    memory (futures), or the chunks are sliced from an array held in the graph, which every
    chunk's task would carry."""
    from dask.optimization import cull
    from distributed import Future

    arrays = [data.array] if weights is None else [data.array, weights]
    dsk = low_level_graph({}, arrays)
    if any(isinstance(v, Future) for v in dsk.values()):
        return None
    data_keys, weights_keys = block_keys(data.array), None if weights is None else block_keys(weights)
    reads: list[readahead.ChunkRead] = []
    users: Counter[Any] = Counter()
    for i in range(data.n_chunks):
        keys = [data_keys[i]] + ([] if weights_keys is None else [weights_keys[i]])
        sub = cull(dsk, keys)[0]  # type: ignore[no-untyped-call]
        users.update(sub.keys())
        reads.append(readahead.ChunkRead(i, sub, keys))
    if any(_held_bytes(dsk[k]) > SHARED_BYTES_LIMIT for k, c in users.items() if c > 1):
        return None
    return reads


def _thread_slots(client: Any) -> list[str]:
    """One entry per worker thread of ``client``'s cluster: each worker's address as many times
    as it has threads, workers in address order."""
    return [w for w, threads in sorted(client.nthreads().items()) for _ in range(max(int(threads), 1))]


def runs_of(n_chunks: int, n_slots: int) -> list[tuple[int, int]]:
    """The runs of a streamed pass: ``min(n_chunks, n_slots)`` ranges of consecutive chunks,
    ``[start, stop)``, of sizes differing by at most one, in chunk order.

    Examples
    --------
    >>> runs_of(10, 4)
    [(0, 2), (2, 5), (5, 7), (7, 10)]
    >>> runs_of(2, 4)
    [(0, 1), (1, 2)]
    """
    r = max(min(n_chunks, n_slots), 1)
    return [(j * n_chunks // r, (j + 1) * n_chunks // r) for j in range(r)]


def _reduce_streamed(client: Any, data: RowData, reads: list[readahead.ChunkRead], kernel: Callable[..., Any],
                     params: Any, combine: Callable[[list[Any]], Any], split_every: int, name: str,
                     ahead: int) -> Any:
    """The pass as one graph: a task per worker thread over a run of consecutive chunks, their
    reads included (each run's next chunks read ahead inside its task), placed on the same
    worker thread pass after pass while the workers stay the same (another worker if that one
    is gone), so that state a kernel keeps beside its chunk (:mod:`daskcluster.engine.rowstate`)
    is found again; the parameters as one key; the nodes above the runs' subtrees as combine
    tasks unless the client combines the runs' nodes itself (:func:`client_combines_all`).
    Submitted at once, with the runs' worker restrictions as annotations of the graph's layers."""
    from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

    slots = _thread_slots(client)
    n = data.n_chunks
    runs = runs_of(n, len(slots))
    infos = _chunk_infos(data)
    pkey = (name, "params")
    by_worker: dict[str | None, dict[Any, Any]] = {}
    for r, (a, b) in enumerate(runs):
        where = slots[r * len(slots) // len(runs)] if slots else None
        layout = _Broadcast((reads[a:b], infos[a:b], n, split_every, ahead), f"{name}-run-{r}")
        by_worker.setdefault(where, {})[(name, "group", r)] = (_run_streamed, kernel, combine, name, layout, pkey)
    held = [combine_complete(dict.fromkeys(range(a, b)), n, split_every, _no_combine) for a, b in runs]
    tasks: dict[Any, Any] = {}
    keys = ([(name, "group", r) for r in range(len(runs))]
            if client_combines_all(sum(len(h) for h in held), params, split_every)
            else _tree_above_groups(tasks, name, held, n, split_every, combine))
    layers: dict[str, Any] = {f"{name}-params": MaterializedLayer({pkey: _Broadcast(params, name)})}
    dependencies: dict[str, set[str]] = {f"{name}-params": set()}
    for w, (where, runs_there) in enumerate(by_worker.items()):
        annotations = None if where is None else {"workers": [where], "allow_other_workers": True}
        layers[f"{name}-runs-{w}"] = MaterializedLayer(runs_there, annotations=annotations)
        dependencies[f"{name}-runs-{w}"] = {f"{name}-params"}
    if tasks:
        layers[f"{name}-tree"] = MaterializedLayer(tasks)
        dependencies[f"{name}-tree"] = set(layers) - {f"{name}-tree"}
    try:
        values = client.get(HighLevelGraph(layers, dependencies), keys)
    except BaseException:
        # stop the runs still going (an error elsewhere, an interrupt) and drop what they read ahead
        readahead.close_on_workers(client, name)
        raise
    return _evaluate_groups(keys, values, n, split_every, combine)


def _evaluate_groups(keys: list[Any], values: Sequence[Any], n_parts: int, split_every: int,
                     combine: Callable[[list[Any]], Any]) -> Any:
    """The root, from what the group tasks (``(name, "group", g)``: a dict of nodes) and the
    combine tasks above them (``(name, level, j)``: one node) returned."""
    nodes: dict[Node, Any] = {}
    for key, part in zip(keys, values):
        nodes.update(part if key[1] == "group" else {key[1:]: part})
    return evaluate(nodes, n_parts, split_every, combine)


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


def record_pass(data: RowData) -> None:
    """Count one full pass over ``data`` in every active :func:`count_passes` counter: for a pass
    that reads every chunk without :func:`tree_reduce` (e.g. gathering a sample into memory)."""
    for c in _counters:
        c.passes += 1
        c.rows += data.n_samples


def _chunk_infos(data: RowData) -> list[ChunkInfo]:
    return [ChunkInfo(i, start) for i, start in enumerate(data.starts)]


def _tree_below_root(tasks: dict[Any, Any], name: str, n_parts: int, combine: Callable[[list[Any]], Any],
                     split_every: int) -> list[Any]:
    """Add to ``tasks`` the combine tasks of every level of the tree but the root's; the leaves are
    ``(name, 0, i)``. Returns the keys of the root's children (the leaves' keys for a tree of
    depth 1), which the client combines; node ``(level, j)`` is the key ``(name, level, j)``."""
    widths = tree_widths(n_parts, split_every)
    for level in range(1, len(widths) - 1):
        for j in range(widths[level]):
            parts = [(name, lv, c) for lv, c in children((level, j), widths, split_every)]
            tasks[(name, level, j)] = (_run_combine, combine, parts)
    top = max(len(widths) - 2, 0)
    return [(name, top, j) for j in range(widths[top])]


def _combine_top(keys: list[Any], values: Sequence[Any], n_parts: int, split_every: int,
                 combine: Callable[[list[Any]], Any]) -> Any:
    """The root, from the values of its children computed on the workers."""
    return evaluate({(k[1], k[2]): v for k, v in zip(keys, values)}, n_parts, split_every, combine)


def _reduce_by_worker(client: Any, futures: list[Any], data: RowData, kernel: Callable[..., Any], params: Any,
                      combine: Callable[[list[Any]], Any], weights: da.Array | None, split_every: int,
                      name: str) -> tuple[bool, Any]:
    """The pass as one task per worker over the chunks it holds; ``(False, None)`` when the
    placement does not suit (a chunk not in memory, or chunks so scattered that the workers'
    tasks would hand on too many parts)."""
    groups = placement(client, data.array.name, futures)
    n = data.n_chunks
    if groups is None:
        return False, None
    # what the workers' tasks return: the subtrees each worker holds entirely, and the leaves left
    # over. Chunks placed in runs leave a few per level and worker; scattered ones (as ``persist``
    # often places them) leave every leaf: the client takes them all when they are few and small,
    # else the nodes above them would be combine tasks moving every chunk's statistics between
    # the workers: use the per-chunk tree then.
    held = [combine_complete(dict.fromkeys(g), n, split_every, _no_combine) for g in groups]
    n_client_parts = sum(len(h) for h in held)
    depth = len(tree_widths(n, split_every)) - 1
    direct = client_combines_all(n_client_parts, params, split_every)
    if not direct and n_client_parts > split_every * depth * len(groups):
        return False, None
    infos = _chunk_infos(data)
    wrapped = _Broadcast(params, name)
    tasks: dict[Any, Any] = {}
    for g, idx in enumerate(groups):
        blocks = [futures[i].key for i in idx]
        wkeys = None if weights is None else [block_keys(weights)[i] for i in idx]
        layout = _Broadcast(([infos[i] for i in idx], n, split_every), f"{name}-{g}")
        tasks[(name, "group", g)] = (_run_group, kernel, combine, blocks, wkeys, layout, wrapped)
    # many or large parts for the client (many workers, scattered chunks, large statistics): the nodes
    # above the workers' subtrees are combined by tasks too, and the client gets the root's children only
    keys = list(tasks) if direct else _tree_above_groups(tasks, name, held, n, split_every, combine)
    dsk = low_level_graph(tasks, [] if weights is None else [weights])
    dsk.update((f.key, f) for f in futures)
    return True, _evaluate_groups(keys, client.get(dsk, keys), n, split_every, combine)


def _tree_above_groups(tasks: dict[Any, Any], name: str, held: list[dict[Node, Any]], n_parts: int,
                       split_every: int, combine: Callable[[list[Any]], Any]) -> list[Any]:
    """Add to ``tasks`` the combine tasks of the nodes between the group tasks ``(name, "group",
    g)`` (which hold the nodes ``held[g]``) and the root (:func:`.tree.above_groups`); node
    ``(level, j)`` is the key ``(name, level, j)``. Returns the keys of the root's children."""
    combined, top = above_groups(held, n_parts, split_every)
    for node, kids in combined.items():
        sources = [(name, *k) if g is None else (name, "group", g) for g, k in kids]
        tasks[(name, *node)] = (combine_sources, combine, [None if g is None else k for g, k in kids], sources)
    for node, g in top.items():
        if g is not None:
            tasks[(name, *node)] = (pick, (name, "group", g), node)
    return [(name, *node) for node in top]


def _no_combine(parts: list[Any]) -> None:
    return None


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
        Broadcast to every task: one graph key, or a copy in each worker's task.
    combine : callable
        ``combine(list_of_statistics) -> statistics``, associative, given parts in chunk order;
        a module-level function (or a ``functools.partial`` of one). It runs on the workers and
        on the client.
    weights : dask.array.Array of shape (n_samples,), optional
        Chunked like ``data.array``'s rows.
    split_every : int, default=8
        Fan-in of the reduction tree.
    label : str, optional
        Name used in the graph keys and the log.

    Returns
    -------
    The combined statistics, on the client. Data passes: 1.

    Notes
    -----
    Under a distributed Client and with ``data.array`` persisted, the pass is one task per
    worker (over the chunks that worker holds) and the client combines what the workers
    return. With streamed data, one graph of one task per worker thread, each over a run of
    consecutive chunks (their reads included) on a fixed worker thread, reading its next
    chunks ahead in the background where its reads wait (Dask configuration
    ``daskcluster.read-ahead``: ``'auto'`` by default, or chunks per worker thread, 0 turning it
    off; :mod:`daskcluster.engine.readahead`). Otherwise one task per chunk and combine tasks
    below the root. The client always combines the root; the tree, and so the result, is the
    same either way.
    """
    array = data.array
    label = label or str(getattr(kernel, "__name__", "pass"))
    name = unique_name(label)
    n = data.n_chunks
    get = current_get()
    client = client_of(get)
    t0 = time.perf_counter()
    how = ""
    futures = None if client is None else chunk_futures(array, client)
    if futures is not None and n > 1:
        grouped, result = _reduce_by_worker(client, futures, data, kernel, params, combine, weights,
                                            split_every, name)
        how = "one task per worker" if grouped else ""
    # persisted chunks are where their tasks run anyway; streamed ones go in runs of neighbours, a task
    # per worker thread, which reads its next chunks ahead while it computes
    ahead = readahead.depth()
    if not how and client is not None and futures is None:
        reads = _chunk_reads(data, weights)
        if reads is not None:
            result = _reduce_streamed(client, data, reads, kernel, params, combine, split_every, name, ahead)
            how = f"runs of consecutive chunks (a task each per worker thread), {ahead} read ahead"
    if not how:
        pkey = (name, "params")
        tasks: dict[Any, Any] = {pkey: _Broadcast(params, name)}
        data_keys, weights_keys = block_keys(array), None if weights is None else block_keys(weights)
        for i, chunk in enumerate(_chunk_infos(data)):
            wkey = None if weights_keys is None else weights_keys[i]
            tasks[(name, 0, i)] = (_run_kernel, kernel, data_keys[i], wkey, chunk, pkey)
        keys = _tree_below_root(tasks, name, n, combine, split_every)
        dsk = low_level_graph(tasks, [array] if weights is None else [array, weights])
        with blas_for_tasks(n, get):
            values = get(dsk, keys)
        result = _combine_top(keys, values, n, split_every, combine)
        how = "one task per chunk"
    record_pass(data)
    logger.debug("%s: %d chunks, %s, %.3fs", label, n, how, time.perf_counter() - t0)
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
        raise InvalidDataError(
            f"The kernel {getattr(kernel, '__name__', kernel)!r} returned rows of shape {rows.shape} for chunk "
            f"{chunk.index}; expected ({block.shape[0]}, {n_columns})."
        )
    return rows, stats


def _part(pair: tuple[Any, Any], which: int) -> Any:
    return pair[which]


def _aligned_like(data: RowData, a: da.Array) -> da.Array:
    """``a`` chunked like ``data``'s rows, with its other axis in one chunk."""
    if a.shape[0] != data.n_samples:
        raise InvalidDataError(f"An aligned array has {a.shape[0]} rows; the data have {data.n_samples}.")
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
    of fan-in :data:`SPLIT_EVERY`, chunk order, the root on the client) and the new rows are
    kept where they were made: in cluster memory under a distributed Client, in this process's
    memory on the local schedulers. Used by iterative factorizations whose per-row factor
    (e.g. NMF's ``W``) lives beside the data and is updated by each pass.

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
    tasks, submitted together).
    """
    array = data.array
    dtype = np.dtype(dtype)
    aligned = [_aligned_like(data, a) for a in aligned]
    label = label or str(getattr(kernel, "__name__", "rows"))
    name = unique_name(label)
    rows_name = f"{name}-rows"
    n = data.n_chunks
    pkey = (name, "params")
    tasks: dict[Any, Any] = {pkey: _Broadcast(params, name)}
    rows_keys = []
    data_keys, aligned_keys = block_keys(array), [block_keys(a) for a in aligned]
    for i, chunk in enumerate(_chunk_infos(data)):
        blocks = [keys[i] for keys in aligned_keys]
        part = (name, "part", i)
        tasks[part] = (_run_rows_kernel, kernel, data_keys[i], blocks, chunk, pkey, n_columns, dtype)
        tasks[(name, 0, i)] = (_part, part, 1)
        tasks[(rows_name, i, 0)] = (_part, part, 0)
        rows_keys.append((rows_name, i, 0))
    keys = _tree_below_root(tasks, name, n, combine, SPLIT_EVERY)
    dsk = low_level_graph(tasks, [array, *aligned])
    get = current_get()
    client = client_of(get)
    t0 = time.perf_counter()
    if client is not None:
        # one submission: the rows stay in cluster memory as futures, the statistics come back
        futures = client.get(dsk, rows_keys + keys, sync=False)
        values = client.gather(futures[n:])
        from distributed import wait

        wait(futures[:n])  # type: ignore[no-untyped-call]
        held: dict[Any, Any] = dict(zip(rows_keys, futures[:n]))
    else:
        with blas_for_tasks(n, get):
            out = get(dsk, rows_keys + keys)
        values = out[n:]
        held = dict(zip(rows_keys, out[:n]))
    result = _combine_top(keys, values, n, SPLIT_EVERY, combine)
    rows = held_rows([held[key] for key in rows_keys], array.chunks[0], n_columns, dtype, rows_name)
    record_pass(data)
    logger.debug("%s: %d chunks, rows kept, %.3fs", label, n, time.perf_counter() - t0)
    return rows, result


def _map_params(params: _Broadcast) -> _Broadcast:
    """The parameters of a row-wise map: the one task its chunks' tasks depend on."""
    return params


def _run_map_block(block: np.ndarray, kernel: Callable[..., np.ndarray], params: _Broadcast,
                   block_info: dict[Any, Any] | None = None) -> np.ndarray:
    assert block_info is not None
    where = block_info[0]
    return kernel(block, *params.value, ChunkInfo(where["chunk-location"][0], where["array-location"][0][0]))


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

    The parameters are one task of the graph (a 0-d array, which both Dask array backends
    take as an argument), a second dependency of every chunk's task, so that Dask's
    optimization never fuses a chunk's read into that task. Fused or not would depend on how
    many tasks of a graph use the chunk's result (two reductions of ``labels_`` keep it apart,
    one fuses it), and the distributed scheduler, given a key it still holds with other
    dependencies than before, keeps the old task and warns ("Detected different `run_spec`")
    that this can fail or deadlock a computation.
    """
    array = data.array
    label = label or getattr(kernel, "__name__", "map")
    name = f"{label}-{tokenize(label, array.name, params, n_columns)}"
    wrapped = da.blockwise(_map_params, "", _Broadcast(tuple(params), name), None, dtype=object,
                           name=f"{name}-params", meta=np.empty((), dtype=object))
    if n_columns is None:
        return da.map_blocks(_run_map_block, array, kernel, wrapped, dtype=dtype, drop_axis=1,
                             chunks=(array.chunks[0],), name=name, meta=np.empty((0,), dtype=dtype))
    return da.map_blocks(_run_map_block, array, kernel, wrapped, dtype=dtype, chunks=(array.chunks[0], (n_columns,)),
                         name=name, meta=np.empty((0, 0), dtype=dtype))


def _pick_rows(block: Any, rows: np.ndarray) -> np.ndarray:
    # a module of compiled loops: imported where the rows are picked
    from ..kernels.sparse import dense_rows

    return dense_rows(block, rows)


def take(array: da.Array, index: np.ndarray) -> np.ndarray:
    """The rows of a row-chunked Dask array (1-D or 2-D, features in one chunk) at the global
    ``index`` positions, in the order given, as NumPy: ``array[index]`` reading only the chunks
    that hold those rows, one small task per chunk (integer indexing of a Dask array is not on
    every Dask array backend). Sparse row blocks give dense rows."""
    index = np.asarray(index, dtype=np.int64)
    lengths = array.chunks[0]
    bounds = np.cumsum(lengths)
    which = np.searchsorted(bounds, index, side="right")
    starts = bounds - np.asarray(lengths)
    parts = []
    order = []
    for c in np.unique(which):
        sel = np.flatnonzero(which == c)
        block = row_block(array, int(c))
        local = index[sel] - starts[c]
        parts.append(block.map_blocks(_pick_rows, local, chunks=((len(local),), *block.chunks[1:]), dtype=block.dtype,
                                      meta=np.empty((0,) * block.ndim, dtype=block.dtype)))
        order.append(sel)
    if not parts:
        return np.zeros((0, *array.shape[1:]), dtype=array.dtype)
    rows = np.concatenate(dask.compute(*parts))
    out = np.empty_like(rows)
    out[np.concatenate(order)] = rows
    return out


def take_rows(data: RowData, index: np.ndarray) -> np.ndarray:
    """The rows at the (global) ``index`` positions, in compute dtype with scaling applied.

    Reads only the chunks that hold those rows, one small task per chunk; shape
    (len(index), n_features), in the order given.
    """
    return data.to_compute(take(data.array, index))
