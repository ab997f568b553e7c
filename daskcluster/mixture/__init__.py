"""Gaussian mixtures fitted by passes over row-chunked data.

:class:`GaussianMixture` (scikit-learn's estimator, EM with one pass per iteration),
:class:`BayesianGaussianMixture` (its variational Bayesian form, one pass per iteration),
:func:`density_threshold` and :func:`anomalies` (low-density rows by a distributed quantile
of ``score_samples``), and :func:`gmm_bic_table` (BIC/AIC over a grid of models, fitted
together so that they share their passes). Imported on first use (:mod:`daskcluster._lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "BayesianGaussianMixture": "._bayesian_mixture",
        "CollapsedComponentError": "._covariance",
        "GaussianMixture": "._gaussian_mixture",
        "anomalies": "._anomaly",
        "density_threshold": "._anomaly",
        "gmm_bic_table": "._selection",
    },
)

if TYPE_CHECKING:
    from ._anomaly import anomalies, density_threshold
    from ._bayesian_mixture import BayesianGaussianMixture
    from ._covariance import CollapsedComponentError
    from ._gaussian_mixture import GaussianMixture
    from ._selection import gmm_bic_table
