"""``PCA``: exact principal component analysis from the covariance matrix, by one pass.

scikit-learn's ``PCA(svd_solver="covariance_eigh")`` for row-chunked data: one pass sums each
chunk's mean and centred scatter (:mod:`daskcluster.kernels.moments`, merged in chunk order),
and the (n_features, n_features) covariance is diagonalised on the client. Meant for the
tall-and-skinny data of this package (n_features up to a few thousand: the covariance and its
``eigh`` cost ``8 d²`` bytes and ``O(d³)`` on the client). It needs no ``dask.array.linalg``,
so it works on both of Dask's array backends (dask-ml's PCA calls ``dask.array.linalg``, which
Dask's query-planning backend does not have).
"""

from __future__ import annotations

import logging
from numbers import Integral
from typing import Any, ClassVar

import dask.array as da
import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)

from .._estimator import EstimatorMixin
from .._features import OutputMixin, split_labels
from ..blas import single_threaded_blas
from ..data import RowData, as_row_data, check_n_features
from ..engine import map_rows, tree_reduce
from ..errors import InvalidParameterError
from ..kernels import moments as K
from ..params import Interval

logger = logging.getLogger(__name__)

__all__ = ["PCA"]


class PCA(ClassNamePrefixFeaturesOutMixin, OutputMixin, EstimatorMixin, TransformerMixin,  # type: ignore[misc]
          BaseEstimator):
    """Principal component analysis, exact, from the covariance matrix summed in one pass.

    scikit-learn's ``PCA(n_components, whiten=whiten, svd_solver="covariance_eigh")``: the same
    fitted attributes, to rounding (the covariance is summed in float64 from centred chunks;
    see :mod:`daskcluster.kernels.moments`), with the same signs (the largest entry of each
    component, in absolute value, is positive).

    Parameters
    ----------
    n_components : int or None, default=None
        Components kept; None keeps ``min(n_samples, n_features)``.
    whiten : bool, default=False
        Divide each projection by the square root of its explained variance.

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features)
    explained_variance_, explained_variance_ratio_, singular_values_ : ndarray of shape (n_components_,)
    mean_ : ndarray of shape (n_features,)
    n_components_, n_samples_, n_features_in_ : int
    noise_variance_ : float
    feature_names_in_ : ndarray of shape (n_features_in_,)
        When fitted on a DataFrame with string column names.

    Notes
    -----
    Data passes: ``fit`` 1; ``transform`` none until computed, then 1 (lazy for lazy input);
    ``fit_transform`` both.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "whiten": ["boolean"],
    }
    _fitted_attribute = "components_"

    def __init__(self, n_components: int | None = None, *, whiten: bool = False) -> None:
        self.n_components = n_components
        self.whiten = whiten

    @property
    def _n_features_out(self) -> int:
        return int(self.n_components_)

    def fit(self, X: Any, y: Any = None) -> PCA:
        """Fit on ``X`` of shape (n_samples, n_features): array-like, Dask array, Zarr array,
        path or :class:`~daskcluster.Scaled`. Data passes: 1."""
        name = type(self).__name__
        self._check_params()
        data = as_row_data(self._labeled(X, reset=True).values, owner=name, min_samples=2)
        n, d = data.n_samples, data.n_features
        top = min(n, d)
        k = top if self.n_components is None else int(self.n_components)
        if k > top:
            raise InvalidParameterError(
                f"n_components={k} must be between 0 and min(n_samples, n_features)={top} with "
                "svd_solver='covariance_eigh'", param="n_components")
        moments = tree_reduce(data, K.moments_kernel, data.affine, K.combine_moments, label="pca-moments")
        with single_threaded_blas():  # a (d, d) problem on the client
            covariance = moments.scatter / (n - 1)
            eigenvalues, eigenvectors = np.linalg.eigh((covariance + covariance.T) / 2)
        eigenvalues = np.maximum(eigenvalues[::-1], 0.0)
        components = eigenvectors[:, ::-1].T
        # scikit-learn's svd_flip(u_based_decision=False): the largest |entry| of each row positive
        signs = np.sign(components[np.arange(d), np.argmax(np.abs(components), axis=1)])
        components *= np.where(signs == 0, 1.0, signs)[:, None]
        total = float(eigenvalues.sum())
        self.mean_ = moments.mean
        self.components_ = components[:k]
        self.explained_variance_ = eigenvalues[:k]
        self.explained_variance_ratio_ = eigenvalues[:k] / total if total > 0 else np.zeros(k)
        self.singular_values_ = np.sqrt(eigenvalues[:k] * (n - 1))
        self.noise_variance_ = float(eigenvalues[k:top].mean()) if k < top else 0.0
        self.n_components_, self.n_samples_, self.n_features_in_ = k, n, d
        logger.info("%s: %d of %d components, %.4g of the variance", name, k, d,
                    float(self.explained_variance_ratio_.sum()))
        return self

    def _projection(self) -> np.ndarray:
        """(n_features, n_components_): ``components_.T``, divided by the deviations when whitened."""
        projection = self.components_.T
        if self.whiten:
            scale = np.sqrt(self.explained_variance_)
            projection = projection / np.where(scale > 0, scale, 1.0)
        return np.asarray(projection)

    def _transform(self, data: RowData) -> np.ndarray | da.Array:
        out = map_rows(data, K.project_rows, (data.affine, self.mean_, self._projection(), data.dtype),
                       dtype=data.dtype, n_columns=self.n_components_, label="pca-transform")
        return out if data.lazy else np.asarray(out.compute())  # type: ignore[no-untyped-call]

    def transform(self, X: Any) -> np.ndarray | da.Array:
        """``(X - mean_) @ components_.T`` (whitened if asked), shape (n_samples, n_components_),
        in ``X``'s compute dtype (float32, or float64 for float64 data); lazy for lazy input."""
        self._check_fitted()
        name = type(self).__name__
        labeled = self._labeled(X, reset=False)
        data = as_row_data(labeled.values, owner=name)
        check_n_features(data, self.n_features_in_, name)
        return self._output(self._transform(data), labeled)

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray | da.Array:
        """``fit(X).transform(X)``. Data passes: 1, then 1 when the result is computed."""
        labeled = split_labels(X)
        self.fit(X)
        return self._output(self._transform(as_row_data(labeled.values, owner=type(self).__name__)), labeled)

    def inverse_transform(self, X: Any) -> np.ndarray | da.Array:
        """Rows in feature space from projections ``X`` (n_samples, n_components_):
        ``X @ components_ + mean_`` (undoing the whitening); lazy for a Dask array."""
        self._check_fitted()
        components = self.components_
        if self.whiten:
            components = components * np.sqrt(self.explained_variance_)[:, None]
        if isinstance(X, da.Array):
            X = X.rechunk({1: -1})
            meta = np.empty((0, 0), dtype=np.float64)
            return X.map_blocks(K.reconstruct_rows, components, self.mean_, dtype=np.float64,
                                chunks=(X.chunks[0], (components.shape[1],)), meta=meta)
        return K.reconstruct_rows(X, components, self.mean_)
