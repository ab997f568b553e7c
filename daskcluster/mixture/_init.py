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
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cluster import KMeans
from ..cluster._driver import seed
from ..data import RowData, Scaled
from ..engine import take_rows, tree_reduce
from ..kernels import mixture as K
from ._covariance import NK_GUARD, covariance_of
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


@dataclass
class DataMoments:
    """Mean and covariance (``ddof=1``) of all the rows: (d, d), or its diagonal (d,)."""

    n_samples: float
    mean: np.ndarray
    covariance: np.ndarray

    @staticmethod
    def of(stats: K.MixtureStats, center: np.ndarray) -> DataMoments:
        """From statistics of responsibilities summing to 1 per row."""
        n, mean, m2 = stats.pooled()
        return DataMoments(n, center + mean, m2 / (n - 1))


def _moments_pass(data: RowData, kind: str) -> K.MixtureStats:
    """Statistics of kind ``kind`` of all rows as one component. One pass."""
    d = data.n_features
    params = K.HardInitParams(np.zeros((1, d)), (kind,), np.zeros(d), data.affine)
    return tree_reduce(data, K.hard_init_kernel, params, K.combine_stats, label="gmm-init-moments")[0]


def data_moments(data: RowData, kind: str) -> DataMoments:
    """Mean and covariance (``ddof=1``) of all the rows, of statistics kind ``kind``. One pass."""
    return DataMoments.of(_moments_pass(data, kind), np.zeros(data.n_features))


def _tied_at_rows(total: K.MixtureStats, rows: np.ndarray, reg_covar: float) -> np.ndarray:
    """scikit-learn's tied covariance when only ``rows`` have responsibilities: its formula
    ``(X^T X - sum nk means means^T) / sum nk`` takes ``X^T X`` over *all* rows (``total``:
    the 'tied' statistics of all rows as one component, around the origin)."""
    d = rows.shape[1]
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
    return estimates_and_moments(data, n_components, covariance_types, init_params, reg_covar, rs, owner=owner)[0]


def estimates_and_moments(
    data: RowData,
    n_components: int,
    covariance_types: tuple[str, ...],
    init_params: str,
    reg_covar: float,
    rs: np.random.RandomState,
    *,
    owner: str = "GaussianMixture",
    moments: str | None = None,
) -> tuple[dict[str, Estimates], DataMoments | None]:
    """:func:`responsibility_estimates`, and with ``moments`` (a statistics kind: ``'full'``,
    ``'tied'`` or ``'diag'``) the mean and covariance of all the rows of that kind: taken from
    the same pass for ``'kmeans'`` and ``'random'``, one more pass (shared with ``'tied'``'s)
    for ``'random_from_data'`` and ``'k-means++'``."""
    kinds = tuple(sorted({covariance_of(t).stats_kind for t in covariance_types} | ({moments} if moments else set())))
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
        found = DataMoments.of(stats[moments], center) if moments else None
        return ({t: estimate_parameters(stats[covariance_of(t).stats_kind], center, t, reg_covar)
                 for t in covariance_types}, found)
    if init_params == "random_from_data":
        index = rs.choice(data.n_samples, size=n_components, replace=False)
        rows = take_rows(data, index)
    else:
        rows = seed(data, None, n_components, "k-means++", entropy=_seed(rs), owner=owner)
    rows = np.asarray(rows, dtype=np.float64)
    stats = _one_hot_rows(rows, kinds)
    out = {t: estimate_parameters(stats[covariance_of(t).stats_kind], np.zeros(d), t, reg_covar)
           for t in covariance_types}
    totals: dict[str, K.MixtureStats] = {}
    if "tied" in out:
        totals["tied"] = _moments_pass(data, "tied")
        out["tied"].covariances = _tied_at_rows(totals["tied"], rows, reg_covar)
    found = None
    if moments:
        # 'full' and 'tied' statistics of one component are the same (d, d) moments
        if "tied" in totals and covariance_of(moments).full_prior_covariance():
            found = DataMoments.of(totals["tied"], np.zeros(d))  # the (d, d) moments of all rows: reused
        else:
            found = data_moments(data, moments)
    return out, found


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
                             None, covariance_of(covariance_type).cholesky_from_precisions(precisions_init))
    assert estimates is not None
    cov = estimates.covariances
    return GaussianModel(covariance_type, np.array(weights, dtype=np.float64), np.array(means, dtype=np.float64),
                         cov, covariance_of(covariance_type).precision_cholesky(cov))
