"""``SpectralClustering``: scikit-learn's estimator exactly on data that fit the client, and in two
phases (micro-clusters on the cluster, the spectral embedding of the weighted summary on the
client) above ``max_samples``."""

from __future__ import annotations

import logging
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from scipy.linalg import eigh, qr, svd
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans as _SklearnKMeans
from sklearn.cluster import SpectralClustering as _SklearnSpectral
from sklearn.metrics.pairwise import PAIRWISE_KERNEL_FUNCTIONS, pairwise_kernels

from .._estimator import EstimatorMixin
from ..errors import InvalidParameterError
from ..params import Interval, StrOptions, check_random_state
from ._two_phase import (
    TWO_PHASE_CHECKS,
    TWO_PHASE_CONSTRAINTS,
    TwoPhaseMixin,
    summarize,
)

logger = logging.getLogger(__name__)

GRAPH_AFFINITIES = ("nearest_neighbors", "precomputed", "precomputed_nearest_neighbors")
AFFINITIES = tuple(sorted(PAIRWISE_KERNEL_FUNCTIONS)) + GRAPH_AFFINITIES
ASSIGN_LABELS = ("kmeans", "discretize", "cluster_qr")
TWO_PHASE_ASSIGN_LABELS = ("kmeans", "cluster_qr")


def weighted_embedding(K: np.ndarray, counts: np.ndarray, n_components: int) -> np.ndarray:
    """Spectral embedding of weighted points from their affinities ``K`` (n_points, n_points).

    Point ``i`` stands for ``counts[i]`` rows at one place. On those rows (the "blown-up" graph:
    rows of parts ``i`` and ``j`` joined with weight ``K[i, j]``, no self-loops) the normalized
    Laplacian's eigenvectors of smallest eigenvalue are constant on each part — the vectors that
    vary inside a part have eigenvalues above 1 — so they are found from the small generalized
    problem ``L v = λ S v``, with ``L`` the Laplacian of ``A = n_i n_j K_ij`` (i ≠ j) and
    ``S_i = n_i d_i``, ``d_i = (n_i − 1) K_ii + Σ_{j≠i} n_j K_ij`` the degree of one row. Returns
    ``v`` (n_points, n_components): scikit-learn's embedding of those rows (eigenvectors of the
    normalized Laplacian divided by the square root of the degree, signs flipped so that each
    vector's largest entry is positive), one row per part. Dense LAPACK ``eigh``: O(n_points³).
    """
    n = counts.astype(np.float64)
    A = np.outer(n, n) * K
    np.fill_diagonal(A, 0.0)
    row = A.sum(axis=1)
    degree = (n - 1) * np.diag(K) + row / n
    degree[degree <= 0] = 1.0  # an isolated part: as SciPy's normalized Laplacian treats it
    s = np.sqrt(n * degree)
    M = (np.diag(row) - A) / np.outer(s, s)
    _, U = eigh(M, subset_by_index=[0, n_components - 1])
    V = U / s[:, None]
    top = np.abs(V).argmax(axis=0)
    return V * np.sign(V[top, np.arange(V.shape[1])])


def cluster_qr(V: np.ndarray) -> np.ndarray:
    """Labels from an embedding (n_points, n_clusters) by column-pivoted QR (Damle, Minden and Ying
    2019): the pivots pick one representative row per cluster; each row goes to the representative
    it aligns with best. Repeating a row does not change the pivots, so on weighted points it
    gives the labels of the rows they stand for."""
    k = V.shape[1]
    _, _, pivots = qr(V.T, pivoting=True)
    u, _, vt = svd(V[pivots[:k]].T)
    return np.abs(V @ (u @ vt)).argmax(axis=1)


class SpectralClustering(TwoPhaseMixin, EstimatorMixin, ClusterMixin, BaseEstimator):  # type: ignore[misc]
    """Spectral clustering, exact up to ``max_samples`` rows, two-phase above.

    * **Exact route** (``n_samples <= max_samples``): the rows are brought to the client and
      clustered by scikit-learn's ``SpectralClustering`` with the same parameters: the same
      ``labels_`` and ``affinity_matrix_`` as scikit-learn from the same ``random_state``.
      Memory: the (n_samples, n_samples) affinity matrix on the client.
    * **Two-phase route** (``n_samples > max_samples``): phase 1, on the cluster, summarises the
      rows by ``n_micro_clusters`` k-means centers (:class:`~daskcluster.KMeans`, k-means||, 2
      rounds, at most 10 Lloyd iterations) and one pass takes the count and mean of the rows nearest each
      center. Phase 2, on the client: the affinities between the micro-clusters' means, and the
      spectral embedding of the rows with every row moved to its micro-cluster's mean — computed
      exactly from the weighted micro-clusters (see :func:`weighted_embedding`), not from an
      n_samples × n_samples matrix — then k-means on the embedding weighted by the counts
      (``assign_labels='kmeans'``) or column-pivoted QR (``'cluster_qr'``). What it approximates:
      the affinity between two rows is replaced by the affinity between their micro-clusters'
      means (rows of one micro-cluster are joined with the affinity of a mean to itself, 1 for
      ``'rbf'``), which is close when the micro-clusters are small next to the kernel's scale
      (``1 / sqrt(gamma)`` for ``'rbf'``). Each row then takes its micro-cluster's cluster (one
      lazy map over the rows). The Nyström method of dask-ml instead approximates the affinity
      matrix by its columns at sampled landmark rows and needs passes over an
      (n_samples, n_components) embedding.

    Parameters
    ----------
    n_clusters : int, default=8
    eigen_solver : {'arpack', 'lobpcg', 'amg'}, default=None
        Eigenvalue solver of the exact route, as scikit-learn. The two-phase route's eigenproblem
        is small (n_micro_clusters²) and solved exactly by LAPACK whichever is given.
    n_components : int, default=None
        Eigenvectors of the embedding; None: ``n_clusters``.
    random_state : int, RandomState instance or None, default=None
        Seeds the eigensolver and the k-means of the labels, as scikit-learn, and phase 1.
    n_init : int, default=10
        Runs of the k-means that assigns the labels.
    gamma : float, default=1.0
        Kernel coefficient of 'rbf', 'poly', 'sigmoid', 'laplacian' and 'chi2'.
    affinity : str or callable, default='rbf'
        A kernel of ``sklearn.metrics.pairwise.PAIRWISE_KERNEL_FUNCTIONS`` (either route), or
        'nearest_neighbors', 'precomputed', 'precomputed_nearest_neighbors' (exact route only:
        they are graphs over every row), or a callable kernel.
    n_neighbors : int, default=10
        Neighbours of the 'nearest_neighbors' graph.
    eigen_tol : float or 'auto', default='auto'
        Stopping tolerance of the exact route's eigensolver, as scikit-learn.
    assign_labels : {'kmeans', 'discretize', 'cluster_qr'}, default='kmeans'
        As scikit-learn; the two-phase route supports 'kmeans' and 'cluster_qr'.
    degree : float, default=3
    coef0 : float, default=1
    kernel_params : dict, default=None
    n_jobs : int, default=None
        Parallel jobs of the exact route's nearest-neighbours graph.
    verbose : bool, default=False
    max_samples : int, default=5000
        Largest number of rows clustered by the exact route (a dense affinity matrix: 200 MB at
        5,000 rows).
    n_micro_clusters : int, default=200
        Number of k-means micro-clusters of phase 1; at least ``n_clusters``.

    Attributes
    ----------
    affinity_matrix_ : ndarray of shape (n_samples, n_samples) or (n_micro, n_micro)
        The rows' affinities (exact route) or the micro-clusters' means' affinities (two-phase).
    labels_ : ndarray or dask.array.Array of shape (n_samples,)
        Lazy (a Dask array) for lazy input.
    n_features_in_ : int
    fit_path_ : {'exact', 'two-phase'}
    micro_centers_ : ndarray of shape (n_micro, n_features)
        Two-phase route only: the micro-clusters' means.
    micro_counts_ : ndarray of shape (n_micro,)
        Two-phase route only: rows in each micro-cluster.
    embedding_ : ndarray of shape (n_micro, n_components)
        Two-phase route only: the spectral embedding of each micro-cluster's rows.

    Notes
    -----
    Data passes of ``fit``: exact route, 1; two-phase route, those of phase 1's KMeans (3 for the
    seeding, at most 10 iterations, 1 for its inertia) plus 1 for the summary; ``labels_`` is a
    lazy map (1 pass when computed; computed in ``fit`` for NumPy input).

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from daskcluster import SpectralClustering
    >>> X, _ = make_moons(n_samples=200, noise=0.05, random_state=42)
    >>> sc = SpectralClustering(n_clusters=2, gamma=100, random_state=42).fit(X)
    >>> sc.fit_path_, sc.affinity_matrix_.shape
    ('exact', (200, 200))
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        eigen_solver: str | None = None,
        n_components: int | None = None,
        random_state: Any = None,
        n_init: int = 10,
        gamma: float = 1.0,
        affinity: Any = "rbf",
        n_neighbors: int = 10,
        eigen_tol: float | str = "auto",
        assign_labels: str = "kmeans",
        degree: float = 3,
        coef0: float = 1,
        kernel_params: dict[str, Any] | None = None,
        n_jobs: int | None = None,
        verbose: bool = False,
        max_samples: int = 5000,
        n_micro_clusters: int = 200,
    ) -> None:
        self.n_clusters = n_clusters
        self.eigen_solver = eigen_solver
        self.n_components = n_components
        self.random_state = random_state
        self.n_init = n_init
        self.gamma = gamma
        self.affinity = affinity
        self.n_neighbors = n_neighbors
        self.eigen_tol = eigen_tol
        self.assign_labels = assign_labels
        self.degree = degree
        self.coef0 = coef0
        self.kernel_params = kernel_params
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.max_samples = max_samples
        self.n_micro_clusters = n_micro_clusters

    _SKLEARN = ("n_clusters", "eigen_solver", "n_components", "random_state", "n_init", "gamma", "affinity",
                "n_neighbors", "eigen_tol", "assign_labels", "degree", "coef0", "kernel_params", "n_jobs", "verbose")

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "eigen_solver": [StrOptions(["arpack", "lobpcg", "amg"]), None],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "affinity": [callable, StrOptions(AFFINITIES)],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "eigen_tol": [Interval(Real, 0.0, None, closed="left"), StrOptions(["auto"])],
        "assign_labels": [StrOptions(ASSIGN_LABELS)],
        "degree": [Interval(Real, 0, None, closed="left")],
        "coef0": [Interval(Real, None, None, closed="neither")],
        "kernel_params": [dict, None],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        **TWO_PHASE_CONSTRAINTS,
    }
    _data_checks = TWO_PHASE_CHECKS

    def fit(self, X: Any, y: Any = None) -> SpectralClustering:
        """Fit the spectral clustering.

        Parameters
        ----------
        X : array-like, memmap, dask array, zarr array, path, or :class:`~daskcluster.Scaled` \
of shape (n_samples, n_features)
            Or an affinity / distance matrix (n_samples, n_samples) with a precomputed affinity.
        y : ignored

        Returns
        -------
        self
            Data passes: see the class Notes.
        """
        data, exact = self._begin_fit(X)
        if not exact:
            if not callable(self.affinity) and self.affinity in GRAPH_AFFINITIES:
                self._refuse_above(data, "affinity", self.affinity,
                                   f"it is a graph over every row; the two-phase route supports a kernel of "
                                   f"{sorted(PAIRWISE_KERNEL_FUNCTIONS)} or a callable")
            if self.assign_labels not in TWO_PHASE_ASSIGN_LABELS:
                self._refuse_above(data, "assign_labels", self.assign_labels,
                                   f"the two-phase route supports {list(TWO_PHASE_ASSIGN_LABELS)}")
            self._fit_two_phase(X, data)
            return self
        params = {k: getattr(self, k) for k in self._SKLEARN}
        model = _SklearnSpectral(**params).fit(self._client_array(data))
        self.affinity_matrix_ = model.affinity_matrix_
        self.labels_ = self._output_labels(data, model.labels_)
        return self

    def _affinity(self, points: np.ndarray) -> np.ndarray:
        """Affinities between points, as scikit-learn computes them for a kernel affinity."""
        params = dict(self.kernel_params or {})
        params.update(gamma=self.gamma, degree=self.degree, coef0=self.coef0)
        return np.asarray(pairwise_kernels(points, metric=self.affinity, filter_params=True, **params))

    def _fit_two_phase(self, X: Any, data: Any) -> None:
        rs = check_random_state(type(self).__name__, self.random_state)
        micro = summarize(X, data, self.n_micro_clusters, rs, type(self).__name__)
        n_parts = micro.centers.shape[0]
        n_components = self.n_clusters if self.n_components is None else self.n_components
        if n_parts < max(self.n_clusters, n_components):
            raise InvalidParameterError(
                f"Phase 1 found {n_parts} distinct micro-clusters, fewer than n_clusters={self.n_clusters} or "
                f"n_components={n_components}: the data hold too few distinct rows; lower them."
            )
        K = self._affinity(micro.centers)
        V = weighted_embedding(K, micro.counts, n_components)
        if self.assign_labels == "kmeans":
            km = _SklearnKMeans(self.n_clusters, random_state=rs, n_init=self.n_init)
            part_labels = km.fit(V, sample_weight=micro.counts).labels_
        else:
            part_labels = cluster_qr(V)
        self.affinity_matrix_ = K
        self.micro_centers_ = micro.centers
        self.micro_counts_ = micro.counts
        self.embedding_ = V
        self.labels_ = self._row_labels(data, micro, part_labels)

    def fit_predict(self, X: Any, y: Any = None) -> Any:
        """Fit, then return ``labels_``."""
        return self.fit(X).labels_
