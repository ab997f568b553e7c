"""``BayesianGaussianMixture``: scikit-learn's variational estimator, one pass over the data per iteration."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..data import CachePolicy, RowData
from ..kernels.mixture.covariance import WishartPrior
from ._base import MixtureBase
from ._checks import BAYESIAN_CONSTRAINTS, BAYESIAN_DATA_CHECKS
from ._covariance import covariance_of
from ._init import DataMoments, data_moments, estimates_and_moments
from ._variational import (
    VariationalModel,
    VariationalPriors,
    VariationalRun,
    variational_update,
)

logger = logging.getLogger(__name__)


class BayesianGaussianMixture(MixtureBase):
    """Variational Bayesian Gaussian mixture, one pass over the data per iteration.

    scikit-learn's ``BayesianGaussianMixture`` on row-chunked data: a Dirichlet process
    (stick-breaking) or Dirichlet distribution prior on the weights, and a Gaussian-Wishart
    prior on the means and precisions. With more components than needed, the posterior drives
    the weights of the unneeded ones towards zero. Variational EM needs the same sufficient
    statistics as EM (``sum r``, ``sum r x`` and the second moments of the covariance type),
    plus ``sum r log r`` for the lower bound: each iteration maps the E-step over the chunks
    and tree-reduces them, and the update of the posterior runs on the client. From the same
    initial responsibilities every iteration matches scikit-learn's.

    Parameters
    ----------
    n_components : int, default=1
        Number of components (an upper bound: unneeded ones get weights near zero).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        EM stops when the lower bound changed by less than ``tol``.
    reg_covar : float, default=1e-6
        Non-negative regularization added to the diagonal of the covariances of the statistics.
    max_iter : int, default=100
        Number of iterations (0: only initialize).
    n_init : int, default=1
        Number of initializations; the run with the largest lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        Initial responsibilities: one-hot at the labels of the distributed
        :class:`daskcluster.KMeans`, at rows chosen by greedy k-means++, random, or one-hot at
        random rows (the same rows scikit-learn draws for the same ``random_state``).
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}, \
default='dirichlet_process'
    weight_concentration_prior : float or None, default=None
        Concentration of the prior on the weights (``gamma``); None: ``1 / n_components``.
        Small values put the mass on few components.
    mean_precision_prior : float or None, default=None
        Precision prior of the means (``beta_0``); None: 1.
    mean_prior : array-like of shape (n_features,) or None, default=None
        Prior of the means (``m_0``); None: the mean of ``X``.
    degrees_of_freedom_prior : float or None, default=None
        Degrees of freedom of the Wishart prior (``nu_0``), above ``n_features - 1``; None:
        ``n_features``.
    covariance_prior : float or array-like or None, default=None
        Covariance prior of the Wishart (``W_0^-1``): (n_features, n_features) full and tied,
        (n_features,) diag, a float spherical. None: the covariance of ``X`` (``ddof=1``), its
        diagonal, or the mean of the diagonal.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization and :meth:`sample`.
    warm_start : bool, default=False
        Start from the fitted posterior of the previous ``fit`` (then ``n_init`` is 1).
    verbose : int, default=0
    verbose_interval : int, default=10
    cache : 'auto' or bool, default='auto'
        Persist the data in cluster memory for the fit (True), stream it on every pass
        (False), or persist when it fits in half the memory ('auto').

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        (K, d, d) full, (d, d) tied, (K, d) diag, (K,) spherical.
    precisions_ : ndarray
    precisions_cholesky_ : ndarray
    weight_concentration_prior_ : float
    weight_concentration_ : ndarray or tuple of two ndarrays
        ``dirichlet_process``: the two parameters of each Beta of the stick-breaking;
        ``dirichlet_distribution``: the Dirichlet's parameters.
    mean_precision_prior_ : float
    mean_precision_ : ndarray of shape (n_components,)
    mean_prior_ : ndarray of shape (n_features,)
    degrees_of_freedom_prior_ : float
    degrees_of_freedom_ : ndarray of shape (n_components,) (a float for 'tied')
    covariance_prior_ : float or ndarray
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Variational lower bound (up to a constant) at the last iteration of the best run.
    lower_bounds_ : list of float
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The column names of a DataFrame (or the feature coordinate of a DataArray) given to
        ``fit``, when all are strings.

    Notes
    -----
    All computations are in float64. Data passes of ``fit``: the initialization as for
    :class:`GaussianMixture`, plus one for ``mean_prior``/``covariance_prior`` left to their
    defaults with ``'random_from_data'`` or ``'k-means++'`` (shared with the one ``'tied'``
    needs; none with ``'kmeans'`` or ``'random'``, whose initialization pass gives the data's
    mean and covariance), then one per iteration. ``predict``, ``predict_proba``,
    ``score_samples``, ``score``: one each.

    References
    ----------
    C. M. Bishop. Pattern Recognition and Machine Learning, 10.2. 2006.
    D. M. Blei, M. I. Jordan. Variational inference for Dirichlet process mixtures. Bayesian
    Analysis 1(1), 2006.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster.mixture import BayesianGaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [12, 4], [10, 7]], dtype=float)
    >>> bgm = BayesianGaussianMixture(n_components=2, random_state=42).fit(X)
    >>> sorted(bgm.means_.round(1).tolist())
    [[2.5, 2.3], [8.5, 4.5]]
    >>> bgm.predict(np.array([[0.0, 0.0], [9.0, 3.0]])).tolist() == bgm.predict(X[[2, 4]]).tolist()
    True
    """

    def __init__(
        self,
        *,
        n_components: int = 1,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weight_concentration_prior_type: str = "dirichlet_process",
        weight_concentration_prior: float | None = None,
        mean_precision_prior: float | None = None,
        mean_prior: Any = None,
        degrees_of_freedom_prior: float | None = None,
        covariance_prior: Any = None,
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
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.cache = cache

    # ------------------------------------------------------------------ validation

    _parameter_constraints = BAYESIAN_CONSTRAINTS
    _data_checks = BAYESIAN_DATA_CHECKS

    def _check_fit(self, data: RowData) -> dict[str, Any]:
        """The priors given, as arrays (checked by ``_data_checks``; reads no data)."""
        cov = covariance_of(self.covariance_type)
        return {
            "mean_prior": None if self.mean_prior is None else np.asarray(self.mean_prior, dtype=np.float64),
            "covariance_prior": None if self.covariance_prior is None else cov.check_covariance_prior(
                self.covariance_prior, data.n_features, type(self).__name__),
        }

    # ------------------------------------------------------------------ fitting

    def _priors(self, given: dict[str, Any], moments: DataMoments | None, n_features: int) -> VariationalPriors:
        cov = covariance_of(self.covariance_type)
        mean = given["mean_prior"] if given["mean_prior"] is not None else moments.mean  # type: ignore[union-attr]
        if given["covariance_prior"] is not None:
            covariance = given["covariance_prior"]
        else:
            covariance = cov.default_covariance_prior(moments.covariance)  # type: ignore[union-attr]
        wishart = WishartPrior(
            mean_precision=1.0 if self.mean_precision_prior is None else float(self.mean_precision_prior),
            mean=np.asarray(mean, dtype=np.float64),
            degrees_of_freedom=float(n_features if self.degrees_of_freedom_prior is None
                                     else self.degrees_of_freedom_prior),
            covariance=covariance,
        )
        w0 = 1.0 / self.n_components if self.weight_concentration_prior is None else self.weight_concentration_prior
        return VariationalPriors(self.weight_concentration_prior_type, float(w0), wishart)

    def _model(self) -> VariationalModel:
        return VariationalModel(self.covariance_type, self.weight_concentration_prior_type, self.weight_concentration_,
                                self.mean_precision_, self.means_, self.degrees_of_freedom_, self.covariances_,
                                self.precisions_cholesky_)

    def _initial_runs(self, work: RowData, given: dict[str, Any], warm: bool,
                      rs: np.random.RandomState) -> list[VariationalRun]:
        """The runs of ``n_init`` from their initial responsibilities, each with the priors (the
        data's mean and covariance taken from the first initialization's pass when they are
        needed)."""
        ct = self.covariance_type
        kind = covariance_of(ct).stats_kind
        need = given["mean_prior"] is None or given["covariance_prior"] is None
        if warm:
            moments = data_moments(work, kind) if need else None
            warm_priors = self._priors(given, moments, work.n_features)
            run = VariationalRun(self._model(), self.reg_covar, self.tol, self.max_iter,
                                 lower_bound=self.lower_bound_, priors=warm_priors)
            return [run]
        runs: list[VariationalRun] = []
        priors: VariationalPriors | None = None
        for i in range(self.n_init):
            if self.verbose:
                print(f"Initialization {i}")
            estimates, moments = estimates_and_moments(
                work, self.n_components, (ct,), self.init_params, self.reg_covar, rs, owner=type(self).__name__,
                moments=kind if need and priors is None else None)
            if priors is None:
                priors = self._priors(given, moments, work.n_features)
            model = variational_update(estimates[ct], ct, priors)
            runs.append(VariationalRun(model, self.reg_covar, self.tol, self.max_iter, priors=priors))
        return runs

    def _store(self, run: VariationalRun) -> None:
        """Set the fitted attributes from a finished run."""
        model: VariationalModel = run.model
        priors = run.priors
        assert priors is not None
        self.weight_concentration_prior_ = priors.weight_concentration
        self.mean_precision_prior_ = priors.wishart.mean_precision
        self.mean_prior_ = priors.wishart.mean
        self.degrees_of_freedom_prior_ = priors.wishart.degrees_of_freedom
        self.covariance_prior_ = priors.wishart.covariance
        self.weight_concentration_ = model.weight_concentration
        self.mean_precision_ = model.mean_precision
        self.means_ = model.means
        self.degrees_of_freedom_ = model.degrees_of_freedom
        self.covariances_ = model.covariances
        self.precisions_cholesky_ = model.precisions_cholesky
        self.precisions_ = model.precisions
        self.weights_ = model.weights()

    def fit(self, X: Any, y: Any = None) -> BayesianGaussianMixture:
        """Estimate the variational posterior (the best of ``n_init`` runs).

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
