"""The warm start of ``KMeans`` (``init='mini-batch'``): initial centers from a short
:class:`~daskcluster.cluster.MiniBatchKMeans` fit on the same data, which exact Lloyd (or
Elkan) iterations then finish.

A mini-batch epoch reads the data once, like a Lloyd pass, but moves the centers by thousands of
small steps instead of one: from its own k-means++ seeding on a sample, one or two epochs get
close to a good optimum in inertia, for fewer reads than k-means|| (2-3 against
``init_max_iter + 1``). The exact iterations then make the centers a Lloyd fixed point; how many
they take depends on the data and the seed, as after any seeding (see
``benchmarks/RESULTS-seeding.md``).
"""

from __future__ import annotations

import logging
import math

import dask.array as da
import numpy as np

from ..data import RowData, scaled
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
