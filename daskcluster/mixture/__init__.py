"""Gaussian mixtures fitted by passes over row-chunked data.

:class:`GaussianMixture` (scikit-learn's estimator, EM with one pass per iteration),
:class:`BayesianGaussianMixture` (its variational Bayesian form, one pass per iteration),
:func:`density_threshold` and :func:`anomalies` (low-density rows by a distributed quantile
of ``score_samples``), and :func:`gmm_bic_table` (BIC/AIC over a grid of models, fitted
together so that they share their passes).
"""

from ._anomaly import anomalies, density_threshold
from ._bayesian_mixture import BayesianGaussianMixture
from ._covariance import CollapsedComponentError
from ._gaussian_mixture import GaussianMixture
from ._selection import gmm_bic_table

__all__ = [
    "BayesianGaussianMixture",
    "CollapsedComponentError",
    "GaussianMixture",
    "anomalies",
    "density_threshold",
    "gmm_bic_table",
]
