"""Model selection for Gaussian mixtures: BIC and AIC over a grid, the models fitted together.

All the models of the grid run EM in lockstep, so each pass over the data serves every model
still iterating; the initial responsibilities of a number of components are shared by all
covariance types, and one last pass scores every model.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from contextlib import ExitStack
from typing import Any

import numpy as np

from ..data import CachePolicy, RowData, cached
from ..engine import tree_reduce
from ..errors import InvalidDataError
from ..kernels import mixture as K
from ..params import check_int, check_options, check_random_state, check_value_list
from ._covariance import CollapsedComponentError, covariance_of
from ._em import EMRun, run_em
from ._gaussian_mixture import GaussianMixture, as_mixture_data
from ._init import initial_model, responsibility_estimates

logger = logging.getLogger(__name__)

OWNER = "gmm_bic_table"


def gmm_bic_table(
    X: Any,
    n_components: Iterable[int] | int = (1, 2, 3, 4, 5, 6),
    covariance_type: Iterable[str] | str = ("full", "tied", "diag", "spherical"),
    *,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    init_params: str = "kmeans",
    random_state: Any = None,
    cache: CachePolicy = "auto",
) -> Any:
    """Fit a :class:`GaussianMixture` for each pair of ``n_components`` and ``covariance_type``
    and tabulate BIC, AIC and the lower bound.

    The models are fitted together: per number of components one initialization (e.g. one
    ``KMeans`` fit and one pass) serves every covariance type, then every EM iteration is one
    pass for all models still iterating, and one last pass computes every model's
    log-likelihood. A model whose component collapses is reported with its error (and NaN
    criteria) instead of stopping the others.

    Parameters
    ----------
    X : array-like, dask array, zarr array, path or Scaled of shape (n_samples, n_features)
    n_components : int or iterable of int, default=(1, 2, 3, 4, 5, 6)
    covariance_type : str or iterable of str, default=('full', 'tied', 'diag', 'spherical')
    tol, reg_covar, max_iter, init_params, random_state, cache
        As for :class:`GaussianMixture` (``n_init=1``). With an int ``random_state`` each model
        is the one ``GaussianMixture(n_components=k, covariance_type=t, random_state=random_state,
        ...).fit(X)`` gives.

    Returns
    -------
    pandas.DataFrame
        One row per model, in grid order, with columns ``n_components``, ``covariance_type``,
        ``bic``, ``aic``, ``log_likelihood`` (mean, final parameters), ``lower_bound``,
        ``n_iter``, ``converged``, ``n_parameters``, ``error``, ``fit_time`` (seconds from the start
        until the model's last iteration; the models share passes, so these overlap), ``model`` (the fitted
        :class:`GaussianMixture`) and ``best`` (least BIC). ``table.attrs["best_model"]`` is
        the model of least BIC.
        Data passes: the initializations + ``max(n_iter)`` + 1.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster.mixture import gmm_bic_table
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(8, 1, (200, 2))])
    >>> table = gmm_bic_table(X, n_components=[1, 2, 3], covariance_type=["full", "spherical"], random_state=0)
    >>> int(table.attrs["best_model"].n_components)
    2
    """
    return grid_table(as_mixture_data(X, owner=OWNER, min_samples=2), n_components, covariance_type, tol=tol,
                      reg_covar=reg_covar, max_iter=max_iter, init_params=init_params, random_state=random_state,
                      cache=cache)


def grid_table(
    data: RowData,
    n_components: Iterable[int] | int,
    covariance_type: Iterable[str] | str,
    *,
    tol: float,
    reg_covar: float,
    max_iter: int,
    init_params: str,
    random_state: Any,
    cache: CachePolicy,
    owner: str = OWNER,
) -> Any:
    """:func:`gmm_bic_table` on data already prepared by
    :func:`~daskcluster.mixture._gaussian_mixture.as_mixture_data` (and possibly cached)."""
    import pandas as pd

    ks = [int(check_int(owner, "n_components", k, 1) or 0) for k in check_value_list(owner, "n_components", n_components)]
    types = [check_options(owner, "covariance_type", t, K.COVARIANCE_TYPES)
             for t in check_value_list(owner, "covariance_type", covariance_type)]
    ks, types = list(dict.fromkeys(ks)), list(dict.fromkeys(types))
    template = GaussianMixture(tol=tol, reg_covar=reg_covar, max_iter=max_iter, init_params=init_params,
                               random_state=random_state, cache=cache)
    template._check_params()
    if data.n_samples < max(ks):
        raise InvalidDataError(f"n_samples={data.n_samples} should be >= n_components={max(ks)}.")
    rs = check_random_state(owner, random_state)
    t_start = time.perf_counter()
    grid = [(k, t) for k in ks for t in types]
    runs: dict[tuple[int, str], EMRun] = {}
    errors: dict[tuple[int, str], str] = {}
    with ExitStack() as stack:
        work = stack.enter_context(cached(data, cache))
        for k in ks:
            if isinstance(random_state, (int, np.integer)):
                rs = check_random_state(owner, random_state)  # each k as GaussianMixture would seed it
            estimates = responsibility_estimates(work, k, tuple(types), init_params, reg_covar, rs, owner=owner)
            for t in types:
                try:
                    model = initial_model(work, t, estimates[t], weights_init=None, means_init=None,
                                          precisions_init=None)
                except CollapsedComponentError as exc:
                    errors[(k, t)] = str(exc)
                    continue
                runs[(k, t)] = EMRun(model, reg_covar, tol, max_iter)
        keys = list(runs)
        if max_iter > 0:
            run_em(work, [runs[key] for key in keys], owner=owner, on_error="record")
        ok = [key for key in keys if runs[key].error is None]
        for key in keys:
            if runs[key].error is not None:
                errors[key] = str(runs[key].error)
        scores: dict[tuple[int, str], float] = {}
        if ok:
            params = K.EMParams(tuple(runs[key].model.kernel_params() for key in ok), work.affine)
            total = tree_reduce(work, K.loglik_kernel, params, K.combine_loglik, label="gmm-bic-score")
            scores = {key: float(s / total.n_rows) for key, s in zip(ok, total.sums)}
    n = data.n_samples
    rows = []
    for k, t in grid:
        p = covariance_of(t).n_parameters(k, data.n_features)
        row: dict[str, Any] = {"n_components": k, "covariance_type": t, "bic": math.nan, "aic": math.nan,
                               "log_likelihood": math.nan, "lower_bound": math.nan, "n_iter": 0, "converged": False,
                               "n_parameters": p, "error": errors.get((k, t)), "fit_time": math.nan,
                               "model": None}
        if (k, t) in scores:
            run = runs[(k, t)]
            ll = scores[(k, t)]
            gm = GaussianMixture(k, covariance_type=t, tol=tol, reg_covar=reg_covar, max_iter=max_iter,
                                 init_params=init_params, random_state=random_state, cache=cache)
            gm._set_fitted(run, run.lower_bound if max_iter > 0 else -math.inf, data.n_features)
            row.update(bic=-2 * ll * n + p * math.log(n), aic=-2 * ll * n + 2 * p, log_likelihood=ll,
                       lower_bound=gm.lower_bound_, n_iter=run.n_iter, converged=gm.converged_, model=gm,
                       fit_time=(run.finished_at if max_iter > 0 else time.perf_counter()) - t_start)
        rows.append(row)
    table = pd.DataFrame(rows)
    table["best"] = False
    if table["bic"].notna().any():
        best = int(table["bic"].idxmin())
        table.loc[best, "best"] = True
        table.attrs["best_model"] = table.loc[best, "model"]
    else:
        table.attrs["best_model"] = None
    return table
