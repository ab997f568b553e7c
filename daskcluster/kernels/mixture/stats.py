"""EM sufficient statistics: accumulated tile by tile, centred per block, merged by Chan's update.

Per component: the responsibility mass ``n_k``, the weighted mean and the centred second
moment of the covariance type's statistics kind (a ``d x d`` matrix per component for
``'full'``, their sum for ``'tied'``, the diagonal for ``'diag'``/``'spherical'``). A block
accumulates plain sums around its reference point and centres them once at its end; blocks
are merged by Chan's parallel update (counts add, means move, second moments gain
``delta delta^T n_a n_b / n``). So the cancellation of ``E[x x^T] - mu mu^T`` only ever
involves the distance of a component's mean from a nearby reference, never the data's offset,
and the statistics of the whole equal the merged statistics of any split of the rows (up to
rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..blocks import Affine
from .buffers import Scratch
from .covariance import covariance_of


@dataclass
class MixtureStats:
    """EM sufficient statistics of some rows, for one mixture.

    Attributes
    ----------
    kind : {'full', 'tied', 'diag'}
        The statistics kind of the covariance type.
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
    entropy : float, default=0.0
        ``sum_ik resp_ik log resp_ik`` (only when the pass asked for it).
    """

    kind: str
    n_rows: int
    log_lik: float
    nk: np.ndarray
    means: np.ndarray
    m2: np.ndarray
    entropy: float = 0.0

    @staticmethod
    def empty(kind: str, n_components: int, n_features: int) -> MixtureStats:
        k, d = n_components, n_features
        return MixtureStats(kind, 0, 0.0, np.zeros(k), np.zeros((k, d)), np.zeros(covariance_of(kind).m2_shape(k, d)))

    def merge(self, other: MixtureStats) -> MixtureStats:
        """Chan's parallel update: the statistics of the union of both sets of rows."""
        nk = self.nk + other.nk
        frac = np.divide(other.nk, nk, out=np.zeros_like(nk), where=nk > 0)
        delta = other.means - self.means
        means = np.where((self.nk > 0)[:, None], self.means + delta * frac[:, None], other.means)
        m2 = covariance_of(self.kind).merge_m2(self.m2, other.m2, delta, self.nk * frac)
        return MixtureStats(self.kind, self.n_rows + other.n_rows, self.log_lik + other.log_lik, nk, means, m2,
                            self.entropy + other.entropy)

    def pooled(self) -> tuple[float, np.ndarray, np.ndarray]:
        """Mass, mean (relative to the pass's center) and second moment of all the rows,
        when every row's responsibilities sum to 1: (d, d) for full and tied, (d,) for diag."""
        total = float(self.nk.sum())
        mean = self.nk @ self.means / total
        return total, mean, covariance_of(self.kind).pooled_m2(self.nk, self.means, self.m2)


def combine_stats(parts: list[list[MixtureStats]]) -> list[MixtureStats]:
    """Merge lists of statistics (one entry per mixture) in chunk order."""
    out = list(parts[0])
    for part in parts[1:]:
        out = [a.merge(b) for a, b in zip(out, part)]
    return out


class Accumulator:
    """Plain sums of one block around its reference point, centred once at the end.

    Per tile, :meth:`add` hands the responsibilities to the covariance type's
    :meth:`~.covariance.CovarianceType.accumulate`; types that keep a segment's
    responsibilities (``'full'``) add their second moments at :meth:`end_segment`, around
    ``centers[k]`` (the component's current mean; the block's reference when not given).
    """

    def __init__(self, kind: str, n_components: int, n_features: int, min_resp: np.ndarray | None = None,
                 centers: np.ndarray | None = None) -> None:
        self.kind = kind
        self.cov = covariance_of(kind)
        self.d = n_features
        self.n_rows = 0
        self.log_lik = 0.0
        self.entropy = 0.0
        self.nk = np.zeros(n_components)
        self.s1 = np.zeros((n_components, n_features))
        self.s2 = np.zeros(self.cov.m2_shape(n_components, n_features))
        self.min_resp = np.zeros(n_components) if min_resp is None else min_resp
        self.centers = centers
        self.resp: np.ndarray | None = None
        self._seg_rows = 0
        self.scratch = Scratch()

    def start_segment(self, n_rows: int) -> None:
        self._seg_rows = 0
        if self.cov.keeps_responsibilities and (self.resp is None or self.resp.shape[0] < n_rows):
            self.resp = np.empty((n_rows, self.nk.shape[0]))

    def keep_responsibilities(self, resp: np.ndarray) -> None:
        """Keep a tile's responsibilities for :meth:`end_segment` (tiles come in order)."""
        assert self.resp is not None
        self.resp[self._seg_rows : self._seg_rows + resp.shape[0]] = resp

    def segment_responsibilities(self, n_rows: int) -> np.ndarray:
        assert self.resp is not None
        return self.resp[:n_rows]

    def add(self, a: np.ndarray, resp: np.ndarray, log_lik: float = 0.0, entropy: float = 0.0) -> None:
        """The next tile ``a`` of the segment (see :func:`.estep.tiles`) and its responsibilities."""
        self.n_rows += a.shape[0]
        self.log_lik += log_lik
        self.entropy += entropy
        self.cov.accumulate(self, a, self.d, resp)
        self._seg_rows += a.shape[0]

    def end_segment(self, segment: np.ndarray, affine: Affine, ref: np.ndarray) -> None:
        self.cov.end_segment(self, segment, affine, ref)

    def finish(self, ref: np.ndarray, center: np.ndarray) -> MixtureStats:
        """The statistics of the block read around ``ref``, means relative to ``center``."""
        k, d = self.s1.shape
        if self.n_rows == 0:
            return MixtureStats.empty(self.kind, k, d)
        m = np.divide(self.s1, self.nk[:, None], out=np.zeros_like(self.s1), where=(self.nk > 0)[:, None])
        offset = np.zeros_like(m) if self.centers is None else self.centers - ref
        m2 = self.cov.centre(self.s2, self.s1, self.nk, m, offset)
        means = np.where((self.nk > 0)[:, None], m + (ref - center), 0.0)
        return MixtureStats(self.kind, self.n_rows, self.log_lik, self.nk, means, m2, self.entropy)
