"""``'full'``: each component has its own covariance matrix.

**E-step.** The whitened residuals ``(x - mu_k) L_k`` of all components come out of a few
GEMMs per tile. ``L_k`` (scikit-learn's ``precisions_cholesky_``) is upper triangular, so
whitened column ``j`` only reads features ``0..j``: the columns are cut into blocks of about
:data:`BLOCK_COLUMNS`, and block ``[c0, c1)`` of every component is one product
``(x - ref)[:, :c1] @ [L_1[:c1, c0:c1] ... L_K[:c1, c0:c1]]`` (the zeros under the diagonal
are never multiplied: ``(b + 1) / (2 b)`` of the dense product's flops for ``b`` blocks,
0.57 at 50 features). A compiled loop adds each component's offset ``-(mu_k - ref) L_k``
and takes each row's squared norm per component. A factor that is not upper triangular (set
by hand) is taken as one dense block.

**Statistics.** The responsibilities of a segment of the block (a few thousand rows) are kept,
and each component's ``sum r (x - mu_k)(x - mu_k)^T`` is one SYRK (``z^T z`` with
``z = sqrt(r) (x - mu_k)``) over the rows it holds, centred at the component's current mean
``mu_k`` (so only the mean's move in this iteration cancels), over the rows whose
responsibility is at least the component's ``min_resp`` (``1e-30`` for components holding at
least one row's worth of mass: leaving out smaller terms changes nothing at float64 precision,
and on clustered data it skips most of the work). SYRK over the rows held is the least
arithmetic for these sums (``d (d + 1) / 2`` multiply-adds per row and component held).
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numba
import numpy as np

from ...blocks import Affine
from ..buffers import COMPUTE_DTYPE, Scratch
from .base import CovarianceType, WishartPrior, add_reg, chol_inv_t, is_spd, upper_chol

if TYPE_CHECKING:
    from ..params import GaussianParams
    from ..stats import Accumulator

#: Rows gathered at once for one component's second moment.
GATHER_ROWS = 4096


#: Whitened columns per block of the E-step's products (see the module notes): narrower blocks
#: skip more zeros but make more, thinner GEMMs (measured at 50 features, 10 components, one
#: thread: 7-8 columns 0.55-0.6x the dense product's time, 25 columns 0.8x).
BLOCK_COLUMNS = 8


class Whitening(NamedTuple):
    """The E-step constants of a block: column blocks of the factors and the offsets."""

    #: ``(c0, c1, B)`` per column block, ``B[:, (j - c0) K + k] = L_k[:c1, j]``: the products
    #: write whitened column ``j`` of component ``k`` at ``j K + k``.
    blocks: list[tuple[int, int, np.ndarray]]
    #: ``-(mu_k - ref) L_k`` in the same order, (d K,).
    offset: np.ndarray


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _sq_norms(y: np.ndarray, offset: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``out[i, k] = sum_j (y[i, j K + k] + offset[j K + k])^2``: each row's squared whitened
    residuals per component (the inner loop runs over the components, contiguous)."""
    n, k_n = out.shape
    d = y.shape[1] // k_n
    for i in range(n):
        for k in range(k_n):
            out[i, k] = 0.0
        for j in range(d):
            base = j * k_n
            for k in range(k_n):
                v = y[i, base + k] + offset[base + k]
                out[i, k] += v * v


@numba.njit(nogil=True, cache=True)
def _weighted_residuals(x: np.ndarray, idx: np.ndarray, point: np.ndarray, r: np.ndarray,
                        out: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``out[m] = sqrt(r[idx[m]]) (x[idx[m]] - point)``: the rows a component holds, gathered,
    centred and weighted in one sweep (``out`` may be ``x`` when ``idx[m] == m``)."""
    d = x.shape[1]
    for m in range(idx.shape[0]):
        i = idx[m]
        w = math.sqrt(r[i])
        for j in range(d):
            out[m, j] = w * (x[i, j] - point[j])


class FullCovariance(CovarianceType):
    """``'full'``: precisions Cholesky (K, d, d), statistics (K, d, d)."""

    name = "full"
    stats_kind = "full"
    keeps_responsibilities = True

    # ------------------------------------------------------------------ E-step

    def log_det_cholesky(self, prec_chol: np.ndarray, n_features: int) -> np.ndarray:
        return np.asarray(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1))

    def prepare(self, gp: GaussianParams, ref: np.ndarray) -> Whitening:
        """The column blocks of ``[L_1 ... L_K]`` and the offsets ``-(mu_k - ref) L_k``."""
        d = gp.means.shape[1]
        chol = gp.prec_chol
        upper = not np.tril(chol, -1).any()
        n_blocks = max(1, -(-d // BLOCK_COLUMNS)) if upper else 1
        cuts = np.linspace(0, d, n_blocks + 1).round().astype(np.int64).tolist()
        blocks = []
        for c0, c1 in itertools.pairwise(cuts):
            rows = c1 if upper else d
            blocks.append((c0, rows, np.ascontiguousarray(chol[:, :rows, c0:c1].transpose(1, 2, 0).reshape(rows, -1))))
        offset = -np.einsum("kd,kde->ek", gp.means - ref, chol).reshape(-1)
        return Whitening(blocks, np.ascontiguousarray(offset))

    def mahalanobis(self, a: np.ndarray, d: int, prep: Whitening, gp: GaussianParams, ws: Scratch) -> np.ndarray:
        n = a.shape[0]
        k = gp.n_components
        y = ws.get("y", n, k * d)
        for c0, rows, b in prep.blocks:
            np.matmul(a[:, :rows], b, out=y[:, k * c0 : k * c0 + b.shape[1]])
        out = ws.get("maha", n, k)
        _sq_norms(y, prep.offset, out)
        return out

    def work_width(self, n_components: int, n_features: int) -> int:
        return n_components * n_features

    # ------------------------------------------------------------------ statistics

    def m2_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components, n_features, n_features)

    def accumulate(self, acc: Accumulator, a: np.ndarray, d: int, resp: np.ndarray) -> None:
        super().accumulate(acc, a, d, resp)
        acc.keep_responsibilities(resp)

    def end_segment(self, acc: Accumulator, segment: np.ndarray, affine: Affine, ref: np.ndarray) -> None:
        """Each component's ``sum r (x - point)(x - point)^T`` over the segment, by SYRK."""
        resp = acc.segment_responsibilities(segment.shape[0])
        m, d = min(GATHER_ROWS, segment.shape[0]), segment.shape[1]
        xbuf = acc.scratch.get("x", m, d)
        direct = segment.dtype == COMPUTE_DTYPE and affine.is_identity
        stored = None if direct else acc.scratch.get("stored", m, d, segment.dtype)
        for k in range(resp.shape[1]):
            point = ref if acc.centers is None else acc.centers[k]
            r = resp[:, k]
            rows = np.flatnonzero(r >= acc.min_resp[k] if acc.min_resp[k] > 0 else r > 0)
            for b in range(0, rows.shape[0], GATHER_ROWS):
                idx = rows[b : b + GATHER_ROWS]
                xk = xbuf[: idx.shape[0]]
                if stored is None:
                    _weighted_residuals(segment, idx, point, r, xk)
                else:
                    raw = np.take(segment, idx, axis=0, out=stored[: idx.shape[0]], mode="clip")
                    np.copyto(xk, raw, casting="unsafe")
                    affine.apply(xk)
                    _weighted_residuals(xk, np.arange(idx.shape[0]), point, r[idx], xk)
                acc.s2[k] += xk.T @ xk  # SYRK

    def centre(self, s2: np.ndarray, s1: np.ndarray, n: np.ndarray, m: np.ndarray,
               offset: np.ndarray) -> np.ndarray:
        mo = m - offset
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
