"""``'full'``: each component has its own covariance matrix.

**E-step.** Per component ``k``, the tile's rows are centred at the component's mean into one
buffer, ``(x - mu_k)``, whitened there in place by the triangular product with ``L_k``
(scikit-learn's ``precisions_cholesky_``, upper triangular: BLAS ``dtrmm``, ``d (d + 1) / 2``
multiply-adds per row, half the dense product's), and each row's squared norm taken — one
compiled call per tile, without the GIL (:mod:`daskcluster.kernels.blas_nogil`: SciPy's
Python BLAS wrappers hold it, so the threads of a pass would take turns). Centring before the
product leaves no cancellation between ``x L_k`` and ``mu_k L_k``. One product per component
and tile of a few hundred rows (``d + 2 K`` floats of work per row,
:meth:`FullCovariance.work_width`) costs fewer and larger BLAS calls than column blocks of all
components over thin tiles (measured at 50 features, 10 components, one thread: 0.060 against
0.083 CPU-s per pass over 70,000 rows). A factor that is not upper triangular (set by hand) is
multiplied whole (GEMM).

**Statistics.** The responsibilities of a segment of the block (a few thousand rows) are kept,
and each component's ``sum r (x - mu_k)(x - mu_k)^T`` is added by SYRK (``z^T z`` with
``z = sqrt(r) (x - mu_k)``, rows gathered a few thousand at a time) over the rows it holds,
centred at the component's current mean ``mu_k`` (so only the mean's move in this iteration
cancels), over the rows whose responsibility is at least the component's ``min_resp``
(``1e-30`` for components holding at least one row's worth of mass: leaving out smaller terms
changes nothing at float64 precision, and on clustered data it skips most of the work). SYRK
over the rows held is the least arithmetic for these sums (``d (d + 1) / 2`` multiply-adds per
row and component held); it adds into the lower triangle of the block's sums in place, and
they are made symmetric once, when they are centred. Gathering and SYRK are one compiled call
per segment, without the GIL.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numba
import numpy as np

from ...blas_nogil import DSYRK, DTRMM, syrk_lower_add, trmm_upper
from ...blocks import Affine
from ..buffers import COMPUTE_DTYPE, Scratch
from .base import CovarianceType, WishartPrior, add_reg, chol_inv_t, is_spd, upper_chol

if TYPE_CHECKING:
    from ..params import GaussianParams
    from ..stats import Accumulator

#: Rows gathered at once for one component's second moment.
GATHER_ROWS = 4096


class Whitening(NamedTuple):
    """The E-step constants of a block: each component's mean relative to the block's
    reference point, and the factors."""

    #: ``mu_k - ref``, (K, d).
    delta: np.ndarray
    #: ``L_k``, (K, d, d), C-contiguous.
    factors: np.ndarray
    #: Whether every factor is upper triangular (else the product is a dense GEMM).
    upper: bool


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _whitened_sq_norms(trmm, a: np.ndarray, delta: np.ndarray, factors: np.ndarray, resid: np.ndarray,  # type: ignore[no-untyped-def]
                       out: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``out[i, k] = ||(a[i, :d] - delta[k]) L_k||^2`` for every component ``k``: the rows
    centred at the component's mean into ``resid`` (n, d), whitened there in place by the
    triangular product, and their squared norms taken, without the GIL."""
    n, d = resid.shape
    for k in range(delta.shape[0]):
        for i in range(n):
            for j in range(d):
                resid[i, j] = a[i, j] - delta[k, j]
        trmm_upper(trmm, resid, factors[k])
        for i in range(n):
            s = 0.0
            for j in range(d):
                s += resid[i, j] * resid[i, j]
            out[i, k] = s


@numba.njit(nogil=True, cache=True)
def _second_moments(syrk, x: np.ndarray, resp: np.ndarray, points: np.ndarray, min_resp: np.ndarray,  # type: ignore[no-untyped-def]
                    buf: np.ndarray, s2: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``s2[k] += sum_i r_ik (x_i - p_k)(x_i - p_k)^T`` (lower triangles) over the rows with
    ``r_ik >= min_resp[k]`` (``r_ik > 0`` where ``min_resp[k]`` is 0): the rows
    ``sqrt(r_ik) (x_i - p_k)`` gathered into ``buf`` and added by SYRK each time it fills,
    without the GIL."""
    n, d = x.shape
    cap = buf.shape[0]
    for k in range(resp.shape[1]):
        threshold = min_resp[k]
        m = 0
        for i in range(n):
            r = resp[i, k]
            if (r >= threshold) if threshold > 0.0 else (r > 0.0):
                w = math.sqrt(r)
                for j in range(d):
                    buf[m, j] = w * (x[i, j] - points[k, j])
                m += 1
                if m == cap:
                    syrk_lower_add(syrk, buf, s2[k])
                    m = 0
        syrk_lower_add(syrk, buf[:m], s2[k])


class FullCovariance(CovarianceType):
    """``'full'``: precisions Cholesky (K, d, d), statistics (K, d, d)."""

    name = "full"
    stats_kind = "full"
    keeps_responsibilities = True

    # ------------------------------------------------------------------ E-step

    def log_det_cholesky(self, prec_chol: np.ndarray, n_features: int) -> np.ndarray:
        return np.asarray(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1))

    def prepare(self, gp: GaussianParams, ref: np.ndarray) -> Whitening:
        """Each component's mean relative to ``ref``, and the factors."""
        chol = np.ascontiguousarray(gp.prec_chol)
        upper = not np.tril(chol, -1).any()
        return Whitening(np.ascontiguousarray(gp.means - ref), chol, upper)

    def mahalanobis(self, a: np.ndarray, d: int, prep: Whitening, gp: GaussianParams, ws: Scratch) -> np.ndarray:
        n = a.shape[0]
        out = ws.get("maha", n, gp.n_components)
        resid = ws.get("resid", n, d)
        if prep.upper:
            _whitened_sq_norms(DTRMM, a, prep.delta, prep.factors, resid, out)
            return out
        for k, factor in enumerate(prep.factors):  # a factor set by hand: dense products
            np.subtract(a[:, :d], prep.delta[k], out=resid)
            y = np.matmul(resid, factor, out=ws.get("y", n, d))
            np.einsum("ij,ij->i", y, y, out=out[:, k])
        return out

    def work_width(self, n_components: int, n_features: int) -> int:
        return n_features + 2 * n_components

    # ------------------------------------------------------------------ statistics

    def m2_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components, n_features, n_features)

    def accumulate(self, acc: Accumulator, a: np.ndarray, d: int, resp: np.ndarray) -> None:
        super().accumulate(acc, a, d, resp)
        acc.keep_responsibilities(resp)

    def end_segment(self, acc: Accumulator, segment: np.ndarray, affine: Affine, ref: np.ndarray) -> None:
        """Each component's ``sum r (x - point)(x - point)^T`` over the segment, by SYRK."""
        resp = acc.segment_responsibilities(segment.shape[0])
        k, d = resp.shape[1], segment.shape[1]
        points = np.ascontiguousarray(np.broadcast_to(ref, (k, d)) if acc.centers is None else acc.centers)
        buf = acc.scratch.get("x", min(GATHER_ROWS, max(1, segment.shape[0])), d)
        if segment.dtype == COMPUTE_DTYPE and affine.is_identity:
            _second_moments(DSYRK, segment, resp, points, acc.min_resp, buf, acc.s2)
            return
        rows = buf.shape[0]
        for start in range(0, segment.shape[0], rows):  # rows cast and mapped a slice at a time
            x = acc.scratch.get("cast", min(rows, segment.shape[0] - start), d)
            np.copyto(x, segment[start : start + rows], casting="unsafe")
            affine.apply(x)
            _second_moments(DSYRK, x, resp[start : start + rows], points, acc.min_resp, buf, acc.s2)

    def centre(self, s2: np.ndarray, s1: np.ndarray, n: np.ndarray, m: np.ndarray,
               offset: np.ndarray) -> np.ndarray:
        mo = m - offset
        # the SYRKs fill the lower triangles and leave the upper ones at 0: mirror them
        diagonal = np.arange(s2.shape[-1])
        s2 = s2 + s2.transpose(0, 2, 1)
        s2[:, diagonal, diagonal] *= 0.5
        return np.asarray(s2 - n[:, None, None] * mo[:, :, None] * mo[:, None, :])

    def merge_m2(self, a: np.ndarray, b: np.ndarray, delta: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.asarray(a + b + c[:, None, None] * delta[:, :, None] * delta[:, None, :])

    def pooled_m2(self, nk: np.ndarray, means: np.ndarray, m2: np.ndarray) -> np.ndarray:
        mean = nk @ means / nk.sum()
        delta = means - mean
        return np.asarray(m2.sum(axis=0) + (delta * nk[:, None]).T @ delta)

    # ------------------------------------------------------------------ client

    def estimate(self, n: np.ndarray, nk: np.ndarray, mean: np.ndarray, means: np.ndarray, m2: np.ndarray,
                 reg_covar: float) -> np.ndarray:
        # sum r (x - means)(x - means)^T = m2 + n a a^T with a = means - mean (the nk guard's shrink)
        a = means - mean
        cov = (m2 + n[:, None, None] * a[:, :, None] * a[:, None, :]) / nk[:, None, None]
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        return add_reg(cov, reg_covar)

    def precision_cholesky(self, covariances: np.ndarray) -> np.ndarray:
        k = covariances.shape[0]
        return chol_inv_t(covariances, lambda j: f"component {j} of {k}")

    def precisions(self, prec_chol: np.ndarray) -> np.ndarray:
        return np.asarray(np.einsum("kij,klj->kil", prec_chol, prec_chol))

    def cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        return np.stack([upper_chol(p) for p in precisions])

    def covariances_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        return np.asarray(np.linalg.inv(precisions))

    def n_covariance_parameters(self, n_components: int, n_features: int) -> float:
        return n_components * n_features * (n_features + 1) / 2.0

    def precisions_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components, n_features, n_features)

    def precisions_valid(self, precisions: np.ndarray) -> bool:
        return all(is_spd(p) for p in precisions)

    def sample(self, rng: np.random.RandomState, means: np.ndarray, covariances: np.ndarray,
               counts: np.ndarray) -> list[np.ndarray]:
        return [rng.multivariate_normal(m, c, int(s)) for m, c, s in zip(means, covariances, counts)]

    # ------------------------------------------------------------------ variational Bayes

    def wishart(self, nk: np.ndarray, xk: np.ndarray, sk: np.ndarray, prior: WishartPrior,
                mean_precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dof = prior.degrees_of_freedom + nk
        diff = xk - prior.mean
        c = nk * prior.mean_precision / mean_precision
        cov = prior.covariance + nk[:, None, None] * sk + c[:, None, None] * diff[:, :, None] * diff[:, None, :]
        return dof, cov / dof[:, None, None]

    def default_covariance_prior(self, covariance: np.ndarray) -> Any:
        return np.atleast_2d(covariance)

    def check_covariance_prior(self, value: Any, n_features: int, owner: str) -> Any:
        return check_matrix_prior(value, n_features, self.name, owner)


def check_matrix_prior(value: Any, n_features: int, covariance_type: str, owner: str) -> np.ndarray:
    """A (d, d) symmetric, positive-definite ``covariance_prior``."""
    from ....errors import InvalidParameterError

    try:
        p = np.atleast_2d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        p = np.zeros(0)
    if p.shape != (n_features, n_features):
        raise InvalidParameterError(
            f"The 'covariance_prior' parameter of {owner} must be an array-like of shape "
            f"({n_features}, {n_features}) for covariance_type={covariance_type!r}. Got {value!r} instead."
        )
    if not (np.isfinite(p).all() and is_spd(p)):
        raise InvalidParameterError(
            f"The 'covariance_prior' parameter of {owner} must be symmetric, positive-definite for "
            f"covariance_type={covariance_type!r}."
        )
    return p
