"""What :class:`GaussianMixture` and :class:`BayesianGaussianMixture` share: the data they
accept, the per-row outputs as lazy passes, the score and sampling."""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning

from .._estimator import EstimatorMixin
from ..data import RowData, Scaled, as_row_data, cached, check_n_features
from ..engine import map_rows, tree_reduce
from ..io import DEFAULT_CHUNK_BYTES
from ..kernels import mixture as K
from ..params import check_int, check_random_state
from ._covariance import covariance_of
from ._em import EMRun, run_em

logger = logging.getLogger(__name__)

#: In-memory input above this size is cut into at least two chunks per core.
SPLIT_BYTES = 4 * 2**20



def as_mixture_data(X: Any, *, owner: str, min_samples: int = 1) -> RowData:
    """``X`` as :class:`~daskcluster.data.RowData` computed in float64. In-memory (NumPy) input
    gets at least two row chunks per core, so that the threaded scheduler keeps every core busy
    (each kernel runs on one BLAS thread). Reads no data."""
    source = X.source if isinstance(X, Scaled) else X
    chunk_bytes = None
    n_split = 2 * (os.cpu_count() or 1)
    if isinstance(source, np.ndarray) and source.ndim == 2:
        if SPLIT_BYTES < source.nbytes < n_split * DEFAULT_CHUNK_BYTES:
            chunk_bytes = -(-source.nbytes // n_split)
    data = as_row_data(X, owner=owner, min_samples=min_samples, chunk_bytes=chunk_bytes)
    return replace(data, dtype=K.COMPUTE_DTYPE)



class MixtureBase(EstimatorMixin, DensityMixin, BaseEstimator):  # type: ignore[misc]
    """Fitted-mixture methods shared by the estimators (not an estimator itself).

    Subclasses declare their parameters (``_parameter_constraints``, ``_data_checks``), set
    the fitted attributes ``weights_``, ``means_``, ``covariances_``, ``n_features_in_`` and
    define :meth:`_params` (the E-step's parameters).
    """

    _fitted_attribute = "means_"

    n_components: int
    covariance_type: str
    random_state: Any
    verbose: int
    verbose_interval: int
    tol: float
    reg_covar: float
    max_iter: int
    n_init: int
    init_params: str
    warm_start: bool
    cache: Any

    # ------------------------------------------------------------------ fitting

    def _printer(self) -> Callable[[int, EMRun, float, float], None]:
        def show(index: int, run: EMRun, change: float, seconds: float) -> None:
            if run.n_iter % self.verbose_interval == 0:
                if self.verbose == 1:
                    print(f"  Initialization {index} iteration {run.n_iter}")
                else:
                    print(f"  Initialization {index} iteration {run.n_iter}\t time lapse {seconds:.5f}s\t "
                          f"ll change {change:.5f}")
            if run.converged or run.n_iter == run.max_iter:
                state = "converged" if run.converged else "did not converge"
                print(f"Initialization {index} {state}. lower bound {run.lower_bound:.5f}.")

        return show

    def _fit(self, X: Any) -> Any:
        """What both mixtures' ``fit`` do: validate, start the ``n_init`` runs
        (``_initial_runs``), run EM on all of them in lockstep, keep the first run of largest
        lower bound (the last one when ``max_iter=0``, as scikit-learn) and set the fitted
        attributes (``_set_fitted``)."""
        name = type(self).__name__
        self._check_params()
        data = as_mixture_data(self._labeled(X, reset=True).values, owner=name, min_samples=2)
        self._check_params(data)
        checked = self._check_fit(data)
        warm = bool(self.warm_start and hasattr(self, "converged_"))
        if warm:
            check_n_features(data, self.n_features_in_, name)
        rs = check_random_state(name, self.random_state)
        t0 = time.perf_counter()
        with ExitStack() as stack:
            work = stack.enter_context(cached(data, self.cache))
            runs = self._initial_runs(work, checked, warm, rs)
            if self.max_iter > 0:
                run_em(work, list(runs), owner=name, printer=self._printer() if self.verbose else None)
        best, max_lower_bound = runs[-1], -math.inf
        if self.max_iter > 0:
            for run in runs:
                if run.lower_bound > max_lower_bound or max_lower_bound == -math.inf:
                    best, max_lower_bound = run, run.lower_bound
        self._set_fitted(best, max_lower_bound, data.n_features)
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init parameters, or increase "
                "max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        logger.info("%s fit in %.2fs: lower_bound=%.6g n_iter=%d converged=%s", name, time.perf_counter() - t0,
                    self.lower_bound_, self.n_iter_, self.converged_)
        return self

    def _store(self, run: Any) -> None:
        """Set the fitted model's attributes from a finished run (each estimator's own)."""
        raise NotImplementedError

    def _set_fitted(self, run: Any, lower_bound: float, n_features: int) -> None:
        """The fitted attributes from a finished run: the model's (``_store``) and the run's."""
        self._store(run)
        self.converged_ = bool(run.converged) if self.max_iter > 0 else False
        self.n_iter_ = int(run.n_iter)
        self.lower_bound_ = float(lower_bound)
        self.lower_bounds_ = list(run.lower_bounds)
        self.n_features_in_ = int(n_features)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray | da.Array:
        """Fit, then return the most probable component of each sample (lazy for lazy input).

        As scikit-learn's, the labels come from a final E-step with the fitted parameters, so
        they equal ``fit(X).predict(X)``. Data passes: those of ``fit``, + 1 when computed.
        """
        return self.fit(X).predict(X)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ prediction

    def _data(self, X: Any) -> RowData:
        self._check_fitted()
        data = as_mixture_data(self._labeled(X, reset=False).values, owner=type(self).__name__)
        check_n_features(data, self.n_features_in_, type(self).__name__)
        return data

    def _model(self) -> Any:
        """The fitted model (its parameters as one object)."""
        raise NotImplementedError

    def _params(self) -> K.GaussianParams:
        """The E-step's parameters of the fitted model."""
        return self._model().kernel_params()  # type: ignore[no-any-return]

    def _map(self, X: Any, kernel: Callable[..., np.ndarray], dtype: Any, n_columns: int | None, label: str) -> Any:
        data = self._data(X)
        out = map_rows(data, kernel, (data.affine, self._params()), dtype=dtype, n_columns=n_columns, label=label)
        return out if data.lazy else out.compute()  # type: ignore[no-untyped-call]

    def score_samples(self, X: Any) -> np.ndarray | da.Array:
        """Log-likelihood ``log p(x)`` of each sample.

        Returns
        -------
        ndarray or dask array of shape (n_samples,)
            Lazy for lazy input. Data passes: 1 (when computed).
        """
        return self._map(X, K.score_samples_block, np.float64, None, "gmm-score-samples")  # type: ignore[no-any-return]

    def predict_proba(self, X: Any) -> np.ndarray | da.Array:
        """Posterior probability of each component for each sample.

        Returns
        -------
        ndarray or dask array of shape (n_samples, n_components)
            Rows sum to 1. Lazy for lazy input. Data passes: 1 (when computed).
        """
        return self._map(X, K.predict_proba_block, np.float64, self.n_components, "gmm-predict-proba")  # type: ignore[no-any-return]

    def predict(self, X: Any) -> np.ndarray | da.Array:
        """Most probable component of each sample.

        Returns
        -------
        ndarray or dask array of shape (n_samples,), int64
            Lazy for lazy input. Data passes: 1 (when computed).
        """
        return self._map(X, K.predict_block, np.int64, None, "gmm-predict")  # type: ignore[no-any-return]

    def _score(self, data: RowData) -> float:
        params = K.EMParams((self._params(),), data.affine)
        total = tree_reduce(data, K.loglik_kernel, params, K.combine_loglik, label="gmm-score")
        return float(total.sums[0] / total.n_rows)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of the samples. Data passes: 1."""
        return self._score(self._data(X))

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples from the fitted mixture (on the client; reads no data).

        Draws as scikit-learn does with the same ``random_state``: the number of samples of
        each component from a multinomial of the weights, then each component's samples.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Grouped by component.
        y : ndarray of shape (n_samples,), int64
            Component of each sample.
        """
        self._check_fitted()
        name = type(self).__name__
        check_int(f"{name}.sample", "n_samples", n_samples, 1)
        rng = check_random_state(name, self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        parts = covariance_of(self.covariance_type).sample(rng, self.means_, self.covariances_, counts)
        X = np.vstack(parts).astype(np.float64)
        y = np.repeat(np.arange(self.n_components, dtype=np.int64), counts)
        return X, y

