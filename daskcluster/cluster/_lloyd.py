"""Lloyd iterations as passes: assign, sum, relocate empty clusters, average.

The update follows scikit-learn's ``_kmeans_single_lloyd`` step for step, so that from the
same initial centers the same centers, inertia and iteration count come out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import dask.array as da
import numpy as np

from ..data import RowData
from ..engine import rowstate, tree_reduce
from ..kernels import bounds as B
from ..kernels import kmeans as K
from ..progress import IterationReport, report

logger = logging.getLogger(__name__)


@dataclass
class LloydState:
    """Where a run of Lloyd iterations stands after ``n_iter`` iterations.

    ``converged`` is ``"strict"`` when the last iteration left the centers unchanged (then
    ``inertia`` and ``weight_in_clusters`` are final), ``"tol"`` when the shift fell within the
    tolerance, ``None`` while running. ``tol_abs`` is None until the first pass measured the
    data's variance.
    """

    centers: np.ndarray
    n_iter: int = 0
    tol_abs: float | None = None
    converged: str | None = None
    inertia: float = float("nan")
    weight_in_clusters: np.ndarray | None = None


@dataclass
class LloydResult:
    """Outcome of one run of Lloyd iterations."""

    centers: np.ndarray
    inertia: float
    n_iter: int
    weight_in_clusters: np.ndarray


def relocate_empty_clusters(stats: K.LloydStats) -> int:
    """Give each empty cluster one of the points farthest from its center, in place.

    As scikit-learn does: the point leaves its old cluster's sums and weight and becomes the
    empty cluster's only member (never the origin). Returns the number of empty clusters.
    """
    empty = np.flatnonzero(stats.weight_in_clusters == 0)
    far = stats.far
    for j, idx in zip(empty, range(min(len(empty), len(far.index)))):
        w = far.weight[idx]
        row = far.rows[idx].astype(np.float64) * w
        old = far.label[idx]
        stats.sums[old] -= row
        stats.sums[j] = row
        stats.weight_in_clusters[j] = w
        stats.weight_in_clusters[old] -= w
    return len(empty)


@dataclass
class Bounds:
    """The client's side of a bounded (``algorithm='elkan'``) run: the key of the chunks' state,
    the number of the next pass and the centers of the last one."""

    token: str
    generation: int = 0
    previous: np.ndarray | None = None


def _step_stats(data: RowData, weights: da.Array | None, state: LloydState, tol: float,
                bounds: Bounds | None) -> tuple[K.LloydStats, float]:
    """The statistics of one Lloyd step from ``state.centers`` (one pass; two when a bounded
    step emptied a cluster) and the fraction of rows whose distances were computed."""
    k = state.centers.shape[0]
    moments = state.tol_abs is None and tol > 0
    if bounds is None:
        params = K.LloydParams(state.centers, data.affine, n_far=k, moments=moments)
        return tree_reduce(data, K.lloyd_kernel, params, partial(K.combine_lloyd, n_far=k), weights=weights), 1.0
    drift = None
    if bounds.previous is not None:
        moved = data.affine.to_storage_space(state.centers).astype(np.float64)
        moved -= data.affine.to_storage_space(bounds.previous)
        drift = np.sqrt(np.einsum("ij,ij->i", moved, moved))
    params = B.BoundsParams(state.centers, data.affine, bounds.generation, drift, n_far=k, moments=moments)
    out = rowstate.tree_reduce_with_state(data, B.bounds_kernel, params, partial(B.combine_bounds, n_far=k),
                                          token=bounds.token, weights=weights, label="kmeans-bounds")
    bounds.generation += 1
    bounds.previous = state.centers
    stats = out.lloyd
    if (stats.weight_in_clusters == 0).any() and not np.isfinite(stats.inertia):
        # relocating an empty cluster needs the farthest points, which only a full pass knows
        params = K.LloydParams(state.centers, data.affine, n_far=k, moments=False)
        stats = tree_reduce(data, K.lloyd_kernel, params, partial(K.combine_lloyd, n_far=k), weights=weights)
    return stats, out.computed / max(1, data.n_samples * k)


def lloyd_step(data: RowData, weights: da.Array | None, state: LloydState, *, tol: float, max_iter: int,
               owner: str, bounds: Bounds | None = None) -> LloydState:
    """One Lloyd iteration (one pass): the state after it. With ``bounds``, rows whose label the
    distance bounds settle are skipped (the same labels, sums and centers)."""
    t0 = time.perf_counter()
    stats, recomputed = _step_stats(data, weights, state, tol, bounds)
    tol_abs = state.tol_abs
    if tol_abs is None:
        tol_abs = float(np.mean(stats.moments.var)) * tol if stats.moments is not None else 0.0
    new = lloyd_update(replace(state, tol_abs=tol_abs), stats, dtype=data.dtype)
    values = {"inertia": stats.inertia, "shift": shift_of(state, new)}
    if bounds is not None:
        values["computed"] = recomputed
    report(IterationReport(owner, "fit", new.n_iter, max_iter, time.perf_counter() - t0, data.n_samples, values))
    return new


def shift_of(old: LloydState, new: LloydState) -> float:
    """Squared shift of the centers between two states."""
    return float(((new.centers.astype(np.float64) - old.centers) ** 2).sum())


def lloyd_update(state: LloydState, stats: K.LloydStats, *, dtype: np.dtype) -> LloydState:
    """The client's half of a Lloyd iteration: relocate empty clusters, average, test convergence.

    ``stats`` are the pass's statistics for ``state.centers`` (modified in place);
    ``state.tol_abs`` must be set. No data pass.
    """
    centers = state.centers
    assigned = stats.weight_in_clusters.copy()
    n_empty = relocate_empty_clusters(stats)
    if n_empty:
        logger.info("iteration %d: relocated %d empty cluster(s) to far points", state.n_iter + 1, n_empty)
    wic = stats.weight_in_clusters
    new = stats.sums.copy()
    nz = wic > 0
    new[nz] /= wic[nz, None]
    new = new.astype(dtype)
    shift = float(((new.astype(np.float64) - centers) ** 2).sum())
    n_iter = state.n_iter + 1
    converged = None
    if not (new != centers).any():
        converged = "strict"
        logger.info("Converged at iteration %d: strict convergence.", n_iter)
    elif shift <= (state.tol_abs or 0.0):
        converged = "tol"
        logger.info("Converged at iteration %d: center shift %g within tolerance %g.", n_iter, shift, state.tol_abs)
    return LloydState(new, n_iter, state.tol_abs, converged, stats.inertia, assigned)


def lloyd(
    data: RowData,
    weights: da.Array | None,
    start: LloydState,
    *,
    max_iter: int,
    tol: float,
    owner: str = "KMeans",
    on_iteration: Callable[[LloydState], None] | None = None,
    algorithm: str = "lloyd",
) -> LloydResult:
    """Lloyd's algorithm from ``start`` (initial centers of shape (n_clusters, n_features), or
    the state a checkpoint saved), until convergence or ``max_iter`` iterations.

    ``tol`` is relative, as in scikit-learn: the absolute threshold on the squared center shift
    is ``tol`` times the mean per-feature variance of the data, computed during the first pass.
    ``on_iteration`` is called with the state after every iteration (for checkpoints).
    ``algorithm='elkan'`` keeps distance bounds beside the chunks (:mod:`daskcluster.kernels.bounds`)
    and skips the rows they settle: the same iterations, far less work once few rows move.

    Data passes: one per iteration, plus one to compute the final inertia unless the last
    iteration left the centers unchanged and its inertia is known (``'elkan'``: plus one for
    an iteration that empties a cluster).
    """
    state = replace(start, centers=np.asarray(start.centers, dtype=data.dtype))
    bounds = Bounds(rowstate.new_token("kmeans-bounds")) if algorithm == "elkan" else None
    try:
        while state.converged is None and state.n_iter < max_iter:
            state = lloyd_step(data, weights, state, tol=tol, max_iter=max_iter, owner=owner, bounds=bounds)
            if on_iteration is not None:
                on_iteration(state)
    finally:
        if bounds is not None:
            rowstate.release(bounds.token)
    if state.converged == "strict" and np.isfinite(state.inertia):
        assert state.weight_in_clusters is not None
        return LloydResult(state.centers, state.inertia, state.n_iter, state.weight_in_clusters)
    final = tree_reduce(data, K.assign_stats_kernel, K.AssignParams(state.centers, data.affine), K.combine_assign,
                        weights=weights)
    return LloydResult(state.centers, final.inertia, state.n_iter, final.weight_in_clusters)
