"""Initial parameters of a mixture, as scikit-learn defines them, from passes over the data.

scikit-learn turns initial responsibilities into parameters with one M-step:

* ``'kmeans'``: one-hot at the labels of a k-means fit: here the distributed
  :class:`daskcluster.KMeans` (``n_init=1``), then one pass that assigns each row to its
  nearest center and returns the M-step statistics;
* ``'random'``: uniform random responsibilities normalized per row: one pass, each chunk
  drawing from ``SeedSequence(entropy, spawn_key=(0, chunk.index))``;
* ``'random_from_data'``: one-hot at ``n_components`` distinct rows drawn at random (those
  rows are read, nothing else); every other row has zero responsibility;
* ``'k-means++'``: the same at the rows chosen by greedy k-means++ (one pass per component).

The parameters of several covariance types come from the same responsibilities in the same
pass (model selection shares it). ``weights_init``, ``means_init`` and ``precisions_init``
replace what they give, as in scikit-learn; with all three no pass is made.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..cluster import KMeans
from ..cluster._init import kmeans_plusplus_distributed
from ..data import RowData, Scaled
from ..engine import take_rows, tree_reduce
from ..kernels import mixture as K
from ._covariance import CHOLESKY_FROM_PRECISIONS, NK_GUARD, precision_cholesky
from ._em import Estimates, GaussianModel, estimate_parameters

logger = logging.getLogger(__name__)

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


def _source(data: RowData) -> Any:
    """The data as :class:`daskcluster.KMeans` accepts them (its own compute dtype)."""
    if data.affine.is_identity:
        return data.array
    return Scaled(data.array, data.affine.scale, data.affine.offset)


def _seed(rs: np.random.RandomState) -> int:
    return int(rs.randint(np.iinfo(np.int32).max))


def _from_pass(
    data: RowData, kinds: tuple[str, ...], params: K.HardInitParams | K.RandomInitParams, label: str
) -> dict[str, K.MixtureStats]:
    kernel = K.hard_init_kernel if isinstance(params, K.HardInitParams) else K.random_init_kernel
    stats = tree_reduce(data, kernel, params, K.combine_stats, label=label)
    return dict(zip(kinds, stats))


def _one_hot_rows(rows: np.ndarray, kinds: tuple[str, ...]) -> dict[str, K.MixtureStats]:
    """Statistics of responsibilities one-hot at ``rows`` (one row per component)."""
    k, d = rows.shape
    out = {}
    for kind in kinds:
        st = K.MixtureStats.empty(kind, k, d)
        out[kind] = K.MixtureStats(kind, k, 0.0, np.ones(k), rows.astype(np.float64), st.m2)
    return out


def _tied_at_rows(data: RowData, rows: np.ndarray, reg_covar: float) -> np.ndarray:
    """scikit-learn's tied covariance when only ``rows`` have responsibilities: its formula
    ``(X^T X - sum nk means means^T) / sum nk`` takes ``X^T X`` over *all* rows. One pass."""
    d = data.n_features
    center = np.zeros(d)
    params = K.HardInitParams(np.zeros((1, d)), ("tied",), center, data.affine)
    total = tree_reduce(data, K.hard_init_kernel, params, K.combine_stats, label="gmm-init-moments")[0]
    mean = total.means[0]
    xtx = total.m2 + total.nk[0] * np.outer(mean, mean)
    nk = 1.0 + NK_GUARD
    means = rows / nk
    cov: np.ndarray = (xtx - nk * means.T @ means) / (nk * rows.shape[0])
    cov = 0.5 * (cov + cov.T)
    cov[np.diag_indices(d)] += reg_covar
    return cov


def responsibility_estimates(
    data: RowData,
    n_components: int,
    covariance_types: tuple[str, ...],
    init_params: str,
    reg_covar: float,
    rs: np.random.RandomState,
    *,
    owner: str = "GaussianMixture",
) -> dict[str, Estimates]:
    """Initial weights (``nk``), means and covariances of each covariance type, from the
    responsibilities ``init_params`` defines.

    Data passes: ``'kmeans'``: those of ``KMeans`` + 1; ``'random'``: 1;
    ``'random_from_data'``: 0 (+1 for ``'tied'``); ``'k-means++'``: ``n_components`` (+1 for ``'tied'``).
    """
    kinds = tuple(sorted({K.STATS_KIND[t] for t in covariance_types}))
    d = data.n_features
    if init_params in ("kmeans", "random"):
        if init_params == "kmeans":
            km = KMeans(n_components, n_init=1, random_state=rs, cache=False).fit(_source(data))
            centers = km.cluster_centers_.astype(np.float64)
            center = centers.mean(axis=0)
            stats = _from_pass(data, kinds, K.HardInitParams(centers, kinds, center, data.affine), "gmm-init-kmeans")
        else:
            center = np.zeros(d)
            params = K.RandomInitParams(n_components, kinds, center, data.affine, _seed(rs), 0)
            stats = _from_pass(data, kinds, params, "gmm-init-random")
        return {t: estimate_parameters(stats[K.STATS_KIND[t]], center, t, reg_covar) for t in covariance_types}
    if init_params == "random_from_data":
        index = rs.choice(data.n_samples, size=n_components, replace=False)
        rows = take_rows(data, index)
    else:
        rows = kmeans_plusplus_distributed(data, None, n_components, entropy=_seed(rs), n_local_trials=None,
                                           owner=owner)
    rows = np.asarray(rows, dtype=np.float64)
    stats = _one_hot_rows(rows, kinds)
    out = {t: estimate_parameters(stats[K.STATS_KIND[t]], np.zeros(d), t, reg_covar) for t in covariance_types}
    if "tied" in out:
        out["tied"].covariances = _tied_at_rows(data, rows, reg_covar)
    return out


def initial_model(
    data: RowData,
    covariance_type: str,
    estimates: Estimates | None,
    *,
    weights_init: np.ndarray | None,
    means_init: np.ndarray | None,
    precisions_init: np.ndarray | None,
) -> GaussianModel:
    """The initial model: the estimates, with what the user gave in their place (scikit-learn's
    ``_initialize``). Raises :class:`CollapsedComponentError` when a covariance estimated from
    the initial responsibilities is not positive definite."""
    if estimates is None:
        assert weights_init is not None and means_init is not None and precisions_init is not None
    weights = weights_init if weights_init is not None else estimates.nk / data.n_samples  # type: ignore[union-attr]
    means = means_init if means_init is not None else estimates.means  # type: ignore[union-attr]
    if precisions_init is not None:
        return GaussianModel(covariance_type, np.array(weights, dtype=np.float64), np.array(means, dtype=np.float64),
                             None, CHOLESKY_FROM_PRECISIONS[covariance_type](precisions_init))
    assert estimates is not None
    cov = estimates.covariances
    return GaussianModel(covariance_type, np.array(weights, dtype=np.float64), np.array(means, dtype=np.float64),
                         cov, precision_cholesky(cov, covariance_type))
