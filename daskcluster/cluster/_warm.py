"""The warm start of ``KMeans`` (``init='mini-batch'``): initial centers from a short
:class:`~daskcluster.cluster.MiniBatchKMeans` fit on the same data, which exact Lloyd (or
Elkan) iterations then finish.

A mini-batch epoch reads the data once, like a Lloyd pass, but moves the centers by thousands of
small steps instead of one: from its own k-means++ seeding on a sample, one or two epochs get
close to a good optimum in inertia, for fewer reads than k-means|| (2-3 against
``init_max_iter + 1``). The exact iterations then make the centers a Lloyd fixed point; how many
they take depends on the data and the seed, as after any seeding (see
``benchmarks/RESULTS-seeding.md``).

Most of those exact iterations are Lloyd's slow tail, each a full read. On large data the warm
start therefore finishes the mini-batch centers first on a random sample of the rows held in
memory (:func:`sample_stages`: 1 % then 10 % of the rows, the larger at least
:data:`MIN_SAMPLE_ROWS`), iterated by exact Lloyd (or Elkan) to convergence there: one read of the data draws the
sample, the iterations on it cost a tenth of a full pass or less each, and the full-data
iterations then start near their fixed point. The result is still an exact Lloyd fit from the
centers that the full-data iterations start from.
"""

from __future__ import annotations

import logging
import math

import dask.array as da
import numpy as np

from ..data import RowData, cached, scaled
from ..engine import record_pass, rows_at
from ..kernels.kmeans import chunk_rng
from ._minibatch import MiniBatchKMeans

logger = logging.getLogger(__name__)

#: The value of ``KMeans``'s ``init`` that asks for this warm start.
WARM_START = "mini-batch"

#: Rows per mini-batch of the warm start (scikit-learn's ``MiniBatchKMeans`` default).
BATCH_SIZE = 1024

#: Mini-batch steps the warm start allows at least: small data get more epochs, up to
#: :data:`MAX_EPOCHS`; large data stop early well within :data:`MIN_EPOCHS`.
MIN_STEPS = 100

#: Epochs the warm start allows at least and at most (each reads the data once).
MIN_EPOCHS = 2
MAX_EPOCHS = 10

#: Steps without improvement of the smoothed batch inertia after which it stops (scikit-learn's
#: default early stopping).
MAX_NO_IMPROVEMENT = 10

#: k-means++ seedings of the mini-batch fit, each on its own sample, the best kept by its inertia
#: on one more sample (all read at once: no extra pass); one seeding alone fell into a worse
#: optimum more often on blobs.
N_INIT = 3

#: Fractions of the rows in the samples on which exact Lloyd finishes the mini-batch centers,
#: smallest first; each sample is part of the next, all drawn in one read.
SAMPLE_FRACTIONS = (0.01, 0.1)

#: Rows of the largest sample at least: fewer would leave its fixed point too far from the data's.
MIN_SAMPLE_ROWS = 100_000

#: Rows of a smaller sample at least (it only brings the centers near the largest one's fixed point).
MIN_STAGE_ROWS = 10_000

#: A sample stage is made only when its sample is at most this share of the rows (otherwise
#: the full-data iterations cost little more).
MAX_SAMPLE_SHARE = 0.25

#: ``SeedSequence`` spawn-key tag of the rows drawn for the sample stages.
_TAG_SAMPLE = 119


def warm_start_epochs(n_samples: int, batch_size: int = BATCH_SIZE) -> int:
    """The most epochs the warm start runs on ``n_samples`` rows: enough for :data:`MIN_STEPS`
    steps, between :data:`MIN_EPOCHS` and :data:`MAX_EPOCHS`."""
    steps_per_epoch = max(1, math.ceil(n_samples / batch_size))
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch)))


def mini_batch_centers(data: RowData, weights: da.Array | None, n_clusters: int, entropy: int) -> np.ndarray:
    """Initial centers of one run from ``MiniBatchKMeans`` on ``data`` (as given: cached or
    streamed), seeded by ``entropy``; shape (n_clusters, n_features) in the compute dtype.

    The mini-batch fit seeds itself by the best of :data:`N_INIT` k-means++ seedings on samples
    of ``3 * BATCH_SIZE`` rows and stops early (scikit-learn's rule: :data:`MAX_NO_IMPROVEMENT` steps without improvement of
    the smoothed batch inertia), after :func:`warm_start_epochs` epochs at most. It computes no
    labels. Data passes: the chunks holding the sample (at most one pass), then one per epoch.
    """
    X = data.array if data.affine.is_identity else scaled(data.array, data.affine.scale, data.affine.offset)
    epochs = warm_start_epochs(data.n_samples)
    mb = MiniBatchKMeans(n_clusters, batch_size=BATCH_SIZE, max_iter=epochs, max_no_improvement=MAX_NO_IMPROVEMENT,
                         compute_labels=False, random_state=entropy, n_init=N_INIT, cache=False)
    mb.fit(X, sample_weight=weights)
    logger.info("mini-batch warm start: %d epoch(s) of at most %d, %d steps", mb.n_iter_, epochs, mb.n_steps_)
    return np.asarray(mb.cluster_centers_, dtype=data.dtype)


def sample_stages(n_samples: int) -> list[int]:
    """Rows of the samples of the stages made on ``n_samples`` rows, ascending: one per fraction
    of :data:`SAMPLE_FRACTIONS`, the largest at least :data:`MIN_SAMPLE_ROWS` rows, the others at
    least :data:`MIN_STAGE_ROWS` and fewer than the largest; none unless the largest is at most
    :data:`MAX_SAMPLE_SHARE` of the rows (on small data the full-data iterations are as cheap)."""
    if not SAMPLE_FRACTIONS:
        return []
    *smaller, last = sorted(SAMPLE_FRACTIONS)
    largest = max(MIN_SAMPLE_ROWS, math.ceil(last * n_samples))
    if largest > MAX_SAMPLE_SHARE * n_samples:
        return []
    sizes = {max(MIN_STAGE_ROWS, math.ceil(f * n_samples)) for f in smaller}
    return sorted(m for m in sizes if m < largest) + [largest]


def sample_index(n_samples: int, sizes: list[int], entropy: int) -> list[np.ndarray]:
    """The ascending global row positions of each stage's sample, each sample part of the next
    (the first ``sizes[i]`` of one random permutation of ``sizes[-1]`` distinct rows): a pure
    function of ``entropy``, so the same on any number of workers."""
    rng = chunk_rng(entropy, _TAG_SAMPLE)
    drawn = rng.choice(n_samples, size=sizes[-1], replace=False)
    return [np.sort(drawn[:m]) for m in sizes]


def finish_on_samples(data: RowData, weights: da.Array | None, centers: np.ndarray, entropy: int, *,
                      tol: float, max_iter: int, algorithm: str, sizes: list[int]) -> np.ndarray:
    """``centers`` moved by exact Lloyd (or Elkan) iterations to convergence (``tol``,
    ``max_iter``) on each sample of :func:`sample_index` in turn, the largest held in cluster
    memory; shape (n_clusters, n_features) in the compute dtype.

    Data passes: one read of the chunks holding the sample (every chunk, for samples of 1 % of
    the rows and more: counted as one pass), then the iterations on the samples, each a pass
    over ``sizes[i]`` rows in memory (counted by :func:`~daskcluster.engine.count_passes` with
    those rows).
    """
    from ._kmeans import KMeans  # the warm start is a step of KMeans' fit

    index = sample_index(data.n_samples, sizes, entropy)
    # the sample's rows come from every chunk: gathered into chunks as tall as the data's, so an
    # iteration on it is a few tasks, not one per chunk of the data
    rows = max(data.array.chunks[0])
    largest = rows_at(data.array, index[-1]).rechunk({0: rows})
    sample = RowData(largest, data.affine, data.dtype, lazy=True)
    w_all = None if weights is None else rows_at(weights, index[-1]).rechunk({0: rows}).persist()
    with cached(sample, True) as held:
        record_pass(data)
        for idx, m in zip(index, sizes):
            if m == sizes[-1]:
                part, w = held.array, w_all
            else:  # positions of this sample inside the largest one
                local = np.searchsorted(index[-1], idx)
                part = rows_at(held.array, local).rechunk({0: rows})
                w = None if w_all is None else rows_at(w_all, local).rechunk({0: rows})
            X = part if data.affine.is_identity else scaled(part, data.affine.scale, data.affine.offset)
            km = KMeans(centers.shape[0], init=centers, n_init=1, tol=tol, max_iter=max_iter, algorithm=algorithm,
                        cache=True)
            km.fit(X, sample_weight=w)
            logger.info("sample stage on %d rows: %d iteration(s), inertia %.6g (per row %.6g)", m, km.n_iter_,
                        km.inertia_, km.inertia_ / m)
            centers = np.asarray(km.cluster_centers_, dtype=data.dtype)
    return centers


def warm_centers(data: RowData, weights: da.Array | None, n_clusters: int, entropy: int, *, tol: float,
                 max_iter: int, algorithm: str) -> np.ndarray:
    """The initial centers of a warm-started run: :func:`mini_batch_centers`, then, on data
    large enough for :func:`sample_stages`, :func:`finish_on_samples`; shape (n_clusters,
    n_features) in the compute dtype. Data passes: those of the two."""
    centers = mini_batch_centers(data, weights, n_clusters, entropy)
    sizes = sample_stages(data.n_samples)
    if sizes:
        centers = finish_on_samples(data, weights, centers, entropy, tol=tol, max_iter=max_iter,
                                    algorithm=algorithm, sizes=sizes)
    return centers
