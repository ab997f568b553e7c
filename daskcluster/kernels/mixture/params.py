"""One mixture's parameters as every block's E-step needs them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .buffers import COMPUTE_DTYPE, LOG_2PI
from .covariance import CovarianceType, covariance_of

#: Smallest responsibility counted in the diagonal types' statistics (:mod:`.diag_rows`); a
#: ``'full'`` component given it may leave terms out of its second moment (:mod:`.covariance.full`).
MIN_RESP = 1e-30


@dataclass(frozen=True)
class GaussianParams:
    """One mixture, ready for the E-step of a block.

    Attributes
    ----------
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    means : ndarray of shape (n_components, n_features)
    prec_chol : ndarray
        Cholesky factors of the precisions (scikit-learn's ``precisions_cholesky_``):
        (K, d, d) full, (d, d) tied, (K, d) diag, (K,) spherical.
    log_const : ndarray of shape (n_components,)
        What the log-density of each component adds to ``-||(x - mu_k) L_k||^2 / 2``:
        ``log w_k + log det L_k - d/2 log(2 pi)`` for a mixture; for a variational posterior,
        the expected log-weights and the terms of the Wishart posterior.
    center : ndarray of shape (n_features,)
        The frame of the statistics' means (the mixture mean): they are returned relative to it.
    min_resp : ndarray of shape (n_components,)
        Per component: for the diagonal types the smallest responsibility counted in the
        statistics; for ``'full'``, where positive, its second moment may leave out terms within
        the bound of :func:`.covariance.full._second_moments` (else every non-zero one counts).
    with_entropy : bool, default=False
        Also sum ``r log r`` over the rows and components (the variational lower bound needs it).
    """

    covariance_type: str
    means: np.ndarray
    prec_chol: np.ndarray
    log_const: np.ndarray
    center: np.ndarray
    min_resp: np.ndarray
    with_entropy: bool = False

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def covariance(self) -> CovarianceType:
        """The covariance type."""
        return covariance_of(self.covariance_type)

    @property
    def kind(self) -> str:
        """The kind of statistics the M-step needs."""
        return self.covariance.stats_kind


def log_det_cholesky(prec_chol: np.ndarray, covariance_type: str, n_features: int) -> np.ndarray:
    """``log det`` of each component's precision Cholesky factor, shape (n_components,)
    (a scalar for ``'tied'``)."""
    return covariance_of(covariance_type).log_det_cholesky(prec_chol, n_features)


def gaussian_params(
    weights: np.ndarray, means: np.ndarray, prec_chol: np.ndarray, covariance_type: str, n_samples: int | None = None,
    *, log_const: np.ndarray | None = None, with_entropy: bool = False,
) -> GaussianParams:
    """Precompute what every block's E-step needs from a mixture's parameters.

    ``n_samples`` (the rows of the whole data set) lets the statistics of components holding
    at least one row's worth of mass leave out negligible terms (responsibilities below
    :data:`MIN_RESP` for the diagonal types, the bounded rule of ``'full'``); without it every
    non-zero responsibility counts. ``log_const`` replaces
    ``log w_k + log det L_k - d/2 log(2 pi)`` (a variational posterior's own constants);
    ``weights`` still give the frame of the statistics and which components hold mass.
    """
    means = np.ascontiguousarray(means, dtype=COMPUTE_DTYPE)
    prec_chol = np.ascontiguousarray(prec_chol, dtype=COMPUTE_DTYPE)
    weights = np.asarray(weights, dtype=COMPUTE_DTYPE)
    k, d = means.shape
    if log_const is None:
        with np.errstate(divide="ignore"):
            log_w = np.log(weights)
        log_const = log_w + log_det_cholesky(prec_chol, covariance_type, d) - 0.5 * d * LOG_2PI
    total = weights.sum()
    center = (weights / total) @ means if total > 0 else means.mean(axis=0)
    min_resp = np.zeros(k)
    if n_samples is not None:
        min_resp[weights * n_samples >= 1.0] = MIN_RESP
    return GaussianParams(covariance_type, means, prec_chol, np.broadcast_to(log_const, (k,)).copy(), center,
                          min_resp, with_entropy)
