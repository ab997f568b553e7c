"""Kernels of mini-batch k-means: one step on a batch, and all of one chunk's batches in order.

A mini-batch step (Sculley, 2010, with scikit-learn's per-center learning rates) assigns the
rows of a batch to their nearest centers and moves each center ``j`` to the weighted mean of
everything it has absorbed so far::

    counts_j' = counts_j + w_j                      (w_j: weight of the batch rows nearest j)
    centers_j' = (counts_j * centers_j + sum_j) / counts_j'

i.e. toward the batch mean of its rows with step ``w_j / counts_j'``. Centers whose counts fall
below ``reassignment_ratio * max(counts)`` may be moved to random rows of the batch.

:func:`chunk_steps_kernel` runs every batch of one row chunk in sequence, starting from the
state it is given, and returns the new state: it is the task that runs *where the chunk is*.
:func:`merge_rounds` combines the results of several chunks run from the same state.
Nothing here knows about Dask; every function is deterministic given its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .blocks import (
    Affine,
    ChunkInfo,
    check_finite_rows,
    row_sq_norms,
)
from .compiled import compiled
from .distances import nearest_center
from .kmeans import AssignParams, chunk_rng, cluster_sums

if TYPE_CHECKING:  # the real modules, for type checkers
    from . import assign as A
    from . import sparse as S
else:
    A = compiled("assign")
    S = compiled("sparse")


#: ``SeedSequence`` spawn-key tags, so that each use of randomness has its own stream.
TAG_EPOCH, TAG_ROWS, TAG_REASSIGN, TAG_PARTIAL = 101, 102, 103, 104

STOP_TOL = "tol"
STOP_NO_IMPROVEMENT = "no_improvement"


# --------------------------------------------------------------------------- schedule


def epoch_order(n_chunks: int, entropy: int, epoch: int) -> np.ndarray:
    """The order in which the chunks are visited in ``epoch``: a seeded permutation."""
    return chunk_rng(entropy, TAG_EPOCH, epoch).permutation(n_chunks)


def chunk_batches(n_rows: int, batch_size: int, entropy: int, epoch: int, chunk: int) -> list[np.ndarray]:
    """Row positions (within the chunk) of each batch drawn from one chunk in one epoch.

    The chunk's rows are shuffled (seeded by ``entropy``, ``epoch`` and the chunk index) and
    cut into ``max(1, round(n_rows / batch_size))`` batches of nearly equal size, so every row
    is used once per epoch. Each batch's positions are sorted, for a cache-friendly gather.
    """
    if n_rows == 0:
        return []
    perm = chunk_rng(entropy, TAG_ROWS, epoch, chunk).permutation(n_rows)
    n_batches = max(1, int(round(n_rows / batch_size)))
    return [np.sort(b) for b in np.array_split(perm, n_batches)]


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class StepRules:
    """What every step needs besides the state; broadcast once per fit.

    Attributes
    ----------
    affine : Affine
        Scaling applied to the stored rows.
    batch_size : int
        Nominal batch size: how chunks are cut, and the EWA smoothing (as scikit-learn).
    n_samples : int
        Rows of the whole data (EWA smoothing factor ``2 * batch_size / (n_samples + 1)``).
    tol : float
        Absolute tolerance on the squared center change of a step; 0 disables.
    max_no_improvement : int or None
        Steps without improvement of the smoothed inertia before stopping; None disables.
    reassignment_ratio : float
        Centers with counts below this fraction of the largest may be reassigned.
    entropy : int
        Seed of every random draw of the fit.
    stop_early : bool
        Whether a chunk task stops at the step where the stopping rule fires (sequential
        chain) or runs all its batches and leaves the decision to :func:`merge_rounds`.
    """

    affine: Affine
    batch_size: int
    n_samples: int
    tol: float
    max_no_improvement: int | None
    reassignment_ratio: float
    entropy: int
    stop_early: bool = True


@dataclass
class MiniBatchState:
    """Everything that carries from one step to the next.

    ``centers`` (n_clusters, n_features) in the compute dtype; ``counts`` (n_clusters,) float64,
    the weight absorbed by each center; the reassignment clock; the step counter; and the
    early-stopping tracker (smoothed inertia ``ewa``, its minimum, steps without improvement).
    """

    centers: np.ndarray
    counts: np.ndarray
    n_since_reassign: float = 0.0
    n_steps: int = 0
    ewa: float | None = None
    ewa_min: float | None = None
    no_improvement: int = 0
    stopped: str | None = None

    @staticmethod
    def start(centers: np.ndarray) -> MiniBatchState:
        """The state before the first step: the initial centers, zero counts."""
        return MiniBatchState(np.array(centers), np.zeros(centers.shape[0]))

    def copy(self) -> MiniBatchState:
        return replace(self, centers=self.centers.copy(), counts=self.counts.copy())


@dataclass
class StepLog:
    """Per-step record of a run of batches: mean batch inertia (before the update), weight of
    the batch, squared center change, and how many centers were reassigned."""

    inertia: list[float] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    shift: list[float] = field(default_factory=list)
    n_reassigned: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inertia)

    def append(self, inertia: float, weight: float, shift: float, n_reassigned: int) -> None:
        self.inertia.append(inertia)
        self.weight.append(weight)
        self.shift.append(shift)
        self.n_reassigned.append(n_reassigned)


@dataclass
class ChunkResult:
    """The outcome of a task: the new state, its steps, rows read, and which centers were
    reassigned along the way (:func:`merge_rounds` needs it)."""

    state: MiniBatchState
    log: StepLog
    n_rows: int
    reassigned: np.ndarray  # (n_clusters,) bool

    @staticmethod
    def start(state: MiniBatchState) -> ChunkResult:
        return ChunkResult(state, StepLog(), 0, np.zeros(state.centers.shape[0], dtype=bool))


# --------------------------------------------------------------------------- one step


def due_for_reassignment(state: MiniBatchState, n_rows: int) -> bool:
    """scikit-learn's rule: try reassigning every ``10 * n_clusters`` rows, or at once when a
    center has absorbed nothing yet. Advances the clock (in place)."""
    state.n_since_reassign += n_rows
    if (state.counts == 0).any() or state.n_since_reassign >= 10 * state.centers.shape[0]:
        state.n_since_reassign = 0
        return True
    return False


def _pick_rows(rng: np.random.Generator, w: np.ndarray | None, n_rows: int, n: int) -> np.ndarray:
    """``n`` distinct rows of the batch, uniformly, or with probability proportional to ``w``."""
    if w is None:
        return rng.choice(n_rows, size=n, replace=False)
    with np.errstate(divide="ignore"):
        keys = np.where(w > 0, rng.standard_exponential(n_rows) / w, np.inf)
    order = np.argsort(keys, kind="stable")[:n]
    return order[np.isfinite(keys[order])]


def minibatch_step(
    x: np.ndarray,
    w: np.ndarray | None,
    state: MiniBatchState,
    reassignment_ratio: float,
    rng: np.random.Generator,
    *,
    reassign: bool,
    x_sq: np.ndarray | None = None,
) -> tuple[float, float, float, np.ndarray]:
    """One mini-batch step on the rows ``x`` (compute dtype, scaled), updating ``state`` in place.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_features)
    w : ndarray of shape (n_rows,) or None
        Row weights (None: unit weights).
    state : MiniBatchState
    reassignment_ratio : float
    rng : numpy.random.Generator
        Draws the rows that reassigned centers move to.
    reassign : bool
        Whether this step may reassign starved centers (see :func:`due_for_reassignment`).
    x_sq : ndarray of shape (n_rows,), optional
        Squared norms of the rows of ``x``, when already computed.

    Returns
    -------
    inertia : float
        Weighted sum of squared distances of the batch to the centers *before* the update.
    weight : float
        Total weight of the batch.
    shift : float
        Squared Euclidean change of the centers.
    reassigned : ndarray of int
        Indices of the centers moved to batch rows.
    """
    centers = state.centers
    k = centers.shape[0]
    if x_sq is None:
        x_sq = _sq_norms(x)
    labels, min_sq = _nearest(x, x_sq, centers)
    if w is None:
        inertia = float(min_sq.sum())
        weight = float(x.shape[0])
        w_in = np.bincount(labels, minlength=k).astype(np.float64)
    else:
        inertia = float(min_sq @ w)
        weight = float(w.sum())
        w_in = np.bincount(labels, weights=w, minlength=k)
    sums = S.cluster_sums(x, labels, w, k) if S.is_sparse(x) else cluster_sums(x, labels, w, k)
    hit = w_in > 0
    old = centers.copy()
    counts = state.counts
    new_counts = counts[hit] + w_in[hit]
    centers[hit] = ((counts[hit, None] * centers[hit] + sums[hit]) / new_counts[:, None]).astype(centers.dtype)
    counts[hit] = new_counts
    which = np.zeros(0, dtype=np.int64)
    if reassign and reassignment_ratio > 0:
        starved = counts < reassignment_ratio * counts.max()
        limit = int(0.5 * x.shape[0])
        if starved.sum() > limit:  # move at most half the batch's rows, the most starved first
            starved[np.argsort(counts, kind="stable")[limit:]] = False
        which = np.flatnonzero(starved)
        if len(which):
            rows = _pick_rows(rng, w, x.shape[0], len(which))
            which = which[: len(rows)]
            centers[which] = S.dense_rows(x, rows)
            starved[:] = False
            starved[which] = True
            if (~starved).any():
                # counts reset to the smallest other count: not so small that the center is
                # reassigned again at once (scikit-learn's rule)
                counts[starved] = counts[~starved].min()
    shift = float(((centers.astype(np.float64) - old) ** 2).sum())
    return inertia, weight, shift, which


def track_convergence(state: MiniBatchState, rules: StepRules, mean_inertia: float, shift: float) -> None:
    """Count one step and apply scikit-learn's early stopping to ``state`` (in place).

    The first step is skipped (its inertia reflects the initialization); afterwards the mean
    batch inertia is smoothed with ``alpha = min(1, 2 * batch_size / (n_samples + 1))``. The
    run stops when ``tol > 0`` and the step moved the centers by at most ``tol`` (squared), or
    when the smoothed inertia has not improved for ``max_no_improvement`` steps.
    """
    state.n_steps += 1
    if state.n_steps == 1 or state.stopped:
        return
    if state.ewa is None:
        state.ewa = mean_inertia
    else:
        alpha = min(1.0, rules.batch_size * 2.0 / (rules.n_samples + 1))
        state.ewa = state.ewa * (1 - alpha) + mean_inertia * alpha
    if rules.tol > 0.0 and shift <= rules.tol:
        state.stopped = STOP_TOL
        return
    if state.ewa_min is None or state.ewa < state.ewa_min:
        state.no_improvement = 0
        state.ewa_min = state.ewa
    else:
        state.no_improvement += 1
    if rules.max_no_improvement is not None and state.no_improvement >= rules.max_no_improvement:
        state.stopped = STOP_NO_IMPROVEMENT


def _sq_norms(x: Any) -> np.ndarray:
    """Squared norms of the rows of dense or CSR rows ``x``: (n_rows,), float64 for CSR."""
    return S.sq_norms(x) if S.is_sparse(x) else row_sq_norms(x)


def _nearest(x: Any, x_sq: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest center and squared distance, for dense rows or CSR rows (one compiled
    sparse x dense product)."""
    if S.is_sparse(x):
        return S.nearest_center(x, x_sq, centers)
    return nearest_center(x, x_sq, centers, row_sq_norms(centers))


def gather_rows(block: Any, index: Any, dtype: np.dtype, affine: Affine) -> Any:
    """Rows ``index`` of ``block`` in the compute dtype, scaled: a new array (a new CSR matrix
    for a sparse block; its scaling has no offset)."""
    if S.is_sparse(block):
        x = S.as_csr(block)[index].astype(dtype)
        if affine.scale != 1.0:
            x.data *= x.dtype.type(affine.scale)
        return x
    x = np.asarray(block[index], dtype=dtype)
    if np.may_share_memory(x, block):
        x = x.copy()
    return affine.apply(x)


def _checked_sq_norms(x: np.ndarray, index: np.ndarray, chunk: ChunkInfo) -> np.ndarray:
    """Squared norms of the rows of ``x``; raises, naming the row, if one is not finite.
    ``index`` gives the rows' positions in the chunk."""
    x_sq = _sq_norms(x)
    if not np.isfinite(x_sq).all():
        r = int(np.flatnonzero(~np.isfinite(x_sq))[0])
        if S.is_sparse(x):
            row = x[r]
            S.check_finite_tile(S.CsrTile(row.data, row.indices, row.indptr, row.shape[1]), x_sq[r : r + 1], chunk,
                                int(index[r]))
        else:
            check_finite_rows(x[r : r + 1], x_sq[r : r + 1], chunk, int(index[r]))
    return x_sq


# --------------------------------------------------------------------------- tasks


def chunk_steps_kernel(
    block: np.ndarray,
    sample_weight: np.ndarray | None,
    chunk: ChunkInfo,
    epoch: int,
    previous: ChunkResult,
    rules: StepRules,
) -> ChunkResult:
    """Run all of one chunk's batches of ``epoch`` in order, from ``previous.state``.

    The batches are those of :func:`chunk_batches`; reassignments draw from
    ``SeedSequence(entropy, (TAG_REASSIGN, epoch, chunk))``. With ``rules.stop_early`` the task
    stops at the step where the stopping rule fires; a state already stopped passes through.
    Reads ``block`` once (its batches partition its rows).
    """
    state = previous.state.copy()
    log = StepLog()
    reassigned = np.zeros(state.centers.shape[0], dtype=bool)
    if state.stopped:
        return ChunkResult(state, log, 0, reassigned)
    dtype = state.centers.dtype
    rng = chunk_rng(rules.entropy, TAG_REASSIGN, epoch, chunk.index)
    n_rows = 0
    for index in chunk_batches(block.shape[0], rules.batch_size, rules.entropy, epoch, chunk.index):
        x = gather_rows(block, index, dtype, rules.affine)
        x_sq = _checked_sq_norms(x, index, chunk)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)[index]
        reassign = due_for_reassignment(state, x.shape[0])
        inertia, weight, shift, moved = minibatch_step(x, w, state, rules.reassignment_ratio, rng, reassign=reassign,
                                                       x_sq=x_sq)
        reassigned[moved] = True
        n_rows += x.shape[0]
        log.append(inertia / weight if weight > 0 else 0.0, weight, shift, len(moved))
        if rules.stop_early:
            track_convergence(state, rules, log.inertia[-1], shift)
            if state.stopped:
                break
        else:
            state.n_steps += 1
    return ChunkResult(state, log, n_rows, reassigned)


def merge_rounds(previous: ChunkResult, parts: list[ChunkResult], rules: StepRules) -> ChunkResult:
    """Combine chunks run in parallel from the same state ``previous.state``.

    Without reassignment a step only adds to ``counts_j * centers_j`` the weighted sum of the
    rows it gave center ``j``, so each part's contribution is the difference
    ``counts_j' centers_j' - counts_j centers_j``; the merged center is the sum of all these
    over the merged count, exactly as if every batch of the round had been absorbed. A center
    that a part reassigned is taken from the first such part (in chunk order). The early
    stopping tracker then replays the parts' steps interleaved (step 1 of each part, then
    step 2, ...), so the decision does not depend on which part finished first.
    """
    start = previous.state
    c0 = start.centers.astype(np.float64)
    n0 = start.counts
    k = c0.shape[0]
    owner = np.full(k, -1)
    for i, p in enumerate(parts):
        owner[(owner < 0) & p.reassigned] = i
    total = c0 * n0[:, None]
    counts = n0.copy()
    free = owner < 0
    for p in parts:
        n_p = p.state.counts
        total[free] += p.state.centers[free].astype(np.float64) * n_p[free, None] - c0[free] * n0[free, None]
        counts[free] += n_p[free] - n0[free]
    centers = start.centers.copy()
    hit = free & (counts > 0)
    centers[hit] = (total[hit] / counts[hit, None]).astype(centers.dtype)
    for j in np.flatnonzero(~free):
        centers[j] = parts[owner[j]].state.centers[j]
        counts[j] = parts[owner[j]].state.counts[j]
    state = MiniBatchState(centers, counts, min((p.state.n_since_reassign for p in parts), default=0.0),
                           start.n_steps, start.ewa, start.ewa_min, start.no_improvement, start.stopped)
    log = StepLog()
    for j in range(max((len(p.log) for p in parts), default=0)):
        for p in parts:
            if j < len(p.log):
                log.append(p.log.inertia[j], p.log.weight[j], p.log.shift[j], p.log.n_reassigned[j])
                track_convergence(state, rules, p.log.inertia[j], p.log.shift[j])
    return ChunkResult(state, log, sum(p.n_rows for p in parts), owner >= 0)


def partial_fit_kernel(
    block: np.ndarray,
    sample_weight: np.ndarray | None,
    state: MiniBatchState,
    affine: Affine,
    reassignment_ratio: float,
    seed: tuple[int, int],
    with_inertia: bool,
) -> tuple[MiniBatchState, float | None]:
    """One step on a whole batch (``partial_fit``), then optionally its inertia against the
    updated centers. ``seed = (entropy, step)`` seeds the reassignment draws."""
    state = state.copy()
    dtype = state.centers.dtype
    x = gather_rows(block, slice(None), dtype, affine)
    x_sq = _checked_sq_norms(x, np.arange(x.shape[0]), ChunkInfo(0, 0))
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    rng = chunk_rng(seed[0], TAG_PARTIAL, seed[1])
    minibatch_step(x, w, state, reassignment_ratio, rng, reassign=due_for_reassignment(state, x.shape[0]), x_sq=x_sq)
    state.n_steps += 1
    inertia = None
    if with_inertia:
        _, min_sq = _nearest(x, x_sq, state.centers)
        inertia = float(min_sq.sum() if w is None else min_sq @ w)
    return state, inertia


# --------------------------------------------------------------------------- labels


@dataclass
class LabelsInertia:
    """Labels of some rows (in order) and their weighted inertia."""

    labels: np.ndarray  # (n_rows,) int32
    inertia: float


def labels_inertia_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: AssignParams
) -> LabelsInertia:
    """Nearest center of each row and the block's inertia, in one read of the block.

    For eager (in-memory) input only, where an (n_samples,) result on the client is fine:
    ``labels_`` and ``inertia_`` then cost one pass instead of two.
    """
    table = A.CenterTable.of(params.affine.to_storage_space(params.centers))
    labels, min_sq = A.nearest(block, table, chunk)
    min_sq *= params.affine.sq_scale
    inertia = float(min_sq.sum() if sample_weight is None else min_sq @ np.asarray(sample_weight, dtype=np.float64))
    return LabelsInertia(labels.astype(np.int32), inertia)


def combine_labels_inertia(parts: list[LabelsInertia]) -> LabelsInertia:
    """Concatenate labels in chunk order and add the inertias."""
    return LabelsInertia(np.concatenate([p.labels for p in parts]), float(sum(p.inertia for p in parts)))
