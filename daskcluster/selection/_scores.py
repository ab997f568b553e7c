"""Scores of many fitted models of the same data, in shared passes.

Calinski-Harabasz and Davies-Bouldin need each model's labels, their centroids, and the
dispersion around them: two passes over the data serve every model (see
:mod:`daskcluster.kernels.sweep`). The sampled silhouette reads the sampled rows once and
scores every model's labels of them from one distance matrix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import RowData
from ..engine import take_rows, tree_reduce
from ..errors import InvalidDataError
from ..kernels import mixture as M
from ..kernels import sweep as S
from ..kernels.blocks import Affine, ChunkInfo
from ..kernels.kmeans import labels_kernel
from ..metrics._geometry import calinski_harabasz_from_stats, davies_bouldin_from_stats
from ..metrics._silhouette import sample_index, silhouette_scores_of_sample

logger = logging.getLogger(__name__)


@dataclass
class ModelScores:
    """What the shared passes found for one model."""

    counts: np.ndarray
    centroids: np.ndarray
    calinski_harabasz: float = float("nan")
    davies_bouldin: float = float("nan")
    silhouette: float = float("nan")


def label_sums(data: RowData, centers: list[np.ndarray], mixtures: list[M.GaussianParams]) -> list[ModelScores]:
    """Per model, the rows of each label and their centroids. Data passes: 1.

    ``centers`` are k-means models' centers (k_m, n_features) in the compute dtype, labelled
    by the nearest center; ``mixtures`` are labelled by the most probable component. Returns
    one :class:`ModelScores` per model, k-means models first.
    """
    params = S.Labelings(tuple(centers), tuple(mixtures), data.affine, data.dtype)
    sums = tree_reduce(data, S.label_sums_kernel, params, S.combine_label_stats, label="sweep-label-sums")
    return [scores_of(counts, total) for counts, total in zip(sums.counts, sums.sums)]


def scores_of(counts: np.ndarray, sums: np.ndarray) -> ModelScores:
    """A model's label counts (k,) and centroids from the per-label sums (k, d)."""
    centroids = np.zeros(sums.shape)
    nz = counts > 0
    centroids[nz] = sums[nz] / counts[nz, None]
    return ModelScores(np.asarray(counts, dtype=np.float64), centroids)


def add_dispersion(data: RowData, centers: list[np.ndarray], mixtures: list[M.GaussianParams],
                   scores: list[ModelScores]) -> None:
    """Fill in each model's Calinski-Harabasz and Davies-Bouldin indices from the dispersion of
    its rows around the centroids in ``scores`` (same model order as :func:`label_sums`).
    Data passes: 1. A model with fewer than two non-empty labels keeps NaN indices."""
    params = S.Labelings(tuple(centers), tuple(mixtures), data.affine, data.dtype,
                         centroids=tuple(s.centroids for s in scores))
    disp = tree_reduce(data, S.dispersion_kernel, params, S.combine_label_stats, label="sweep-dispersion")
    for s, sq, dist in zip(scores, disp.counts, disp.sums):
        if (s.counts > 0).sum() < 2:
            continue
        s.calinski_harabasz = calinski_harabasz_from_stats(s.counts, s.centroids, sq)
        s.davies_bouldin = davies_bouldin_from_stats(s.counts, s.centroids, dist)


def sampled_silhouettes(data: RowData, centers: list[np.ndarray], mixtures: list[Any], *,
                        sample_size: int | None, random_state: Any) -> list[float]:
    """Each model's silhouette on one seeded sample of rows (the sample that
    :func:`daskcluster.metrics.silhouette_score` draws with the same ``sample_size`` and
    ``random_state``). ``mixtures`` are fitted :class:`~daskcluster.GaussianMixture` models.

    Reads the chunks holding the sampled rows once. A model giving the sample fewer than two
    labels scores NaN.
    """
    index = sample_index(data.n_samples, sample_size, random_state)
    rows = take_rows(data, index)
    label_sets = [labels_kernel(rows, c, Affine(), ChunkInfo(0, 0)) for c in centers]
    for gm in mixtures:
        label_sets.append(M.predict_block(rows.astype(np.float64), Affine(), gm._params(), ChunkInfo(0, 0)))
    scores = [float("nan")] * len(label_sets)
    usable = [j for j, lab in enumerate(label_sets) if 1 < len(np.unique(lab)) < len(index)]
    if not usable:
        return scores
    values = silhouette_scores_of_sample(rows, [label_sets[j] for j in usable])
    for j, v in zip(usable, values):
        scores[j] = v
    return scores


def check_grid(name: str, values: list[int], n_samples: int, owner: str) -> None:
    """Every value of the grid must be at most ``n_samples``."""
    too_big = [v for v in values if v > n_samples]
    if too_big:
        raise InvalidDataError(f"{owner}: n_samples={n_samples} should be >= every {name}; got {too_big}.")
