"""Lloyd iterations as passes: assign, sum, relocate empty clusters, average.

The update follows scikit-learn's ``_kmeans_single_lloyd`` step for step, so that from the
same initial centers the same centers, inertia and iteration count come out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial

import dask.array as da
import numpy as np

from ..data import RowData
from ..engine import tree_reduce
from ..kernels import kmeans as K
from ..progress import IterationReport, report

logger = logging.getLogger(__name__)


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


def lloyd(
    data: RowData,
    weights: da.Array | None,
    centers: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    owner: str = "KMeans",
) -> LloydResult:
    """Lloyd's algorithm from ``centers`` (shape (n_clusters, n_features)).

    ``tol`` is relative, as in scikit-learn: the absolute threshold on the squared center shift
    is ``tol`` times the mean per-feature variance of the data, computed during the first pass.

    Data passes: one per iteration, plus one to compute the final inertia unless the last
    iteration left the centers unchanged.
    """
    k = centers.shape[0]
    centers = np.asarray(centers, dtype=data.dtype)
    tol_abs = 0.0
    changed = True
    i = 0
    for i in range(max_iter):
        t0 = time.perf_counter()
        params = K.LloydParams(centers, data.affine, n_far=k, moments=(i == 0 and tol > 0))
        stats = tree_reduce(data, K.lloyd_kernel, params, partial(K.combine_lloyd, n_far=k), weights=weights)
        if i == 0 and stats.moments is not None:
            tol_abs = float(np.mean(stats.moments.var)) * tol
        assigned = stats.weight_in_clusters.copy()
        n_empty = relocate_empty_clusters(stats)
        if n_empty:
            logger.info("iteration %d: relocated %d empty cluster(s) to far points", i + 1, n_empty)
        wic = stats.weight_in_clusters
        new = stats.sums.copy()
        nz = wic > 0
        new[nz] /= wic[nz, None]
        new = new.astype(data.dtype)
        shift = float(((new.astype(np.float64) - centers) ** 2).sum())
        report(IterationReport(owner, "fit", i + 1, max_iter, time.perf_counter() - t0, data.n_samples,
                               {"inertia": stats.inertia, "shift": shift}))
        changed = bool((new != centers).any())
        centers = new
        if not changed:
            logger.info("Converged at iteration %d: strict convergence.", i + 1)
            return LloydResult(centers, stats.inertia, i + 1, assigned)
        if shift <= tol_abs:
            logger.info("Converged at iteration %d: center shift %g within tolerance %g.", i + 1, shift, tol_abs)
            break
    final = tree_reduce(data, K.assign_stats_kernel, K.AssignParams(centers, data.affine), K.combine_assign, weights=weights)
    return LloydResult(centers, final.inertia, i + 1, final.weight_in_clusters)
