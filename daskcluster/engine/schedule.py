"""Running a pass's graph: which scheduler, what names, which worker holds which chunk.

A pass is a small low-level graph handed straight to the scheduler in use (``client.get`` of
a distributed Client, or the local ``get`` of the synchronous or threaded scheduler), not
through ``dask.compute``: there is nothing to optimise in it beyond culling the input
array's graph, and each pass of a fit would pay that machinery's fixed cost again.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import dask.threaded
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

logger = logging.getLogger(__name__)

#: Unique to this process, so that two client processes sharing a scheduler never share a key.
_SESSION = uuid.uuid4().hex[:12]
_serial = itertools.count()

#: Seconds for which a persisted array's placement, once asked of the scheduler, is reused.
PLACEMENT_TTL = 2.0
#: How many arrays' placements are remembered.
_PLACEMENT_CACHE_SIZE = 32
_placements: OrderedDict[tuple[str, str], tuple[float, list[list[int]]]] = OrderedDict()
_placements_lock = threading.Lock()


def unique_name(label: str) -> str:
    """A graph name used by this pass only: ``label`` plus this process's id and a serial number.

    Passes compute their statistics once and keep nothing in the cluster under their names,
    so a unique name costs no cache hit; it spares hashing the parameters (which may be
    megabytes of centers) and two passes never race on one key.
    """
    return f"{label}-{_SESSION}{next(_serial):x}"


def current_get() -> Callable[..., Any]:
    """The ``get`` function Dask would use for a ``Delayed`` here (configuration, then Client)."""
    get = dask.base.get_scheduler(cls=Delayed)  # type: ignore[no-untyped-call]
    return get or dask.threaded.get


def client_of(get: Callable[..., Any]) -> Any | None:
    """The distributed Client whose ``get`` this is, or None for a local scheduler."""
    owner = getattr(get, "__self__", None)
    if owner is None:
        return None
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    return owner if isinstance(owner, Client) else None


def block_keys(array: da.Array) -> list[Any]:
    """The graph keys of ``array``'s row blocks, in order: ``(name, i)`` or ``(name, i, 0)``.

    Taken from the array itself (with Dask's array query planning, the keys are those of the
    optimized expression, not ``array.name``). Features must be one chunk.
    """
    keys = array.__dask_keys__()
    return [k if array.ndim == 1 else k[0] for k in keys]


def row_block(array: da.Array, index: int) -> da.Array:
    """Row block ``index`` of ``array`` as a one-chunk Dask array: a slice along the chunk's
    bounds (public API on both of Dask's array backends, where ``.blocks`` is not)."""
    stop = int(np.sum(array.chunks[0][: index + 1]))
    return array[stop - array.chunks[0][index] : stop]


def low_level_graph(tasks: Mapping[Any, Any], inputs: Sequence[da.Array]) -> dict[Any, Any]:
    """``tasks`` with what the ``inputs``' graphs need to make all their chunks, as one dict."""
    dsk: dict[Any, Any] = {}
    if inputs:
        graph = HighLevelGraph.merge(*(a.__dask_graph__() for a in inputs))
        needed = {k for a in inputs for k in dask.core.flatten(a.__dask_keys__())}  # type: ignore[no-untyped-call]
        dsk.update(graph.cull(needed))
    dsk.update(tasks)
    return dsk


def chunk_futures(array: da.Array, client: Any) -> list[Any] | None:
    """The futures holding ``array``'s chunks, in order, when it is persisted on ``client``; else None.

    Only an array whose graph is its chunks and nothing else (what ``persist`` returns)
    qualifies; a sliced or rechunked view of one does not.
    """
    from distributed import Future

    graph = array.__dask_graph__()
    keys = list(dask.core.flatten(array.__dask_keys__()))  # type: ignore[no-untyped-call]
    if isinstance(graph, HighLevelGraph):  # Dask's classic array backend: one layer of futures
        if len(graph.layers) != 1:
            return None
        layer = next(iter(graph.layers.values()))
    else:  # the query-planning backend: a plain dict of futures (under the expression's keys)
        layer = graph
        if len(layer) != len(keys):
            return None
    futures = []
    for key in keys:
        value = layer.get(key)
        if not isinstance(value, Future) or value.client is not client:
            return None
        futures.append(value)
    return futures


def chunks_by_worker(client: Any, futures: Sequence[Any]) -> list[list[int]] | None:
    """Chunk indices grouped by the worker holding them (ascending order within a group).

    A chunk held by several workers goes with its predecessor's worker when that one holds
    it too (runs of neighbours stay together), else with the holder that has the fewest
    chunks so far. None when some chunk is not in cluster memory (still computing, or lost).
    """
    holders = client.who_has(list(futures))
    groups: dict[str, list[int]] = {}
    previous: str | None = None
    for i, future in enumerate(futures):
        who = sorted(holders.get(future.key, ()))
        if not who:
            return None
        worker = previous if previous is not None and previous in who else min(
            who, key=lambda w: len(groups.get(w, ())))
        groups.setdefault(worker, []).append(i)
        previous = worker
    return list(groups.values())


def placement(client: Any, name: str, futures: Sequence[Any]) -> list[list[int]] | None:
    """:func:`chunks_by_worker` for the persisted array ``name``, asked of the scheduler at most
    once every :data:`PLACEMENT_TTL` seconds.

    Asking costs little by itself, but a query right before each pass's submission was
    measured to add several milliseconds to the pass on a busy 2-core machine; placement
    rarely changes within a fit. A stale answer only costs speed: a group task whose chunk
    moved fetches it (or has it recomputed) like any Dask task.
    """
    key = (str(client.id), name)
    now = time.monotonic()
    with _placements_lock:
        hit = _placements.get(key)
        if hit is not None and now - hit[0] < PLACEMENT_TTL:
            _placements.move_to_end(key)
            return hit[1]
    groups = chunks_by_worker(client, futures)
    if groups is not None:
        with _placements_lock:
            _placements[key] = (now, groups)
            _placements.move_to_end(key)
            while len(_placements) > _PLACEMENT_CACHE_SIZE:
                _placements.popitem(last=False)
    return groups
