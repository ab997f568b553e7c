"""``AgglomerativeClustering``: scikit-learn's estimator exactly on data that fit the client, and in
two phases (micro-clusters on the cluster, a weighted tree on the client) above ``max_samples``."""

from __future__ import annotations

import logging
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import AgglomerativeClustering as _SklearnAgglomerative
from sklearn.utils.validation import check_memory

from .._estimator import EstimatorMixin
from ..errors import InvalidParameterError
from ..params import DataCheck, HasMethods, Interval, StrOptions
from ._linkage import LINKAGES, weighted_tree
from ._two_phase import (
    TWO_PHASE_CHECKS,
    TWO_PHASE_CONSTRAINTS,
    TwoPhaseMixin,
    summarize,
)

logger = logging.getLogger(__name__)

METRICS = ("euclidean", "l1", "l2", "manhattan", "cosine", "precomputed")


def _check_one_of(est: AgglomerativeClustering, data: Any) -> None:
    if (est.n_clusters is None) == (est.distance_threshold is None):
        raise InvalidParameterError(
            "Exactly one of n_clusters and distance_threshold has to be set, and the other needs to be None.",
            param="n_clusters" if est.n_clusters is None else "distance_threshold")


def _check_full_tree(est: AgglomerativeClustering, data: Any) -> None:
    if est.distance_threshold is not None and est.compute_full_tree is False:
        raise InvalidParameterError("compute_full_tree must be True if distance_threshold is set.",
                                    param="compute_full_tree")


def _check_ward(est: AgglomerativeClustering, data: Any) -> None:
    if est.linkage == "ward" and est.metric not in ("euclidean", "l2"):
        raise InvalidParameterError(
            f"{est.metric} was provided as metric. Ward can only work with euclidean distances (i.e. 'euclidean' and "
            "'l2').", param="metric")


class AgglomerativeClustering(TwoPhaseMixin, EstimatorMixin, ClusterMixin, BaseEstimator):  # type: ignore[misc]
    """Agglomerative (hierarchical) clustering, exact up to ``max_samples`` rows, two-phase above.

    * **Exact route** (``n_samples <= max_samples``): the rows are brought to the client and
      clustered by scikit-learn's ``AgglomerativeClustering`` with the same parameters; every
      fitted attribute is scikit-learn's. Memory: O(n_samples²) on the client.
    * **Two-phase route** (``n_samples > max_samples``): phase 1, on the cluster, summarises the
      rows by ``n_micro_clusters`` k-means centers (:class:`~daskcluster.KMeans`, k-means||, 2
      rounds, at most 10 Lloyd iterations), then one pass takes the count and mean of the rows nearest each
      center. Phase 2, on the client, builds the hierarchical tree of the micro-clusters' means
      weighted by their counts, with the linkage's Lance–Williams update on cluster sizes in
      rows. What it approximates: the tree equals scikit-learn's tree of the data with every row
      moved to its micro-cluster's mean, above the merges at distance zero — for ``'ward'``,
      exactly scikit-learn's Ward tree of the rows constrained to merge each micro-cluster's
      rows first (Ward's cost depends only on the sizes and means); for ``'average'``, the
      distances between rows are replaced by those between their micro-clusters' means; for
      ``'complete'`` and ``'single'``, the largest and smallest distance between rows become those
      between means. The leaves of ``children_`` are the micro-clusters. Each row then takes the
      cluster of its micro-cluster (one lazy map over the rows).

    Parameters
    ----------
    n_clusters : int or None, default=2
        Number of clusters to find; None when ``distance_threshold`` is set.
    metric : {'euclidean', 'l1', 'l2', 'manhattan', 'cosine', 'precomputed'} or callable, \
default='euclidean'
        Metric of the linkage; ``'ward'`` accepts only ``'euclidean'``. ``'precomputed'`` (X is a
        distance matrix) needs the exact route.
    memory : str or object with the joblib.Memory interface, default=None
        Caches the tree (scikit-learn's tree on the exact route, the weighted tree on the
        two-phase route).
    connectivity : array-like, sparse matrix or callable, default=None
        Connectivity between the rows, as scikit-learn; needs the exact route (it is a graph over
        every row).
    compute_full_tree : 'auto' or bool, default='auto'
        As scikit-learn. Without connectivity scikit-learn builds the full tree anyway, and so
        does the two-phase route.
    linkage : {'ward', 'complete', 'average', 'single'}, default='ward'
        Linkage criterion, as scikit-learn.
    distance_threshold : float, default=None
        Linkage distance at or above which clusters are not merged (then ``n_clusters=None`` and
        ``compute_full_tree`` must be True or 'auto').
    compute_distances : bool, default=False
        Keep the merge distances in ``distances_``.
    max_samples : int, default=5000
        Largest number of rows clustered by the exact route (all rows on the client, an
        O(n_samples²) distance matrix: about 100 MB at 5,000 rows).
    n_micro_clusters : int, default=200
        Number of k-means micro-clusters of phase 1 (the leaves of the two-phase tree); at least
        ``n_clusters``. More follow finer shapes, at O(n_micro_clusters²) client memory in phase 2.
    random_state : int, RandomState instance or None, default=None
        Seeds phase 1 (k-means||); the exact route is deterministic and draws nothing.

    Attributes
    ----------
    n_clusters_ : int
    labels_ : ndarray or dask.array.Array of shape (n_samples,)
        Cluster of each row; a Dask array for lazy input.
    n_leaves_ : int
        Leaves of the tree: ``n_samples`` (exact route) or the micro-clusters (two-phase route).
    n_connected_components_ : int
        Connected components of the connectivity graph (1 on the two-phase route).
    n_features_in_ : int
    children_ : ndarray of shape (n_leaves_ - 1, 2)
        scikit-learn's: node ``n_leaves_ + i`` merges ``children_[i]``.
    distances_ : ndarray of shape (n_leaves_ - 1,)
        Merge distances, when ``compute_distances`` or ``distance_threshold`` is set.
    fit_path_ : {'exact', 'two-phase'}
        The route the fit took.
    micro_centers_ : ndarray of shape (n_leaves_, n_features)
        Two-phase route only: the means of the micro-clusters (the tree's leaves).
    micro_counts_ : ndarray of shape (n_leaves_,)
        Two-phase route only: rows in each micro-cluster.

    Notes
    -----
    Data passes of ``fit``: exact route, 1 (the rows to the client); two-phase route, those of
    phase 1's KMeans (3 for the seeding, at most 10 iterations, 1 for its inertia) plus 1 for
    the summary; ``labels_`` is a lazy map (1 pass when computed; computed in ``fit`` for NumPy
    input).

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster import AgglomerativeClustering
    >>> X = np.array([0, 2, 5, 8.5]).reshape(-1, 1)
    >>> AgglomerativeClustering(linkage="complete").fit(X).children_.tolist()
    [[0, 1], [2, 3], [4, 5]]
    """

    def __init__(
        self,
        n_clusters: int | None = 2,
        *,
        metric: Any = "euclidean",
        memory: Any = None,
        connectivity: Any = None,
        compute_full_tree: str | bool = "auto",
        linkage: str = "ward",
        distance_threshold: float | None = None,
        compute_distances: bool = False,
        max_samples: int = 5000,
        n_micro_clusters: int = 200,
        random_state: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.metric = metric
        self.memory = memory
        self.connectivity = connectivity
        self.compute_full_tree = compute_full_tree
        self.linkage = linkage
        self.distance_threshold = distance_threshold
        self.compute_distances = compute_distances
        self.max_samples = max_samples
        self.n_micro_clusters = n_micro_clusters
        self.random_state = random_state

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_clusters": [Interval(Integral, 1, None, closed="left"), None],
        "metric": [StrOptions(METRICS), callable],
        "memory": [str, HasMethods("cache"), None],
        "connectivity": ["array-like", "sparse matrix", callable, None],
        "compute_full_tree": [StrOptions(["auto"]), "boolean"],
        "linkage": [StrOptions(LINKAGES)],
        "distance_threshold": [Interval(Real, 0, None, closed="left"), None],
        "compute_distances": ["boolean"],
        **TWO_PHASE_CONSTRAINTS,
    }
    _data_checks = (
        DataCheck("distance_threshold", _check_one_of, needs=("n_clusters",), needs_data=False),
        DataCheck("compute_full_tree", _check_full_tree, needs=("distance_threshold",), needs_data=False),
        DataCheck("metric", _check_ward, needs=("linkage",), needs_data=False),
        *TWO_PHASE_CHECKS,
    )

    def _sklearn_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("n_clusters", "metric", "memory", "connectivity", "compute_full_tree",
                                             "linkage", "distance_threshold", "compute_distances")}

    def fit(self, X: Any, y: Any = None) -> AgglomerativeClustering:
        """Fit the hierarchical clustering.

        Parameters
        ----------
        X : array-like, memmap, dask array, zarr array, path, or :class:`~daskcluster.Scaled` \
of shape (n_samples, n_features)
            Or a distance matrix of shape (n_samples, n_samples) with ``metric='precomputed'``.
        y : ignored

        Returns
        -------
        self
            Data passes: see the class Notes.
        """
        data, exact = self._begin_fit(X)
        if not exact:
            if self.metric == "precomputed":
                self._refuse_above(data, "metric", self.metric, "X would be an n_samples × n_samples matrix")
            if self.connectivity is not None:
                self._refuse_above(data, "connectivity", "<graph>", "it is a graph over every row, which phase 1 "
                                   "summarises into micro-clusters")
            self._fit_two_phase(X, data)
            return self
        model = _SklearnAgglomerative(**self._sklearn_params()).fit(self._client_array(data))
        for name in ("n_clusters_", "n_leaves_", "n_connected_components_", "children_", "distances_"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))
        self.labels_ = self._output_labels(data, model.labels_)
        return self

    def _fit_two_phase(self, X: Any, data: Any) -> None:
        micro = summarize(X, data, self.n_micro_clusters, self.random_state, type(self).__name__)
        n_leaves = micro.centers.shape[0]
        if self.n_clusters is not None and n_leaves < self.n_clusters:
            raise InvalidParameterError(
                f"Phase 1 found {n_leaves} distinct micro-clusters, fewer than n_clusters={self.n_clusters}: "
                "the data hold too few distinct rows; lower n_clusters."
            )
        build = check_memory(self.memory).cache(weighted_tree)
        tree = build(micro.centers, micro.counts, self.linkage, self.metric)
        if self.distance_threshold is not None:
            self.n_clusters_ = int(np.count_nonzero(tree.distances >= self.distance_threshold)) + 1
        else:
            self.n_clusters_ = int(self.n_clusters)  # type: ignore[arg-type]
        part_labels = tree.cut(self.n_clusters_)
        self.children_ = tree.children
        if self.compute_distances or self.distance_threshold is not None:
            self.distances_ = tree.distances
        self.n_leaves_ = n_leaves
        self.n_connected_components_ = 1
        self.micro_centers_ = micro.centers
        self.micro_counts_ = micro.counts
        self.labels_ = self._row_labels(data, micro, part_labels)

    def fit_predict(self, X: Any, y: Any = None) -> Any:
        """Fit, then return ``labels_``."""
        return self.fit(X).labels_
