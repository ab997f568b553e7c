"""Read-ahead: a task of a streamed pass reads its next chunk while it computes this one.

A streamed pass under a distributed Client (:func:`daskcluster.engine.passes.tree_reduce`) is
one graph of a few tasks, each over a *run* of consecutive chunks placed on one worker thread
(the run's reads inside it): :class:`RunReader` gives such a task its chunks in order, reading
the next :func:`depth` of them in a background thread of its own while the task computes the
current one. Blosc decompression, file reads and the compiled kernels release the GIL, so the
reader and the task's thread run at the same time. The hand-off never leaves the task: a task
moved to another worker (work stealing, a worker lost and its task rerun) takes its read-ahead
with it, so with read-ahead on every chunk of a run but its first comes from a read-ahead
whatever the scheduler does, and the result is the same bytes through the same graph either way.

Memory: a run's task holds the chunk it computes and at most ``depth`` chunks read ahead, so
``depth + 1`` chunks per worker thread; while runs read, chunk-sized buffers come from the heap
and are reused from chunk to chunk (:mod:`.heap`). A read ahead that failed is not trusted: the chunk is
read again in the task, which raises the error as it would without read-ahead. What a run read
ahead is registered under ``(pass name, chunk index)`` (pass names are unique,
:func:`~daskcluster.engine.schedule.unique_name`) and dropped when the run ends, succeeds or
fails. When a pass fails or is interrupted on the client (an error in another run, Ctrl-C, a
cancel), the client closes it on every worker (:func:`close` through ``client.run``): what is
read ahead is dropped, and the runs still going stop at their next chunk
(:class:`PassClosedError`) instead of computing a result nobody waits for.

Where read-ahead is not used, and why nothing is needed there:

* the local threaded scheduler runs the tasks of one pass in threads of this process, each
  task reading its own chunk: while one thread computes, the others read, so reads and
  compute already overlap (and the synchronous scheduler is for debugging, on one thread);
* persisted data (``cache=True``) are in cluster memory: a pass reads nothing;
* data whose graph holds futures (e.g. a slice of a persisted array) are already computed
  in part and go through Dask's own scheduling; chunks sliced from an array held in the graph
  are in memory already.

Every pass made by ``tree_reduce`` reads ahead: k-means' Lloyd and Elkan iterations, seeding,
Gaussian mixtures' EM, sweeps, the score and inertia passes. Not yet: passes that keep new
rows (``tree_reduce_rows``: NMF's ``W``) and lazy row maps (``map_rows``: labels and
predictions computed later by the caller's own Dask graph), whose chunks Dask schedules.

Zarr 3's own settings (``async.concurrency``: concurrent chunk reads within one array read;
``threading.max_workers``: its codec thread pool) parallelise the Zarr chunks *inside* one
read; when a Dask chunk is one Zarr chunk (the stores daskcluster writes) they change nothing
for a pass, and on workers that already use every core they only add threads. They do not
overlap one chunk's read with another chunk's compute: that is what this module does.

The depth is Dask's configuration key ``daskcluster.read-ahead``, read on the client when a pass
starts: chunks per worker thread (0 turns read-ahead off), or ``'auto'`` (the default): one chunk
ahead where the reads wait, none where they compute. A run reads its first chunk itself and
times it: if the reading thread spent less than :data:`WAITING_SHARE` of the read's time on its
CPU (storage that makes a read wait: object storage, a cold disk), the run reads one chunk
ahead; if it computed the read (a page-cached local store decoded in that thread, as
:mod:`daskcluster.io_chunks` does), the run reads no chunk ahead, for a read-ahead thread would
only take CPU from the task's own on workers that already use every core (on 2 cores, 2 workers
of 1 thread, MNIST8M: an iteration of Lloyd 1.80 s without read-ahead against 2.25 s with it,
the read floor 1.05 against 1.19 s).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import dask
from dask.local import get_sync

from ..errors import DaskClusterError
from ..params import Interval, StrOptions, validate_params
from . import heap

logger = logging.getLogger(__name__)

#: Dask configuration key: chunks each worker thread reads ahead of the one it computes.
READ_AHEAD_CONFIG = "daskcluster.read-ahead"
#: One chunk ahead where reads wait (enough to hide a read shorter than a compute, and memory stays
#: two chunks a thread), none where they compute.
DEFAULT_DEPTH = "auto"
#: With ``'auto'``: a run reads ahead when its first read's thread was on its CPU for less than
#: this share of the read's time (the rest waiting for storage, or for other threads' decoding).
WAITING_SHARE = 0.7
#: How many closed pass names a process remembers (to refuse late reads for them).
_CLOSED_MEMORY = 256

_lock = threading.Lock()
_pending: dict[tuple[str, int], Future[list[Any]]] = {}
_closed: deque[str] = deque(maxlen=_CLOSED_MEMORY)
#: Chunks this process took from a read-ahead (``"ahead"``) and read in their own task (``"own"``).
_counts = {"ahead": 0, "own": 0}


def depth() -> int | str:
    """The read-ahead depth set in Dask's configuration (``daskcluster.read-ahead``), checked:
    an int, or ``'auto'``."""
    value = dask.config.get(READ_AHEAD_CONFIG, DEFAULT_DEPTH)
    validate_params({READ_AHEAD_CONFIG: [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})]},
                    {READ_AHEAD_CONFIG: value}, "Dask's configuration")
    return value if isinstance(value, str) else int(value)


@dataclass(frozen=True)
class ChunkRead:
    """How to read one chunk in a worker: its own small graph and the keys of its arrays
    (the data's block, then the weights' block if any)."""

    index: int
    graph: dict[Any, Any]
    keys: list[Any]

    def __dask_tokenize__(self) -> tuple[str, int]:
        # named by the pass's task key that carries it; never hashed by content
        return ("daskcluster-chunk-read", self.index)


def read(chunk: ChunkRead) -> list[Any]:
    """The chunk's arrays, computed in this thread by Dask's synchronous scheduler."""
    return list(get_sync(chunk.graph, chunk.keys))


class PassClosedError(DaskClusterError, RuntimeError):
    """A run of a pass that the client closed (failed, interrupted or cancelled) stops here."""


class RunReader:
    """The chunks of one run, in order, each next ``depth`` read ahead in a background thread.

    Use as a context manager in the run's task: ``next()`` returns the next chunk's arrays (the
    data's block, then the weights' one), waiting for its read if it is not done. The first
    chunk is read in the calling thread while the reader starts on the following ones; leaving
    the ``with`` block (at the end or on an error) cancels and drops what is left.

    Parameters
    ----------
    name : str
        The pass's unique name.
    reads : sequence of ChunkRead
        The run's chunks, in the order they are computed.
    depth : int or 'auto'
        Chunks read ahead of the one being computed (0: each is read when it is asked for);
        ``'auto'``: 1 if the first chunk's read made its thread wait, else 0 (see the module).
    """

    def __init__(self, name: str, reads: Sequence[ChunkRead], depth: int | str) -> None:
        self.name = name
        self.reads = list(reads)
        self.auto = depth == "auto" and len(self.reads) > 1
        self.depth = 0 if self.auto or len(self.reads) < 2 else int(depth)
        self.position = 0
        self.submitted = 1  # chunks handed to the reader (or read here, for the first)
        self.executor: ThreadPoolExecutor | None = None

    def __enter__(self) -> RunReader:
        self._heap = heap.chunk_buffers_from_heap()
        self._heap.__enter__()
        if self.depth:
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="daskcluster-read-ahead")
            self._top_up(self.depth)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        with _lock:
            for chunk in self.reads[self.position:]:
                pending = _pending.pop((self.name, chunk.index), None)
                if pending is not None:
                    pending.cancel()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        self._heap.__exit__(kind, error, traceback)

    def _top_up(self, last: int) -> None:
        """Hand the reads up to chunk ``last`` of the run to the reader (none once the pass is closed)."""
        assert self.executor is not None
        with _lock:
            if self.name in _closed:
                raise PassClosedError(f"pass {self.name} was closed")
            while self.submitted <= min(last, len(self.reads) - 1):
                chunk = self.reads[self.submitted]
                _pending[(self.name, chunk.index)] = self.executor.submit(read, chunk)
                self.submitted += 1

    def next(self) -> list[Any]:
        """The next chunk's arrays."""
        i = self.position
        chunk = self.reads[i]
        self.position += 1
        with _lock:
            if self.name in _closed:
                raise PassClosedError(f"pass {self.name} was closed")
            ready = _pending.pop((self.name, chunk.index), None)
        if self.depth and i > 0:
            self._top_up(i + self.depth)
        if self.auto and i == 0:
            return self._first_read(chunk)
        if ready is not None:
            try:
                values = ready.result()
            except Exception as exc:  # noqa: BLE001 - read again below, in the task that owns the chunk
                logger.debug("read-ahead of chunk %d of %s failed (%s); reading it again", chunk.index, self.name, exc)
            else:
                _count("ahead")
                return values
        _count("own")
        return read(chunk)

    def _first_read(self, chunk: ChunkRead) -> list[Any]:
        """With ``'auto'``: the first chunk read here, timed, and the read-ahead started if the
        read made this thread wait."""
        cpu, wall = time.thread_time(), time.perf_counter()
        values = read(chunk)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        _count("own")
        if cpu < WAITING_SHARE * wall:
            self.depth = 1
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="daskcluster-read-ahead")
            self._top_up(self.depth)
        logger.debug("run of %s: first read %.1f ms, %.1f ms on its CPU: %d chunk(s) read ahead", self.name,
                     wall * 1e3, cpu * 1e3, self.depth)
        return values


def _count(how: str) -> None:
    with _lock:
        _counts[how] += 1


def close(name: str) -> int:
    """Drop what pass ``name`` read ahead in this process and refuse further reads for it;
    returns the number of chunks dropped."""
    with _lock:
        _closed.append(name)
        keys = [k for k in _pending if k[0] == name]
        for key in keys:
            _pending.pop(key).cancel()
    return len(keys)


def held() -> dict[str, int]:
    """The passes whose chunks this process holds read ahead, with their number of chunks."""
    with _lock:
        counts: dict[str, int] = {}
        for name, _ in _pending:
            counts[name] = counts.get(name, 0) + 1
        return counts


def counts() -> dict[str, int]:
    """How many chunks this process's tasks took from a read-ahead (``"ahead"``) and read
    themselves (``"own"``), since the process started."""
    with _lock:
        return dict(_counts)


def close_on_workers(client: Any, name: str) -> None:
    """:func:`close` pass ``name`` on every worker of ``client`` (workers that are gone hold nothing)."""
    try:
        client.run(close, name)
    except Exception as exc:  # noqa: BLE001 - a worker lost meanwhile held nothing of this pass any more
        logger.debug("could not close the read-ahead of %s on every worker: %s", name, exc)
