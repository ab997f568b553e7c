"""Sequential passes: chunks visited in a seeded order, each step starting from the last one's state.

A :func:`~daskcluster.engine.tree_reduce` pass runs every chunk from the same parameters and
reduces; an algorithm that *updates* a small state chunk by chunk (mini-batch k-means) needs
the chunks one after the other instead. This module runs such a schedule.

Schedule
    Epoch ``e`` visits the row chunks in the order ``order(e)`` (a permutation the caller
    seeds). Consecutive groups of ``parallel_chunks`` chunks form a :class:`Round`: each chunk
    of a round is one task, ``step(block, weights, ChunkInfo, epoch, state, rules)``, run from
    the state the previous round left; with more than one chunk, one more task
    ``merge(state, parts, rules)`` combines them. Every byte is read once per epoch.

Execution
    The state flows from round to round; the data do not move. On a distributed ``Client``
    every task is submitted with its chunk and the previous round's state as futures, so the
    scheduler runs it on the worker that read the chunk and the state never visits the client.
    On a local scheduler the client runs the tasks and a background thread reads ahead. Either
    way at most ``parallel_chunks + prefetch`` chunks are read and not yet consumed: reading
    may run ahead of the steps, but only that far (unlike a graph submitted whole, where reads
    race ahead of a sequential chain until workers spill). Steps run with one BLAS thread
    (:func:`~daskcluster.blas.single_threaded_blas`).

Passes
    For :func:`~daskcluster.engine.count_passes`, an epoch counts as one pass over the data
    (all its rows, as a full pass), counted when its first round is done; an epoch cut short
    by the caller's stopping rule counts too, since it began reading the data.
    :func:`run_on_whole` counts one pass over the array it reads.

The schedule, and so the result, depends on ``order``, the chunking and ``parallel_chunks``
-- never on the scheduler or the number of workers.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import dask
import dask.array as da
import numpy as np

from ..blas import single_threaded_blas
from ..data import RowData
from ..io import active_client
from ..kernels.blocks import ChunkInfo
from .passes import record_pass
from .schedule import row_block

logger = logging.getLogger(__name__)

S = TypeVar("S")
R = TypeVar("R")

#: ``step(block, weights, chunk, epoch, state, rules) -> state``: one chunk's task.
Step = Callable[[Any, "np.ndarray | None", ChunkInfo, int, S, R], S]
#: ``merge(previous, parts, rules) -> state``: the states of one round's chunks made one.
Merge = Callable[[S, "list[S]", R], S]


@dataclass(frozen=True)
class Round:
    """One round: the chunks run from the same state, and where it sits in the schedule.

    Attributes
    ----------
    epoch : int
        0-based epoch.
    chunks : tuple of int
        Chunk indices, in the order their results are merged.
    first_position : int
        Position of the first chunk in the whole schedule (across epochs).
    last_of_epoch : bool
        Whether the epoch ends with this round.
    """

    epoch: int
    chunks: tuple[int, ...]
    first_position: int
    last_of_epoch: bool


def epoch_rounds(
    n_chunks: int, max_epochs: int, parallel_chunks: int, order: Callable[[int], np.ndarray]
) -> Iterator[Round]:
    """The rounds of up to ``max_epochs`` epochs, lazily, in order.

    Parameters
    ----------
    n_chunks : int
    max_epochs : int
    parallel_chunks : int
        Chunks per round (the last round of an epoch may have fewer).
    order : callable
        ``order(epoch)``: the permutation of ``range(n_chunks)`` the epoch visits.
    """
    position = 0
    for epoch in range(max_epochs):
        visit = order(epoch)
        logger.debug("epoch %d: chunk order %s", epoch + 1, visit.tolist())
        for r in range(0, n_chunks, parallel_chunks):
            group = tuple(int(c) for c in visit[r : r + parallel_chunks])
            yield Round(epoch, group, position, r + parallel_chunks >= n_chunks)
            position += len(group)


@dataclass(frozen=True)
class SequentialSteps(Generic[S, R]):
    """What a sequential pass runs: the step, the merge, their fixed arguments, the stop rule.

    Attributes
    ----------
    step : callable
        ``step(block, weights, chunk, epoch, state, rules) -> state`` (a module-level function:
        it is sent to the workers).
    merge : callable
        ``merge(previous, parts, rules) -> state`` for rounds of several chunks.
    rules : object
        Passed to every step and merge (sent once with each task).
    stopped : callable
        ``stopped(state) -> bool``, on the client: no round is run after a state for which it
        is true.
    """

    step: Step[S, R]
    merge: Merge[S, R]
    rules: R
    stopped: Callable[[S], bool]


class _Progress(Generic[S]):
    """Counts epochs begun (one pass each) and tells the caller of every finished round."""

    def __init__(self, data: RowData, on_round: Callable[[Round, S], None] | None) -> None:
        self.data = data
        self.on_round = on_round
        self.epochs = 0

    def round_done(self, rnd: Round, state: S) -> None:
        if rnd.epoch + 1 > self.epochs:
            self.epochs = rnd.epoch + 1
            record_pass(self.data)
        if self.on_round is not None:
            self.on_round(rnd, state)


def run_sequential(
    data: RowData,
    weights: da.Array | None,
    start: S,
    steps: SequentialSteps[S, R],
    rounds: Iterator[Round],
    *,
    parallel_chunks: int,
    prefetch: int,
    on_round: Callable[[Round, S], None] | None = None,
) -> tuple[S, int]:
    """Run the rounds in order until ``steps.stopped`` or the rounds run out.

    Parameters
    ----------
    data : RowData
        The rows; chunk ``i``'s block is read by (or for) its task.
    weights : dask array of shape (n_samples,) or None
        Chunked like ``data``; each step gets its chunk's weights.
    start : state
        The state the first round runs from.
    steps : SequentialSteps
    rounds : iterator of Round
        Usually :func:`epoch_rounds`.
    parallel_chunks : int
        The most chunks a round holds.
    prefetch : int
        Chunks read ahead of the round being run: at most ``parallel_chunks + prefetch`` chunks
        are held read and not yet stepped.
    on_round : callable, optional
        ``on_round(round, state)`` on the client after each round, in order.

    Returns
    -------
    state
        The last round's state.
    n_epochs : int
        Epochs begun. Data passes: one per epoch (the last one possibly partial).
    """
    client = active_client()
    runner = _DistributedRunner(client) if client is not None else _LocalRunner()
    progress: _Progress[S] = _Progress(data, on_round)
    state = runner.run(data, weights, start, steps, rounds, parallel_chunks, prefetch, progress)
    return state, progress.epochs


def _load_block(array: da.Array, weights: da.Array | None, index: int) -> tuple[Any, np.ndarray | None]:
    parts = [row_block(array, index)] + ([] if weights is None else [row_block(weights, index)])
    # a module of compiled loops: imported where a block is read
    from ..kernels.sparse import as_block

    out = dask.compute(*parts)  # type: ignore[attr-defined, no-untyped-call]
    return as_block(out[0]), (None if weights is None else np.asarray(out[1]))


class _LocalRunner:
    """Local schedulers: the client runs the tasks; a thread reads ``prefetch`` chunks ahead."""

    def run(self, data: RowData, weights: da.Array | None, state: S, steps: SequentialSteps[S, R],
            rounds: Iterator[Round], parallel_chunks: int, prefetch: int, progress: _Progress[S]) -> S:
        starts = data.starts
        pending: deque[tuple[int, Future[tuple[Any, np.ndarray | None]]]] = deque()
        upcoming: deque[tuple[int, int]] = deque()  # (position, chunk) not yet submitted for reading
        it = iter(rounds)
        buffered: deque[Round] = deque()

        def fill(upto: int) -> None:
            # make sure every chunk at a position < upto is being read
            while True:
                while not upcoming and (rnd := next(it, None)) is not None:
                    buffered.append(rnd)
                    upcoming.extend((rnd.first_position + i, c) for i, c in enumerate(rnd.chunks))
                if not upcoming or upcoming[0][0] >= upto:
                    return
                pos, c = upcoming.popleft()
                pending.append((pos, pool.submit(_load_block, data.array, weights, c)))

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="daskcluster-prefetch") as pool:
            try:
                fill(parallel_chunks)
                while buffered:
                    rnd = buffered.popleft()
                    fill(rnd.first_position + len(rnd.chunks) + prefetch)
                    blocks = []
                    for _ in rnd.chunks:
                        _, fut = pending.popleft()
                        blocks.append(fut.result())
                    fill(rnd.first_position + len(rnd.chunks) + prefetch)
                    with single_threaded_blas():
                        parts = [
                            steps.step(b, w, ChunkInfo(c, starts[c]), rnd.epoch, state, steps.rules)
                            for (b, w), c in zip(blocks, rnd.chunks)
                        ]
                        state = parts[0] if len(parts) == 1 else steps.merge(state, parts, steps.rules)
                    del blocks
                    progress.round_done(rnd, state)
                    if steps.stopped(state):
                        break
            finally:
                for _, fut in pending:
                    fut.cancel()
        return state


def _step_task(step: Step[S, R], block: Any, weights: np.ndarray | None, chunk: ChunkInfo, epoch: int, previous: S,
               rules: R) -> S:
    with single_threaded_blas():
        return step(block, weights, chunk, epoch, previous, rules)


def _merge_task(merge: Merge[S, R], previous: S, parts: list[S], rules: R) -> S:
    return merge(previous, parts, rules)


class _DistributedRunner:
    """A distributed Client: reads and steps are futures; the client only bounds the read-ahead."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def run(self, data: RowData, weights: da.Array | None, state: S, steps: SequentialSteps[S, R],
            rounds: Iterator[Round], parallel_chunks: int, prefetch: int, progress: _Progress[S]) -> S:
        client = self.client
        starts = data.starts
        window = parallel_chunks + prefetch
        reads: dict[int, tuple[Any, Any]] = {}
        submitted: deque[tuple[Round, Any]] = deque()  # rounds whose result is not yet seen
        state_future: Any = state
        last = state
        stopped = False
        it = iter(rounds)
        ahead: deque[Round] = deque()
        todo: deque[tuple[int, int]] = deque()

        def settle(upto_position: int) -> None:
            # wait for every submitted round whose chunks end before upto_position
            nonlocal last, stopped
            while submitted and submitted[0][0].first_position + len(submitted[0][0].chunks) <= upto_position:
                rnd, fut = submitted.popleft()
                res = fut.result()
                progress.round_done(rnd, res)
                last = res
                if steps.stopped(res):
                    stopped = True
                    return

        def read(position: int, chunk: int) -> None:
            block = client.compute(row_block(data.array, chunk))
            wblock = None if weights is None else client.compute(row_block(weights, chunk))
            reads[position] = (block, wblock)

        def fill(upto: int) -> None:
            # submit the reads of every chunk at a position < upto, within the bound
            while not stopped:
                while not todo and (rnd := next(it, None)) is not None:
                    ahead.append(rnd)
                    todo.extend((rnd.first_position + i, c) for i, c in enumerate(rnd.chunks))
                if not todo or todo[0][0] >= upto:
                    return
                pos, c = todo[0]
                settle(pos - window + 1)  # bound: at most `window` chunks read and not consumed
                if stopped:
                    return
                todo.popleft()
                read(pos, c)

        try:
            fill(window)
            while ahead and not stopped:
                rnd = ahead.popleft()
                # this round's chunks: usually read ahead already (unless prefetch < parallel_chunks)
                fill(rnd.first_position + len(rnd.chunks))
                if stopped:
                    break
                parts = []
                for i, c in enumerate(rnd.chunks):
                    block, wblock = reads.pop(rnd.first_position + i)
                    parts.append(client.submit(_step_task, steps.step, block, wblock, ChunkInfo(c, starts[c]),
                                               rnd.epoch, state_future, steps.rules, pure=False))
                state_future = parts[0] if len(parts) == 1 else client.submit(
                    _merge_task, steps.merge, state_future, parts, steps.rules, pure=False)
                submitted.append((rnd, state_future))
                del parts
                # read ahead; waiting here for earlier rounds leaves this one queued on the cluster
                fill(rnd.first_position + len(rnd.chunks) + prefetch)
            settle(2**62)
        finally:
            # what is left is released, not cancelled: the scheduler drops the tasks no one wants. On Dask's
            # query-planning backend a read's key is its expression's, shared by every read of that chunk:
            # cancelling cancels the key for all of them (the scheduler then fails an assertion on a
            # cancelled key no client wants, and the client loses its connection and its persisted data)
            reads.clear()
            submitted.clear()
        return last


def _whole_task(kernel: Callable[..., Any], block: Any, weights: np.ndarray | None, *args: Any) -> Any:
    # a module of compiled loops: imported where a block is read
    from ..kernels.sparse import as_block

    with single_threaded_blas():
        return kernel(as_block(block), weights, *args)


def run_on_whole(data: RowData, weights: da.Array | None, kernel: Callable[..., Any], *args: Any) -> Any:
    """``kernel(block, weights, *args)`` on all of ``data``'s rows as one block (a small array:
    one batch of ``partial_fit``), with one BLAS thread.

    Lazy data are read by the one task that runs the kernel, on the cluster (never by the
    client); in-memory data are used here. Data passes: 1 (over ``data``).
    """
    record_pass(data)
    if data.lazy:
        task = dask.delayed(_whole_task)(kernel, data.array, weights, *args)  # type: ignore[attr-defined]
        return task.compute()
    w = None if weights is None else np.asarray(weights.compute())  # type: ignore[no-untyped-call]
    return _whole_task(kernel, data.array.compute(), w, *args)  # type: ignore[no-untyped-call]
