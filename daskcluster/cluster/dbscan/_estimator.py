"""``DBSCAN``: scikit-learn's estimator, exact, on spatial partitions of row-chunked data."""

from __future__ import annotations

import logging
import numbers
import time
from numbers import Integral, Real
from typing import Any, ClassVar

import dask
import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from ..._estimator import EstimatorMixin
from ...data import RowData, as_row_data, check_n_features
from ...engine import generated_rows, map_rows, tree_reduce
from ...engine.partitions import (
    Outputs,
    PartitionFiles,
    PartitionParams,
    StageParams,
    Store,
    chunk_block,
    concat_lists,
    run_partitions,
    selected_block,
    selected_data_block,
    stage_kernel,
)
from ...errors import InvalidDataError, InvalidParameterError
from ...io import worker_threads
from ...kernels.dbscan import (
    BoxParams,
    KdPlan,
    Labeling,
    PredictParams,
    ScanParams,
    check_cores,
    chunk_labels,
    cluster_box,
    combine_scans,
    core_rows,
    labeled_cores,
    predict_block,
    route_to_boxes,
    scan_kernel,
)
from ...params import DataCheck, Interval, StrOptions
from ._merge import merge
from ._plan import n_partitions_for, plan_partitions

logger = logging.getLogger(__name__)

#: Rows sampled (over all chunks) to place the partitions' boxes.
SAMPLE_ROWS = 100_000

#: Above this many features a k-d tree's search for neighbours approaches comparing every
#: pair of rows.
TREE_MAX_FEATURES = 10

#: Largest number of rows accepted with more than :data:`TREE_MAX_FEATURES` features.
HIGH_DIM_MAX_ROWS = 100_000

METRICS = ("euclidean", "minkowski")


def _check_metric(est: DBSCAN, data: Any) -> None:
    if est.metric not in METRICS:
        raise InvalidParameterError(
            f"The 'metric' parameter of {type(est).__name__} must be 'euclidean' (or 'minkowski' with p=2): the "
            f"neighbour search is Euclidean only. Got {est.metric!r} instead. For another metric, transform "
            "the data so that the Euclidean distance is the one wanted, or use sklearn.cluster.DBSCAN on data that "
            "fit in memory.", param="metric")


def _check_p(est: DBSCAN, data: Any) -> None:
    if est.metric == "minkowski" and est.p not in (None, 2, 2.0):
        raise InvalidParameterError(
            f"The 'p' parameter of {type(est).__name__} must be 2 or None (the Euclidean distance). Got {est.p!r} "
            "instead.", param="p")


def _check_metric_params(est: DBSCAN, data: Any) -> None:
    if est.metric_params is not None:
        raise InvalidParameterError(
            f"The 'metric_params' parameter of {type(est).__name__} must be None (the Euclidean metric takes none). "
            f"Got {est.metric_params!r} instead.", param="metric_params")


def _check_algorithm(est: DBSCAN, data: Any) -> None:
    if est.algorithm != "auto":
        raise InvalidParameterError(
            f"The 'algorithm' parameter of {type(est).__name__} must be 'auto': neighbours are found exactly by "
            f"a grid of cells (a k-d tree per partition beyond 3 features), not by scikit-learn's options. Got {est.algorithm!r} instead.",
            param="algorithm")


def _check_leaf_size(est: DBSCAN, data: Any) -> None:
    if est.leaf_size != 30:
        raise InvalidParameterError(
            f"The 'leaf_size' parameter of {type(est).__name__} must be 30 (the default): there is no tree whose "
            f"leaves it would size. Got {est.leaf_size!r} instead.", param="leaf_size")


def _check_n_jobs(est: DBSCAN, data: Any) -> None:
    if est.n_jobs is not None:
        raise InvalidParameterError(
            f"The 'n_jobs' parameter of {type(est).__name__} must be None: the work runs on the threads or workers "
            f"of the Dask scheduler in use. Got {est.n_jobs!r} instead.", param="n_jobs")


class DBSCAN(EstimatorMixin, ClusterMixin, BaseEstimator):  # type: ignore[misc]
    """Density-based clustering (DBSCAN), exact, on spatial partitions of the data.

    The same clusters as scikit-learn's ``DBSCAN``: the same core samples, the same noise, the
    same labels (clusters numbered in the order of their first core sample, each border
    sample in the first cluster that reaches it in scikit-learn's search, i.e. the smallest
    label among the core samples within ``eps``), on data of any size.

    How it runs (Data passes: 2):

    1. One pass checks every row (NaN and infinity are refused with the row) and draws a
       sample with per-chunk seeds; the client cuts space into boxes by a k-d tree on the
       sample.
    2. One pass routes each row to the box that owns it and to every box within ``2 eps`` of
       it (the halo), written to a temporary folder as one file per chunk.
    3. One task per box (on the workers, a few in flight at a time) reads its rows, finds
       neighbours within ``eps`` in a grid of cells of diagonal ``eps`` (compiled loops), flags the
       core samples of the box and of the ``eps`` ring around it (their neighbourhoods lie in
       the halo), joins the core samples into components (union-find) and gives each border
       sample the components within ``eps`` (see below for more than 3 features).
    4. The client merges components that share a core sample of a ring (a small graph) and
       numbers the clusters; ``labels_`` and ``core_sample_indices_`` are made per input chunk
       from the boxes' results.

    Memory: the partitions in flight on the workers (a few hundred bytes a row of a partition,
    halo included), never the whole data; the client holds the sample and the border graph.
    The temporary folder (Dask's ``temporary-directory``, else the system's; shared by the
    workers) holds ``8 (n_features + 3)`` bytes a row (and a halo copy) while a fit runs, then
    24 bytes a row and ``8 (n_features + 1)`` bytes a core sample.

    Up to 3 features the rows are put in cells whose diagonal is ``eps``: a cell holding
    ``min_samples`` rows is all core samples without a distance computed, and a row is compared
    only with the rows of the 25 cells around it (in 2-D), until its count reaches
    ``min_samples``. With 4 to 10 features each partition finds its pairs of rows within
    ``eps`` with a k-d tree (:class:`scipy.spatial.cKDTree`): memory then grows with the number
    of such pairs, as scikit-learn's neighbourhoods do. Beyond 10 features a k-d tree
    approaches comparing every pair of rows (O(n_samples²)): fits of more than 100,000 rows
    are refused.

    Parameters
    ----------
    eps : float, default=0.5
        The maximum distance between two samples for one to be considered as in the
        neighborhood of the other. Must be > 0.
    min_samples : int, default=5
        The number of samples (or total weight) in a neighborhood for a point to be a core
        point, the point itself included.
    metric : {'euclidean', 'minkowski'}, default='euclidean'
        Only the Euclidean distance: ``'minkowski'`` with ``p=2`` (or ``None``) is the same.
    metric_params : None
        Must be None (no metric takes parameters here).
    algorithm : 'auto', default='auto'
        Neighbours are found in a grid of cells, exactly; scikit-learn's tree options do not
        apply and are refused.
    leaf_size : int, default=30
        Must stay 30: there is no tree whose leaves it would size.
    p : float or None, default=None
        With ``metric='minkowski'``, must be 2 (or None).
    n_jobs : None
        Must be None: the work runs on the Dask scheduler's threads or workers.

    Attributes
    ----------
    core_sample_indices_ : ndarray or dask.array.Array of shape (n_core_samples,)
        Indices of core samples, ascending. Lazy (a Dask array, one chunk per input chunk)
        when the input was lazy.
    components_ : ndarray or dask.array.Array of shape (n_core_samples, n_features)
        Copy of each core sample found by training (lazy for lazy input: reading it costs one
        pass).
    labels_ : ndarray or dask.array.Array of shape (n_samples,), int64
        Cluster labels; noisy samples are -1. Lazy for lazy input (read from the fit's folder).
    n_features_in_ : int
    n_clusters_ : int
        Number of clusters found (not in scikit-learn).

    Notes
    -----
    Distances are compared as ``sum((x - y)**2) <= eps**2`` in float64, as scikit-learn's
    k-d and ball trees compare them; scikit-learn's ``algorithm='brute'`` rounds differently,
    which matters only for pairs at distance ``eps`` to the last bits. Weighted neighbour
    counts are summed in another order than scikit-learn's, which matters only for weights
    that are not integers and counts equal to ``min_samples`` to the last bits.

    ``predict`` gives new samples the cluster of their nearest core sample within ``eps``,
    else -1 (not in scikit-learn's DBSCAN: the recipe of a ``KNeighborsClassifier`` trained
    on the core samples, with the distance check, as one pass).

    A fitted model is saved by :func:`daskcluster.persistence.save` (loaded by ``load``)
    with what ``predict`` needs: the partitions' boxes and the core samples of each box and of
    the ``eps`` ring around it, with their clusters. For a fit on lazy input those core samples
    are read from the fit's folder when saving (``8 (n_features + 1)`` bytes a core sample,
    small next to the data); the lazy ``labels_``, ``core_sample_indices_`` and
    ``components_`` are not saved (``predict(X)`` recomputes the labels).

    References
    ----------
    M. Ester, H.-P. Kriegel, J. Sander, X. Xu. A Density-Based Algorithm for Discovering
    Clusters in Large Spatial Databases with Noise. KDD 1996.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster import DBSCAN
    >>> X = np.array([[1, 2], [2, 2], [2, 3], [8, 7], [8, 8], [25, 80]], dtype=float)
    >>> DBSCAN(eps=3, min_samples=2).fit(X).labels_.tolist()
    [0, 0, 0, 1, 1, -1]
    """

    def __init__(
        self,
        eps: float = 0.5,
        *,
        min_samples: int = 5,
        metric: str = "euclidean",
        metric_params: dict[str, Any] | None = None,
        algorithm: str = "auto",
        leaf_size: int = 30,
        p: float | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric
        self.metric_params = metric_params
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.p = p
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ validation

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "eps": [Interval(Real, 0.0, None, closed="neither")],
        "min_samples": [Interval(Integral, 1, None, closed="left")],
        "metric": [str, callable],
        "metric_params": [dict, None],
        "algorithm": [StrOptions(["auto", "ball_tree", "kd_tree", "brute"])],
        "leaf_size": [Interval(Integral, 1, None, closed="left")],
        "p": [Interval(Real, 0.0, None, closed="left"), None],
        "n_jobs": [Integral, None],
    }
    # scikit-learn's values that the grid of cells cannot honour, each refused with the reason
    _data_checks = (
        DataCheck("metric", _check_metric, needs_data=False),
        DataCheck("p", _check_p, needs=("metric",), needs_data=False),
        DataCheck("metric_params", _check_metric_params, needs_data=False),
        DataCheck("algorithm", _check_algorithm, needs_data=False),
        DataCheck("leaf_size", _check_leaf_size, needs_data=False),
        DataCheck("n_jobs", _check_n_jobs, needs_data=False),
    )
    # set last by fit and saved in model files (the lazy labels_ of a fit on lazy input are not)
    _fitted_attribute = "n_clusters_"

    @staticmethod
    def _weights(sample_weight: Any, data: RowData) -> da.Array | None:
        """Weights chunked like the rows (negative weights allowed, as scikit-learn); their
        finiteness is checked in the first pass."""
        if sample_weight is None:
            return None
        n = data.n_samples
        if isinstance(sample_weight, numbers.Real):
            return da.full(n, float(sample_weight), chunks=(data.array.chunks[0],))
        if isinstance(sample_weight, da.Array):
            w = sample_weight.astype(np.float64)
        else:
            try:
                w = np.asarray(sample_weight, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InvalidDataError(f"sample_weight must be numbers: {exc}") from exc
        if w.ndim != 1 or w.shape[0] != n:
            raise InvalidDataError(f"sample_weight.shape == {tuple(w.shape)}, expected ({n},)!")
        if isinstance(w, np.ndarray):
            return da.from_array(w, chunks=(data.array.chunks[0],))
        return w.rechunk((data.array.chunks[0],))

    # ------------------------------------------------------------------ fitting

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> DBSCAN:
        """Perform DBSCAN clustering.

        Parameters
        ----------
        X : array-like, memmap, dask array, zarr array, path, or :class:`~daskcluster.Scaled` \
of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like or dask array of shape (n_samples,), default=None
            Weight of each sample: a sample of weight at least ``min_samples`` is a core
            sample by itself; a negative weight may keep its neighbours from being core.

        Returns
        -------
        self
            Data passes: 2 (see the class docstring).
        """
        owner = type(self).__name__
        self._check_params()
        data = as_row_data(self._labeled(X, reset=True).values, owner=owner)
        weights = self._weights(sample_weight, data)
        n, d = data.n_samples, data.n_features
        if d > TREE_MAX_FEATURES and n > HIGH_DIM_MAX_ROWS:
            raise InvalidDataError(
                f"{owner} finds neighbours with a k-d tree beyond 3 features, efficient up to about "
                f"{TREE_MAX_FEATURES} features; with n_features={d} it degenerates to comparing every pair of rows "
                f"(O(n_samples²)) and is refused above {HIGH_DIM_MAX_ROWS:,} rows (got n_samples={n:,}). "
                "Reduce the dimension first (e.g. PCA), or fit on a sample.")
        t0 = time.perf_counter()
        eps = float(self.eps)
        scan = tree_reduce(data, scan_kernel, ScanParams(data.affine, n, SAMPLE_ROWS), combine_scans,
                           weights=weights, label="dbscan-scan")
        if not scan.nonzero_weight:
            raise InvalidDataError("Sample weights must contain at least one non-zero number.")
        span = float(np.max(scan.hi - scan.lo))
        if span / eps > 2.0**50:
            raise InvalidParameterError(
                f"The 'eps' parameter of {owner} is too small for the data: eps={eps!r} against a span of "
                f"{span!r}, more than 2**50 cells of side eps. Scale the data or choose a larger eps.")
        plan = plan_partitions(scan.sample, eps, n_partitions_for(n, worker_threads()))
        scale = float(np.max(np.abs(np.concatenate([scan.lo, scan.hi])))) if n else 0.0
        margin = 1e-6 * eps + 16 * float(np.spacing(scale))
        box = BoxParams(plan, eps, float(self.min_samples), margin)
        store = Store("daskcluster-dbscan")
        try:
            staged = tree_reduce(data, stage_kernel,
                                 StageParams(route_to_boxes, box, plan.n_partitions, data.affine, store.path),
                                 concat_lists, weights=weights, label="dbscan-stage")
            offsets = np.stack([o for _, o in sorted(staged, key=lambda item: item[0])])
            bounds = np.concatenate([data.starts, [n]]).astype(np.int64)
            t1 = time.perf_counter()
            params = PartitionParams(cluster_box, box, core_rows, offsets, bounds, d, store.path)
            summaries = run_partitions(params, label="dbscan")
            store.remove_staged()
            merged = merge([s.summary for s in summaries])
            n_core = np.sum([s.n_selected for s in summaries], axis=0).astype(np.int64)
            self._set_results(data, Outputs.of(params, summaries), merged.labeling, n_core, plan, eps, store)
        except BaseException:
            store.close()
            raise
        self.n_features_in_ = d
        self.n_clusters_ = merged.n_clusters
        logger.info(
            "%s fit in %.2fs (%.2fs after the two passes): %d rows, %d partitions, %d rows staged (halo included), "
            "%d border edges, %d clusters", owner, time.perf_counter() - t0, time.perf_counter() - t1, n,
            plan.n_partitions, int(offsets[:, -1].sum()), merged.n_edges, merged.n_clusters)
        return self

    def _set_results(self, data: RowData, outputs: Outputs, labeling: Labeling, n_core: np.ndarray, plan: KdPlan,
                     eps: float, store: Store) -> None:
        """``labels_``, ``core_sample_indices_``, ``components_`` and what ``predict`` needs:
        NumPy arrays for in-memory input (the folder is removed), lazy arrays reading the
        folder for lazy input (kept as long as they, or the model, are referenced)."""
        lengths = data.array.chunks[0]
        labels = generated_rows(lengths, chunk_block, (chunk_labels, labeling, outputs), dtype=np.int64,
                                label="dbscan-labels")
        cores = generated_rows(tuple(int(c) for c in n_core), selected_block, (outputs,), dtype=np.int64,
                               label="dbscan-core-indices")
        d = data.n_features
        components = da.map_blocks(selected_data_block, data.array, outputs, data.affine, data.dtype,
                                   dtype=data.dtype, chunks=(tuple(int(c) for c in n_core), (d,)),
                                   meta=np.empty((0, 0), data.dtype))
        self._kd_plan, self._eps_fit = plan.to_arrays(), eps
        # each partition's core rows (box and ring) with their cluster, read from the folder
        core_files = PartitionFiles(outputs, "cores", labeled_cores, labeling)
        if data.lazy:
            self.labels_, self.core_sample_indices_, self.components_ = labels, cores, components
            # the folder lives as long as something reads it: these arrays, or this model
            self._cores: list[np.ndarray] | PartitionFiles = core_files
            store.keep_with(outputs)
            return
        self.labels_, self.core_sample_indices_, self.components_ = dask.compute(labels, cores, components)
        self._cores = list(core_files)
        store.close()

    @property
    def _plan(self) -> KdPlan:
        """The fit's partitions (kept as plain arrays, ``_kd_plan``, which a model file holds)."""
        return KdPlan.from_arrays(self._kd_plan)

    def __getstate__(self) -> dict[str, Any]:
        """The model's state, self-contained (what :func:`daskcluster.persistence.save` and pickle
        keep): for a fit on lazy input, the core samples that ``predict`` reads from the fit's
        folder are read into it (one file per partition; ``8 (n_features + 1)`` bytes a core
        sample, and a copy of those within ``eps`` of another partition's box)."""
        state: dict[str, Any] = dict(super().__getstate__())  # a copy: object's is the model's own dict
        cores = state.get("_cores")
        if isinstance(cores, PartitionFiles):
            state["_cores"] = list(cores)
        return state

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray | da.Array:
        """Fit, then return ``labels_`` (Data passes: 2)."""
        return self.fit(X, sample_weight=sample_weight).labels_

    # ------------------------------------------------------------------ prediction

    def predict(self, X: Any) -> np.ndarray | da.Array:
        """The cluster of each sample's nearest core sample if within ``eps``, else -1.

        The recipe of a ``KNeighborsClassifier`` trained on ``components_`` with the labels of
        the core samples, where samples farther than ``eps`` from every core sample are
        anomalies (-1), as one pass: each row is looked up only among the core samples of its
        box and the ``eps`` ring around it.

        Parameters
        ----------
        X : array-like, dask array, zarr array or path of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray or dask array of shape (n_samples,), int64
            Lazy for lazy input. Data passes: 1 (when computed).
        """
        self._check_fitted()
        data = as_row_data(self._labeled(X, reset=False).values, owner=type(self).__name__)
        check_n_features(data, self.n_features_in_, type(self).__name__)
        plan, cores = self._plan, self._cores
        if not isinstance(cores, PartitionFiles):
            check_cores(cores, plan)
        params = PredictParams(plan, cores, self._eps_fit, data.affine)
        labels = map_rows(data, predict_block, (params,), dtype=np.int64, label="dbscan-predict")
        return labels if data.lazy else labels.compute()

