"""``GaussianMixture``: scikit-learn's estimator, fitted by EM with one pass over the data per iteration."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..data import CachePolicy, RowData
from ._base import SPLIT_BYTES, MixtureBase, as_mixture_data
from ._checks import GAUSSIAN_CONSTRAINTS, GAUSSIAN_DATA_CHECKS
from ._covariance import covariance_of
from ._em import EMRun, GaussianModel
from ._init import initial_model, responsibility_estimates

logger = logging.getLogger(__name__)

__all__ = ["SPLIT_BYTES", "GaussianMixture", "as_mixture_data"]


class GaussianMixture(MixtureBase):
    """Gaussian mixture fitted by expectation-maximization, one pass over the data per iteration.

    Each iteration maps the E-step over the row chunks on the workers: every chunk computes
    its rows' log-responsibilities under the current parameters (log-sum-exp, through the
    Cholesky factors of the precisions, in float64) and returns only the M-step's sufficient
    statistics (per component the responsibility mass, the weighted mean and the centred
    second moment of the covariance type) and the sum of the log-likelihoods. These are
    tree-reduced and the M-step runs on the client. From the same initial parameters every
    iteration matches scikit-learn's ``GaussianMixture``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        ``'full'``: each component has its own covariance matrix; ``'tied'``: all share one;
        ``'diag'``: each has its own diagonal covariance; ``'spherical'``: each has one variance.
    tol : float, default=1e-3
        Convergence threshold: EM stops when the lower bound (the per-sample average
        log-likelihood) changed by less than ``tol``.
    reg_covar : float, default=1e-6
        Non-negative regularization added to the diagonal of the covariances.
    max_iter : int, default=100
        Number of EM iterations to perform (0: only initialize).
    n_init : int, default=1
        Number of initializations; the run with the largest lower bound is kept. The runs
        share their passes over the data.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are computed: one-hot at the labels of the
        distributed :class:`daskcluster.KMeans` (``n_init=1``, k-means|| seeding),
        one-hot at rows chosen by greedy k-means++, random, or one-hot at random rows.
    weights_init : array-like of shape (n_components,), default=None
        Initial weights; replaces those from ``init_params``.
    means_init : array-like of shape (n_components, n_features), default=None
        Initial means; replaces those from ``init_params``.
    precisions_init : array-like, default=None
        Initial precisions (inverse covariances), of shape (n_components,) spherical,
        (n_features, n_features) tied, (n_components, n_features) diag, (n_components,
        n_features, n_features) full. With all three of ``weights_init``, ``means_init`` and
        ``precisions_init``, initialization reads no data.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization and :meth:`sample`. The same value gives the same model on
        any scheduler and any number of workers.
    warm_start : bool, default=False
        Start from the fitted parameters of the previous ``fit`` (then ``n_init`` is 1).
    verbose : int, default=0
        1: print the initializations and iterations; 2: also time and change of the lower
        bound. Iterations are always logged at INFO level.
    verbose_interval : int, default=10
        Iterations between two printed lines.
    cache : 'auto' or bool, default='auto'
        Persist the data (in its storage dtype) in cluster memory for the fit (True), read
        it from its source on every pass (False), or persist when it takes at most half the
        memory available ('auto').

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        Shape as ``precisions_init``.
    precisions_ : ndarray
        Inverses of the covariances.
    precisions_cholesky_ : ndarray
        Upper-triangular ``U`` with ``precision = U U^T`` (square roots of the precisions
        for ``'diag'`` and ``'spherical'``).
    converged_ : bool
    n_iter_ : int
        EM iterations of the best run.
    lower_bound_ : float
        Lower bound (mean log-likelihood) at the last iteration of the best run.
    lower_bounds_ : list of float
        Lower bound after each iteration of the best run.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The column names of a DataFrame (or the feature coordinate of a DataArray) given to
        ``fit``, when all are strings.

    Notes
    -----
    All computations are in float64, whatever the storage dtype.
    Data passes of ``fit``: the initialization (``'kmeans'``: those of ``KMeans`` + 1;
    ``'random'``: 1; ``'random_from_data'``: none; ``'k-means++'``: ``n_components``; one
    more for the last two with ``'tied'``), then one per iteration. ``predict``,
    ``predict_proba``, ``score_samples``, ``score``, ``bic`` and ``aic``: one each.

    A component whose covariance is not positive definite raises
    :class:`~daskcluster.mixture.CollapsedComponentError` (a ``ValueError``), with
    scikit-learn's advice.

    References
    ----------
    A. P. Dempster, N. M. Laird, D. B. Rubin. Maximum likelihood from incomplete data via
    the EM algorithm. JRSS B 39(1), 1977.
    T. F. Chan, G. H. Golub, R. J. LeVeque. Updating formulae and a pairwise algorithm for
    computing sample variances. 1979 (the merge of the statistics).

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster.mixture import GaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=float)
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> sorted(gm.means_[:, 0].round(6).tolist())
    [1.0, 10.0]
    >>> gm.predict(np.array([[0.0, 0.0], [12.0, 3.0]])).tolist() == gm.predict(X[[2, 3]]).tolist()
    True
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        cache: CachePolicy = "auto",
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.cache = cache

    # ------------------------------------------------------------------ validation

    _parameter_constraints = GAUSSIAN_CONSTRAINTS
    _data_checks = GAUSSIAN_DATA_CHECKS

    def _check_fit(self, data: RowData) -> dict[str, np.ndarray | None]:
        """The initial parameters given, as float64 arrays (checked by ``_data_checks``)."""
        def given(value: Any) -> np.ndarray | None:
            return None if value is None else np.asarray(value, dtype=np.float64)

        return {"weights_init": given(self.weights_init), "means_init": given(self.means_init),
                "precisions_init": given(self.precisions_init)}

    def _model(self) -> GaussianModel:
        return GaussianModel(self.covariance_type, self.weights_, self.means_, self.covariances_,
                             self.precisions_cholesky_)

    def _initial_runs(self, work: RowData, inits: dict[str, np.ndarray | None], warm: bool,
                      rs: np.random.RandomState) -> list[EMRun]:
        if warm:
            return [EMRun(self._model(), self.reg_covar, self.tol, self.max_iter, lower_bound=self.lower_bound_)]
        ct = self.covariance_type
        given = all(v is not None for v in inits.values())
        runs = []
        # with every initial parameter given the runs would be identical: one is enough
        for i in range(1 if given else self.n_init):
            if self.verbose:
                print(f"Initialization {i}")
            est = None if given else responsibility_estimates(
                work, self.n_components, (ct,), self.init_params, self.reg_covar, rs, owner=type(self).__name__
            )[ct]
            runs.append(EMRun(initial_model(work, ct, est, **inits), self.reg_covar, self.tol, self.max_iter))
        return runs

    def _store(self, run: EMRun) -> None:
        """Set the fitted attributes from a finished run."""
        model = run.model
        self.weights_ = model.weights
        self.means_ = model.means
        self.precisions_cholesky_ = model.precisions_cholesky
        self.precisions_ = model.precisions
        self.covariances_ = (
            model.covariances if model.covariances is not None
            else covariance_of(self.covariance_type).covariances_from_precisions(self.precisions_)
        )

    def fit(self, X: Any, y: Any = None) -> GaussianMixture:
        """Estimate the parameters by EM (the best of ``n_init`` runs).

        Parameters
        ----------
        X : array-like, memmap, dask array, zarr array, path, or :class:`~daskcluster.Scaled` \
of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
            Data passes: see the class Notes.
        """
        return self._fit(X)  # type: ignore[no-any-return]

    def _n_parameters(self) -> int:
        return covariance_of(self.covariance_type).n_parameters(self.n_components, self.means_.shape[1])

    def bic(self, X: Any) -> float:
        """Bayesian information criterion ``-2 log L + p log n`` (lower is better). Data passes: 1."""
        data = self._data(X)
        return -2 * self._score(data) * data.n_samples + self._n_parameters() * math.log(data.n_samples)

    def aic(self, X: Any) -> float:
        """Akaike information criterion ``-2 log L + 2 p`` (lower is better). Data passes: 1."""
        data = self._data(X)
        return -2 * self._score(data) * data.n_samples + 2 * self._n_parameters()
