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

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

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

if TYPE_CHECKING:  # the covariance types import this module's row E-step
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


#: Below this, ``exp`` underflows to 0 in float64: the term is skipped (its value is 0 anyway).
EXP_UNDERFLOW = -746.0


@numba.njit(nogil=True, cache=True)
def row_responsibilities(w: np.ndarray) -> tuple[float, float, int]:  # pragma: no cover (compiled)
    """One row's E-step from ``w = log w_k + log N(x | k)`` (K,), overwritten in place by the
    responsibilities. Returns ``(log p(x), sum_k r_k log r_k, argmax_k w_k)``; ``log p(x)`` is
    not finite when the row is not (the responsibilities are then undefined).

    The log-sum-exp from one exponential per component: with ``s = w - max`` and
    ``t = sum exp(s)``, ``log p(x) = max + log t`` and ``sum r log r = sum exp(s) s / t - log t``
    (scikit-learn's ``sum(exp(log_resp) * log_resp)``); terms below ``exp``'s underflow are 0.
    """
    k_n = w.shape[0]
    top = -np.inf
    best = 0
    for k in range(k_n):
        if w[k] > top:
            top = w[k]
            best = k
    if not math.isfinite(top):
        top = 0.0
    total = 0.0
    weighted = 0.0
    for k in range(k_n):
        s = w[k] - top
        if s > EXP_UNDERFLOW:
            e = math.exp(s)
            total += e
            weighted += e * s
            w[k] = e
        else:
            w[k] = 0.0
    if not total > 0.0:
        return -np.inf, 0.0, best
    log_total = math.log(total)
    inv = 1.0 / total
    for k in range(k_n):
        w[k] *= inv
    return top + log_total, weighted / total - log_total, best


@numba.njit(nogil=True, cache=True)
def responsibilities_above(w: np.ndarray, floor: np.ndarray) -> tuple[float, float]:  # pragma: no cover (compiled)
    """:func:`row_responsibilities` without the exponentials of the components at or below their
    ``floor`` (:func:`exp_floor`: ``s = w_k - max <= floor_k`` means ``r_k`` below the
    component's ``min_resp``, left out of the statistics anyway; those ``r_k`` are set to 0).
    Returns ``(log p(x), sum_k r_k log r_k)``."""
    k_n = w.shape[0]
    top = -np.inf
    for k in range(k_n):
        if w[k] > top:  # noqa: PLR1730 (a NaN is passed over, as in row_responsibilities)
            top = w[k]
    if not math.isfinite(top):
        top = 0.0
    total = 0.0
    weighted = 0.0
    for k in range(k_n):
        s = w[k] - top
        if s > floor[k]:
            e = math.exp(s)
            total += e
            weighted += e * s
            w[k] = e
        else:
            w[k] = 0.0
    if not total > 0.0:
        return -np.inf, 0.0
    log_total = math.log(total)
    inv = 1.0 / total
    for k in range(k_n):
        w[k] *= inv
    return top + log_total, weighted / total - log_total


def exp_floor(min_resp: np.ndarray) -> np.ndarray:
    """Per component, the ``s = w_k - max_k w_k`` at or below which :func:`responsibilities_above`
    takes no exponential: ``log(min_resp) - 1`` where ``min_resp > 0`` (then
    ``r_k <= exp(s) < min_resp``), else where ``exp`` underflows (:data:`EXP_UNDERFLOW`)."""
    positive = np.where(min_resp > 0, min_resp, 1.0)
    return np.ascontiguousarray(np.where(min_resp > 0, np.maximum(np.log(positive) - 1.0, EXP_UNDERFLOW),
                                         EXP_UNDERFLOW), dtype=COMPUTE_DTYPE)


@numba.njit(nogil=True, cache=True)
def _estep_rows(maha: np.ndarray, log_const: np.ndarray, log_norm: np.ndarray, resp: np.ndarray,
                labels: np.ndarray) -> tuple[float, float, int]:  # pragma: no cover (compiled)
    """:func:`row_responsibilities` of each row of ``log_const - maha / 2`` into ``log_norm``,
    ``resp`` and ``labels``; returns ``(sum log p(x), sum r log r, first row whose log p(x) is
    not finite or -1)`` (rows after it are not done)."""
    n, k_n = maha.shape
    log_lik = 0.0
    entropy = 0.0
    for i in range(n):
        w = resp[i]
        for k in range(k_n):
            w[k] = log_const[k] - 0.5 * maha[i, k]
        value, ent, best = row_responsibilities(w)
        log_norm[i] = value
        labels[i] = best
        if not math.isfinite(value):
            return log_lik, entropy, i
        log_lik += value
        entropy += ent
    return log_lik, entropy, -1


class TileEstep(NamedTuple):
    """The E-step of a tile (arrays in scratch buffers, overwritten by the next tile)."""

    #: ``log p(x)`` of each row, (rows,).
    log_norm: np.ndarray
    #: Responsibilities, (rows, n_components).
    resp: np.ndarray
    #: Most probable component of each row, (rows,), int64.
    labels: np.ndarray
    #: Sums over the rows of ``log p(x)`` and of ``sum_k r_k log r_k``.
    log_lik: float
    entropy: float
    #: First row whose ``log p(x)`` is not finite, or -1 (rows after it are not done).
    bad: int


class Estep:
    """The E-step of one mixture on the tiles of one block (constants prepared once)."""

    def __init__(self, gp: GaussianParams, ref: np.ndarray) -> None:
        self.gp = gp
        self.cov = gp.covariance
        self.d = gp.means.shape[1]
        self.prep = self.cov.prepare(gp, ref)
        self.log_const = np.ascontiguousarray(gp.log_const, dtype=COMPUTE_DTYPE)
        self.scratch = Scratch()

    def run(self, a: np.ndarray) -> TileEstep:
        """Log-densities ``log_const_k - ||(x - mu_k) L_k||^2 / 2`` of the tile's rows, their
        log-sum-exp and responsibilities, in one compiled loop after the type's distances."""
        n, k = a.shape[0], self.gp.n_components
        maha = self.cov.mahalanobis(a, self.d, self.prep, self.gp, self.scratch)
        log_norm = self.scratch.get("log_norm", n, 1)[:, 0]
        resp = self.scratch.get("resp", n, k)
        labels = self.scratch.get("labels", n, 1, np.int64)[:, 0]
        log_lik, entropy, bad = _estep_rows(maha, self.log_const, log_norm, resp, labels)
        return TileEstep(log_norm, resp, labels, log_lik, entropy, bad)

    def check(self, t: TileEstep, x: np.ndarray, chunk: ChunkInfo, start: int) -> None:
        """Raise if a row's log-likelihood is not finite: non-finite data, or values so large
        that the densities overflow (see :func:`raise_non_finite`)."""
        if t.bad >= 0:
            raise_non_finite(t.bad, float(t.log_norm[t.bad]), x, chunk, start)


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
