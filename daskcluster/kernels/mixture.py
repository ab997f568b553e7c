"""Kernels of Gaussian mixtures: log-densities, responsibilities and EM sufficient statistics.

Everything here works on one block of rows and small broadcast parameters, in float64 (a
mixture's log-densities and covariances need it; the block keeps its storage dtype and is cast
a slice at a time).

The E-step of a slice ``x`` (rows x features):

1. centre it at its own mean ``xbar``: ``xs = x - xbar`` (so nothing below depends on how far
   the data sit from the origin);
2. per component, the Mahalanobis distance through the Cholesky factor ``L`` of the precision
   (``P = L L^T``): ``||(x - mu) L||^2``; for ``'full'`` all components come out of one GEMM
   ``[xs, 1] @ [[L_1 ... L_K], [-(mu_1 - xbar) L_1 ... ]]``;
3. ``log w_k + log N(x | k)`` and its log-sum-exp over components: ``log p(x)`` and the
   responsibilities ``resp``.

The statistics of a slice are, per component, ``n_k = sum resp``, the weighted mean and the
centred second moment (a ``d x d`` matrix per component for ``'full'``, their sum for
``'tied'``, the diagonal for ``'diag'``/``'spherical'``). They are computed around the slice
mean and merged by Chan's parallel update (counts add, means move, second moments gain
``delta delta^T n_a n_b / n``), so that no ``E[x x^T] - mu mu^T`` cancellation happens at
the data's scale. Merging is associative: the statistics of the whole equal the merged
statistics of any split of the rows (up to rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidDataError
from .blocks import Affine, ChunkInfo, check_finite_rows, iter_compute_slices, row_sq_norms
from .distances import nearest_center
from .kmeans import chunk_rng

#: Dtype of every mixture computation.
COMPUTE_DTYPE = np.dtype(np.float64)
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
#: The statistics each covariance type needs: spherical variances are means of diagonal ones.
STATS_KIND = {"full": "full", "tied": "tied", "diag": "diag", "spherical": "diag"}
#: Elements (rows x (features + per-row work)) of one compute slice: 2 MiB of float64, which
#: keeps the (rows x n_components*n_features) products of ``'full'`` in cache.
SLICE_ELEMENTS = 2**18
LOG_2PI = math.log(2.0 * math.pi)


def slice_rows(n_features: int, width: int) -> int:
    """Rows per compute slice for ``width`` floats of work per row."""
    return int(min(4096, max(32, SLICE_ELEMENTS // (n_features + 1 + width))))


# --------------------------------------------------------------------------- parameters


def log_det_cholesky(prec_chol: np.ndarray, covariance_type: str, n_features: int) -> np.ndarray:
    """``log det`` of each component's precision Cholesky factor, shape (n_components,)
    (a scalar for ``'tied'``)."""
    return _LOG_DET[covariance_type](prec_chol, n_features)


_LOG_DET: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "full": lambda p, d: np.log(np.diagonal(p, axis1=1, axis2=2)).sum(axis=1),
    "tied": lambda p, d: np.asarray(np.log(np.diagonal(p)).sum()),
    "diag": lambda p, d: np.log(p).sum(axis=1),
    "spherical": lambda p, d: d * np.log(p),
}


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
    lcat : ndarray of shape (n_features, n_components * n_features) or None
        ``'full'`` only: the factors side by side, for one GEMM.
    """

    covariance_type: str
    means: np.ndarray
    prec_chol: np.ndarray
    log_const: np.ndarray
    center: np.ndarray
    lcat: np.ndarray | None = None

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def kind(self) -> str:
        return STATS_KIND[self.covariance_type]


def gaussian_params(
    weights: np.ndarray, means: np.ndarray, prec_chol: np.ndarray, covariance_type: str
) -> GaussianParams:
    """Precompute what every block's E-step needs from a mixture's parameters."""
    means = np.ascontiguousarray(means, dtype=COMPUTE_DTYPE)
    prec_chol = np.ascontiguousarray(prec_chol, dtype=COMPUTE_DTYPE)
    weights = np.asarray(weights, dtype=COMPUTE_DTYPE)
    k, d = means.shape
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    log_const = log_w + log_det_cholesky(prec_chol, covariance_type, d) - 0.5 * d * LOG_2PI
    total = weights.sum()
    center = (weights / total) @ means if total > 0 else means.mean(axis=0)
    lcat = None
    if covariance_type == "full":
        lcat = np.ascontiguousarray(prec_chol.transpose(1, 0, 2).reshape(d, k * d))
    return GaussianParams(covariance_type, means, prec_chol, np.broadcast_to(log_const, (k,)).copy(), center, lcat)


# --------------------------------------------------------------------------- E-step


def _maha_full(a: np.ndarray, mb: np.ndarray, gp: GaussianParams) -> np.ndarray:
    """``||(x - mu_k) L_k||^2`` for all k by one GEMM on the augmented slice ``a = [xs, 1]``."""
    n, d1 = a.shape
    d = d1 - 1
    k = mb.shape[0]
    assert gp.lcat is not None
    b = np.empty((d1, k * d))
    b[:d] = gp.lcat
    np.negative(np.einsum("kd,kde->ke", mb, gp.prec_chol).reshape(-1), out=b[d])
    y = (a @ b).reshape(n, k, d)
    return np.einsum("nkd,nkd->nk", y, y)


def _maha_tied(a: np.ndarray, mb: np.ndarray, gp: GaussianParams) -> np.ndarray:
    """``||z - b_k||^2`` with ``z = xs L`` (one GEMM for all components) and ``b_k = mb_k L``."""
    z = a[:, :-1] @ gp.prec_chol
    b = mb @ gp.prec_chol
    maha = z @ (-2.0 * b.T)
    maha += row_sq_norms(z)[:, None]
    maha += row_sq_norms(b)
    return np.maximum(maha, 0.0, out=maha)


def _maha_diag(a: np.ndarray, mb: np.ndarray, gp: GaussianParams) -> np.ndarray:
    xs = a[:, :-1]
    prec = gp.prec_chol**2
    maha = (xs * xs) @ prec.T
    maha -= xs @ (2.0 * mb * prec).T
    maha += (mb * mb * prec).sum(axis=1)
    return np.maximum(maha, 0.0, out=maha)


def _maha_spherical(a: np.ndarray, mb: np.ndarray, gp: GaussianParams) -> np.ndarray:
    xs = a[:, :-1]
    maha = xs @ (-2.0 * mb.T)
    maha += row_sq_norms(xs)[:, None]
    maha += row_sq_norms(mb)
    maha *= gp.prec_chol**2
    return np.maximum(maha, 0.0, out=maha)


#: Squared Mahalanobis distances of the rows of a centred slice to each component.
MAHALANOBIS: dict[str, Callable[[np.ndarray, np.ndarray, GaussianParams], np.ndarray]] = {
    "full": _maha_full,
    "tied": _maha_tied,
    "diag": _maha_diag,
    "spherical": _maha_spherical,
}


class _Slicer:
    """Casts and centres slices of a block into one reused augmented buffer ``[x - xbar, 1]``."""

    def __init__(self, block: np.ndarray, affine: Affine, width: int) -> None:
        self.block = block
        self.affine = affine
        d = block.shape[1]
        self.rows = slice_rows(d, width)
        self.buf = np.empty((min(self.rows, max(1, block.shape[0])), d + 1), dtype=COMPUTE_DTYPE)
        self.buf[:, d] = 1.0

    def __iter__(self):  # type: ignore[no-untyped-def]
        d = self.block.shape[1]
        for start, stop, x in iter_compute_slices(self.block, COMPUTE_DTYPE, self.affine, self.rows):
            xbar = x.mean(axis=0)
            a = self.buf[: stop - start]
            np.subtract(x, xbar, out=a[:, :d])
            yield start, x, a, xbar


def weighted_log_prob(a: np.ndarray, xbar: np.ndarray, gp: GaussianParams) -> np.ndarray:
    """``log w_k + log N(x | mu_k, P_k^-1)`` of each row, shape (n_rows, n_components).

    ``a`` is the slice centred at ``xbar`` with a column of ones appended.
    """
    maha = MAHALANOBIS[gp.covariance_type](a, gp.means - xbar, gp)
    maha *= -0.5
    maha += gp.log_const
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
    the densities overflow (one O(rows) test when all is well)."""
    if np.isfinite(log_norm).all():
        return
    check_finite_rows(x, row_sq_norms(x), chunk, start)
    row = int(np.flatnonzero(~np.isfinite(log_norm))[0])
    raise InvalidDataError(
        f"The log-likelihood of row {chunk.start + start + row} (chunk {chunk.index}) under the mixture is "
        f"{log_norm[row]!r}: its values are too large for the model's precisions. Scale the input data."
    )


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
        shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d)}[kind]
        return MixtureStats(kind, 0, 0.0, np.zeros(k), np.zeros((k, d)), np.zeros(shape))

    def merge(self, other: MixtureStats) -> MixtureStats:
        """Chan's parallel update: the statistics of the union of both sets of rows."""
        nk = self.nk + other.nk
        frac = np.divide(other.nk, nk, out=np.zeros_like(nk), where=nk > 0)
        delta = other.means - self.means
        means = np.where((self.nk > 0)[:, None], self.means + delta * frac[:, None], other.means)
        m2 = _MERGE_M2[self.kind](self.m2, other.m2, delta, self.nk * frac)
        return MixtureStats(self.kind, self.n_rows + other.n_rows, self.log_lik + other.log_lik, nk, means, m2)


_MERGE_M2: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "full": lambda a, b, delta, c: a + b + c[:, None, None] * delta[:, :, None] * delta[:, None, :],
    "tied": lambda a, b, delta, c: a + b + (delta * c[:, None]).T @ delta,
    "diag": lambda a, b, delta, c: a + b + c[:, None] * delta * delta,
}


def _weighted_means(xs: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nk = resp.sum(axis=0)
    sx = resp.T @ xs
    ml = np.divide(sx, nk[:, None], out=np.zeros_like(sx), where=(nk > 0)[:, None])
    return nk, sx, ml


def _stats_full(xs: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per component ``sum r (x - m)(x - m)^T`` as ``xs^T [r_1 xs ... r_K xs] - n_k m m^T``:
    one GEMM for all components, around the slice mean."""
    nk, sx, ml = _weighted_means(xs, resp)
    n, d = xs.shape
    k = resp.shape[1]
    w = resp[:, :, None] * xs[:, None, :]
    g = (xs.T @ w.reshape(n, k * d)).reshape(d, k, d).transpose(1, 0, 2)
    m2 = g - sx[:, :, None] * ml[:, None, :]
    return nk, ml, m2


def _stats_tied(xs: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sum_k sum_i r_ik (x_i - m_k)(x_i - m_k)^T = xs^T xs - sum_k n_k m_k m_k^T``
    (responsibilities of a row sum to 1)."""
    nk, sx, ml = _weighted_means(xs, resp)
    return nk, ml, xs.T @ xs - sx.T @ ml


def _stats_diag(xs: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nk, sx, ml = _weighted_means(xs, resp)
    return nk, ml, resp.T @ (xs * xs) - sx * ml


#: Statistics of a slice centred at its mean, by kind: ``(nk, means, m2)``.
SLICE_STATS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
    "full": _stats_full,
    "tied": _stats_tied,
    "diag": _stats_diag,
}


def slice_stats(kind: str, xs: np.ndarray, resp: np.ndarray, shift: np.ndarray, log_lik: float = 0.0) -> MixtureStats:
    """Statistics of the slice ``xs`` (centred at its mean), with means moved by ``shift``
    (the slice mean minus the pass's center) into the pass's frame."""
    nk, ml, m2 = SLICE_STATS[kind](xs, resp)
    means = np.where((nk > 0)[:, None], ml + shift, 0.0)
    return MixtureStats(kind, xs.shape[0], log_lik, nk, means, m2)


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


def _work_width(models: tuple[GaussianParams, ...]) -> int:
    """Floats of temporary work per row of a slice (the largest mixture decides)."""
    d = models[0].means.shape[1]
    return max(2 * m.n_components * (d if m.covariance_type == "full" else 1) + d for m in models)


def em_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: EMParams) -> list[MixtureStats]:
    """E-step of each mixture on one block, and the statistics of its M-step. One read of the block."""
    d = block.shape[1]
    stats = [MixtureStats.empty(m.kind, m.n_components, d) for m in params.models]
    for start, x, a, xbar in _Slicer(block, params.affine, _work_width(params.models)):
        xs = a[:, :d]
        for j, gp in enumerate(params.models):
            log_norm, resp = log_norm_and_resp(weighted_log_prob(a, xbar, gp))
            _check_log_norm(log_norm, x, chunk, start)
            stats[j] = stats[j].merge(slice_stats(gp.kind, xs, resp, xbar - gp.center, float(log_norm.sum())))
    return stats


@dataclass
class LogLikSums:
    """Rows read and, per mixture, the sum of their ``log p(x)``."""

    n_rows: int
    sums: np.ndarray


def loglik_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: EMParams) -> LogLikSums:
    """Total log-likelihood of a block under each mixture."""
    sums = np.zeros(len(params.models))
    width = max(m.n_components * (m.means.shape[1] if m.covariance_type == "full" else 1) for m in params.models)
    for start, x, a, xbar in _Slicer(block, params.affine, width):
        for j, gp in enumerate(params.models):
            log_norm, _ = log_norm_and_resp(weighted_log_prob(a, xbar, gp))
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


def hard_init_kernel(
    block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: HardInitParams
) -> list[MixtureStats]:
    """Statistics of each kind under the hard assignment of rows to their nearest center."""
    centers = params.centers
    k, d = centers.shape
    stats = [MixtureStats.empty(kind, k, d) for kind in params.kinds]
    c_sq = row_sq_norms(centers)
    for start, x, a, xbar in _Slicer(block, params.affine, k * d):
        x_sq = row_sq_norms(x)
        check_finite_rows(x, x_sq, chunk, start)
        labels = nearest_center(x, x_sq, centers, c_sq)[0]
        resp = np.zeros((x.shape[0], k))
        resp[np.arange(x.shape[0]), labels] = 1.0
        for j, kind in enumerate(params.kinds):
            stats[j] = stats[j].merge(slice_stats(kind, a[:, :d], resp, xbar - params.center))
    return stats


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
    k, d = params.n_components, block.shape[1]
    stats = [MixtureStats.empty(kind, k, d) for kind in params.kinds]
    resp_all = chunk_rng(params.entropy, params.tag, chunk.index).random((block.shape[0], k))
    resp_all /= resp_all.sum(axis=1, keepdims=True)
    for start, x, a, xbar in _Slicer(block, params.affine, k * d):
        check_finite_rows(x, row_sq_norms(x), chunk, start)
        resp = resp_all[start : start + x.shape[0]]
        for j, kind in enumerate(params.kinds):
            stats[j] = stats[j].merge(slice_stats(kind, a[:, :d], resp, xbar - params.center))
    return stats


# --------------------------------------------------------------------------- prediction


def _map_slices(block: np.ndarray, affine: Affine, gp: GaussianParams, out: np.ndarray,
                fill: Callable[[np.ndarray, np.ndarray, slice], None]) -> np.ndarray:
    d = block.shape[1]
    width = gp.n_components * (d if gp.covariance_type == "full" else 1)
    for start, x, a, xbar in _Slicer(block, affine, width):
        fill(weighted_log_prob(a, xbar, gp), out, slice(start, start + x.shape[0]))
    return out


def score_samples_block(block: np.ndarray, affine: Affine, gp: GaussianParams) -> np.ndarray:
    """``log p(x)`` of each row, shape (n_rows,)."""

    def fill(wlp: np.ndarray, out: np.ndarray, s: slice) -> None:
        out[s] = log_norm_and_resp(wlp)[0]

    return _map_slices(block, affine, gp, np.empty(block.shape[0]), fill)


def predict_proba_block(block: np.ndarray, affine: Affine, gp: GaussianParams) -> np.ndarray:
    """Responsibilities of each row, shape (n_rows, n_components)."""

    def fill(wlp: np.ndarray, out: np.ndarray, s: slice) -> None:
        out[s] = log_norm_and_resp(wlp)[1]

    return _map_slices(block, affine, gp, np.empty((block.shape[0], gp.n_components)), fill)


def predict_block(block: np.ndarray, affine: Affine, gp: GaussianParams) -> np.ndarray:
    """Most probable component of each row, shape (n_rows,), int64."""

    def fill(wlp: np.ndarray, out: np.ndarray, s: slice) -> None:
        out[s] = wlp.argmax(axis=1)

    return _map_slices(block, affine, gp, np.empty(block.shape[0], dtype=np.int64), fill)


def below_block(block: np.ndarray, affine: Affine, gp: GaussianParams, threshold: float) -> np.ndarray:
    """Whether each row's ``log p(x)`` is below ``threshold``, shape (n_rows,), bool."""
    return score_samples_block(block, affine, gp) < threshold


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


def score_sketch_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: SketchParams) -> ScoreSketch:
    """Quantile summary of the block's ``log p(x)``."""
    scores = np.sort(score_samples_block(block, params.affine, params.model))
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


def bracket_kernel(block: np.ndarray, sample_weight: np.ndarray | None, chunk: ChunkInfo, params: BracketParams) -> Bracket:
    scores = score_samples_block(block, params.affine, params.model)
    inside = (scores > params.low) & (scores <= params.high)
    return Bracket(int((scores <= params.low).sum()), scores[inside])


def combine_brackets(parts: list[Bracket]) -> Bracket:
    return Bracket(sum(p.n_below for p in parts), np.concatenate([p.values for p in parts]))

