"""``'spherical'``: each component has one variance.

Its statistics are ``'diag'``'s (the variance is the mean of the diagonal ones), and so is its
E-step, with each component's precision repeated over the features.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from ....errors import InvalidParameterError
from .base import WishartPrior
from .diag import DiagCovariance

if TYPE_CHECKING:
    from ..params import GaussianParams


class SphericalCovariance(DiagCovariance):
    """``'spherical'``: precisions Cholesky (K,), statistics those of ``'diag'`` (K, d)."""

    name = "spherical"

    def log_det_cholesky(self, prec_chol: np.ndarray, n_features: int) -> np.ndarray:
        return np.asarray(n_features * np.log(prec_chol))

    def feature_precisions(self, gp: GaussianParams) -> np.ndarray:
        return np.repeat((gp.prec_chol**2)[:, None], gp.means.shape[1], axis=1)

    def estimate(self, n: np.ndarray, nk: np.ndarray, mean: np.ndarray, means: np.ndarray, m2: np.ndarray,
                 reg_covar: float) -> np.ndarray:
        return np.asarray(super().estimate(n, nk, mean, means, m2, reg_covar).mean(axis=1))

    def n_covariance_parameters(self, n_components: int, n_features: int) -> float:
        return float(n_components)

    def precisions_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components,)

    def wishart(self, nk: np.ndarray, xk: np.ndarray, sk: np.ndarray, prior: WishartPrior,
                mean_precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dof = prior.degrees_of_freedom + nk
        diff = xk - prior.mean
        cov = prior.covariance + nk * (sk + prior.mean_precision / mean_precision * np.mean(diff**2, axis=1))
        return dof, cov / dof

    def default_covariance_prior(self, covariance: np.ndarray) -> Any:
        return float(np.mean(covariance if covariance.ndim == 1 else np.diagonal(covariance)))

    def check_covariance_prior(self, value: Any, n_features: int, owner: str) -> Any:
        if (not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(float(value))
                or value <= 0):
            raise InvalidParameterError(
                f"The 'covariance_prior' parameter of {owner} must be a float in the range (0, inf) for "
                f"covariance_type={self.name!r}. Got {value!r} instead."
            )
        return float(value)
