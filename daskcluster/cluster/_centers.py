"""What every center-based estimator does once fitted: labels, distances, score."""

from __future__ import annotations

import warnings
from typing import Any

import dask.array as da
import numpy as np

from ..blas import blas_for_tasks
from ..data import RowData, as_row_data, as_sample_weight, check_n_features
from ..engine import map_rows, tree_reduce
from ..errors import InvalidParameterError, NotFittedError
from ..kernels import kmeans as K
from ..params import check_int


def check_init(
    owner: str, init: Any, n_init: Any, inits: tuple[str, ...], shape: tuple[int, int], random_n_init: int
) -> tuple[int, np.ndarray | None]:
    """Validate ``init`` and ``n_init`` as scikit-learn's k-means estimators do.

    Returns the number of runs and the initial centers when ``init`` is an array of shape
    ``shape`` = (n_clusters, n_features). ``n_init='auto'`` is ``random_n_init`` for ``'random'``
    and 1 otherwise; an explicit array forces one run (with scikit-learn's warning), without
    changing the parameter.
    """
    init_array = None
    if isinstance(init, str):
        if init not in inits:
            raise InvalidParameterError(
                f"The 'init' parameter of {owner} must be one of {{{', '.join(map(repr, inits))}}} or an "
                f"array-like of shape (n_clusters, n_features). Got {init!r} instead."
            )
    elif hasattr(init, "__array__") or isinstance(init, (list, tuple)):
        init_array = np.asarray(init, dtype=np.float64)
        if init_array.shape != shape:
            raise InvalidParameterError(
                f"The shape of the initial centers {init_array.shape} does not match the number of "
                f"clusters and features {shape}."
            )
        if not np.isfinite(init_array).all():
            raise InvalidParameterError("The initial centers given as init contain NaN or infinity.")
    else:
        raise InvalidParameterError(
            f"The 'init' parameter of {owner} must be a str among {{{', '.join(map(repr, inits))}}} or an "
            f"array-like of shape (n_clusters, n_features). Got {init!r} instead."
        )
    if n_init == "auto":
        runs = random_n_init if isinstance(init, str) and init == "random" else 1
    else:
        runs = int(check_int(owner, "n_init", n_init, 1))  # type: ignore[arg-type]
    if init_array is not None and runs != 1:
        warnings.warn(
            f"Explicit initial center position passed: performing only one init in {owner} instead of "
            f"n_init={runs}.",
            RuntimeWarning,
            stacklevel=4,
        )
        runs = 1
    return runs, init_array


class CentersMixin:
    """``predict``, ``transform``, ``score`` and ``fit_transform`` from ``cluster_centers_``.

    For estimators with ``n_clusters`` and, once fitted, ``cluster_centers_`` of shape
    (n_clusters, n_features) and ``n_features_in_``.
    """

    n_clusters: int
    cluster_centers_: np.ndarray
    n_features_in_: int

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with appropriate arguments "
                "before using this estimator."
            )

    def _labels(self, data: RowData) -> np.ndarray | da.Array:
        centers = self.cluster_centers_.astype(data.dtype)
        labels = map_rows(data, K.labels_kernel, (centers, data.affine), dtype=np.int32, label="labels")
        if data.lazy:
            return labels
        with blas_for_tasks(data.n_chunks):
            return labels.compute()

    def _data(self, X: Any) -> RowData:
        self._check_fitted()
        data = as_row_data(X, owner=type(self).__name__)
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

    def transform(self, X: Any) -> np.ndarray | da.Array:
        """Euclidean distance of each sample to each center.

        Returns
        -------
        ndarray or dask array of shape (n_samples, n_clusters)
            Lazy for lazy input. Data passes: 1 (when computed).
        """
        data = self._data(X)
        out = map_rows(data, K.transform_kernel, (self.cluster_centers_.astype(data.dtype), data.affine),
                       dtype=data.dtype, n_columns=self.n_clusters, label="transform")
        if data.lazy:
            return out
        with blas_for_tasks(data.n_chunks):
            return out.compute()

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the inertia of ``X`` against the centers. Data passes: 1."""
        data = self._data(X)
        weights = as_sample_weight(sample_weight, data, owner=type(self).__name__)
        params = K.AssignParams(self.cluster_centers_.astype(data.dtype), data.affine)
        return -tree_reduce(data, K.assign_stats_kernel, params, K.combine_assign, weights=weights).inertia

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray | da.Array:
        """Fit, then return distances to the centers (one more pass)."""
        return self.fit(X, sample_weight=sample_weight).transform(X)  # type: ignore[attr-defined,no-any-return]
