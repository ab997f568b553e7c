"""Variational EM of a Bayesian Gaussian mixture, as scikit-learn's ``BayesianGaussianMixture``.

The E-step is a Gaussian mixture's, with other constants per component (the expected
log-weights under the Dirichlet or stick-breaking posterior, and the expectations under the
Wishart posterior), so the kernels of :mod:`daskcluster.kernels.mixture` run it unchanged
from :meth:`VariationalModel.kernel_params`; each pass also sums ``r log r``, the only part of
the lower bound that needs the rows. The M-step turns the same sufficient statistics as EM's
(``nk``, means, covariances of the type) into the posterior's parameters (Bishop, PRML 10.2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import betaln, digamma, gammaln

from ..kernels import mixture as K
from ..kernels.mixture.covariance import WishartPrior
from ._covariance import CollapsedComponentError, covariance_of
from ._em import EMRun, Estimates, estimate_parameters

logger = logging.getLogger(__name__)

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")

#: ``weight_concentration_``: ``(1 + nk, prior + mass after k)`` (stick-breaking) or ``prior + nk``.
Concentration = Any


@dataclass
class VariationalModel:
    """The variational posterior (scikit-learn's fitted attributes, without the ``_``).

    ``covariances`` are normalized by the degrees of freedom, as scikit-learn's.
    """

    covariance_type: str
    weight_concentration_prior_type: str
    weight_concentration: Concentration
    mean_precision: np.ndarray
    means: np.ndarray
    degrees_of_freedom: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def stick_breaking(self) -> bool:
        return self.weight_concentration_prior_type == "dirichlet_process"

    @property
    def precisions(self) -> np.ndarray:
        return covariance_of(self.covariance_type).precisions(self.precisions_cholesky)

    def weights(self) -> np.ndarray:
        """Expected weights (scikit-learn's ``weights_``)."""
        wc = self.weight_concentration
        if self.stick_breaking:
            total = wc[0] + wc[1]
            w = wc[0] / total * np.hstack((1, np.cumprod(wc[1] / total)[:-1]))
            return np.asarray(w / w.sum())
        return np.asarray(wc / np.sum(wc))

    def log_weights(self) -> np.ndarray:
        """``E[log pi_k]`` (scikit-learn's ``_estimate_log_weights``)."""
        wc = self.weight_concentration
        if self.stick_breaking:
            digamma_sum = digamma(wc[0] + wc[1])
            digamma_b = digamma(wc[1])
            return np.asarray(digamma(wc[0]) - digamma_sum + np.hstack((0, np.cumsum(digamma_b - digamma_sum)[:-1])))
        return np.asarray(digamma(wc) - digamma(np.sum(wc)))

    def log_const(self) -> np.ndarray:
        """What each component adds to ``-||(x - m_k) L_k||^2 / 2`` in scikit-learn's
        ``_estimate_weighted_log_prob``, shape (n_components,)."""
        d = self.means.shape[1]
        cov = covariance_of(self.covariance_type)
        dof = self.degrees_of_freedom
        log_det = cov.log_det_cholesky(self.precisions_cholesky, d)
        log_lambda = d * np.log(2.0) + digamma(0.5 * (np.atleast_1d(dof) - np.arange(d)[:, None])).sum(axis=0)
        return np.asarray(self.log_weights() + log_det - 0.5 * d * K.LOG_2PI - 0.5 * d * np.log(dof)
                          + 0.5 * (log_lambda - d / self.mean_precision))

    def kernel_params(self, n_samples: int | None = None) -> K.GaussianParams:
        """The E-step's parameters (summing ``r log r`` too)."""
        return K.gaussian_params(self.weights(), self.means, self.precisions_cholesky, self.covariance_type,
                                 n_samples, log_const=self.log_const(), with_entropy=True)

    def lower_bound(self, resp_entropy: float) -> float:
        """scikit-learn's ``_compute_lower_bound`` (its constant terms left out) from
        ``sum r log r`` of the E-step before this model's M-step."""
        d = self.means.shape[1]
        cov = covariance_of(self.covariance_type)
        dof = self.degrees_of_freedom
        log_det = cov.log_det_cholesky(self.precisions_cholesky, d) - 0.5 * d * np.log(dof)
        log_wishart = cov.log_wishart_total(dof, log_det, d, self.n_components)
        wc = self.weight_concentration
        if self.stick_breaking:
            log_norm_weight = -float(np.sum(betaln(wc[0], wc[1])))
        else:
            log_norm_weight = float(gammaln(np.sum(wc)) - np.sum(gammaln(wc)))
        return float(-resp_entropy - log_wishart - log_norm_weight - 0.5 * d * np.sum(np.log(self.mean_precision)))


@dataclass(frozen=True)
class VariationalPriors:
    """All the priors of a fit: the weights' and :class:`WishartPrior`."""

    weight_concentration_prior_type: str
    weight_concentration: float
    wishart: WishartPrior


def variational_update(est: Estimates, covariance_type: str, priors: VariationalPriors) -> VariationalModel:
    """The posterior from ``nk``, the means and the covariances of the responsibilities
    (scikit-learn's ``_estimate_weights``, ``_estimate_means``, ``_estimate_precisions``).

    Raises
    ------
    CollapsedComponentError
        A covariance is not positive definite.
    """
    nk, xk, sk = est.nk, est.means, est.covariances
    if not (np.isfinite(xk).all() and np.isfinite(nk).all()):
        raise CollapsedComponentError("The M-step produced non-finite means. Scale the input data.")
    w0 = priors.weight_concentration
    wc: Concentration
    if priors.weight_concentration_prior_type == "dirichlet_process":
        wc = (1.0 + nk, w0 + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0)))
    else:
        wc = w0 + nk
    prior = priors.wishart
    mean_precision = prior.mean_precision + nk
    means = (prior.mean_precision * prior.mean + nk[:, None] * xk) / mean_precision[:, None]
    cov = covariance_of(covariance_type)
    dof, covariances = cov.wishart(nk, xk, sk, prior, mean_precision)
    prec_chol = cov.precision_cholesky(covariances)
    return VariationalModel(covariance_type, priors.weight_concentration_prior_type, wc, mean_precision, means,
                            dof, covariances, prec_chol)


@dataclass
class VariationalRun(EMRun):
    """One run of variational EM: the lower bound is scikit-learn's variational one."""

    priors: VariationalPriors | None = None

    def kernel_params(self, n_samples: int) -> K.GaussianParams:
        params: K.GaussianParams = self.model.kernel_params(n_samples)
        return params

    def step(self, stats: K.MixtureStats, center: np.ndarray, n_samples: int) -> float:
        assert self.priors is not None
        est = estimate_parameters(stats, center, self.model.covariance_type, self.reg_covar)
        model = variational_update(est, self.model.covariance_type, self.priors)
        self.model = model
        return model.lower_bound(stats.entropy)
