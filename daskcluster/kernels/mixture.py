"""Kernels of Gaussian mixtures: log-densities, responsibilities and EM sufficient statistics.

Everything here works on one block of rows and small broadcast parameters, in float64 (a
mixture's log-densities and covariances need it); the block keeps its storage dtype and is
cast a slice at a time.

**Centring.** A block is read as ``x - ref``, ``ref`` the mean of its first 256 rows, so that no
product below is taken at the data's scale (data far from the origin lose nothing).

**E-step** of a slice, per component, through the Cholesky factor ``L`` of the precision
(``P = L L^T``): ``log w + log det L - d/2 log 2 pi - ||(x - mu) L||^2 / 2``. For ``'full'``
all components come out of one GEMM ``[x - ref, 1] @ [[L_1 ... L_K], [-(mu_1 - ref) L_1 ...]]``;
``'tied'`` whitens once (``(x - ref) L``) and expands the distances; ``'diag'`` and
``'spherical'`` expand them as two small GEMMs. Then the log-sum-exp over components gives
``log p(x)`` and the responsibilities.

**Statistics**, per component: the responsibility mass ``n_k``, the weighted mean and the
centred second moment (a ``d x d`` matrix per component for ``'full'``, their sum for
``'tied'``, the diagonal for ``'diag'``/``'spherical'``). A block accumulates plain sums
around ``ref`` and centres them once at its end; blocks are merged by Chan's parallel update
(counts add, means move, second moments gain ``delta delta^T n_a n_b / n``). So the
cancellation of ``E[x x^T] - mu mu^T`` only ever involves the distance of a component's mean
from a nearby reference, never the data's offset, and the statistics of the whole equal the
merged statistics of any split of the rows (up to rounding).

For ``'full'`` the responsibilities of a segment of the block (a few thousand rows) are kept,
and each component's ``sum r (x - mu_k)(x - mu_k)^T`` is one SYRK (``z^T z`` with
``z = sqrt(r) (x - mu_k)``) over the rows it holds,
centred at the component's current mean ``mu_k`` (so only the mean's move in this iteration
cancels), over the rows whose responsibility is at least :data:`MIN_RESP` (``1e-30``). Leaving out smaller
terms changes nothing at float64 precision, and on clustered data it skips most of the work
(each row belongs to few components). Components holding less than one row's worth of mass
(``weight * n_samples < 1``) keep every non-zero term, so that even their (meaningless)
covariances match scikit-learn's.

**Threads.** The small GEMMs of a slice are slower with several BLAS threads than with one
(and a threaded scheduler already runs one task per core), so every kernel here runs with
BLAS limited to one thread (restored when the last running kernel ends).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidDataError
from .blocks import (
    Affine,
    ChunkInfo,
    check_finite_rows,
    iter_compute_slices,
    row_sq_norms,
)
from .distances import nearest_center
from .kmeans import chunk_rng

#: Dtype of every mixture computation.
COMPUTE_DTYPE = np.dtype(np.float64)
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
#: The statistics each covariance type needs: spherical variances are means of diagonal ones.
STATS_KIND = {"full": "full", "tied": "tied", "diag": "diag", "spherical": "diag"}
#: Elements (rows x (features + per-row work)) of one compute slice: 4 MiB of float64.
SLICE_ELEMENTS = 2**19
#: Responsibilities kept per segment for the second moments of ``'full'`` (8 MiB of float64).
SEGMENT_ELEMENTS = 2**20
#: Rows gathered at once for one component's second moment.
GATHER_ROWS = 4096
#: Smallest responsibility counted in a ``'full'`` second moment (see the module notes).
MIN_RESP = 1e-30
LOG_2PI = math.log(2.0 * math.pi)


def slice_rows(n_features: int, width: int) -> int:
    """Rows per compute slice for ``width`` floats of temporary work per row."""
    return int(min(4096, max(32, SLICE_ELEMENTS // (n_features + 1 + width))))


# --------------------------------------------------------------------------- BLAS threads

_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter: Any = None
_blas_controller: Any = None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread while any kernel of this module runs in the process.

    Nested and concurrent uses share one limit, restored when the last one exits.
    """
    global _blas_users, _blas_limiter, _blas_controller
    with _blas_lock:
        if _blas_users == 0:
            try:
                if _blas_controller is None:
                    from threadpoolctl import ThreadpoolController

                    _blas_controller = ThreadpoolController()
                _blas_limiter = _blas_controller.limit(limits=1, user_api="blas")
            except Exception:  # threadpoolctl missing or failing: run as is
                _blas_limiter = None
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limiter is not None:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


# --------------------------------------------------------------------------- parameters


_LOG_DET: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "full": lambda p, d: np.log(np.diagonal(p, axis1=1, axis2=2)).sum(axis=1),
    "tied": lambda p, d: np.asarray(np.log(np.diagonal(p)).sum()),
    "diag": lambda p, d: np.log(p).sum(axis=1),
    "spherical": lambda p, d: d * np.log(p),
}


def log_det_cholesky(prec_chol: np.ndarray, covariance_type: str, n_features: int) -> np.ndarray:
    """``log det`` of each component's precision Cholesky factor, shape (n_components,)
    (a scalar for ``'tied'``)."""
    return _LOG_DET[covariance_type](prec_chol, n_features)


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
        ``log w_k + log det L_k - d/2 log(2 pi)``.
    center : ndarray of shape (n_features,)
        The frame of the statistics' means (the mixture mean): they are returned relative to it.
    min_resp : ndarray of shape (n_components,)
        Smallest responsibility counted in a ``'full'`` second moment, per component.
    """

    covariance_type: str
    means: np.ndarray
    prec_chol: np.ndarray
    log_const: np.ndarray
    center: np.ndarray
    min_resp: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def kind(self) -> str:
        return STATS_KIND[self.covariance_type]


def gaussian_params(
    weights: np.ndarray, means: np.ndarray, prec_chol: np.ndarray, covariance_type: str, n_samples: int | None = None
) -> GaussianParams:
    """Precompute what every block's E-step needs from a mixture's parameters.

    ``n_samples`` (the rows of the whole data set) lets the second moments of components
    holding at least one row's worth of mass leave out responsibilities below
    :data:`MIN_RESP`; without it every non-zero responsibility counts.
    """
    means = np.ascontiguousarray(means, dtype=COMPUTE_DTYPE)
    prec_chol = np.ascontiguousarray(prec_chol, dtype=COMPUTE_DTYPE)
    weights = np.asarray(weights, dtype=COMPUTE_DTYPE)
    k, d = means.shape
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    log_const = log_w + log_det_cholesky(prec_chol, covariance_type, d) - 0.5 * d * LOG_2PI
    total = weights.sum()
    center = (weights / total) @ means if total > 0 else means.mean(axis=0)
    min_resp = np.zeros(k)
    if n_samples is not None:
        min_resp[weights * n_samples >= 1.0] = MIN_RESP
    return GaussianParams(covariance_type, means, prec_chol, np.broadcast_to(log_const, (k,)).copy(), center, min_resp)


# --------------------------------------------------------------------------- E-step


class _Scratch:
    """Temporaries reused from slice to slice.

    A large temporary allocated anew for every slice costs page faults each time when the
    allocator returns freed memory to the system at once (as Dask's nanny configures workers
    with ``MALLOC_TRIM_THRESHOLD_``); the kernels allocate them once per block instead.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, rows: int, cols: int, dtype: Any = COMPUTE_DTYPE) -> np.ndarray:
        buf = self._bufs.get(name)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != cols or buf.dtype != dtype:
            buf = self._bufs[name] = np.empty((max(rows, 1), cols), dtype=dtype)
        return buf[:rows]


def _prepare_full(gp: GaussianParams, ref: np.ndarray) -> np.ndarray:
    """``[[L_1 ... L_K], [-(mu_1 - ref) L_1 ... -(mu_K - ref) L_K]]``, shape (d + 1, K d)."""
    k, d = gp.means.shape
    b = np.empty((d + 1, k * d))
    b[:d] = gp.prec_chol.transpose(1, 0, 2).reshape(d, k * d)
    np.negative(np.einsum("kd,kde->ke", gp.means - ref, gp.prec_chol).reshape(-1), out=b[d])
    return b


def _maha_full(a: np.ndarray, b: np.ndarray, gp: GaussianParams, ws: _Scratch) -> np.ndarray:
    n, d1 = a.shape
    k = gp.n_components
    y = np.matmul(a, b, out=ws.get("y", n, k * (d1 - 1))).reshape(n, k, d1 - 1)
    return np.einsum("nkd,nkd->nk", y, y, out=ws.get("maha", n, k))


def _prepare_tied(gp: GaussianParams, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = (gp.means - ref) @ gp.prec_chol
    return -2.0 * b.T, row_sq_norms(b)


def _maha_tied(a: np.ndarray, prep: tuple[np.ndarray, np.ndarray], gp: GaussianParams, ws: _Scratch) -> np.ndarray:
    n, d1 = a.shape
    z = np.matmul(a[:, :-1], gp.prec_chol, out=ws.get("z", n, d1 - 1))
    maha = np.matmul(z, prep[0], out=ws.get("maha", n, gp.n_components))
    maha += row_sq_norms(z)[:, None]
    maha += prep[1]
    return np.maximum(maha, 0.0, out=maha)


def _prepare_diag(gp: GaussianParams, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prec = gp.prec_chol**2
    mb = gp.means - ref
    return np.ascontiguousarray(prec.T), -2.0 * (mb * prec).T, (mb * mb * prec).sum(axis=1)


def _maha_diag(a: np.ndarray, prep: tuple[np.ndarray, np.ndarray, np.ndarray], gp: GaussianParams,
               ws: _Scratch) -> np.ndarray:
    n, d1 = a.shape
    k = gp.n_components
    xs = a[:, :-1]
    sq = np.multiply(xs, xs, out=ws.get("sq", n, d1 - 1))
    maha = np.matmul(sq, prep[0], out=ws.get("maha", n, k))
    maha += np.matmul(xs, prep[1], out=ws.get("cross", n, k))
    maha += prep[2]
    return np.maximum(maha, 0.0, out=maha)


def _prepare_spherical(gp: GaussianParams, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prec = gp.prec_chol**2
    mb = gp.means - ref
    return prec, -2.0 * mb.T * prec, row_sq_norms(mb) * prec


def _maha_spherical(a: np.ndarray, prep: tuple[np.ndarray, np.ndarray, np.ndarray], gp: GaussianParams,
                    ws: _Scratch) -> np.ndarray:
    xs = a[:, :-1]
    maha = np.matmul(xs, prep[1], out=ws.get("maha", a.shape[0], gp.n_components))
    maha += row_sq_norms(xs)[:, None] * prep[0]
    maha += prep[2]
    return np.maximum(maha, 0.0, out=maha)


#: Per block: the constants of the distances given the block's reference point.
PREPARE: dict[str, Callable[[GaussianParams, np.ndarray], Any]] = {
    "full": _prepare_full,
    "tied": _prepare_tied,
    "diag": _prepare_diag,
    "spherical": _prepare_spherical,
}

#: Per slice ``a = [x - ref, 1]``: squared Mahalanobis distances to each component, (rows, K).
MAHALANOBIS: dict[str, Callable[[np.ndarray, Any, GaussianParams, _Scratch], np.ndarray]] = {
    "full": _maha_full,
    "tied": _maha_tied,
    "diag": _maha_diag,
    "spherical": _maha_spherical,
}


class _Estep:
    """The E-step of one mixture on the slices of one block (constants prepared once)."""

    def __init__(self, gp: GaussianParams, ref: np.ndarray) -> None:
        self.gp = gp
        self.prep = PREPARE[gp.covariance_type](gp, ref)
        self.scratch = _Scratch()

    def weighted_log_prob(self, a: np.ndarray) -> np.ndarray:
        """``log w_k + log N(x | mu_k, P_k^-1)`` of each row, shape (rows, n_components); a
        scratch buffer, overwritten by the next call."""
        maha = MAHALANOBIS[self.gp.covariance_type](a, self.prep, self.gp, self.scratch)
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


def _check_log_norm(log_norm: np.ndarray, x: np.ndarray, chunk: ChunkInfo, start: int) -> None:
    """Raise if a row's log-likelihood is not finite: non-finite data, or values so large that
    the densities overflow. Costs one O(rows) test when all is well."""
    if np.isfinite(log_norm).all():
        return
    check_finite_rows(x, row_sq_norms(x), chunk, start)
    row = int(np.flatnonzero(~np.isfinite(log_norm))[0])
    raise InvalidDataError(
        f"The log-likelihood of row {chunk.start + start + row} (chunk {chunk.index}) under the mixture is "
        f"{float(log_norm[row])!r}: its values are too large for the model's precisions. Scale the input data."
    )


def _reference(block: np.ndarray, affine: Affine) -> np.ndarray:
    """The centring point of a block: the mean of (up to) its first 256 rows, in float64."""
    head = block[:256].astype(COMPUTE_DTYPE)
    return affine.apply(head).mean(axis=0) if head.shape[0] else np.zeros(block.shape[1])


def _segments(block: np.ndarray, n_components: int) -> Iterator[tuple[int, np.ndarray]]:
    """Row ranges of the block whose responsibilities fit :data:`SEGMENT_ELEMENTS`."""
    rows = max(1024, SEGMENT_ELEMENTS // max(1, n_components))
    for start in range(0, block.shape[0], rows):
        yield start, block[start : start + rows]


def _slices(
    block: np.ndarray, affine: Affine, ref: np.ndarray, width: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Slices of ``block`` as ``(start, x, a)`` with ``a = [x - ref, 1]`` in one reused buffer."""
    d = block.shape[1]
    rows = slice_rows(d, width)
    buf = np.empty((min(rows, max(1, block.shape[0])), d + 1), dtype=COMPUTE_DTYPE)
    buf[:, d] = 1.0
    for start, stop, x in iter_compute_slices(block, COMPUTE_DTYPE, affine, rows):
        a = buf[: stop - start]
        np.subtract(x, ref, out=a[:, :d])
        yield start, x, a


# --------------------------------------------------------------------------- statistics


@dataclass
class MixtureStats:
    """EM sufficient statistics of some rows, for one mixture.

    Attributes
    ----------
    kind : {'full', 'tied', 'diag'}
    n_rows : int
    log_lik : float
        Sum over the rows of ``log p(x)`` (0 for initialization passes).
    nk : ndarray of shape (n_components,)
        ``sum_i resp_ik``.
    means : ndarray of shape (n_components, n_features)
        Responsibility-weighted means, relative to the pass's ``center`` (0 where ``nk == 0``).
    m2 : ndarray
        Centred second moments ``sum_i resp_ik (x_i - mean_k)(x_i - mean_k)^T``: (K, d, d)
        full; their sum over components (d, d) tied; the diagonals (K, d) diag.
    """

    kind: str
    n_rows: int
    log_lik: float
    nk: np.ndarray
    means: np.ndarray
    m2: np.ndarray

    @staticmethod
    def empty(kind: str, n_components: int, n_features: int) -> MixtureStats:
        k, d = n_components, n_features
        return MixtureStats(kind, 0, 0.0, np.zeros(k), np.zeros((k, d)), np.zeros(_M2_SHAPE[kind](k, d)))

    def merge(self, other: MixtureStats) -> MixtureStats:
        """Chan's parallel update: the statistics of the union of both sets of rows."""
        nk = self.nk + other.nk
        frac = np.divide(other.nk, nk, out=np.zeros_like(nk), where=nk > 0)
        delta = other.means - self.means
        means = np.where((self.nk > 0)[:, None], self.means + delta * frac[:, None], other.means)
        m2 = _MERGE_M2[self.kind](self.m2, other.m2, delta, self.nk * frac)
        return MixtureStats(self.kind, self.n_rows + other.n_rows, self.log_lik + other.log_lik, nk, means, m2)


_M2_SHAPE: dict[str, Callable[[int, int], tuple[int, ...]]] = {
    "full": lambda k, d: (k, d, d),
    "tied": lambda k, d: (d, d),
    "diag": lambda k, d: (k, d),
}

_MERGE_M2: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "full": lambda a, b, delta, c: a + b + c[:, None, None] * delta[:, :, None] * delta[:, None, :],
    "tied": lambda a, b, delta, c: a + b + (delta * c[:, None]).T @ delta,
    "diag": lambda a, b, delta, c: a + b + c[:, None] * delta * delta,
}


def _sum2_full(xs: np.ndarray, resp: np.ndarray, out: np.ndarray, ws: _Scratch) -> None:
    """Nothing per slice: ``'full'`` second moments are taken per segment (:meth:`_Accumulator.end_segment`)."""


def _sum2_tied(xs: np.ndarray, resp: np.ndarray, out: np.ndarray, ws: _Scratch) -> None:
    """``out (d, d) += xs^T xs`` (the responsibilities of a row sum to 1)."""
    out += xs.T @ xs


def _sum2_diag(xs: np.ndarray, resp: np.ndarray, out: np.ndarray, ws: _Scratch) -> None:
    out += resp.T @ np.multiply(xs, xs, out=ws.get("sq", *xs.shape))


#: Raw second moments around the block's reference, accumulated slice by slice.
SUM2: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, _Scratch], None]] = {
    "full": _sum2_full,
    "tied": _sum2_tied,
    "diag": _sum2_diag,
}

#: Centred second moments from the raw ones ``s2`` (around the reference, or for ``'full'``
#: around each component's ``offset`` from it), the sums ``s1``, the counts ``n`` and the
#: means ``m`` (both relative to the reference).
CENTRE: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "full": lambda s2, s1, n, m, offset: s2 - n[:, None, None] * (m - offset)[:, :, None] * (m - offset)[:, None, :],
    "tied": lambda s2, s1, n, m, offset: s2 - s1.T @ m,
    "diag": lambda s2, s1, n, m, offset: s2 - s1 * m,
}


class _Accumulator:
    """Plain sums of one block around its reference point, centred once at the end.

    Per slice :meth:`add` takes the responsibilities; for ``'full'`` they are also kept for
    the segment, and :meth:`end_segment` adds each component's second moment over the rows it
    holds (one GEMM per component, the rows gathered from the block), around ``centers[k]``
    (the component's current mean; the block's reference when not given).
    """

    def __init__(self, kind: str, n_components: int, n_features: int, min_resp: np.ndarray | None = None,
                 centers: np.ndarray | None = None) -> None:
        self.kind = kind
        self.n_rows = 0
        self.log_lik = 0.0
        self.nk = np.zeros(n_components)
        self.s1 = np.zeros((n_components, n_features))
        self.s2 = np.zeros(_M2_SHAPE[kind](n_components, n_features))
        self.min_resp = np.zeros(n_components) if min_resp is None else min_resp
        self.centers = centers
        self.resp: np.ndarray | None = None
        self.scratch = _Scratch()

    def start_segment(self, n_rows: int) -> None:
        if self.kind == "full":
            if self.resp is None or self.resp.shape[0] < n_rows:
                self.resp = np.empty((n_rows, self.nk.shape[0]))

    def add(self, start: int, xs: np.ndarray, resp: np.ndarray, log_lik: float = 0.0) -> None:
        """Rows ``start:start + len(xs)`` of the segment, centred at the reference."""
        self.n_rows += xs.shape[0]
        self.log_lik += log_lik
        self.nk += resp.sum(axis=0)
        self.s1 += resp.T @ xs
        SUM2[self.kind](xs, resp, self.s2, self.scratch)
        if self.resp is not None:
            self.resp[start : start + xs.shape[0]] = resp

    def end_segment(self, segment: np.ndarray, affine: Affine, ref: np.ndarray) -> None:
        if self.resp is None:
            return
        resp = self.resp[: segment.shape[0]]
        m, d = min(GATHER_ROWS, segment.shape[0]), segment.shape[1]
        xbuf = self.scratch.get("x", m, d)
        direct = segment.dtype == COMPUTE_DTYPE and affine.is_identity
        stored = None if direct else self.scratch.get("stored", m, d, segment.dtype)
        for k in range(resp.shape[1]):
            point = ref if self.centers is None else self.centers[k]
            r = resp[:, k]
            rows = np.flatnonzero(r >= self.min_resp[k] if self.min_resp[k] > 0 else r > 0)
            for b in range(0, rows.shape[0], GATHER_ROWS):
                idx = rows[b : b + GATHER_ROWS]
                xk = xbuf[: idx.shape[0]]
                if stored is None:
                    np.take(segment, idx, axis=0, out=xk, mode="clip")
                else:
                    raw = np.take(segment, idx, axis=0, out=stored[: idx.shape[0]], mode="clip")
                    np.copyto(xk, raw, casting="unsafe")
                    affine.apply(xk)
                xk -= point
                xk *= np.sqrt(r[idx])[:, None]
                self.s2[k] += xk.T @ xk  # sum r (x - point)(x - point)^T, by SYRK

    def finish(self, ref: np.ndarray, center: np.ndarray) -> MixtureStats:
        """The statistics of the block read around ``ref``, means relative to ``center``."""
        k, d = self.s1.shape
        if self.n_rows == 0:
            return MixtureStats.empty(self.kind, k, d)
        m = np.divide(self.s1, self.nk[:, None], out=np.zeros_like(self.s1), where=(self.nk > 0)[:, None])
        offset = np.zeros_like(m) if self.centers is None else self.centers - ref
        m2 = CENTRE[self.kind](self.s2, self.s1, self.nk, m, offset)
        means = np.where((self.nk > 0)[:, None], m + (ref - center), 0.0)
        return MixtureStats(self.kind, self.n_rows, self.log_lik, self.nk, means, m2)


def combine_stats(parts: list[list[MixtureStats]]) -> list[MixtureStats]:
    """Merge lists of statistics (one entry per mixture) in chunk order."""
    out = list(parts[0])
    for part in parts[1:]:
        out = [a.merge(b) for a, b in zip(out, part)]
    return out


# --------------------------------------------------------------------------- EM pass


@dataclass(frozen=True)
class EMParams:
    """One EM pass for one or several mixtures (all read the block once)."""

    models: tuple[GaussianParams, ...]
    affine: Affine


def _width(models: tuple[GaussianParams, ...] | list[GaussianParams]) -> int:
    """Floats of temporary work per row of a slice (the largest mixture decides)."""
    d = models[0].means.shape[1]
    return max(m.n_components * (d if m.covariance_type == "full" else 2) for m in models)


def _accumulate(
    block: np.ndarray,
    ref: np.ndarray,
    affine: Affine,
    accs: list[_Accumulator],
    width: int,
    resp_of: Callable[[int, np.ndarray, np.ndarray], list[tuple[np.ndarray, float]]],
) -> None:
    """Feed each accumulator, slice by slice, the responsibilities ``resp_of(start, x, a)``
    gives (one ``(resp, log_lik)`` per accumulator, ``start`` the slice's first row in the block)."""
    d = block.shape[1]
    n_components = max(acc.nk.shape[0] for acc in accs)
    with single_threaded_blas():
        for seg_start, segment in _segments(block, n_components):
            for acc in accs:
                acc.start_segment(segment.shape[0])
            for start, x, a in _slices(segment, affine, ref, width):
                for acc, (resp, log_lik) in zip(accs, resp_of(seg_start + start, x, a)):
                    acc.add(start, a[:, :d], resp, log_lik)
            for acc in accs:
                acc.end_segment(segment, affine, ref)


def em_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: EMParams
) -> list[MixtureStats]:
    """E-step of each mixture on one block, and the statistics of its M-step. One read of the block."""
    d = block.shape[1]
    models = params.models
    accs = [_Accumulator(m.kind, m.n_components, d, m.min_resp, m.means if m.kind == "full" else None)
            for m in models]
    if block.shape[0] == 0:
        return [acc.finish(np.zeros(d), np.zeros(d)) for acc in accs]
    ref = _reference(block, params.affine)
    esteps = [_Estep(gp, ref) for gp in models]

    def resp_of(start: int, x: np.ndarray, a: np.ndarray) -> list[tuple[np.ndarray, float]]:
        out = []
        for est in esteps:
            log_norm, resp = log_norm_and_resp(est.weighted_log_prob(a))
            _check_log_norm(log_norm, x, chunk, start)
            out.append((resp, float(log_norm.sum())))
        return out

    _accumulate(block, ref, params.affine, accs, _width(models), resp_of)
    return [acc.finish(ref, gp.center) for acc, gp in zip(accs, models)]


@dataclass
class LogLikSums:
    """Rows read and, per mixture, the sum of their ``log p(x)``."""

    n_rows: int
    sums: np.ndarray


def loglik_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: EMParams
) -> LogLikSums:
    """Total log-likelihood of a block under each mixture."""
    sums = np.zeros(len(params.models))
    if block.shape[0] == 0:
        return LogLikSums(0, sums)
    ref = _reference(block, params.affine)
    esteps = [_Estep(gp, ref) for gp in params.models]
    with single_threaded_blas():
        for start, x, a in _slices(block, params.affine, ref, _width(params.models)):
            for j, est in enumerate(esteps):
                log_norm, _ = log_norm_and_resp(est.weighted_log_prob(a))
                _check_log_norm(log_norm, x, chunk, start)
                sums[j] += log_norm.sum()
    return LogLikSums(block.shape[0], sums)


def combine_loglik(parts: list[LogLikSums]) -> LogLikSums:
    return LogLikSums(sum(p.n_rows for p in parts), np.sum([p.sums for p in parts], axis=0))


# --------------------------------------------------------------------------- initialization passes


@dataclass(frozen=True)
class HardInitParams:
    """Responsibilities one-hot at each row's nearest center (k-means initialization)."""

    centers: np.ndarray
    kinds: tuple[str, ...]
    center: np.ndarray
    affine: Affine


def _init_stats(block: np.ndarray, chunk: ChunkInfo, affine: Affine, kinds: tuple[str, ...], k: int,
                center: np.ndarray, resp_of: Callable[[int, np.ndarray], np.ndarray]) -> list[MixtureStats]:
    d = block.shape[1]
    accs = [_Accumulator(kind, k, d) for kind in kinds]
    if block.shape[0] == 0:
        return [acc.finish(np.zeros(d), np.zeros(d)) for acc in accs]

    def each(start: int, x: np.ndarray, a: np.ndarray) -> list[tuple[np.ndarray, float]]:
        check_finite_rows(x, row_sq_norms(x), chunk, start)
        resp = resp_of(start, x)
        return [(resp, 0.0)] * len(accs)

    ref = _reference(block, affine)
    _accumulate(block, ref, affine, accs, 2 * k, each)
    return [acc.finish(ref, center) for acc in accs]


def hard_init_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: HardInitParams
) -> list[MixtureStats]:
    """Statistics of each kind under the hard assignment of rows to their nearest center."""
    centers = params.centers
    k = centers.shape[0]
    c_sq = row_sq_norms(centers)
    scratch = _Scratch()

    def resp_of(start: int, x: np.ndarray) -> np.ndarray:
        labels = nearest_center(x, row_sq_norms(x), centers, c_sq)[0]
        resp = scratch.get("resp", x.shape[0], k)
        resp[...] = 0.0
        resp[np.arange(x.shape[0]), labels] = 1.0
        return resp

    return _init_stats(block, chunk, params.affine, params.kinds, k, params.center, resp_of)


@dataclass(frozen=True)
class RandomInitParams:
    """Responsibilities drawn uniformly at random and normalized per row ('random' init)."""

    n_components: int
    kinds: tuple[str, ...]
    center: np.ndarray
    affine: Affine
    entropy: int
    tag: int


def random_init_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: RandomInitParams
) -> list[MixtureStats]:
    """Statistics of each kind under random responsibilities; the chunk's draws come from
    ``SeedSequence(entropy, spawn_key=(tag, chunk.index))``."""
    k = params.n_components
    resp_all = chunk_rng(params.entropy, params.tag, chunk.index).random((block.shape[0], k))
    resp_all /= resp_all.sum(axis=1, keepdims=True)
    return _init_stats(block, chunk, params.affine, params.kinds, k, params.center,
                       lambda start, x: resp_all[start : start + x.shape[0]])


# --------------------------------------------------------------------------- prediction


def _map_slices(block: np.ndarray, affine: Affine, gp: GaussianParams, chunk: ChunkInfo, out: np.ndarray,
                fill: Callable[[np.ndarray, np.ndarray, np.ndarray, slice], None]) -> np.ndarray:
    """Run ``fill(log_norm, resp_or_labels, out, rows)`` on the E-step of each slice of the block."""
    if block.shape[0] == 0:
        return out
    ref = _reference(block, affine)
    est = _Estep(gp, ref)
    with single_threaded_blas():
        for start, x, a in _slices(block, affine, ref, _width([gp])):
            wlp = est.weighted_log_prob(a)
            labels = wlp.argmax(axis=1)
            log_norm, resp = log_norm_and_resp(wlp)
            _check_log_norm(log_norm, x, chunk, start)
            fill(log_norm, resp if out.ndim == 2 else labels, out, slice(start, start + x.shape[0]))
    return out


def _fill(log_norm: np.ndarray, other: np.ndarray, out: np.ndarray, rows: slice) -> None:
    out[rows] = log_norm


def _fill_other(log_norm: np.ndarray, other: np.ndarray, out: np.ndarray, rows: slice) -> None:
    out[rows] = other


def score_samples_block(block: np.ndarray, affine: Affine, gp: GaussianParams, chunk: ChunkInfo) -> np.ndarray:
    """``log p(x)`` of each row, shape (n_rows,)."""
    return _map_slices(block, affine, gp, chunk, np.empty(block.shape[0]), _fill)


def predict_proba_block(block: np.ndarray, affine: Affine, gp: GaussianParams, chunk: ChunkInfo) -> np.ndarray:
    """Responsibilities of each row, shape (n_rows, n_components)."""
    return _map_slices(block, affine, gp, chunk, np.empty((block.shape[0], gp.n_components)), _fill_other)


def predict_block(block: np.ndarray, affine: Affine, gp: GaussianParams, chunk: ChunkInfo) -> np.ndarray:
    """Most probable component of each row, shape (n_rows,), int64."""
    return _map_slices(block, affine, gp, chunk, np.empty(block.shape[0], dtype=np.int64), _fill_other)


def below_block(
    block: np.ndarray, affine: Affine, gp: GaussianParams, threshold: float, chunk: ChunkInfo
) -> np.ndarray:
    """Whether each row's ``log p(x)`` is below ``threshold``, shape (n_rows,), bool."""
    return score_samples_block(block, affine, gp, chunk) < threshold


# --------------------------------------------------------------------------- quantiles of log p(x)


@dataclass(frozen=True)
class SketchParams:
    """A quantile summary of ``log p(x)`` keeping every ``max(1, floor(eps * rows))``-th value."""

    model: GaussianParams
    affine: Affine
    eps: float


@dataclass
class ScoreSketch:
    """Sorted order statistics of ``log p(x)`` kept from each chunk, with weights.

    A chunk's sorted scores are cut into groups of ``step`` (the last one shorter); each group
    is represented by its largest value, weighted by its size. For any ``t``, the number of the
    chunk's scores ``<= t`` is at least the weight of the kept values ``<= t`` and at most
    ``step - 1`` more; ``slack`` sums ``step - 1`` over the chunks.
    """

    n_rows: int
    slack: int
    values: np.ndarray
    weights: np.ndarray


def score_sketch_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: SketchParams
) -> ScoreSketch:
    """Quantile summary of the block's ``log p(x)``."""
    scores = np.sort(score_samples_block(block, params.affine, params.model, chunk))
    n = scores.shape[0]
    if n == 0:
        return ScoreSketch(0, 0, scores, np.zeros(0, dtype=np.int64))
    step = max(1, int(params.eps * n))
    ends = np.arange(step - 1, n, step)
    if ends.size == 0 or ends[-1] != n - 1:
        ends = np.append(ends, n - 1)
    weights = np.diff(ends, prepend=-1).astype(np.int64)
    return ScoreSketch(n, step - 1, scores[ends], weights)


def combine_sketches(parts: list[ScoreSketch]) -> ScoreSketch:
    values = np.concatenate([p.values for p in parts])
    order = np.argsort(values, kind="stable")
    return ScoreSketch(
        sum(p.n_rows for p in parts),
        sum(p.slack for p in parts),
        values[order],
        np.concatenate([p.weights for p in parts])[order],
    )


@dataclass(frozen=True)
class BracketParams:
    """Count the scores ``<= low`` and keep those in ``(low, high]``."""

    model: GaussianParams
    affine: Affine
    low: float
    high: float


@dataclass
class Bracket:
    n_below: int
    values: np.ndarray


def bracket_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: BracketParams
) -> Bracket:
    scores = score_samples_block(block, params.affine, params.model, chunk)
    inside = (scores > params.low) & (scores <= params.high)
    return Bracket(int((scores <= params.low).sum()), scores[inside])


def combine_brackets(parts: list[Bracket]) -> Bracket:
    return Bracket(sum(p.n_below for p in parts), np.concatenate([p.values for p in parts]))

