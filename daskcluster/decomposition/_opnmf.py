"""``OPNMF``: orthonormal projective non-negative matrix factorization, out of core, both ways."""

from __future__ import annotations

import logging
import time
from numbers import Integral, Real
from typing import Any, ClassVar

import dask
import dask.array as da
import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)

from .._estimator import EstimatorMixin
from .._features import OutputMixin, split_labels
from ..data import CachePolicy, RowData, as_row_data, cached, check_n_features
from ..engine import map_rows
from ..errors import InvalidDataError, InvalidParameterError
from ..kernels import opnmf as K
from ..params import CACHE, DataCheck, Interval, StrOptions, check_random_state
from ._checks import NMF_INITS
from ._opnmf_fit import FitResult, Prepared, fit_features, fit_samples, prepare
from ._opnmf_init import NNDSVD_INITS
from ._opnmf_selection import RankSelection, permuted, select_rank

logger = logging.getLogger(__name__)



def _check_rank_range(estimator: OPNMF, data: Any) -> None:
    nc = estimator.n_components
    if isinstance(nc, range) and (len(nc) < 2 or nc.step < 0 or nc[0] < 1):
        raise InvalidParameterError(
            f"The 'n_components' parameter of {type(estimator).__name__} must be an int >= 1, 'auto', or a range of "
            f"at least 2 increasing ranks >= 1. Got {nc!r} instead.", param="n_components")


class OPNMF(ClassNamePrefixFeaturesOutMixin, OutputMixin, EstimatorMixin, TransformerMixin,  # type: ignore[misc]
            BaseEstimator):
    """Orthonormal projective non-negative matrix factorization, by passes over row chunks.

    The ``opnmf`` package's model (Yang & Oja 2010), parameters and results, for data that
    need not fit in memory. OPNMF approximates a non-negative matrix ``X'`` by its projection
    ``W Wᵀ X'`` on ``k`` non-negative, orthonormal columns ``W`` -- each row of ``X'`` loads
    mainly on one component, a soft clustering of the rows of ``X'``.

    ``X`` always has shape (n_samples, n_features), row-chunked; ``orientation`` says which of
    its sides ``W`` is over (the package takes ``X'`` as given, so its two uses are
    ``opnmf(X)`` and ``opnmf(X.T)``):

    ======================  ================================  ================================
    ``orientation``         ``'samples'`` (default)           ``'features'``
    ======================  ================================  ================================
    the package's call      ``OPNMF().fit_transform(X)``      ``OPNMF().fit_transform(X.T)``
    model                   ``X ~ W Wᵀ X``                    ``X ~ X W Wᵀ``
    ``W`` (``coef_``)       (n_samples, k): clusters samples  (n_features, k): parts of samples
    ``fit_transform(X)``    ``W``                             ``X W`` (the package's ``Hᵀ``)
    ``components_``         ``H = Wᵀ X`` (k, n_features)      ``Wᵀ`` (k, n_features)
    data passes of ``fit``  1-2, 1 per iteration, 1 to stop   1, however many iterations
    ======================  ================================  ================================

    In both, as in scikit-learn, ``X ~ fit_transform(X) @ components_``: the rows of
    ``components_`` are the parts (drawn as images for image data) and ``fit_transform``
    gives each sample's weights. Over the features, one pass sums the Gram matrix ``XᵀX``
    (n_features, n_features) and every iteration runs on the client on it, so the fit reads the
    data once however many iterations it takes. Over the samples, ``W`` stays row-chunked
    beside ``X`` (in cluster memory) and each iteration is one pass that returns ``XᵀW``
    (n_features, k) and ``WᵀW`` (k, k); no (n_samples, n_samples) matrix is formed.

    Parameters
    ----------
    n_components : int, 'auto' or range, default=10
        Number of components. ``'auto'`` or a ``range`` selects it against permuted data as the
        package's ``rank_permute``: ``'auto'`` tests 1 to ``min(n_samples, n_features)`` (the
        package: 1 to the size of ``W``'s side, which NNDSVD refuses beyond that minimum); a
        ``range`` tests its own elements (at least 2, increasing). See Notes.
    orientation : {'samples', 'features'}, default='samples'
        The side of ``X`` that ``W`` is over (see the table).
    init : {'nndsvd', 'nndsvda', 'nndsvdar', 'random', 'custom'} or None, default='nndsvd'
        Initial ``W``, as scikit-learn's NMF initialization the package calls: NNDSVD
        (Boutsidis & Gallopoulos 2008) from the top singular triplets (here from the Gram
        matrix, exact; the package's randomized SVD differs by about 1e-5; the parts of the
        left vectors are measured on the rows the Gram pass keeps, all of them up to 32 MiB of
        rows, a seeded uniform sample beyond), zeros left (``'nndsvd'``), filled with the mean of ``X`` (``'nndsvda'``) or with small random
        values (``'nndsvdar'``); ``'random'``: ``sqrt(X.mean() / k) * |N(0, 1)|``;
        ``'custom'``: ``init_W`` given to ``fit``. None: ``'nndsvda'`` if
        ``n_components <= min(n_samples, n_features)``, else ``'random'``.
    max_iter : int, default=50000
        Maximum number of iterations.
    tol : float, default=1e-5
        Stop when the relative change ``||W_old - W||_F / ||W_old||_F`` falls below ``tol``.
    random_state : int, RandomState instance or None, default=None
        Seeds ``'random'``, ``'nndsvdar'``, the permutations of rank selection and, for NNDSVD
        on data larger than 32 MiB, the sample of rows (per chunk: the same value gives the
        same model on any scheduler). Unused otherwise.
    cache : 'auto' or bool, default='auto'
        Persist the data in (cluster) memory during the fit, stream it from its source on
        every pass, or persist when it takes at most half the memory available ('auto'). Over
        the features the fit reads the data once: ``cache=False`` avoids the copy.

    Attributes
    ----------
    coef_ : ndarray or dask.array.Array
        ``W``, the orthonormal non-negative factor (the package's ``coef_``): (n_samples, k)
        over the samples (a persisted Dask array for lazy input), (n_features, k) over the
        features. Columns sorted as the package sorts them: by ``||W_j|| ||H_j||``, largest
        first.
    components_ : ndarray of shape (k, n_features)
        See the table: ``H = WᵀX`` over the samples, ``Wᵀ`` over the features.
    n_components_ : int
    reconstruction_err_ : float
        ``||X - W H||_F``, Frobenius norm of the residual (the package's ``mse_``).
    mse_ : float
        Same value, under the package's name.
    n_iter_ : int
        Iterations (updates of ``W``) made.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The column names of a DataFrame (or the feature coordinate of a DataArray) given to
        ``fit``, when all are strings.
    ranks_, errors_, random_errors_, good_ranks_ : ndarray
        With rank selection only: the ranks tested, the normalised errors on the data and on
        the permuted data, and the good ranks (the first is ``n_components_``).

    Notes
    -----
    Update, as the package: ``W <- W * X'X'ᵀW / (W WᵀX'X'ᵀW)``, entries below 1e-16 set to
    1e-16, ``W`` divided by its spectral norm. Where the package computes ``0 / 0`` (a row of
    ``W`` that is all zero, as NNDSVD makes for an all-zero feature, e.g. the blank border
    pixels of digits over the features), this takes 0, so such data give a valid model where
    the package's fails ("SVD did not converge").

    Data passes of ``fit`` (each reads ``X`` once): over the features, 1 (the Gram matrix,
    with the checks of the data and the rows NNDSVD measures); over the samples, 1 (custom,
    random: ``W``'s rows with ``XᵀW``) or 2 (NNDSVD: the Gram matrix, then the rows) to start,
    1 per iteration, and 1 more whose update is dropped: the one that finds the change of the
    last update below ``tol`` (the normalisation of ``W`` is known only once a pass is
    combined). Rank selection: the same for every rank, on the data and on the permuted data
    (the Gram pass is shared by the ranks). ``transform`` (over the features) is a lazy map, one pass
    when computed; ``fit_transform`` over the features computes ``X W`` once more for NumPy
    input and returns it lazily for lazy input. Negative values raise
    :class:`~daskcluster.errors.InvalidDataError`, naming the smallest value and where it is,
    after the first pass.

    Memory: the Gram matrix, n_features² float64 (on the client and per task); over the
    samples, two (n_samples, k) float64 factors in (cluster) memory.

    References
    ----------
    Z. Yang and E. Oja, "Linear and Nonlinear Projective Nonnegative Matrix Factorization",
    IEEE Transactions on Neural Networks 21(5), 734-749, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster.decomposition import OPNMF
    >>> X = np.abs(np.random.default_rng(0).normal(size=(60, 8)))
    >>> model = OPNMF(n_components=3, orientation="features", max_iter=500)
    >>> weights = model.fit_transform(X)
    >>> weights.shape, model.components_.shape
    ((60, 3), (3, 8))
    >>> bool(np.allclose(model.coef_.T @ model.coef_, np.eye(3), atol=0.2))
    True
    """

    def __init__(
        self,
        n_components: int | str | range = 10,
        *,
        orientation: str = "samples",
        init: str | None = "nndsvd",
        max_iter: int = 50000,
        tol: float = 1e-5,
        random_state: Any = None,
        cache: CachePolicy = "auto",
    ) -> None:
        self.n_components = n_components
        self.orientation = orientation
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.cache = cache

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), StrOptions(["auto"]), range],
        "orientation": [StrOptions(["samples", "features"])],
        "init": [StrOptions(NMF_INITS), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "cache": CACHE,
    }
    _data_checks = (DataCheck("n_components", _check_rank_range, needs_data=False),)
    _fitted_attribute = "components_"

    @property
    def _n_features_out(self) -> int:
        """Columns of ``transform``'s output (for ``get_feature_names_out``)."""
        return int(self.n_components_)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags

    # ------------------------------------------------------------------ validation

    def _ranks(self, n_samples: int, n_features: int) -> list[int] | None:
        """The ranks to select from, or None for a fixed ``n_components``."""
        nc = self.n_components
        if isinstance(nc, str) and nc == "auto":
            top = min(n_samples, n_features)
            if top < 2:
                raise InvalidDataError(
                    f"n_components='auto' compares ranks 1 to min(n_samples, n_features) = {top}; at least 2 "
                    "ranks are needed. Give an int n_components."
                )
            return list(range(1, top + 1))
        if isinstance(nc, range):
            return list(nc)
        return None

    def _resolve(self, data: RowData, init_W: Any) -> tuple[list[int] | None, int, str]:
        """The ranks to select from (None: a fixed rank), the largest rank and the initialization
        used, checked against the data's shape and ``init_W``. Reads no data."""
        name = type(self).__name__
        ranks = self._ranks(data.n_samples, data.n_features)
        top = max(ranks) if ranks is not None else int(self.n_components)  # type: ignore[arg-type]
        init = self.init
        if init is None:
            init = "nndsvda" if top <= min(data.n_samples, data.n_features) else "random"
        if init in NNDSVD_INITS and top > min(data.n_samples, data.n_features):
            raise InvalidParameterError(
                f"init = '{init}' can only be used when n_components <= min(n_samples, n_features) = "
                f"{min(data.n_samples, data.n_features)}; got n_components={top}. Use init='random' or fewer "
                "components.", param="init"
            )
        if init == "custom":
            if ranks is not None:
                raise InvalidParameterError(
                    f"init='custom' needs an int n_components (init_W has a fixed number of columns); got "
                    f"n_components={self.n_components!r}.", param="init"
                )
            if init_W is None:
                raise InvalidParameterError(f"init='custom' needs init_W: call {name}.fit(X, init_W=W0).",
                                            param="init")
        elif init_W is not None:
            raise InvalidParameterError(
                f"init_W is used only with init='custom' (got init={self.init!r}); set init='custom' or drop init_W.",
                param="init")
        return ranks, top, init

    def _check_init_W(self, init_W: Any, data: RowData, k: int) -> np.ndarray | da.Array:
        """``init_W`` as float64, checked: shape, finite, non-negative (a Dask array over the
        samples is checked by one pass over it, not over ``X``)."""
        side, rows = ("n_samples", data.n_samples) if self.orientation == "samples" else ("n_features", data.n_features)
        W = init_W if isinstance(init_W, da.Array) else np.asarray(init_W)
        if W.ndim != 2 or W.shape != (rows, k):
            raise InvalidParameterError(
                f"init_W must have shape ({side}, n_components) = ({rows}, {k}) for orientation="
                f"{self.orientation!r}; got {tuple(W.shape)}."
            )
        if isinstance(W, da.Array) and self.orientation == "samples":
            W = W.astype(np.float64)
            lo, finite = dask.compute(W.min(), da.isfinite(W).all())
        else:
            W = np.asarray(W, dtype=np.float64)
            lo, finite = W.min(), bool(np.isfinite(W).all())
        if not finite:
            raise InvalidParameterError("init_W contains NaN or infinity; give a finite, non-negative init_W.")
        if lo < 0:
            raise InvalidParameterError(f"init_W must be non-negative; its smallest value is {float(lo)!r}.")
        return W

    # ------------------------------------------------------------------ fitting

    def _fit_one(self, prep: Prepared, k: int, init: str, init_W: Any, seed: int) -> FitResult:
        fit = fit_features if self.orientation == "features" else fit_samples
        return fit(prep, k, init, init_W, seed, int(self.max_iter), float(self.tol), type(self).__name__)

    def _fit(self, X: Any, init_W: Any, weights: bool) -> np.ndarray | da.Array | None:
        """Fit; with ``weights``, also return ``fit_transform``'s result."""
        name = type(self).__name__
        self._check_params()
        data = as_row_data(self._labeled(X, reset=True).values, owner=name)
        ranks, top, init = self._resolve(data, init_W)
        if init_W is not None:
            init_W = self._check_init_W(init_W, data, top)
            if self.orientation == "samples" and isinstance(init_W, np.ndarray):
                init_W = da.from_array(init_W, chunks=(data.array.chunks[0], (top,)))
        rs = check_random_state(name, self.random_state)
        base_seed = int(rs.randint(np.iinfo(np.int32).max))
        t0 = time.perf_counter()
        selection: RankSelection | None = None
        with cached(data, self.cache) as work:
            prep = prepare(work, self.orientation, init, top, _seed(base_seed, 0), name)
            if ranks is None:
                result = self._fit_one(prep, top, init, init_W, _seed(base_seed, top))
            else:
                with cached(permuted(work, self.orientation, _seed(base_seed, -1)), self.cache) as perm_work:
                    prep_perm = prepare(perm_work, self.orientation, init, top, _seed(base_seed, 0), name)
                    selection, result = select_rank(
                        ranks,
                        lambda r: self._fit_one(prep, r, init, None, _seed(base_seed, r)),
                        lambda r: self._fit_one(prep_perm, r, init, None, _seed(base_seed, r)),
                    )
            self._set_result(data, result, selection)
            out: np.ndarray | da.Array | None = None
            if weights:
                # over the features X W: from the cached copy for NumPy input, a lazy map over the source else
                out = result.W if self.orientation == "samples" else self._project(data if data.lazy else work)
        logger.info("%s (%s) fit in %.2fs: k=%d error=%.6g n_iter=%d", name, self.orientation,
                    time.perf_counter() - t0, self.n_components_, self.reconstruction_err_, self.n_iter_)
        return out

    def _set_result(self, data: RowData, result: FitResult, selection: RankSelection | None) -> None:
        self.coef_ = result.W
        if self.orientation == "features":
            assert isinstance(result.W, np.ndarray)
            self.components_ = np.ascontiguousarray(result.W.T)
        else:
            assert result.H is not None
            self.components_ = result.H
        self.n_components_ = int(self.components_.shape[0])
        self.reconstruction_err_ = result.error
        self.mse_ = result.error
        self.n_iter_ = result.n_iter
        self.n_features_in_ = data.n_features
        if selection is not None:
            self.ranks_ = selection.ranks
            self.errors_ = selection.errors
            self.random_errors_ = selection.random_errors
            self.good_ranks_ = selection.good_ranks

    def fit(self, X: Any, y: Any = None, init_W: Any = None) -> OPNMF:
        """Learn an OPNMF model of ``X``.

        Parameters
        ----------
        X : array-like, memmap, dask array, zarr array, path, or :class:`~daskcluster.Scaled` \
of shape (n_samples, n_features)
            Non-negative.
        y : ignored
        init_W : array-like of shape (n_samples, n_components) over the samples, \
(n_features, n_components) over the features, default=None
            The initial ``W`` with ``init='custom'`` (a Dask array is accepted over the samples).

        Returns
        -------
        self
            Data passes: see the class Notes.
        """
        self._fit(X, init_W, weights=False)
        return self

    def fit_transform(self, X: Any, y: Any = None, init_W: Any = None) -> np.ndarray | da.Array:
        """Fit, then return each sample's weights, (n_samples, n_components_).

        Over the samples: ``W`` itself (``coef_``). Over the features: ``X W``, computed from the
        fitted data for NumPy input (one more pass over the in-memory copy), a lazy Dask array
        for lazy input.
        """
        out = self._fit(X, init_W, weights=True)
        assert out is not None
        return self._output(out, split_labels(X))

    # ------------------------------------------------------------------ after fitting

    def _project(self, data: RowData) -> np.ndarray | da.Array:
        out = map_rows(data, K.project_rows, (np.asarray(self.coef_), data.affine), dtype=np.float64,
                       n_columns=self.n_components_, label="opnmf-transform")
        return out if data.lazy else out.compute()

    def transform(self, X: Any) -> np.ndarray | da.Array:
        """Each sample's weights on the fitted parts, ``X W`` (n_samples, n_components_).

        Over the features only: there ``W`` is over the features and projects any sample. Over
        the samples ``W`` has one row per fitted sample and no row for new ones; use
        ``fit_transform``. A lazy map for lazy input (one pass when computed).
        """
        self._check_fitted()
        name = type(self).__name__
        if self.orientation != "features":
            raise InvalidParameterError(
                f"{name}.transform needs orientation='features': with orientation='samples', W (coef_) has one row "
                "per fitted sample and none for new samples. Use fit_transform(X) for the fitted samples' weights."
            )
        labeled = self._labeled(X, reset=False)
        data = as_row_data(labeled.values, owner=name)
        check_n_features(data, self.n_features_in_, name)
        return self._output(self._project(data), labeled)

    def inverse_transform(self, X: Any) -> np.ndarray | da.Array:
        """The reconstruction ``X @ components_`` (n_samples, n_features) from weights ``X``
        (n_samples, n_components_); lazy for a Dask array."""
        self._check_fitted()
        if isinstance(X, da.Array):
            out: np.ndarray | da.Array = X @ self.components_
            return out
        return np.asarray(np.asarray(X, dtype=np.float64) @ self.components_)

    def mse(self) -> float:
        """The reconstruction error ``||X - W H||_F``, as the package's ``mse()``."""
        self._check_fitted()
        return float(self.mse_)


def _seed(base: int, use: int) -> int:
    """A seed derived from the estimator's: ``use`` is the rank of a fit, 0 for the rows the
    Gram pass samples, -1 for the permutation of rank selection."""
    return int(np.random.SeedSequence(base, spawn_key=(use + 1,)).generate_state(1)[0])


__all__ = ["OPNMF"]
