"""``'tied'``: all components share one covariance matrix.

**E-step.** The tile is whitened once (``(x - ref) L``) and the distances to the whitened
means expanded: ``||z||^2 - 2 z.b_k + ||b_k||^2`` (one GEMM each).

**Statistics.** ``sum (x - ref)(x - ref)^T`` over the rows (their responsibilities sum to 1),
centred at the end of the block into the within-component scatter ``sum_k sum r (x - m_k)(x - m_k)^T``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...blocks import row_sq_norms
from ..buffers import Scratch
from .base import (
    CovarianceType,
    WishartPrior,
    add_reg,
    chol_inv_t,
    is_spd,
    log_wishart_norm,
    upper_chol,
)
from .full import check_matrix_prior

if TYPE_CHECKING:
    from ..params import GaussianParams
    from ..stats import Accumulator


class TiedCovariance(CovarianceType):
    """``'tied'``: precisions Cholesky (d, d), statistics (d, d)."""

    name = "tied"
    stats_kind = "tied"

    def log_det_cholesky(self, prec_chol: np.ndarray, n_features: int) -> np.ndarray:
        return np.asarray(np.log(np.diagonal(prec_chol)).sum())

    def prepare(self, gp: GaussianParams, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = (gp.means - ref) @ gp.prec_chol
        return -2.0 * b.T, row_sq_norms(b)

    def mahalanobis(self, a: np.ndarray, d: int, prep: Any, gp: GaussianParams, ws: Scratch) -> np.ndarray:
        n = a.shape[0]
        z = np.matmul(a[:, :d], gp.prec_chol, out=ws.get("z", n, d))
        # one GEMM writes (K, rows); the E-step reads it through the transposed view, row by row
        maha_t = np.matmul(prep[0].T, z.T, out=ws.get("maha_t", gp.n_components, n))
        maha_t += row_sq_norms(z)
        maha_t += prep[1][:, None]
        np.maximum(maha_t, 0.0, out=maha_t)
        return maha_t.T

    # ------------------------------------------------------------------ statistics

    def m2_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_features, n_features)

    def accumulate(self, acc: Accumulator, a: np.ndarray, d: int, resp: np.ndarray) -> None:
        super().accumulate(acc, a, d, resp)
        xs = a[:, :d]
        acc.s2 += xs.T @ xs  # the responsibilities of a row sum to 1

    def centre(self, s2: np.ndarray, s1: np.ndarray, n: np.ndarray, m: np.ndarray,
               offset: np.ndarray) -> np.ndarray:
        return np.asarray(s2 - s1.T @ m)

    def merge_m2(self, a: np.ndarray, b: np.ndarray, delta: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.asarray(a + b + (delta * c[:, None]).T @ delta)

    def pooled_m2(self, nk: np.ndarray, means: np.ndarray, m2: np.ndarray) -> np.ndarray:
        mean = nk @ means / nk.sum()
        delta = means - mean
        return np.asarray(m2 + (delta * nk[:, None]).T @ delta)

    # ------------------------------------------------------------------ client

    def estimate(self, n: np.ndarray, nk: np.ndarray, mean: np.ndarray, means: np.ndarray, m2: np.ndarray,
                 reg_covar: float) -> np.ndarray:
        # (X^T X - sum nk means means^T) / sum nk, with X^T X = m2 + sum n mean mean^T
        c = n * (nk - n) / nk
        cov = (m2 + (mean * c[:, None]).T @ mean) / nk.sum()
        cov = 0.5 * (cov + cov.T)
        return add_reg(cov, reg_covar)

    def precision_cholesky(self, covariances: np.ndarray) -> np.ndarray:
        return chol_inv_t(covariances, lambda j: "the tied covariance")

    def precisions(self, prec_chol: np.ndarray) -> np.ndarray:
        return np.asarray(prec_chol @ prec_chol.T)

    def cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        return upper_chol(precisions)

    def covariances_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        return np.asarray(np.linalg.inv(precisions))

    def n_covariance_parameters(self, n_components: int, n_features: int) -> float:
        return n_features * (n_features + 1) / 2.0

    def precisions_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_features, n_features)

    def precisions_valid(self, precisions: np.ndarray) -> bool:
        return is_spd(precisions)

    def sample(self, rng: np.random.RandomState, means: np.ndarray, covariances: np.ndarray,
               counts: np.ndarray) -> list[np.ndarray]:
        return [rng.multivariate_normal(m, covariances, int(s)) for m, s in zip(means, counts)]

    # ------------------------------------------------------------------ variational Bayes

    def wishart(self, nk: np.ndarray, xk: np.ndarray, sk: np.ndarray, prior: WishartPrior,
                mean_precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = nk.shape[0]
        dof = prior.degrees_of_freedom + nk.sum() / k
        diff = xk - prior.mean
        cov = (prior.covariance + sk * nk.sum() / k
               + prior.mean_precision / k * np.dot((nk / mean_precision) * diff.T, diff))
        return np.asarray(dof), cov / dof

    def log_wishart_total(self, dof: np.ndarray, log_det_chol: np.ndarray, n_features: int,
                          n_components: int) -> float:
        return float(n_components * np.sum(log_wishart_norm(dof, log_det_chol, n_features)))

    def default_covariance_prior(self, covariance: np.ndarray) -> Any:
        return np.atleast_2d(covariance)

    def check_covariance_prior(self, value: Any, n_features: int, owner: str) -> Any:
        return check_matrix_prior(value, n_features, self.name, owner)
