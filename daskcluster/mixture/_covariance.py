"""The four covariance types on the client: M-step estimates, precision Cholesky factors,
user-given precisions, and parameter counts. Each operation is a dict of four small functions.

Everything here works on arrays of size ``n_components x n_features^2`` at most; the data are
only ever seen through :class:`~daskcluster.kernels.mixture.MixtureStats`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ConvergenceError, InvalidDataError, InvalidParameterError

#: scikit-learn's guard against empty components: ``nk = sum resp + 10 eps``.
NK_GUARD = 10 * np.finfo(np.float64).eps

COLLAPSED_MESSAGE = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)


class CollapsedComponentError(ConvergenceError, InvalidDataError):
    """A component's covariance is not positive definite (a collapsed or singleton component).

    Also a ``ValueError`` (as scikit-learn raises) and an ``ArithmeticError``.
    """


# --------------------------------------------------------------------------- M-step


def _add_reg(cov: np.ndarray, reg_covar: float) -> np.ndarray:
    d = cov.shape[-1]
    idx = np.arange(d)
    cov[..., idx, idx] += reg_covar
    return cov


def _cov_full(
    n: np.ndarray, nk: np.ndarray, mean: np.ndarray, means: np.ndarray, m2: np.ndarray, reg: float
) -> np.ndarray:
    # sum r (x - means)(x - means)^T = m2 + n a a^T with a = means - mean (the nk guard's shrink)
    a = means - mean
    cov = (m2 + n[:, None, None] * a[:, :, None] * a[:, None, :]) / nk[:, None, None]
    cov = 0.5 * (cov + cov.transpose(0, 2, 1))
    return _add_reg(cov, reg)


def _cov_tied(
    n: np.ndarray, nk: np.ndarray, mean: np.ndarray, means: np.ndarray, m2: np.ndarray, reg: float
) -> np.ndarray:
    # (X^T X - sum nk means means^T) / sum nk, with X^T X = m2 + sum n mean mean^T
    c = n * (nk - n) / nk
    cov = (m2 + (mean * c[:, None]).T @ mean) / nk.sum()
    cov = 0.5 * (cov + cov.T)
    return _add_reg(cov, reg)


def _cov_diag(
    n: np.ndarray, nk: np.ndarray, mean: np.ndarray, means: np.ndarray, m2: np.ndarray, reg: float
) -> np.ndarray:
    # sum r x^2 / nk - means^2, with sum r x^2 = m2 + n mean^2
    cov: np.ndarray = m2 / nk[:, None] + (n * (nk - n) / nk**2)[:, None] * mean * mean + reg
    return cov


def _cov_spherical(
    n: np.ndarray, nk: np.ndarray, mean: np.ndarray, means: np.ndarray, m2: np.ndarray, reg: float
) -> np.ndarray:
    return np.asarray(_cov_diag(n, nk, mean, means, m2, reg).mean(axis=1))


#: ``f(n, nk, mean, means, m2, reg_covar) -> covariances``: ``n`` the responsibility mass,
#: ``nk = n + NK_GUARD``, ``mean`` the weighted means, ``means = n * mean / nk`` (scikit-learn's).
ESTIMATE_COVARIANCES: dict[str, Callable[..., np.ndarray]] = {
    "full": _cov_full,
    "tied": _cov_tied,
    "diag": _cov_diag,
    "spherical": _cov_spherical,
}


# --------------------------------------------------------------------------- precisions


def _collapsed(detail: str) -> CollapsedComponentError:
    return CollapsedComponentError(f"{COLLAPSED_MESSAGE} ({detail})")


def _chol_inv_t(cov: np.ndarray, what: Callable[[int], str]) -> np.ndarray:
    """``inv(cholesky(cov)).T`` of one (d, d) or a stack of (K, d, d) covariances."""
    if not np.isfinite(cov).all():
        bad = int(np.argwhere(~np.isfinite(cov.reshape(-1, cov.shape[-1] ** 2)).any(axis=1))[0, 0])
        raise _collapsed(f"{what(bad)}: the covariance is not finite")
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        stack = cov.reshape(-1, *cov.shape[-2:])
        bad = next(j for j in range(stack.shape[0]) if not _is_pd(stack[j]))
        raise _collapsed(f"{what(bad)}: the covariance is not positive definite") from None
    eye = np.broadcast_to(np.eye(cov.shape[-1]), cov.shape)
    return np.swapaxes(np.linalg.solve(chol, eye), -1, -2)


def _is_pd(cov: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return False
    return True


def _prec_chol_full(cov: np.ndarray) -> np.ndarray:
    k = cov.shape[0]
    return _chol_inv_t(cov, lambda j: f"component {j} of {k}")


def _prec_chol_tied(cov: np.ndarray) -> np.ndarray:
    return _chol_inv_t(cov, lambda j: "the tied covariance")


def _prec_chol_positive(cov: np.ndarray) -> np.ndarray:
    bad = ~(np.isfinite(cov) & (cov > 0))
    if bad.any():
        where = np.argwhere(bad)[0]
        raise _collapsed(f"variance {float(cov[tuple(where)])!r} at component {int(where[0])}")
    return np.asarray(1.0 / np.sqrt(cov))


#: Upper-triangular ``U`` with ``covariance^-1 = U U^T`` (scikit-learn's ``precisions_cholesky_``).
PRECISION_CHOLESKY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "full": _prec_chol_full,
    "tied": _prec_chol_tied,
    "diag": _prec_chol_positive,
    "spherical": _prec_chol_positive,
}


def precision_cholesky(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """Cholesky factors of the precisions; raises :class:`CollapsedComponentError`."""
    return PRECISION_CHOLESKY[covariance_type](covariances)


def _upper_chol(precision: np.ndarray) -> np.ndarray:
    # U with P = U U^T, U upper: the lower factor of the reversed matrix, reversed back
    return np.linalg.cholesky(precision[::-1, ::-1])[::-1, ::-1].copy()


#: Cholesky factors from given precisions (``precisions_init``).
CHOLESKY_FROM_PRECISIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "full": lambda p: np.stack([_upper_chol(pk) for pk in p]),
    "tied": _upper_chol,
    "diag": np.sqrt,
    "spherical": np.sqrt,
}

#: Precisions from their Cholesky factors.
PRECISIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "full": lambda u: np.einsum("kij,klj->kil", u, u),
    "tied": lambda u: u @ u.T,
    "diag": np.square,
    "spherical": np.square,
}

#: Covariances from precisions (only for a model never fitted: ``max_iter=0``).
COVARIANCES_FROM_PRECISIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "full": np.linalg.inv,
    "tied": np.linalg.inv,
    "diag": np.reciprocal,
    "spherical": np.reciprocal,
}

#: Free parameters of the covariances.
N_COVARIANCE_PARAMETERS: dict[str, Callable[[int, int], float]] = {
    "full": lambda k, d: k * d * (d + 1) / 2.0,
    "tied": lambda k, d: d * (d + 1) / 2.0,
    "diag": lambda k, d: float(k * d),
    "spherical": lambda k, d: float(k),
}


def n_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Free parameters of a mixture: covariances, means and ``n_components - 1`` weights."""
    cov = N_COVARIANCE_PARAMETERS[covariance_type](n_components, n_features)
    return int(cov + n_components * n_features + n_components - 1)


# --------------------------------------------------------------------------- user-given precisions


def precisions_shape(covariance_type: str, n_components: int, n_features: int) -> tuple[int, ...]:
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def _spd(p: np.ndarray) -> bool:
    return bool(np.allclose(p, p.T) and (np.linalg.eigvalsh(p) > 0).all())


_PRECISIONS_VALID: dict[str, Callable[[np.ndarray], bool]] = {
    "full": lambda p: all(_spd(pk) for pk in p),
    "tied": _spd,
    "diag": lambda p: bool((p > 0).all()),
    "spherical": lambda p: bool((p > 0).all()),
}


def check_precisions(value: object, covariance_type: str, n_components: int, n_features: int, owner: str) -> np.ndarray:
    """Validate ``precisions_init``: its shape for the covariance type, finiteness, and
    positive definiteness (positivity for ``'diag'``/``'spherical'``)."""
    p = np.asarray(value, dtype=np.float64)
    expected = precisions_shape(covariance_type, n_components, n_features)
    if p.shape != expected:
        raise InvalidParameterError(
            f"The 'precisions_init' parameter of {owner} must have shape {expected} for "
            f"covariance_type={covariance_type!r}. Got shape {p.shape} instead."
        )
    if not np.isfinite(p).all():
        raise InvalidParameterError(f"The 'precisions_init' parameter of {owner} contains NaN or infinity.")
    if not _PRECISIONS_VALID[covariance_type](p):
        what = "positive" if covariance_type in ("diag", "spherical") else "symmetric, positive-definite"
        raise InvalidParameterError(
            f"The 'precisions_init' parameter of {owner} must be {what} for covariance_type={covariance_type!r}."
        )
    return p
