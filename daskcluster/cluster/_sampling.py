"""The mini-batch schedule: seeded epoch orders, the steps to run, per-epoch reports.

Epoch ``e`` visits the row chunks in the order :func:`~daskcluster.kernels.minibatch.epoch_order`
(a permutation seeded by ``SeedSequence(entropy, (TAG_EPOCH, e))``), ``parallel_chunks`` chunks
per round. Each chunk's task shuffles the chunk's rows, cuts them into batches and runs them in
order (:func:`~daskcluster.kernels.minibatch.chunk_steps_kernel`); a round of several chunks
is merged by :func:`~daskcluster.kernels.minibatch.merge_rounds`. The execution -- where the
tasks run, the bounded read-ahead, the pass count -- is the engine's
(:func:`daskcluster.engine.sequential.run_sequential`); this module only runs on the client.

The schedule, and so the model, depends on ``random_state``, ``batch_size``, the chunking and
``parallel_chunks`` -- never on the scheduler or the number of workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import dask.array as da

from ..data import RowData
from ..engine.sequential import Round, SequentialSteps, epoch_rounds, run_sequential
from ..kernels import minibatch as M


@dataclass
class EpochReport:
    """What the schedule tells its caller after each epoch."""

    epoch: int  # 1-based
    seconds: float
    result: M.ChunkResult  # the state after the epoch's last round
    n_steps: int  # steps in this epoch
    n_rows: int  # rows used in this epoch


class _EpochClock:
    """Turns the stream of finished rounds into per-epoch reports."""

    def __init__(self, on_epoch: Callable[[EpochReport], None] | None) -> None:
        self.on_epoch = on_epoch
        self.t0 = time.perf_counter()
        self.steps = 0
        self.rows = 0

    def round_done(self, rnd: Round, result: M.ChunkResult) -> None:
        self.steps += len(result.log)
        self.rows += result.n_rows
        if rnd.last_of_epoch or result.state.stopped:
            now = time.perf_counter()
            if self.on_epoch is not None:
                self.on_epoch(EpochReport(rnd.epoch + 1, now - self.t0, result, self.steps, self.rows))
            self.t0, self.steps, self.rows = now, 0, 0


def _stopped(result: M.ChunkResult) -> bool:
    return bool(result.state.stopped)


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
        Epochs begun. Data passes: one per epoch (the last one possibly partial), each counted
        by :func:`~daskcluster.engine.count_passes`.
    """
    rounds = epoch_rounds(data.n_chunks, max_epochs, parallel_chunks,
                          lambda epoch: M.epoch_order(data.n_chunks, rules.entropy, epoch))
    steps = SequentialSteps(M.chunk_steps_kernel, M.merge_rounds, rules, _stopped)
    result, n_epochs = run_sequential(data, weights, M.ChunkResult.start(start), steps, rounds,
                                      parallel_chunks=parallel_chunks, prefetch=prefetch,
                                      on_round=_EpochClock(on_epoch).round_done)
    return result.state, n_epochs
