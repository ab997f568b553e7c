"""``'diag'``: each component has its own diagonal covariance.

**Tiles with squares.** A tile is ``a = [x - ref, 1, (x - ref)^2]`` (the squares computed
once per tile), so

* the E-step is **one** GEMM: ``a @ [[-2 (mu - ref) P]^T, [sum (mu - ref)^2 P], [P^T]]`` gives
  every row's ``sum_j P_kj (x_j - mu_kj)^2`` for every component ``k``;
* the statistics are **one** GEMM: ``resp^T a`` is ``[sum r (x - ref), sum r, sum r (x - ref)^2]``,
  centred at the end of the block into ``sum r (x - m_k)^2``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ....errors import InvalidParameterError
from ..buffers import Scratch
from .base import CovarianceType, WishartPrior, positive_chol

if TYPE_CHECKING:
    from ..params import GaussianParams
    from ..stats import Accumulator


def expanded_distances(means: np.ndarray, prec: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The (2 d + 1, K) matrix whose product with a tile ``[x - ref, 1, (x - ref)^2]`` gives
    ``sum_j prec_kj (x_j - mean_kj)^2``; ``prec`` of shape (K, d)."""
    k, d = means.shape
    mb = means - ref
    b = np.empty((2 * d + 1, k))
    b[:d] = (-2.0 * mb * prec).T
    b[d] = (mb * mb * prec).sum(axis=1)
    b[d + 1 :] = prec.T
    return b


class DiagCovariance(CovarianceType):
    """``'diag'``: precisions Cholesky (K, d), statistics (K, d)."""

    name = "diag"
    stats_kind = "diag"
    uses_squares = True
    compiled_rows = True
    precisions_requirement = "positive"

    def log_det_cholesky(self, prec_chol: np.ndarray, n_features: int) -> np.ndarray:
        return np.asarray(np.log(prec_chol).sum(axis=1))

    def feature_precisions(self, gp: GaussianParams) -> np.ndarray:
        """Each component's precision of each feature, (K, d)."""
        return np.asarray(gp.prec_chol**2)

    def prepare(self, gp: GaussianParams, ref: np.ndarray) -> np.ndarray:
        return expanded_distances(gp.means, self.feature_precisions(gp), ref)

    def mahalanobis(self, a: np.ndarray, d: int, prep: Any, gp: GaussianParams, ws: Scratch) -> np.ndarray:
        # one GEMM writes (K, rows); the E-step reads it through the transposed view, row by row
        maha_t = np.matmul(prep.T, a[:, : 2 * d + 1].T, out=ws.get("maha_t", gp.n_components, a.shape[0]))
        np.maximum(maha_t, 0.0, out=maha_t)
        return maha_t.T

    def work_width(self, n_components: int, n_features: int) -> int:
        return n_components

    # ------------------------------------------------------------------ statistics

    def m2_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components, n_features)

    def accumulate(self, acc: Accumulator, a: np.ndarray, d: int, resp: np.ndarray) -> None:
        g = resp.T @ a[:, : 2 * d + 1]  # [sum r x, sum r, sum r x^2] in one product
        acc.s1 += g[:, :d]
        acc.nk += g[:, d]
        acc.s2 += g[:, d + 1 :]

    def centre(self, s2: np.ndarray, s1: np.ndarray, n: np.ndarray, m: np.ndarray,
               offset: np.ndarray) -> np.ndarray:
        return np.asarray(s2 - s1 * m)

    def merge_m2(self, a: np.ndarray, b: np.ndarray, delta: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.asarray(a + b + c[:, None] * delta * delta)

    def pooled_m2(self, nk: np.ndarray, means: np.ndarray, m2: np.ndarray) -> np.ndarray:
        mean = nk @ means / nk.sum()
        delta = means - mean
        return np.asarray(m2.sum(axis=0) + nk @ (delta * delta))

    # ------------------------------------------------------------------ client

    def estimate(self, n: np.ndarray, nk: np.ndarray, mean: np.ndarray, means: np.ndarray, m2: np.ndarray,
                 reg_covar: float) -> np.ndarray:
        # sum r x^2 / nk - means^2, with sum r x^2 = m2 + n mean^2
        return np.asarray(m2 / nk[:, None] + (n * (nk - n) / nk**2)[:, None] * mean * mean + reg_covar)

    def precision_cholesky(self, covariances: np.ndarray) -> np.ndarray:
        return positive_chol(covariances)

    def precisions(self, prec_chol: np.ndarray) -> np.ndarray:
        return np.asarray(np.square(prec_chol))

    def cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        return np.asarray(np.sqrt(precisions))

    def covariances_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        return np.asarray(np.reciprocal(precisions))

    def n_covariance_parameters(self, n_components: int, n_features: int) -> float:
        return float(n_components * n_features)

    def precisions_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components, n_features)

    def precisions_valid(self, precisions: np.ndarray) -> bool:
        return bool((precisions > 0).all())

    def sample(self, rng: np.random.RandomState, means: np.ndarray, covariances: np.ndarray,
               counts: np.ndarray) -> list[np.ndarray]:
        d = means.shape[1]
        return [m + rng.standard_normal(size=(int(s), d)) * np.sqrt(c) for m, c, s in zip(means, covariances, counts)]

    # ------------------------------------------------------------------ variational Bayes

    def wishart(self, nk: np.ndarray, xk: np.ndarray, sk: np.ndarray, prior: WishartPrior,
                mean_precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dof = prior.degrees_of_freedom + nk
        diff = xk - prior.mean
        cov = prior.covariance + nk[:, None] * (sk + (prior.mean_precision / mean_precision)[:, None] * diff**2)
        return dof, cov / dof[:, None]

    def default_covariance_prior(self, covariance: np.ndarray) -> Any:
        return np.asarray(covariance if covariance.ndim == 1 else np.diagonal(covariance)).copy()

    def check_covariance_prior(self, value: Any, n_features: int, owner: str) -> Any:
        try:
            p = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            p = np.zeros(0)
        if p.shape != (n_features,):
            raise InvalidParameterError(
                f"The 'covariance_prior' parameter of {owner} must be an array-like of shape ({n_features},) "
                f"for covariance_type={self.name!r}. Got {value!r} instead."
            )
        if not (np.isfinite(p).all() and (p > 0).all()):
            raise InvalidParameterError(
                f"The 'covariance_prior' parameter of {owner} must be positive for covariance_type={self.name!r}."
            )
        return p
