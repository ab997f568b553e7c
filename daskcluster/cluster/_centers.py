"""What the k-means estimators share: their common parameters and checks, and what they do
once fitted (labels, distances, score, output names)."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import dask.array as da
import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin

from .._estimator import EstimatorMixin
from .._features import Labeled, OutputMixin
from ..blas import blas_for_tasks
from ..data import RowData, as_row_data, as_sample_weight, check_n_features
from ..engine import map_rows, tree_reduce
from ..errors import InvalidDataError, InvalidParameterError
from ..kernels import kmeans as K
from ..params import CACHE, DataCheck, DataShape, Interval, StrOptions
from ._init import INITS

#: What ``KMeans`` and ``MiniBatchKMeans`` both take (scikit-learn's ``_BaseKMeans``).
BASE_CONSTRAINTS: dict[str, list[Any]] = {
    "n_clusters": [Interval(Integral, 1, None, closed="left")],
    "init": [StrOptions(INITS), callable, "array-like"],
    "n_init": [StrOptions(["auto"]), Interval(Integral, 1, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "verbose": ["verbose"],
    "random_state": ["random_state"],
    "cache": CACHE,
}


def init_array(init: Any) -> np.ndarray | None:
    """``init`` as float64 centers when it is an array-like, else None."""
    if isinstance(init, str) or callable(init):
        return None
    return np.asarray(init, dtype=np.float64)


def check_centers(centers: np.ndarray, n_clusters: int, n_features: int) -> None:
    """Initial centers (given or returned by a callable ``init``) against the problem, with
    scikit-learn's messages."""
    if centers.ndim != 2 or centers.shape[0] != n_clusters:
        raise InvalidParameterError(
            f"The shape of the initial centers {centers.shape} does not match the number of clusters "
            f"{n_clusters}.", param="init")
    if centers.shape[1] != n_features:
        raise InvalidParameterError(
            f"The shape of the initial centers {centers.shape} does not match the number of features of the "
            f"data {n_features}.", param="init")
    if not np.isfinite(centers).all():
        raise InvalidParameterError("The initial centers given as init contain NaN or infinity.", param="init")


def _check_init(estimator: Any, data: DataShape) -> None:
    centers = init_array(estimator.init)
    if centers is not None:
        check_centers(centers, estimator.n_clusters, data.n_features)


def _check_n_samples(estimator: Any, data: DataShape) -> None:
    if data.n_samples < estimator.n_clusters:
        raise InvalidDataError(f"n_samples={data.n_samples} should be >= n_clusters={estimator.n_clusters}.")


#: The checks of ``KMeans`` and ``MiniBatchKMeans`` against the data's shape.
BASE_DATA_CHECKS = (
    DataCheck("n_clusters", _check_n_samples),
    DataCheck("init", _check_init, needs=("n_clusters",)),
)


def n_runs(estimator: Any, random_n_init: int) -> int:
    """The number of initializations: ``n_init``, or for ``'auto'`` ``random_n_init`` with
    ``init='random'`` or a callable and 1 otherwise (scikit-learn 1.4+); an explicit array forces one run,
    with scikit-learn's warning, without changing the parameter."""
    init, n_init = estimator.init, estimator.n_init
    if n_init != "auto":
        runs = int(n_init)
    else:
        runs = random_n_init if callable(init) or (isinstance(init, str) and init == "random") else 1
    if init_array(init) is not None and runs != 1:
        warnings.warn(
            f"Explicit initial center position passed: performing only one init in {type(estimator).__name__} "
            f"instead of n_init={runs}.",
            RuntimeWarning,
            stacklevel=3,
        )
        runs = 1
    return runs


class CentersMixin(ClassNamePrefixFeaturesOutMixin, OutputMixin, EstimatorMixin):  # type: ignore[misc]
    """``predict``, ``transform``, ``score``, ``fit_transform`` and the output names from
    ``cluster_centers_``.

    For estimators with ``n_clusters`` and, once fitted, ``cluster_centers_`` of shape
    (n_clusters, n_features) and ``n_features_in_``.
    """

    n_clusters: int
    cluster_centers_: np.ndarray
    n_features_in_: int
    _fitted_attribute = "cluster_centers_"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.sparse = True  # SciPy sparse input and Dask arrays of sparse chunks, as scikit-learn
        return tags

    @property
    def _n_features_out(self) -> int:
        """Columns of ``transform``'s output (one per center)."""
        return int(self.cluster_centers_.shape[0])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of ``transform``'s columns: ``['kmeans0', 'kmeans1', ...]`` (the class name
        in lower case, then the center's index).

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against ``feature_names_in_`` (or ``n_features_in_``).

        Returns
        -------
        ndarray of str objects, shape (n_clusters,)
        """
        self._check_fitted()
        return ClassNamePrefixFeaturesOutMixin.get_feature_names_out(self, input_features)  # type: ignore[no-any-return]

    def _fit_data(self, X: Any, **kwargs: Any) -> RowData:
        """``X`` of a fit as row data (``feature_names_in_`` recorded; reads no data)."""
        return as_row_data(self._labeled(X, reset=True).values, owner=type(self).__name__, accept_sparse=True,
                           **kwargs)

    def _labels(self, data: RowData) -> np.ndarray | da.Array:
        centers = self.cluster_centers_.astype(data.dtype)
        labels = map_rows(data, K.labels_kernel, (centers, data.affine), dtype=np.int32, label="labels")
        if data.lazy:
            return labels
        with blas_for_tasks(data.n_chunks):
            return labels.compute()

    def _data(self, X: Any) -> RowData:
        self._check_fitted()
        return self._checked(self._labeled(X, reset=False))

    def _checked(self, labeled: Labeled) -> RowData:
        self._check_fitted()
        data = as_row_data(labeled.values, owner=type(self).__name__, accept_sparse=True)
        check_n_features(data, self.n_features_in_, type(self).__name__)
        return data

    def predict(self, X: Any) -> np.ndarray | da.Array:
        """Index of the closest center for each sample.

        Returns
        -------
        labels : ndarray or dask array of shape (n_samples,), int32
            Lazy for lazy input. Data passes: 1 (when computed).
        """
        return self._labels(self._data(X))

    def transform(self, X: Any) -> Any:
        """Euclidean distance of each sample to each center.

        Returns
        -------
        ndarray or dask array of shape (n_samples, n_clusters)
            Lazy for lazy input; a DataFrame after ``set_output(transform="pandas")``
            (columns ``get_feature_names_out()``). Data passes: 1 (when computed).
        """
        self._check_fitted()
        labeled = self._labeled(X, reset=False)
        data = self._checked(labeled)
        out = map_rows(data, K.transform_kernel, (self.cluster_centers_.astype(data.dtype), data.affine),
                       dtype=data.dtype, n_columns=self._n_features_out, label="transform")
        if not data.lazy:
            with blas_for_tasks(data.n_chunks):
                out = out.compute()
        return self._output(out, labeled)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the inertia of ``X`` against the centers. Data passes: 1."""
        data = self._data(X)
        weights = as_sample_weight(sample_weight, data, owner=type(self).__name__)
        params = K.AssignParams(self.cluster_centers_.astype(data.dtype), data.affine)
        return -tree_reduce(data, K.assign_stats_kernel, params, K.combine_assign, weights=weights).inertia

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray | da.Array:
        """Fit, then return distances to the centers (one more pass)."""
        return self.fit(X, sample_weight=sample_weight).transform(X)  # type: ignore[no-any-return]
