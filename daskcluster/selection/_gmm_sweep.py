"""``gmm_sweep``: Gaussian mixtures over a grid of components and covariance types, scored."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from ..data import CachePolicy, cached
from ..engine import count_passes
from ..mixture._gaussian_mixture import as_mixture_data
from ..mixture._selection import grid_table
from ..params import check_int
from ._scores import add_dispersion, label_sums, sampled_silhouettes

logger = logging.getLogger(__name__)

OWNER = "gmm_sweep"


def gmm_sweep(
    X: Any,
    n_components: Iterable[int] | int = range(1, 7),
    covariance_type: Iterable[str] | str = ("full", "tied", "diag", "spherical"),
    *,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    init_params: str = "kmeans",
    random_state: Any = None,
    silhouette_sample_size: int | None = 10_000,
    scores: bool = True,
    cache: CachePolicy = "auto",
) -> Any:
    """Fit a :class:`~daskcluster.GaussianMixture` for every pair of ``n_components`` and
    ``covariance_type``, all at once, and score each.

    The models run EM in lockstep (see :func:`daskcluster.mixture.gmm_bic_table`): each pass
    over the data serves every model still iterating, so the sweep costs about as many passes
    as its longest fit, not one fit's passes per model. Then two passes score every model's
    hard labels (its most probable component) with the Calinski-Harabasz and Davies-Bouldin
    indices, and one read of a seeded sample gives every model's silhouette.

    Parameters
    ----------
    X : array-like, dask array, zarr array, path or Scaled of shape (n_samples, n_features)
    n_components : int or iterable of int, default=range(1, 7)
    covariance_type : str or iterable of str, default=('full', 'tied', 'diag', 'spherical')
    tol, reg_covar, max_iter, init_params, random_state, cache
        As :class:`~daskcluster.GaussianMixture` (``n_init=1``); with an int ``random_state``
        each model is the one ``GaussianMixture(...).fit(X)`` gives with the same parameters.
    silhouette_sample_size : int or None, default=10_000
        Rows of the seeded sample the silhouette is computed on (see
        :func:`daskcluster.metrics.silhouette_score`).
    scores : bool, default=True
        Compute the silhouette, Calinski-Harabasz and Davies-Bouldin columns (two passes and a
        sample read); False leaves them NaN. A model with one component has no such scores.

    Returns
    -------
    pandas.DataFrame
        The table of :func:`~daskcluster.mixture.gmm_bic_table` (``n_components``,
        ``covariance_type``, ``bic``, ``aic``, ``log_likelihood``, ``lower_bound``, ``n_iter``,
        ``converged``, ``n_parameters``, ``error``, ``fit_time``, ``model``, ``best`` = least
        BIC) with ``silhouette``, ``calinski_harabasz`` and ``davies_bouldin`` added.
        ``table.attrs``: ``best_model`` (least BIC), ``passes``, ``seconds``.
        Data passes: the initializations + the longest EM run + 1 (the scores of the
        likelihood), + 2 with ``scores``.
    """
    check_int(OWNER, "silhouette_sample_size", silhouette_sample_size, 2, allow_none=True)
    data = as_mixture_data(X, owner=OWNER, min_samples=2)
    t0 = time.perf_counter()
    with count_passes() as counter, cached(data, cache) as work:
        table = grid_table(work, n_components, covariance_type, tol=tol, reg_covar=reg_covar, max_iter=max_iter,
                           init_params=init_params, random_state=random_state, cache=cache, owner=OWNER)
        for column in ("silhouette", "calinski_harabasz", "davies_bouldin"):
            table[column] = math.nan
        scored = [i for i in table.index if table.at[i, "model"] is not None and table.at[i, "n_components"] > 1]
        if scores and scored:
            models = [table.at[i, "model"] for i in scored]
            params = [gm._params() for gm in models]
            found = label_sums(work, [], params)
            add_dispersion(work, [], params, found)
            silhouettes = sampled_silhouettes(work, [], models, sample_size=silhouette_sample_size,
                                              random_state=random_state)
            for i, sc, sil in zip(scored, found, silhouettes):
                table.at[i, "calinski_harabasz"] = sc.calinski_harabasz
                table.at[i, "davies_bouldin"] = sc.davies_bouldin
                table.at[i, "silhouette"] = sil
    table.attrs.update(passes=counter.passes, seconds=time.perf_counter() - t0)
    logger.info("%s: %d models in %d passes, %.2fs", OWNER, len(table), counter.passes, table.attrs["seconds"])
    return table
