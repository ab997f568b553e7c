"""The E-step of a block: tiles, log-densities, responsibilities.

**Centring.** A block is read as ``x - ref``, ``ref`` the mean of its first 256 rows, so that no
product is taken at the data's scale (data far from the origin lose nothing).

**Tiles.** A slice of the block is cast to float64 into one reused buffer as
``a = [x - ref, 1, (x - ref)^2]`` (the squares only when a covariance type of the pass uses
them, see :mod:`.covariance.base`).

**E-step** of a tile, per component, through the Cholesky factor ``L`` of the precision
(``P = L L^T``): ``log_const_k - ||(x - mu_k) L_k||^2 / 2``, the distances from the covariance
type's :meth:`~.covariance.CovarianceType.mahalanobis`; then the log-sum-exp over components
gives ``log p(x)`` and the responsibilities.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numba
import numpy as np

from ...errors import InvalidDataError
from ..blocks import (
    Affine,
    ChunkInfo,
    check_finite_rows,
    iter_compute_slices,
    row_sq_norms,
)
from .buffers import COMPUTE_DTYPE, Scratch
from .params import GaussianParams

#: Elements (rows x (tile columns + per-row work)) of one tile: 512 KiB of float64, so that a
#: tile and its products stay in cache (measured on MNIST -> 50 dimensions, 10 components, one
#: thread: a 'diag' pass 1.3-1.7x faster than with 4 MiB tiles, the others unchanged or faster).
SLICE_ELEMENTS = 2**16
#: Responsibilities kept per segment for the second moments of ``'full'`` (8 MiB of float64).
SEGMENT_ELEMENTS = 2**20


def slice_rows(n_features: int, width: int) -> int:
    """Rows per compute slice for ``width`` floats of temporary work per row."""
    return int(min(4096, max(32, SLICE_ELEMENTS // (n_features + 1 + width))))


def width_of(models: Sequence[GaussianParams]) -> int:
    """Floats of temporary work per row of a tile (the largest mixture decides)."""
    d = models[0].means.shape[1]
    return max(m.covariance.work_width(m.n_components, d) for m in models)


def needs_squares(models: Sequence[GaussianParams]) -> bool:
    """Whether the tiles of a pass over these mixtures carry ``(x - ref)^2``."""
    return any(m.covariance.uses_squares for m in models)


class Estep:
    """The E-step of one mixture on the tiles of one block (constants prepared once)."""

    def __init__(self, gp: GaussianParams, ref: np.ndarray) -> None:
        self.gp = gp
        self.cov = gp.covariance
        self.d = gp.means.shape[1]
        self.prep = self.cov.prepare(gp, ref)
        self.scratch = Scratch()

    def weighted_log_prob(self, a: np.ndarray) -> np.ndarray:
        """``log_const_k - ||(x - mu_k) L_k||^2 / 2`` of each row, shape (rows, n_components);
        a scratch buffer, overwritten by the next call."""
        maha = self.cov.mahalanobis(a, self.d, self.prep, self.gp, self.scratch)
        maha *= -0.5
        maha += self.gp.log_const
        return maha


def log_norm_and_resp(wlp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-sum-exp over components (``log p(x)``) and the responsibilities, from
    ``wlp = log w_k + log N(x | k)``; ``wlp`` is overwritten."""
    top = wlp.max(axis=1)
    top[~np.isfinite(top)] = 0.0
    wlp -= top[:, None]
    np.exp(wlp, out=wlp)
    total = wlp.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        wlp /= total[:, None]
        return top + np.log(total), wlp


def log_norm_resp_entropy(wlp: np.ndarray, ws: Scratch) -> tuple[np.ndarray, np.ndarray, float]:
    """As :func:`log_norm_and_resp`, and ``sum r log r`` over the rows and components, with
    ``log r = wlp - log p(x)`` (scikit-learn's ``sum(exp(log_resp) * log_resp)``), from one
    exponential: with ``s = wlp - max`` and ``t = sum exp(s)`` per row,
    ``sum_k r_k log r_k = sum_k exp(s_k) s_k / t - log t``."""
    top = wlp.max(axis=1)
    top[~np.isfinite(top)] = 0.0
    wlp -= top[:, None]
    resp = np.exp(wlp, out=ws.get("resp_t", wlp.shape[1], wlp.shape[0]).T)
    total = resp.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_total = np.log(total)
        weighted = np.einsum("nk,nk->n", resp, wlp)
        entropy = float(np.sum(weighted / total - log_total))
        resp /= total[:, None]
    return top + log_total, resp, entropy


def check_log_norm(log_norm: np.ndarray, x: np.ndarray, chunk: ChunkInfo, start: int) -> None:
    """Raise if a row's log-likelihood is not finite: non-finite data, or values so large that
    the densities overflow. Costs one O(rows) test when all is well."""
    if np.isfinite(log_norm).all():
        return
    row = int(np.flatnonzero(~np.isfinite(log_norm))[0])
    raise_non_finite(row, float(log_norm[row]), x, chunk, start)


def raise_non_finite(row: int, value: float, x: np.ndarray, chunk: ChunkInfo, start: int) -> None:
    """Raise for row ``row`` of ``x`` (rows ``start:`` of the block), whose log-likelihood is
    ``value`` (not finite): name a non-finite value of ``x`` if there is one, else say that
    the values are too large for the model."""
    check_finite_rows(x, row_sq_norms(x), chunk, start)
    raise InvalidDataError(
        f"The log-likelihood of row {chunk.start + start + row} (chunk {chunk.index}) under the mixture is "
        f"{value!r}: its values are too large for the model's precisions. Scale the input data."
    )


def reference(block: np.ndarray, affine: Affine) -> np.ndarray:
    """The centring point of a block: the mean of (up to) its first 256 rows, in float64."""
    head = block[:256].astype(COMPUTE_DTYPE)
    return affine.apply(head).mean(axis=0) if head.shape[0] else np.zeros(block.shape[1])


def segments(block: np.ndarray, n_components: int) -> Iterator[tuple[int, np.ndarray]]:
    """Row ranges of the block whose responsibilities fit :data:`SEGMENT_ELEMENTS`."""
    rows = max(1024, SEGMENT_ELEMENTS // max(1, n_components))
    for start in range(0, block.shape[0], rows):
        yield start, block[start : start + rows]


@numba.njit(nogil=True, cache=True)
def _centre_and_square(x: np.ndarray, ref: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover (compiled)
    """``out[:, :d] = x - ref`` and ``out[:, d + 1:] = (x - ref)^2`` in one sweep of the rows
    (NumPy's two strided ufuncs cost about 5 times more)."""
    n, d = x.shape
    for i in range(n):
        for j in range(d):
            v = x[i, j] - ref[j]
            out[i, j] = v
            out[i, d + 1 + j] = v * v


def tiles(
    block: np.ndarray, affine: Affine, ref: np.ndarray, width: int, squares: bool = False
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Tiles of ``block`` as ``(start, x, a)``: ``x`` the rows in float64, ``a`` the tile
    ``[x - ref, 1]`` (``[x - ref, 1, (x - ref)^2]`` with ``squares``) in one reused buffer."""
    d = block.shape[1]
    rows = slice_rows(d + (d if squares else 0), width)
    buf = np.empty((min(rows, max(1, block.shape[0])), 2 * d + 1 if squares else d + 1), dtype=COMPUTE_DTYPE)
    buf[:, d] = 1.0
    if block.dtype == COMPUTE_DTYPE and affine.is_identity:
        # float64 rows as they are: no cast, the tile is the only copy
        slices: Iterator[tuple[int, int, np.ndarray]] = (
            (start, min(start + rows, block.shape[0]), block[start : start + rows])
            for start in range(0, block.shape[0], rows)
        )
    else:
        slices = iter_compute_slices(block, COMPUTE_DTYPE, affine, rows)
    for start, stop, x in slices:
        a = buf[: stop - start]
        if squares:
            _centre_and_square(x, ref, a)
        else:
            np.subtract(x, ref, out=a[:, :d])
        yield start, x, a
