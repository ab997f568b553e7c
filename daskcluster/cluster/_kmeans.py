"""``KMeans``: scikit-learn's estimator, fitted by passes over row-chunked data."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from numbers import Integral, Real
from typing import Any, ClassVar

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning

from ..checkpoint import FitCheckpoint
from ..data import (
    CachePolicy,
    RowData,
    as_sample_weight,
    cached,
)
from ..engine import tree_reduce
from ..errors import InvalidParameterError
from ..kernels import kmeans as K
from ..params import DataCheck, DataShape, Interval, StrOptions, check_random_state
from ..progress import progress_hook
from ._centers import (
    BASE_CONSTRAINTS,
    BASE_DATA_CHECKS,
    CentersMixin,
    check_centers,
    n_runs,
)
from ._centers import init_array as init_array_of
from ._driver import ALGORITHMS, Run, lockstep, report_pass
from ._init import INITS
from ._lloyd import LloydResult, LloydState
from ._warm import WARM_START, warm_centers

logger = logging.getLogger(__name__)


def _check_callable_init(estimator: KMeans, data: DataShape) -> None:
    if callable(estimator.init) and getattr(data, "lazy", False):
        raise InvalidParameterError(
            f"A callable init needs X in memory (it is called with all of X); {type(estimator).__name__} got lazy "
            "input. Compute the initial centers and pass them as an array, or use a string init.", param="init")


class KMeans(CentersMixin, ClusterMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """K-means clustering by Lloyd's algorithm, one pass over the data per iteration.

    The data stay where they are (a Zarr store, a ``.npy`` memmap, cluster memory): each
    iteration maps a kernel over the row chunks on the workers and tree-reduces per-cluster
    counts, sums and inertia into the new centers on the client.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {'k-means||', 'k-means++', 'random', 'mini-batch'}, callable or ndarray of shape \
(n_clusters, n_features), default='k-means||'
        Seeding. A callable ``init(X, n_clusters, random_state)`` returns the initial centers
        (as scikit-learn; in-memory ``X`` only, since it needs all of ``X`` in memory).
        ``'k-means||'``: scalable k-means++ of Bahmani et al. (``init_max_iter``
        rounds of oversampling, ``oversampling_factor * n_clusters`` expected candidates each,
        then weighted k-means++ on the candidates). ``'k-means++'``: greedy k-means++ as in
        scikit-learn, one pass per center. ``'random'``: ``n_clusters`` rows drawn at random.
        ``'mini-batch'`` (a warm start; scikit-learn has no such init): the centers of a short
        :class:`MiniBatchKMeans` fit on the same data (its own seeding: the best of 3
        k-means++ seedings on samples of 3,072 rows, batches of 1,024 rows, early stopping after 10 steps without
        improvement, at most ``max(2, ceil(100 / batches per epoch))`` epochs, up to 10),
        which the Lloyd (or Elkan) iterations finish; its random state comes from
        ``random_state`` like the other seedings'. On 400,000 rows or more, exact Lloyd (or
        Elkan) iterations first take the mini-batch centers to convergence on random samples
        of the rows held in memory (1 % then 10 % of the rows, at least 10,000 and 100,000;
        one read of the data draws them), so that the full-data iterations start near their fixed point. An array gives the initial centers.
    n_init : 'auto' or int, default='auto'
        Number of seedings; the run with the least inertia is kept. ``'auto'``: 10 for a callable or
        ``'random'``, 1 otherwise (as scikit-learn).
    max_iter : int, default=300
        Maximum number of Lloyd iterations of a run.
    tol : float, default=1e-4
        Relative tolerance: the run stops when the squared shift of the centers is at most
        ``tol`` times the mean variance of the features (computed in the first pass).
    verbose : int, default=0
        Print one line per iteration (the lines are always logged at INFO level).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization; the same value gives the same model on any scheduler and
        any number of workers.
    copy_x : bool, default=True
        As scikit-learn: whether ``X`` may be modified during the fit. ``X`` is never modified
        here (chunks are read, centered copies are never written back), so both values give
        the same result.
    oversampling_factor : float, default=2.0
        k-means|| only: expected candidates per round, as a multiple of ``n_clusters``.
    init_max_iter : int or None, default=None
        k-means|| only: rounds of oversampling (None: 5, :data:`~daskcluster.cluster._init.DEFAULT_ROUNDS`).
    algorithm : {'lloyd', 'elkan'}, default='lloyd'
        ``'lloyd'``: every iteration computes every row's distance to every center (tile by
        tile: one GEMM and a compiled arg-min per tile). ``'elkan'``: the same results — on
        uint8 rows that take the walks over their non-zero groups (MNIST-like images), with at
        most 16 centers and no sample weights, the same labels, centers and iterations, bit for
        bit (a row the bounds leave open is labelled by Lloyd's own products and rule); elsewhere
        up to rounding ties (such a row is labelled by float64 distances, not by the float32
        products, and the iterations can differ by one or two) — but each chunk keeps, beside it on its worker, every row's
        label, an upper bound on its distance to its center and a lower bound on its distance
        to every center (Elkan's bounds, ``16 + 4 k`` bytes a row) and the per-cluster sums;
        rows whose bounds settle their label are skipped and the sums are updated by the rows
        that moved. Much faster once few rows change cluster, whether the data are cached or
        streamed. Bounds only save work: a chunk that lost them (a lost worker, a resumed fit)
        recomputes them, with the same labels (as above).
    cache : 'auto' or bool, default='auto'
        Persist the data (in its storage dtype) in cluster memory for the fit (True), read it
        from its source on every pass (False), or persist when it takes at most half the
        memory available ('auto').
    checkpoint : str or path-like, default=None
        File where the state of the fit is saved, atomically, after the seeding and after
        every iteration (JSON and arrays in one ``.npz``, no pickle). A fit started again with
        the same checkpoint (same parameters and data) continues from the last completed
        iteration and ends with the same model as an uninterrupted fit; a finished fit's
        checkpoint gives the model back without iterating. ``random_state=None`` is resumable
        too: the seeds drawn are saved.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray or dask.array.Array of shape (n_samples,)
        Lazy (a Dask array) when the input was lazy.
    inertia_ : float
        Sum of squared distances of the samples to their closest center, weighted.
    n_iter_ : int
        Lloyd iterations of the kept run.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The column names of a DataFrame (or the feature coordinate of a DataArray) given to
        ``fit``, when all are strings.

    Notes
    -----
    Data passes of ``fit``: per run, the seeding (k-means||: ``init_max_iter + 1``;
    k-means++: ``n_clusters``; random: at most one; mini-batch: at most one for the mini-batch
    seeding's sample and one per epoch, usually 1-2 epochs, then, on 400,000 rows or more, one
    to read the samples and the iterations on them, each a pass over 1 % or 10 % of the rows) plus one per iteration and one for the final inertia. ``predict``, ``transform`` and ``score``: one pass each.

    References
    ----------
    B. Bahmani, B. Moseley, A. Vattani, R. Kumar, S. Vassilvitskii. Scalable K-Means++.
    PVLDB 5(7), 2012.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster import KMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=float)
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_[:, 0].tolist())
    [1.0, 10.0]
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = "k-means||",
        n_init: str | int = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state: Any = None,
        oversampling_factor: float = 2.0,
        copy_x: bool = True,
        init_max_iter: int | None = None,
        algorithm: str = "lloyd",
        cache: CachePolicy = "auto",
        checkpoint: str | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.oversampling_factor = oversampling_factor
        self.copy_x = copy_x
        self.init_max_iter = init_max_iter
        self.algorithm = algorithm
        self.cache = cache
        self.checkpoint = checkpoint

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BASE_CONSTRAINTS,
        "init": [StrOptions((*INITS, WARM_START)), callable, "array-like"],
        "copy_x": ["boolean"],
        "algorithm": [StrOptions(ALGORITHMS)],
        "oversampling_factor": [Interval(Real, 0, None, closed="neither")],
        "init_max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "checkpoint": [str, os.PathLike, None],
    }
    _data_checks = (*BASE_DATA_CHECKS, DataCheck("init", _check_callable_init))

    # ------------------------------------------------------------------ fitting

    def _fingerprint(self, data: RowData, weights: da.Array | None, init_array: np.ndarray | None) -> dict[str, Any]:
        """What a checkpoint must match to be resumed by this fit."""
        params = {k: v for k, v in self.get_params().items() if k not in ("cache", "verbose", "checkpoint", "init")}
        if not isinstance(params["random_state"], (int, np.integer, type(None))):
            params["random_state"] = "instance"
        init: Any = hashlib.sha256(init_array.tobytes()).hexdigest() if init_array is not None else self.init
        if callable(init):
            init = f"{getattr(init, '__module__', '')}.{getattr(init, '__qualname__', type(init).__name__)}"
        weights_id = None if weights is None else weights.name
        return {"estimator": type(self).__name__, **params, "init": init, "n_samples": data.n_samples,
                "n_features": data.n_features, "dtype": str(data.array.dtype), "scale": data.affine.scale,
                "offset": data.affine.offset, "sample_weight": weights_id}

    def _start_run(self, data: RowData, weights: da.Array | None, init_array: np.ndarray | None,
                   entropy: int) -> Run:
        """A run seeded from ``init`` (its first draws made: at most one pass; the whole
        mini-batch warm start for ``'mini-batch'``)."""
        bounded = self.algorithm == "elkan"
        if callable(self.init):
            x = data.to_compute(np.asarray(data.array.compute()))
            centers = np.asarray(self.init(x, self.n_clusters, random_state=np.random.RandomState(entropy)),
                                 dtype=np.float64)
            check_centers(centers, self.n_clusters, data.n_features)
            return Run.from_centers(centers.astype(data.dtype), bounded=bounded)
        if init_array is not None:
            return Run.from_centers(init_array.astype(data.dtype), bounded=bounded)
        if self.init == WARM_START:
            centers = warm_centers(data, weights, self.n_clusters, entropy, tol=self.tol, max_iter=self.max_iter,
                                   algorithm=self.algorithm)
            return Run.from_centers(centers, bounded=bounded)
        run = Run(self.n_clusters, entropy, "", bounded=bounded)
        run.start(data, weights, self.init, oversampling_factor=self.oversampling_factor, rounds=self.init_max_iter)
        return run

    def _run(self, data: RowData, weights: da.Array | None, run: Run, save: Callable[[LloydState], None]) -> LloydResult:
        """Drive one run to its end, saving its state after the seeding and every iteration."""
        owner = type(self).__name__
        tol_abs = None if run.state is None else run.state.tol_abs
        for done in lockstep(data, [run], weights=weights, tol=self.tol, max_iter=self.max_iter, tol_abs=tol_abs):
            report_pass(owner, done, data, max_iter=self.max_iter, rounds=run.rounds)
            step = done.steps[0]
            if run.state is not None and not run.exact_next and (step.phase == "lloyd" or run.phase != step.phase):
                save(run.state)
        state = run.state
        assert state is not None
        if state.converged == "strict" and np.isfinite(state.inertia):
            assert state.weight_in_clusters is not None
            return LloydResult(state.centers, state.inertia, state.n_iter, state.weight_in_clusters)
        final = tree_reduce(data, K.assign_stats_kernel, K.AssignParams(state.centers, data.affine), K.combine_assign,
                            weights=weights, label="kmeans-inertia")
        return LloydResult(state.centers, final.inertia, state.n_iter, final.weight_in_clusters)

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Compute k-means clustering.

        Parameters
        ----------
        X : array-like, memmap, dask array, zarr array, path, or :class:`~daskcluster.Scaled` \
of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like or dask array of shape (n_samples,), default=None

        Returns
        -------
        self
            Data passes: see the class Notes.
        """
        data = self._fit_data(X)
        self._check_params(data)
        n_init, init_array = n_runs(self, 10), init_array_of(self.init)
        weights = as_sample_weight(sample_weight, data, owner=type(self).__name__)
        rs = check_random_state(type(self).__name__, self.random_state)
        entropies = rs.randint(np.iinfo(np.int32).max, size=n_init)
        ckpt = None if self.checkpoint is None else FitCheckpoint(
            self.checkpoint, self._fingerprint(data, weights, init_array), data=data, weights=weights)
        saved = None if ckpt is None else ckpt.load()
        t0 = time.perf_counter()
        best: LloydResult | None = None
        first_run = 0
        resume: LloydState | None = None
        if saved is not None:
            state, arrays = saved
            entropies = arrays["entropies"]
            first_run = int(state["run"])
            if state.get("best_inertia") is not None:
                best = LloydResult(arrays["best_centers"], float(state["best_inertia"]), int(state["best_n_iter"]),
                                   arrays["best_weight_in_clusters"])
            if "centers" in arrays:
                resume = LloydState(arrays["centers"], int(state["n_iter"]), state["tol_abs"], state["converged"],
                                    float(state["inertia"]), arrays.get("weight_in_clusters"))

        def save(run: int, st: LloydState | None) -> None:
            if ckpt is None:
                return
            meta: dict[str, Any] = {"run": run, "best_inertia": None if best is None else best.inertia,
                                    "best_n_iter": None if best is None else best.n_iter}
            arrays = {"entropies": np.asarray(entropies)}
            if best is not None:
                arrays.update(best_centers=best.centers, best_weight_in_clusters=best.weight_in_clusters)
            if st is not None:
                meta.update(n_iter=st.n_iter, tol_abs=st.tol_abs, converged=st.converged, inertia=st.inertia)
                arrays["centers"] = st.centers
                if st.weight_in_clusters is not None:
                    arrays["weight_in_clusters"] = st.weight_in_clusters
            ckpt.save(meta, arrays)

        with ExitStack() as stack:
            if self.verbose:
                stack.enter_context(progress_hook(lambda rep: print(rep.format())))
            work = stack.enter_context(cached(data, self.cache))
            for index in range(first_run, n_init):
                if resume is not None and index == first_run:
                    resume = replace(resume, centers=np.asarray(resume.centers, dtype=work.dtype))
                    run = Run.from_centers(resume.centers, bounded=self.algorithm == "elkan", state=resume)
                else:
                    run = self._start_run(work, weights, init_array, int(entropies[index]))
                    if run.state is not None:
                        save(index, run.state)
                result = self._run(work, weights, run, partial(save, index))
                if best is None or result.inertia < best.inertia:
                    best = result
                save(index + 1, None)
            assert best is not None
            self.cluster_centers_ = best.centers
            # eager input: labels from the cached copy; lazy input: a lazy map over the source
            self.labels_ = self._labels(data if data.lazy else work)
        n_distinct = int((best.weight_in_clusters > 0).sum())
        if n_distinct < self.n_clusters:
            warnings.warn(
                f"Number of distinct clusters ({n_distinct}) found smaller than n_clusters ({self.n_clusters}). "
                "Possibly due to duplicate points in X.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.inertia_ = float(best.inertia)
        self.n_iter_ = int(best.n_iter)
        self.n_features_in_ = data.n_features
        logger.info("%s fit in %.2fs: inertia=%.6g n_iter=%d", type(self).__name__, time.perf_counter() - t0,
                    self.inertia_, self.n_iter_)
        return self

    # ------------------------------------------------------------------ prediction

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray | da.Array:
        """Fit, then return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_
