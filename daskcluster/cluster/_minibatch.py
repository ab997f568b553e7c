"""``MiniBatchKMeans``: scikit-learn's estimator, streaming batches from row-chunked storage."""

from __future__ import annotations

import logging
import time
import warnings
from contextlib import ExitStack
from numbers import Integral, Real
from typing import Any, ClassVar

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.cluster import kmeans_plusplus

from ..blas import single_threaded_blas
from ..data import (
    CachePolicy,
    RowData,
    as_sample_weight,
    cached,
)
from ..engine import take, take_rows, tree_reduce
from ..engine.sequential import run_on_whole
from ..kernels import kmeans as K
from ..kernels import minibatch as M
from ..kernels.blocks import row_sq_norms
from ..kernels.distances import nearest_center
from ..params import Interval, check_random_state
from ..progress import IterationReport, progress_hook, report
from ._centers import (
    BASE_CONSTRAINTS,
    BASE_DATA_CHECKS,
    CentersMixin,
    check_centers,
    n_runs,
)
from ._centers import init_array as init_array_of
from ._driver import seed
from ._sampling import EpochReport, run_schedule

logger = logging.getLogger(__name__)

#: ``SeedSequence`` spawn-key tag of the rows sampled for the initialization.
_TAG_INIT = 105


class MiniBatchKMeans(CentersMixin, ClusterMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Mini-batch k-means that streams batches from chunked storage, chunk by chunk.

    Each epoch visits the row chunks in a seeded random order; the task for a chunk runs on
    the worker that read it, shuffles the chunk's rows into batches and applies scikit-learn's
    mini-batch update to each batch in turn. Only the centers and counts travel between tasks,
    and reading runs at most ``prefetch`` chunks ahead of the steps.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {'k-means++', 'k-means||', 'random'}, callable or ndarray of shape (n_clusters, n_features), \
default='k-means++'
        A callable ``init(sample, n_clusters, random_state)`` returns the initial centers
        from the ``init_size`` sample (as scikit-learn). ``'k-means++'``: greedy k-means++ on ``init_size`` rows drawn at random (as
        scikit-learn). ``'random'``: ``n_clusters`` of those rows. ``'k-means||'``: scalable
        k-means++ on all the data (6 passes). An array gives the initial centers.
    max_iter : int, default=100
        Maximum number of epochs (passes over the data).
    batch_size : int, default=1024
        Rows per mini-batch. A chunk of ``r`` rows gives ``max(1, round(r / batch_size))``
        batches of nearly equal size.
    verbose : int, default=0
        Print one line per epoch (the lines are always logged at INFO level).
    compute_labels : bool, default=True
        Compute ``labels_`` and ``inertia_`` on all the data after the fit (one more pass).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization, the epoch orders, the batches and the reassignments; the
        same value gives the same model on any scheduler and any number of workers.
    tol : float, default=0.0
        Stop when a step moves the centers by at most ``tol`` times the mean feature variance
        (squared Euclidean change, as scikit-learn; the variance is estimated on the
        ``init_size`` sample). 0 disables this rule.
    max_no_improvement : int or None, default=10
        Stop after this many consecutive steps without improvement of the smoothed batch
        inertia (as scikit-learn). None disables this rule.
    init_size : int or None, default=None
        Rows sampled for each initialization (None: ``3 * batch_size``, at least
        ``3 * n_clusters``).
    n_init : 'auto' or int, default='auto'
        Number of initializations; the one with the least inertia on a further ``init_size``
        sample is kept. ``'auto'``: 3 for ``'random'``, 1 otherwise (as scikit-learn).
    reassignment_ratio : float, default=0.01
        A center whose counts fall below this fraction of the largest is moved to a random
        row of the batch (checked every ``10 * n_clusters`` rows, as scikit-learn).
    cache : 'auto' or bool, default='auto'
        Persist the data in cluster memory for the fit (True), read it from its source on every
        epoch (False), or persist when it takes at most half the memory available ('auto').
    prefetch : int, default=2
        Chunks read ahead of the one being processed. Bounds the memory the fit holds to
        ``parallel_chunks + prefetch`` chunks.
    parallel_chunks : int, default=1
        Chunks run at once from the same state, one task each, their updates merged by
        weighted sums (see the Notes). 1 gives scikit-learn's sequential steps; set it to the
        number of workers to use them all for the steps. The model depends on this value,
        never on the number of workers.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray or dask.array.Array of shape (n_samples,)
        With ``compute_labels``; lazy (a Dask array) when the input was lazy.
    inertia_ : float
        With ``compute_labels``: sum of squared distances of all samples to their closest
        center (weighted). Otherwise the smoothed batch inertia times the total weight.
    n_iter_ : int
        Epochs begun.
    n_steps_ : int
        Mini-batch steps made.
    n_features_in_ : int

    Notes
    -----
    Data passes of ``fit``: at most one to sample the initialization rows (only the chunks
    holding them are read; ``'k-means||'``: 6 passes instead), one per epoch, and one for
    ``labels_``/``inertia_``. ``partial_fit``: one read of the batch. ``predict``,
    ``transform``, ``score``: one pass each.

    With ``parallel_chunks = p > 1`` a round of ``p`` chunks runs from the same centers and
    the contributions ``counts_j' * centers_j' - counts_j * centers_j`` of the tasks are
    summed, as if the round's batches had been absorbed by one large step; early stopping is
    decided after each round. See ``docs/minibatch.md``.

    References
    ----------
    D. Sculley. Web-scale k-means clustering. WWW 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster import MiniBatchKMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 0], [4, 4],
    ...               [4, 5], [0, 1], [2, 2], [3, 2], [5, 5], [1, -1]], dtype=float)
    >>> km = MiniBatchKMeans(n_clusters=2, batch_size=6, random_state=0, n_init=3).fit(X)
    >>> km.cluster_centers_.shape
    (2, 2)
    >>> km = MiniBatchKMeans(n_clusters=2, random_state=0)
    >>> km = km.partial_fit(X[:6]).partial_fit(X[6:])
    >>> km.n_steps_
    2
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = "k-means++",
        max_iter: int = 100,
        batch_size: int = 1024,
        verbose: int = 0,
        compute_labels: bool = True,
        random_state: Any = None,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        init_size: int | None = None,
        n_init: str | int = "auto",
        reassignment_ratio: float = 0.01,
        cache: CachePolicy = "auto",
        prefetch: int = 2,
        parallel_chunks: int = 1,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.cache = cache
        self.prefetch = prefetch
        self.parallel_chunks = parallel_chunks

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BASE_CONSTRAINTS,
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "compute_labels": ["boolean"],
        "max_no_improvement": [Interval(Integral, 0, None, closed="left"), None],
        "init_size": [Interval(Integral, 1, None, closed="left"), None],
        "reassignment_ratio": [Interval(Real, 0, None, closed="left")],
        "prefetch": [Interval(Integral, 0, None, closed="left")],
        "parallel_chunks": [Interval(Integral, 1, None, closed="left")],
    }
    _data_checks = BASE_DATA_CHECKS

    def _sizes(self, data: RowData) -> tuple[int, int]:
        """The batch size and the init size used on ``data`` (as scikit-learn, with its warning
        when ``init_size < n_clusters``)."""
        batch_size = min(self.batch_size, data.n_samples)
        init_size = self.init_size
        if init_size is None:
            init_size = max(3 * batch_size, 3 * self.n_clusters)
        elif init_size < self.n_clusters:
            warnings.warn(
                f"init_size={init_size} should be larger than n_clusters={self.n_clusters}. Setting it to "
                "min(3*n_clusters, n_samples)",
                RuntimeWarning,
                stacklevel=3,
            )
            init_size = 3 * self.n_clusters
        return batch_size, min(init_size, data.n_samples)

    # ------------------------------------------------------------------ initialization

    def _seed_one(self, sample: np.ndarray, weight: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """Initial centers from an in-memory sample: by k-means++, random rows or the callable
        ``init(sample, n_clusters, random_state)``."""
        if callable(self.init):
            state = np.random.RandomState(int(rng.integers(2**31 - 1)))
            centers = np.asarray(self.init(sample, self.n_clusters, random_state=state), dtype=np.float64)
            check_centers(centers, self.n_clusters, sample.shape[1])
            return centers.astype(sample.dtype)
        if self.init == "k-means++":
            seed = int(rng.integers(2**31 - 1))
            with single_threaded_blas():  # a small in-memory problem: threads only add contention
                centers, _ = kmeans_plusplus(sample, self.n_clusters, sample_weight=weight, random_state=seed)
            return np.asarray(centers, dtype=sample.dtype)
        p = None if weight is None else weight / weight.sum()
        return sample[rng.choice(sample.shape[0], size=self.n_clusters, replace=False, p=p)].copy()

    def _initialize(
        self, data: RowData, weights: da.Array | None, init_array: np.ndarray | None, n_init: int, init_size: int,
        entropy: int,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The initial centers, and the sample's per-feature variance when ``tol > 0``.

        String inits other than 'k-means||' work on ``n_init`` samples of ``init_size`` rows
        (with replacement, as scikit-learn; all rows when ``init_size >= n_samples``), plus one
        more to compare them when ``n_init > 1``; all are read in one go, from the chunks that
        hold them.
        """
        rng = K.chunk_rng(entropy, _TAG_INIT)
        in_memory = init_array is None and self.init != "k-means||"
        n_samples_needed = (n_init if in_memory else 0) + (1 if n_init > 1 or self.tol > 0 else 0)
        sample = weight = None
        if n_samples_needed:
            if init_size < data.n_samples:
                index = rng.integers(0, data.n_samples, size=n_samples_needed * init_size)
            else:  # as scikit-learn: every row, once, when the sample would be the whole data
                index = np.tile(np.arange(data.n_samples), n_samples_needed)
            sample = take_rows(data, index)
            if weights is not None:
                weight = np.asarray(take(weights, index), dtype=np.float64)
        variance = None if sample is None or self.tol == 0 else np.var(sample.astype(np.float64), axis=0)
        candidates = []
        for i in range(n_init):
            if init_array is not None:
                candidates.append(init_array.astype(data.dtype))
            elif self.init == "k-means||":
                candidates.append(seed(data, weights, self.n_clusters, "k-means||", entropy=entropy + i,
                                       owner=type(self).__name__))
            else:
                assert sample is not None
                part = slice(i * init_size, (i + 1) * init_size)
                candidates.append(self._seed_one(sample[part], None if weight is None else weight[part], rng))
        if len(candidates) == 1:
            return candidates[0], variance
        assert sample is not None
        valid = sample[-init_size:]
        w_valid = None if weight is None else weight[-init_size:]
        x_sq = row_sq_norms(valid)
        scores = []
        for i, centers in enumerate(candidates):
            d = nearest_center(valid, x_sq, centers, row_sq_norms(centers))[1]
            scores.append(float(d.sum() if w_valid is None else d @ w_valid))
            logger.info("init %d/%d: inertia %.6g on the validation sample", i + 1, n_init, scores[-1])
        return candidates[int(np.argmin(scores))], variance

    # ------------------------------------------------------------------ fitting

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Compute the centers by mini-batches streamed from ``X``, chunk by chunk.

        Parameters
        ----------
        X : array-like, memmap, dask array, zarr array, path, or :class:`~daskcluster.Scaled` \
of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like or dask array of shape (n_samples,), default=None
            Rows weigh in the updates (counts absorb weights) and in the inertia.

        Returns
        -------
        self
            Data passes: see the class Notes.
        """
        name = type(self).__name__
        data = self._fit_data(X)
        self._check_params(data)
        n_init, init_array = n_runs(self, 3), init_array_of(self.init)
        batch_size, init_size = self._sizes(data)
        weights = as_sample_weight(sample_weight, data, owner=name)
        entropy = int(check_random_state(name, self.random_state).randint(np.iinfo(np.int32).max))
        t0 = time.perf_counter()
        with ExitStack() as stack:
            if self.verbose:
                stack.enter_context(progress_hook(lambda rep: print(rep.format())))
            work = stack.enter_context(cached(data, self.cache))
            centers, variance = self._initialize(work, weights, init_array, n_init, init_size, entropy)
            tol = 0.0 if variance is None else float(np.mean(variance)) * self.tol
            rules = M.StepRules(
                work.affine, batch_size, data.n_samples, tol, self.max_no_improvement, float(self.reassignment_ratio),
                entropy, stop_early=self.parallel_chunks == 1,
            )

            def on_epoch(rep: EpochReport) -> None:
                st = rep.result.state
                metrics = {"ewa_inertia": st.ewa if st.ewa is not None else float("nan"),
                           "steps": float(rep.n_steps), "reassigned": float(sum(rep.result.log.n_reassigned))}
                report(IterationReport(name, "fit", rep.epoch, self.max_iter, rep.seconds, rep.n_rows, metrics))

            state, n_epochs = run_schedule(work, weights, M.MiniBatchState.start(centers.astype(work.dtype)), rules,
                                           max_epochs=self.max_iter, parallel_chunks=self.parallel_chunks,
                                           prefetch=self.prefetch, on_epoch=on_epoch)
            if state.stopped:
                logger.info("Converged (%s) at step %d, epoch %d.",
                            "small centers change" if state.stopped == M.STOP_TOL else "lack of improvement in inertia",
                            state.n_steps, n_epochs)
            self.cluster_centers_ = state.centers
            self.n_features_in_ = data.n_features
            self._counts = state.counts
            self._n_since_last_reassign = state.n_since_reassign
            self._entropy = entropy
            self._dtype = work.dtype
            self.n_steps_ = int(state.n_steps)
            self.n_iter_ = int(n_epochs)
            if self.compute_labels:
                self.labels_, self.inertia_ = self._labels_inertia(data, work, weights)
            else:
                if hasattr(self, "labels_"):  # from an earlier fit: no longer true
                    del self.labels_
                total = float(data.n_samples if weights is None else weights.sum().compute())
                ewa = state.ewa if state.ewa is not None else 0.0
                self.inertia_ = float(ewa * total)
        logger.info("%s fit in %.2fs: inertia=%.6g n_steps=%d n_iter=%d", name, time.perf_counter() - t0,
                    self.inertia_, self.n_steps_, self.n_iter_)
        return self

    def _labels_inertia(self, data: RowData, work: RowData, weights: da.Array | None) -> tuple[Any, float]:
        """``labels_`` and ``inertia_`` of all rows: one pass for eager input (both at once);
        for lazy input, one pass for the inertia and lazy labels."""
        params = K.AssignParams(self.cluster_centers_, work.affine)
        if not data.lazy:
            out = tree_reduce(work, M.labels_inertia_kernel, params, M.combine_labels_inertia, weights=weights,
                              label="labels_inertia")
            return out.labels, out.inertia
        stats = tree_reduce(work, K.assign_stats_kernel, params, K.combine_assign, weights=weights)
        return self._labels(data), float(stats.inertia)

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Update the centers with one mini-batch step on ``X`` (the first call initializes).

        Parameters
        ----------
        X : ndarray, dask array or :class:`~daskcluster.Scaled` of shape (n_samples, n_features)
            One batch. A Dask batch is read by one task on the cluster, never by the client.
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
            Data passes: one read of the batch; the first call reads it once more to
            initialize ('k-means||': 6 more); one more when ``labels_`` of a lazy batch is
            computed.
        """
        name = type(self).__name__
        first = not hasattr(self, "cluster_centers_")
        data = self._fit_data(X) if first else self._data(X)
        weights = as_sample_weight(sample_weight, data, owner=name)
        if first:
            self._check_params(data)
            init_array, (_, init_size) = init_array_of(self.init), self._sizes(data)
            self._entropy = int(check_random_state(name, self.random_state).randint(np.iinfo(np.int32).max))
            centers, _ = self._initialize(data, weights, init_array, 1, init_size, self._entropy)
            self._dtype = data.dtype
            self.cluster_centers_ = centers.astype(data.dtype)
            self._counts = np.zeros(self.n_clusters)
            self._n_since_last_reassign = 0.0
            self.n_steps_ = 0
            self.n_features_in_ = data.n_features
        else:
            self._check_params()
        state = M.MiniBatchState(self.cluster_centers_.astype(self._dtype), self._counts.copy(),
                                 self._n_since_last_reassign, int(getattr(self, "n_steps_", 0)))
        args = (state, data.affine, float(self.reassignment_ratio), (self._entropy, state.n_steps), self.compute_labels)
        state, inertia = run_on_whole(data, weights, M.partial_fit_kernel, *args)
        self.cluster_centers_ = state.centers
        self._counts = state.counts
        self._n_since_last_reassign = state.n_since_reassign
        self.n_steps_ = int(state.n_steps)
        if self.compute_labels:
            self.labels_ = self._labels(data)
            self.inertia_ = float(inertia)  # type: ignore[arg-type]
        return self

    # ------------------------------------------------------------------ prediction

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray | da.Array:
        """Fit, then return ``labels_`` (computed even when ``compute_labels=False``)."""
        self.fit(X, sample_weight=sample_weight)
        return self.labels_ if self.compute_labels else self.predict(X)
