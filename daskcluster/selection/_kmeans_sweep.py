"""``kmeans_sweep``: k-means for many numbers of clusters, every model in each pass."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable
from contextlib import ExitStack
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..cluster import KMeans
from ..cluster._centers import n_runs
from ..cluster._driver import Run, final_stats, lockstep
from ..cluster._init import DEFAULT_ROUNDS, EXTRA_ROUNDS, INITS
from ..data import CachePolicy, RowData, as_row_data, cached
from ..engine import count_passes, map_rows
from ..errors import InvalidParameterError
from ..kernels import kmeans as K
from ..params import (
    Interval,
    StrOptions,
    check_int_grid,
    check_random_state,
    validate_params,
)
from ..progress import IterationReport, progress_hook, report
from ._elbow import find_elbow
from ._scores import (
    add_dispersion,
    check_grid,
    sampled_silhouettes,
    scores_of,
)

logger = logging.getLogger(__name__)

OWNER = "kmeans_sweep"

#: The parameters of :func:`kmeans_sweep` that KMeans does not check for it (an array ``init``
#: would need one per number of clusters).
_CONSTRAINTS: dict[str, list[Any]] = {
    "init": [StrOptions(INITS)],
    "silhouette_sample_size": [Interval(Integral, 2, None, closed="left"), None],
}


def kmeans_sweep(
    X: Any,
    n_clusters: Iterable[int] | int = range(2, 11),
    *,
    init: str = "k-means||",
    n_init: str | int = "auto",
    max_iter: int = 300,
    tol: float = 1e-4,
    random_state: Any = None,
    oversampling_factor: float = 2.0,
    init_max_iter: int | None = None,
    algorithm: str = "lloyd",
    silhouette_sample_size: int | None = 10_000,
    scores: bool = True,
    cache: CachePolicy = "auto",
    verbose: int = 0,
) -> Any:
    """Fit :class:`~daskcluster.KMeans` for every number of clusters in ``n_clusters``, all at once.

    Every model's seeding and Lloyd iterations run in lockstep: each pass over the data casts a
    slice of rows once and multiplies it by the centers of *all* models still running, stacked
    into one matrix (one GEMM), and each model takes its columns of the product. So a sweep
    over ten values of k costs about as many passes as its longest single fit, not ten times
    as many: the passes of the longest fit, plus two passes that score every model
    (Calinski-Harabasz and Davies-Bouldin), plus one read of the silhouette's sampled rows.

    Parameters
    ----------
    X : array-like, memmap, dask array, zarr array, path or Scaled of shape (n_samples, n_features)
    n_clusters : int or iterable of int, default=range(2, 11)
        The numbers of clusters to fit (duplicates are fitted once).
    init : {'k-means||', 'k-means++', 'random'}, default='k-means||'
        Seeding, as :class:`~daskcluster.KMeans`; every model's seeding passes are shared too
        (k-means++ costs one pass per center of the largest k).
    n_init, max_iter, tol, oversampling_factor, init_max_iter, algorithm, cache, verbose
        As :class:`~daskcluster.KMeans`; every run of every model shares the passes (with
        ``algorithm='elkan'`` each run keeps its own bounds beside the chunks).
    random_state : int, RandomState instance or None, default=None
        With an int, the model for ``k`` is the one ``KMeans(n_clusters=k, random_state=...)``
        fits with the same parameters (up to the rounding of sums taken in a different order).
    silhouette_sample_size : int or None, default=10_000
        Rows of the seeded sample on which the silhouette is exact (see
        :func:`daskcluster.metrics.silhouette_score`; its error bound is
        :func:`daskcluster.metrics.silhouette_error_bound`); None: all rows (quadratic).
    scores : bool, default=True
        Compute the silhouette, Calinski-Harabasz and Davies-Bouldin columns (two passes and a
        sample read); False leaves them NaN.

    Returns
    -------
    pandas.DataFrame
        One row per number of clusters, increasing, with columns ``n_clusters``, ``inertia``,
        ``silhouette``, ``calinski_harabasz``, ``davies_bouldin``, ``n_iter``, ``fit_time``
        (seconds from the start of the sweep until that model's last iteration: models share
        passes, so these overlap), ``model`` (the fitted :class:`~daskcluster.KMeans`; its
        ``labels_`` is a lazy Dask array, one pass when computed), ``elbow`` and ``best``.
        ``table.attrs`` holds ``elbow`` (the k at the elbow of the inertia curve, see
        :func:`find_elbow`, or None), ``best_model`` (the model of greatest silhouette, or of the
        elbow when scores are off), ``passes`` (full passes the sweep made) and ``seconds``.
        Data passes: those of the longest fit (seeding + Lloyd iterations), plus 2 for the
        scores (1 without them, for the final inertia).

    Examples
    --------
    >>> from daskcluster.datasets import make_blobs
    >>> from daskcluster.selection import kmeans_sweep
    >>> X, _, _ = make_blobs(3000, n_features=2, centers=4, random_state=0, chunk_rows=1000)
    >>> table = kmeans_sweep(X, n_clusters=range(2, 8), random_state=0, silhouette_sample_size=1000)
    >>> int(table.attrs["elbow"])
    4
    """
    import pandas as pd

    ks = check_int_grid(OWNER, "n_clusters", n_clusters, 1)
    try:
        validate_params(_CONSTRAINTS, {"init": init, "silhouette_sample_size": silhouette_sample_size}, OWNER)
    except InvalidParameterError as exc:
        if exc.param != "init":
            raise
        raise InvalidParameterError(
            f"{exc} (Explicit initial centers differ for each number of clusters: fit KMeans(init=array) per k.)",
            param="init") from None
    data = as_row_data(X, owner=OWNER, min_samples=2)
    check_grid("n_clusters", ks, data.n_samples, OWNER)
    templates = {k: KMeans(k, init=init, n_init=n_init, max_iter=max_iter, tol=tol, random_state=random_state,
                           oversampling_factor=oversampling_factor, init_max_iter=init_max_iter, algorithm=algorithm,
                           cache=cache)
                 for k in ks}
    for template in templates.values():
        template._check_params(data)
    n_inits = {k: n_runs(tm, 10) for k, tm in templates.items()}
    runs: list[Run] = []
    rs = check_random_state(OWNER, random_state)
    for k in ks:
        if isinstance(random_state, (int, np.integer)):
            rs = check_random_state(OWNER, random_state)  # as KMeans(random_state=...) seeds each fit
        for entropy in rs.randint(np.iinfo(np.int32).max, size=n_inits[k]):
            runs.append(Run(k, int(entropy), "", key=len(runs), bounded=algorithm == "elkan"))
    t0 = time.perf_counter()
    with ExitStack() as stack:
        if verbose:
            stack.enter_context(progress_hook(lambda rep: print(rep.format())))
        counter = stack.enter_context(count_passes())
        work = stack.enter_context(cached(data, cache))
        for run in runs:
            run.start(work, None, init, oversampling_factor=oversampling_factor, rounds=init_max_iter)
        bound = max_iter + 1 + {"random": 0, "k-means++": max(ks)}.get(init, (init_max_iter or DEFAULT_ROUNDS)
                                                                         + EXTRA_ROUNDS)
        for done in lockstep(work, runs, weights=None, tol=tol, max_iter=max_iter, label="kmeans-sweep"):
            for step in done.steps:
                if step.run.phase == "done":
                    step.run.finished_at = time.perf_counter() - t0
            report(IterationReport(OWNER, "fit", done.number, bound, done.seconds, data.n_samples,
                                   {"models": float(len(done.steps)), "done": float(sum(r.phase == "done" for r in runs))}))
        rows = _table_rows(data, work, runs, ks, templates, scores, silhouette_sample_size, random_state)
    seconds = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    elbow = find_elbow(table["n_clusters"], table["inertia"])
    table["elbow"] = table["n_clusters"] == elbow
    if table["silhouette"].notna().any():
        best = int(table["silhouette"].idxmax())
    else:
        best = int(table.index[table["elbow"]][0]) if elbow is not None else int(table["inertia"].idxmin())
    table["best"] = table.index == best
    table.attrs.update(elbow=elbow, best_model=table.loc[best, "model"], passes=counter.passes, seconds=seconds)
    logger.info("%s: %d models in %d passes, %.2fs; elbow at k=%s", OWNER, len(runs), counter.passes, seconds, elbow)
    return table


def _table_rows(data: RowData, work: RowData, runs: list[Run], ks: list[int], templates: dict[int, KMeans],
                scores: bool, sample_size: int | None, random_state: Any) -> list[dict[str, Any]]:
    """Keep each k's run of least inertia, score the kept models, build their estimators."""
    final = [(part.inertia, scores_of(part.weight_in_clusters, part.sums)) for part in final_stats(work, None, runs)]
    kept: dict[int, int] = {}
    for j, run in enumerate(runs):
        if run.k not in kept or final[j][0] < final[kept[run.k]][0]:
            kept[run.k] = j
    order = [kept[k] for k in ks]
    centers = [runs[j].state.centers for j in order]  # type: ignore[union-attr]
    kept_scores = [final[j][1] for j in order]
    silhouettes = [float("nan")] * len(order)
    if scores:
        add_dispersion(work, centers, [], kept_scores)
        silhouettes = sampled_silhouettes(work, centers, [], sample_size=sample_size, random_state=random_state)
    rows = []
    for k, j, sc, sil in zip(ks, order, kept_scores, silhouettes):
        run = runs[j]
        assert run.state is not None
        model = templates[k]
        model.cluster_centers_ = run.state.centers
        model.inertia_ = float(final[j][0])
        model.n_iter_ = int(run.state.n_iter)
        model.n_features_in_ = data.n_features
        model.labels_ = map_rows(data, K.labels_kernel, (run.state.centers, data.affine), dtype=np.int32,
                                 label="labels")
        n_distinct = int((sc.counts > 0).sum())
        if n_distinct < k:
            warnings.warn(f"Number of distinct clusters ({n_distinct}) found smaller than n_clusters ({k}). "
                          "Possibly due to duplicate points in X.", ConvergenceWarning, stacklevel=3)
        rows.append({"n_clusters": k, "inertia": model.inertia_, "silhouette": sil,
                     "calinski_harabasz": sc.calinski_harabasz, "davies_bouldin": sc.davies_bouldin,
                     "n_iter": model.n_iter_, "fit_time": run.finished_at, "model": model})
    return rows
