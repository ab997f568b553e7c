"""The client's half of a Lloyd iteration: relocate empty clusters, average, test convergence.

The update follows scikit-learn's ``_kmeans_single_lloyd`` step for step, so that from the
same initial centers the same centers, inertia and iteration count come out. The passes are
made by :mod:`daskcluster.cluster._driver`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..kernels import kmeans as K

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
