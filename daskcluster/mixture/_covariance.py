"""The covariance types on the client side.

Each covariance type is one object (:mod:`daskcluster.kernels.mixture.covariance`), whose
client side gives the M-step's covariances, the precisions' Cholesky factors, the number of
parameters, the checks of ``precisions_init`` and ``covariance_prior``, sampling and the
variational update; the objects live beside their worker side, since workers must import them
without importing scikit-learn. This module holds what the estimators add: scikit-learn's guard
against empty components.
"""

from __future__ import annotations

import numpy as np

from ..kernels.mixture.covariance import (
    COLLAPSED_MESSAGE,
    COVARIANCES,
    CollapsedComponentError,
    CovarianceType,
    covariance_of,
)

#: scikit-learn's guard against empty components: ``nk = sum resp + 10 eps``.
NK_GUARD = 10 * np.finfo(np.float64).eps

#: ``PRECISION_CHOLESKY[name](covariances)``: the precisions' Cholesky factors of each type.
PRECISION_CHOLESKY = {name: cov.precision_cholesky for name, cov in COVARIANCES.items()}

__all__ = ["COLLAPSED_MESSAGE", "NK_GUARD", "PRECISION_CHOLESKY", "CollapsedComponentError", "CovarianceType",
           "covariance_of"]
