"""The mini-batch schedule and its execution: chunks in a seeded order, read a bounded distance ahead.

Schedule
    Epoch ``e`` visits the row chunks in the order :func:`~daskcluster.kernels.minibatch.epoch_order`
    (a permutation seeded by ``SeedSequence(entropy, (TAG_EPOCH, e))``). Consecutive groups of
    ``parallel_chunks`` chunks form a *round*. Each chunk of a round is one task, which shuffles
    the chunk's rows, cuts them into batches and runs them in order (see
    :func:`~daskcluster.kernels.minibatch.chunk_steps_kernel`); with more than one chunk per
    round, one more task merges their results. Every byte is read once per epoch.

Execution
    The state (centers, counts, stopping tracker) flows from round to round; the data do not
    move. On a distributed ``Client`` every task is submitted with its chunk and the previous
    round's state as futures, so the scheduler runs it on the worker that read the chunk and
    the state never visits the client. On a local scheduler the client runs the tasks and a
    background thread reads ahead. Either way at most ``parallel_chunks + prefetch`` chunks are
    read and not yet consumed: reading may run ahead of the steps, but only that far (unlike a
    graph submitted whole, where reads race ahead of a sequential chain until workers spill).

The schedule, and so the model, depends on ``random_state``, ``batch_size``, the chunking and
``parallel_chunks`` -- never on the scheduler or the number of workers.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..blas import single_threaded_blas
from ..data import RowData, active_client
from ..engine import row_block
from ..kernels import minibatch as M
from ..kernels.blocks import ChunkInfo
from ..kernels.sparse import as_block

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class Round:
    """One round: the chunks run from the same state, and where it sits in the schedule."""

    epoch: int
    chunks: tuple[int, ...]
    first_position: int  # global position (across epochs) of its first chunk
    last_of_epoch: bool


def schedule(n_chunks: int, entropy: int, max_epochs: int, parallel_chunks: int) -> Iterator[Round]:
    """The rounds of up to ``max_epochs`` epochs, lazily, in order."""
    position = 0
    for epoch in range(max_epochs):
        order = M.epoch_order(n_chunks, entropy, epoch)
        logger.debug("epoch %d: chunk order %s", epoch + 1, order.tolist())
        for r in range(0, n_chunks, parallel_chunks):
            group = tuple(int(c) for c in order[r : r + parallel_chunks])
            yield Round(epoch, group, position, r + parallel_chunks >= n_chunks)
            position += len(group)


@dataclass
class EpochReport:
    """What the executor tells its caller after each epoch."""

    epoch: int  # 1-based
    seconds: float
    result: M.ChunkResult  # the state after the epoch's last round
    n_steps: int  # steps in this epoch
    n_rows: int  # rows used in this epoch


def run_schedule(
    data: RowData,
    weights: da.Array | None,
    start: M.MiniBatchState,
    rules: M.StepRules,
    *,
    max_epochs: int,
    parallel_chunks: int,
    prefetch: int,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> tuple[M.MiniBatchState, int]:
    """Run the mini-batch schedule until it stops early or ``max_epochs`` epochs are done.

    Returns
    -------
    state : MiniBatchState
    n_epochs : int
        Epochs begun. Data passes: one per epoch (the last one possibly partial).
    """
    rounds = schedule(data.n_chunks, rules.entropy, max_epochs, parallel_chunks)
    client = active_client()
    runner = _DistributedRunner(client) if client is not None else _LocalRunner()
    return runner.run(data, weights, M.ChunkResult.start(start), rules, rounds, parallel_chunks, prefetch, on_epoch)


class _EpochClock:
    """Turns the stream of finished rounds into per-epoch reports."""

    def __init__(self, on_epoch: Callable[[EpochReport], None] | None) -> None:
        self.on_epoch = on_epoch
        self.t0 = time.perf_counter()
        self.steps = 0
        self.rows = 0
        self.epochs = 0

    def round_done(self, rnd: Round, result: M.ChunkResult) -> None:
        self.steps += len(result.log)
        self.rows += result.n_rows
        self.epochs = rnd.epoch + 1
        if rnd.last_of_epoch or result.state.stopped:
            now = time.perf_counter()
            if self.on_epoch is not None:
                self.on_epoch(EpochReport(rnd.epoch + 1, now - self.t0, result, self.steps, self.rows))
            self.t0, self.steps, self.rows = now, 0, 0


def _load_block(array: da.Array, weights: da.Array | None, index: int) -> tuple[np.ndarray, np.ndarray | None]:
    parts = [row_block(array, index)] + ([] if weights is None else [row_block(weights, index)])
    out = dask.compute(*parts)
    return as_block(out[0]), (None if weights is None else np.asarray(out[1]))


class _LocalRunner:
    """Local schedulers: the client runs the tasks; a thread reads ``prefetch`` chunks ahead."""

    def run(
        self,
        data: RowData,
        weights: da.Array | None,
        result: M.ChunkResult,
        rules: M.StepRules,
        rounds: Iterator[Round],
        parallel_chunks: int,
        prefetch: int,
        on_epoch: Callable[[EpochReport], None] | None,
    ) -> tuple[M.MiniBatchState, int]:
        starts = data.starts
        clock = _EpochClock(on_epoch)
        pending: deque[tuple[int, Future[tuple[np.ndarray, np.ndarray | None]]]] = deque()
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
                            M.chunk_steps_kernel(b, w, ChunkInfo(c, starts[c]), rnd.epoch, result, rules)
                            for (b, w), c in zip(blocks, rnd.chunks)
                        ]
                        result = parts[0] if len(parts) == 1 else M.merge_rounds(result, parts, rules)
                    del blocks
                    clock.round_done(rnd, result)
                    if result.state.stopped:
                        break
            finally:
                for _, fut in pending:
                    fut.cancel()
        return result.state, clock.epochs


def _chunk_task(
    block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, epoch: int, previous: M.ChunkResult,
    rules: M.StepRules,
) -> M.ChunkResult:
    with single_threaded_blas():
        return M.chunk_steps_kernel(block, weights, chunk, epoch, previous, rules)


def _merge_task(previous: M.ChunkResult, parts: list[M.ChunkResult], rules: M.StepRules) -> M.ChunkResult:
    return M.merge_rounds(previous, parts, rules)


class _DistributedRunner:
    """A distributed Client: reads and steps are futures; the client only bounds the read-ahead."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def run(
        self,
        data: RowData,
        weights: da.Array | None,
        result: M.ChunkResult,
        rules: M.StepRules,
        rounds: Iterator[Round],
        parallel_chunks: int,
        prefetch: int,
        on_epoch: Callable[[EpochReport], None] | None,
    ) -> tuple[M.MiniBatchState, int]:
        client = self.client
        starts = data.starts
        clock = _EpochClock(on_epoch)
        window = parallel_chunks + prefetch
        reads: dict[int, tuple[Any, Any]] = {}
        submitted: deque[tuple[Round, Any]] = deque()  # rounds whose result is not yet seen
        state_future: Any = result
        last = result
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
                clock.round_done(rnd, res)
                last = res
                if res.state.stopped:
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
                    parts.append(client.submit(_chunk_task, block, wblock, ChunkInfo(c, starts[c]), rnd.epoch,
                                               state_future, rules, pure=False))
                state_future = parts[0] if len(parts) == 1 else client.submit(
                    _merge_task, state_future, parts, rules, pure=False)
                submitted.append((rnd, state_future))
                del parts
                # read ahead; waiting here for earlier rounds leaves this one queued on the cluster
                fill(rnd.first_position + len(rnd.chunks) + prefetch)
            settle(2**62)
        finally:
            leftovers = [f for pair in reads.values() for f in pair if f is not None]
            leftovers += [f for _, f in submitted]
            if leftovers:
                client.cancel(leftovers)
        return last.state, clock.epochs
