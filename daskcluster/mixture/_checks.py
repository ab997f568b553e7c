"""The mixtures' declared parameters and their checks against the data's shape, with
scikit-learn's messages (``The parameter 'means' should have the shape of (3, 2), but got
(2, 2)``). Each check reads no data; see :mod:`daskcluster.params`."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np

from ..errors import InvalidDataError, InvalidParameterError
from ..kernels import mixture as K
from ..params import CACHE, DataCheck, DataShape, Interval, StrOptions
from ._covariance import covariance_of
from ._init import INIT_PARAMS
from ._variational import PRIOR_TYPES

#: What ``GaussianMixture`` and ``BayesianGaussianMixture`` both take (scikit-learn's ``BaseMixture``).
MIXTURE_CONSTRAINTS: dict[str, list[Any]] = {
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0.0, None, closed="left")],
    "reg_covar": [Interval(Real, 0.0, None, closed="left")],
    "max_iter": [Interval(Integral, 0, None, closed="left")],
    "n_init": [Interval(Integral, 1, None, closed="left")],
    "init_params": [StrOptions(INIT_PARAMS)],
    "random_state": ["random_state"],
    "warm_start": ["boolean"],
    "verbose": ["verbose"],
    "verbose_interval": [Interval(Integral, 1, None, closed="left")],
    "covariance_type": [StrOptions(K.COVARIANCE_TYPES)],
    "cache": CACHE,
}

_POSITIVE_OR_NONE: list[Any] = [None, Interval(Real, 0.0, None, closed="neither")]

GAUSSIAN_CONSTRAINTS: dict[str, list[Any]] = {
    **MIXTURE_CONSTRAINTS,
    "weights_init": ["array-like", None],
    "means_init": ["array-like", None],
    "precisions_init": ["array-like", None],
}

BAYESIAN_CONSTRAINTS: dict[str, list[Any]] = {
    **MIXTURE_CONSTRAINTS,
    "weight_concentration_prior_type": [StrOptions(PRIOR_TYPES)],
    "weight_concentration_prior": _POSITIVE_OR_NONE,
    "mean_precision_prior": _POSITIVE_OR_NONE,
    "mean_prior": [None, "array-like"],
    "degrees_of_freedom_prior": _POSITIVE_OR_NONE,
    "covariance_prior": [None, "array-like", Interval(Real, 0.0, None, closed="neither")],
}


def shaped(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """``value`` as finite float64 of ``shape`` (scikit-learn's ``_check_shape`` message)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"The parameter '{name}' must be an array of numbers. Got {value!r}.") from None
    if arr.shape != shape:
        raise InvalidParameterError(f"The parameter '{name}' should have the shape of {shape}, but got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidParameterError(f"The parameter '{name}' contains NaN or infinity.")
    return arr


def _n_samples(est: Any, data: DataShape) -> None:
    if data.n_samples < est.n_components:
        raise InvalidDataError(
            f"Expected n_samples >= n_components but got n_components = {est.n_components}, "
            f"n_samples = {data.n_samples}")


def _weights(est: Any, data: DataShape) -> None:
    if est.weights_init is None:
        return
    w = shaped(est.weights_init, (est.n_components,), "weights")
    if (w < 0).any() or (w > 1).any():
        raise InvalidParameterError(
            "The parameter 'weights' should be in the range [0, 1], but got max value "
            f"{w.min():.5f}, min value {w.max():.5f}")  # the order of scikit-learn's message
    if not np.allclose(abs(1.0 - w.sum()), 0.0, atol=1e-8):
        raise InvalidParameterError(f"The parameter 'weights' should be normalized, but got sum(weights) = {w.sum():.5f}")


def _means(est: Any, data: DataShape) -> None:
    if est.means_init is not None:
        shaped(est.means_init, (est.n_components, data.n_features), "means")


def _positivity_message(covariance_type: str) -> str:
    if covariance_type in ("full", "tied"):
        return f"'{covariance_type} precision' should be symmetric, positive-definite"
    return f"'{covariance_type} precision' should be positive"


def _precisions(est: Any, data: DataShape) -> None:
    if est.precisions_init is None:
        return
    cov = covariance_of(est.covariance_type)
    p = shaped(est.precisions_init, cov.precisions_shape(est.n_components, data.n_features),
               f"{est.covariance_type} precision")
    if not cov.precisions_valid(p):
        raise InvalidParameterError(_positivity_message(est.covariance_type))


def _mean_prior(est: Any, data: DataShape) -> None:
    if est.mean_prior is not None:
        shaped(est.mean_prior, (data.n_features,), "means")


def _degrees_of_freedom(est: Any, data: DataShape) -> None:
    dof = est.degrees_of_freedom_prior
    if dof is not None and not dof > data.n_features - 1.0:
        raise InvalidParameterError(
            f"The parameter 'degrees_of_freedom_prior' should be greater than {data.n_features - 1}, but got "
            f"{dof:.3f}.")


def _covariance_prior(est: Any, data: DataShape) -> None:
    value, ct, d = est.covariance_prior, est.covariance_type, data.n_features
    if value is None:
        return
    if ct in ("full", "tied", "diag"):
        shaped(value, (d, d) if ct != "diag" else (d,), f"{ct} covariance_prior")
    try:
        covariance_of(ct).check_covariance_prior(value, d, type(est).__name__)
    except InvalidParameterError as exc:
        if ct == "spherical":
            raise
        raise InvalidParameterError(_positivity_message(ct)) from exc


_N_SAMPLES = DataCheck("n_components", _n_samples)

GAUSSIAN_DATA_CHECKS = (
    _N_SAMPLES,
    DataCheck("weights_init", _weights, needs=("n_components",)),
    DataCheck("means_init", _means, needs=("n_components",)),
    DataCheck("precisions_init", _precisions, needs=("n_components", "covariance_type")),
)

BAYESIAN_DATA_CHECKS = (
    _N_SAMPLES,
    DataCheck("mean_prior", _mean_prior),
    DataCheck("degrees_of_freedom_prior", _degrees_of_freedom),
    DataCheck("covariance_prior", _covariance_prior, needs=("covariance_type",)),
)
