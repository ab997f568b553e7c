"""Seeding k-means on row-chunked data: the client's halves of k-means||, greedy k-means++ and
random rows (the passes are made by :mod:`daskcluster.cluster._driver`).

None brings the data to the client. Randomness comes
from ``entropy`` (an int drawn from ``random_state``): the client's choices from a generator
seeded with it, each chunk's from ``SeedSequence(entropy, spawn_key=(pass, chunk))``, so the
result does not depend on the scheduler or the number of workers.
"""

from __future__ import annotations

import logging
import warnings
from functools import partial

import dask.array as da
import numpy as np
from sklearn.cluster import KMeans as _SkKMeans
from sklearn.cluster import kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning

from ..data import RowData
from ..engine import take_rows, tree_reduce
from ..kernels import kmeans as K

logger = logging.getLogger(__name__)

#: The seedings named by a string ``init``.
INITS = ("k-means||", "k-means++", "random")

#: k-means|| rounds of oversampling by default (``init_max_iter=None``).
DEFAULT_ROUNDS = 5

#: Extra k-means|| rounds allowed when fewer than ``n_clusters`` candidates were drawn.
EXTRA_ROUNDS = 10


def _client_rng(entropy: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(2**31 - 1,)))


def first_center(data: RowData, weights: da.Array | None, entropy: int) -> np.ndarray:
    """One row drawn with probability proportional to its weight (uniformly without weights).

    Without weights it reads one chunk; with weights, one pass. Shape (1, n_features).
    """
    if weights is None:
        index = int(_client_rng(entropy).integers(data.n_samples))
        return take_rows(data, np.array([index]))
    return random_rows(data, weights, 1, entropy)


def random_rows(data: RowData, weights: da.Array | None, n: int, entropy: int) -> np.ndarray:
    """``n`` distinct rows drawn without replacement, with probability proportional to the weights.

    Shape (n, n_features). Without weights: reads only the chunks holding the chosen rows;
    with weights: one pass.
    """
    if weights is None:
        index = np.sort(_client_rng(entropy).choice(data.n_samples, size=n, replace=False))
        return take_rows(data, index)
    params = K.SampleParams(n, data.affine, data.dtype, entropy, 0)
    sample = tree_reduce(data, K.sample_kernel, params, partial(K.combine_samples, n=n), weights=weights)
    return sample.rows


def local_trials(n_clusters: int, n_local_trials: int | None) -> int:
    """Candidates drawn per k-means++ step: scikit-learn's ``2 + log(n_clusters)`` by default."""
    return n_local_trials if n_local_trials is not None else 2 + int(np.log(n_clusters))


def plusplus_draws(centers: np.ndarray, trials: np.ndarray, n_clusters: int, m: int) -> int:
    """How many candidates the next k-means++ pass draws: none when it chooses the last center."""
    last = len(centers) + (1 if len(trials) else 0) >= n_clusters
    return 0 if last else m


def plusplus_advance(centers: np.ndarray, trials: np.ndarray, stats: K.PlusPlusStats, n_clusters: int,
                     dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, float]:
    """The client's half of a k-means++ step: keep the trial of least potential as the next
    center and the draws made under its hypothesis as the next trials. Returns the centers
    (t, d), the trials (m, d) and the potential kept. No data pass."""
    best = int(np.argmin(stats.potential)) if len(trials) else 0
    if len(trials):
        centers = np.concatenate([centers, trials[best : best + 1]])
    found = np.isfinite(stats.key[best])
    new_trials = stats.rows[best][found].astype(dtype)
    if len(centers) < n_clusters and not len(new_trials):
        # every row coincides with a chosen center: fewer distinct points than clusters
        new_trials = centers[:1].copy()
    return centers, new_trials, float(stats.potential[best])


def more_rounds(done: int, rounds: int, n_candidates: int, n_clusters: int) -> bool:
    """Whether k-means|| runs another round after ``done``: always up to ``rounds``, then up
    to :data:`EXTRA_ROUNDS` more while fewer than ``n_clusters`` candidates were drawn."""
    return done < rounds or (n_candidates < n_clusters and done < rounds + EXTRA_ROUNDS)


def recluster_candidates(candidates: np.ndarray, weight: np.ndarray, n_clusters: int, entropy: int,
                         dtype: np.dtype) -> np.ndarray:
    """Step 8 of k-means||: the candidates, weighted by the rows nearest to each, clustered into
    ``n_clusters`` by weighted k-means++ and Lloyd iterations, in memory (no data pass).

    ``candidates`` has shape (m, n_features), ``weight`` shape (m,); returns (n_clusters,
    n_features) in ``dtype``. Candidates of zero weight are dropped; with fewer than
    ``n_clusters`` left, some centers are repeated (with a warning).
    """
    keep = weight > 0
    centers, w = candidates[keep], weight[keep]
    if len(centers) < n_clusters:
        warnings.warn(
            f"k-means|| found only {len(centers)} distinct points for n_clusters={n_clusters}; "
            "some centers are duplicates.",
            ConvergenceWarning,
            stacklevel=4,
        )
        reps = np.resize(np.arange(len(centers)), n_clusters)
        return centers[reps]
    seed = int(_client_rng(entropy).integers(2**31 - 1))
    init, _ = kmeans_plusplus(centers, n_clusters, sample_weight=w, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = _SkKMeans(n_clusters, init=init, n_init=1, random_state=seed).fit(centers, sample_weight=w)
    return km.cluster_centers_.astype(dtype)
