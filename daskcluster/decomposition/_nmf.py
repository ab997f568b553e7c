"""``NMF``: scikit-learn's non-negative matrix factorization (multiplicative updates), out of core."""

from __future__ import annotations

import logging
import numbers
import os
import time
import warnings
from contextlib import ExitStack
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
from ..data import (
    CachePolicy,
    RowData,
    active_client,
    as_row_data,
    cached,
    check_n_features,
)
from ..errors import InvalidDataError, InvalidParameterError
from ..params import CACHE, DataCheck, Interval, StrOptions, check_random_state
from ..progress import progress_hook
from ._checks import NMF_INITS
from ._nmf_init import custom_init, data_statistics, nndsvd_init, random_init
from ._nmf_mu import Regularization, fit_multiplicative_update
from ._nmf_store import RowStore
from ._nmf_transform import solve_w

logger = logging.getLogger(__name__)



def _check_solver(estimator: NMF, data: Any) -> None:
    if estimator.solver != "mu":
        raise InvalidParameterError(
            f"solver={estimator.solver!r} (coordinate descent) is not available out of core: it updates W and H "
            "one column at a time, a pass over the data each. Use solver='mu'.", param="solver")


def _check_beta_loss(estimator: NMF, data: Any) -> None:
    beta = estimator.beta_loss
    if not (beta == "frobenius" or (isinstance(beta, numbers.Real) and not isinstance(beta, bool) and beta == 2)):
        raise InvalidParameterError(
            f"beta_loss={beta!r} is not available: only the Frobenius loss ('frobenius' or 2) is implemented.",
            param="beta_loss")


def _persist_now(array: da.Array) -> da.Array:
    """``array`` persisted in (cluster) memory, returning once every chunk is there."""
    (persisted,) = dask.persist(array)
    client = active_client()
    if client is not None:
        from distributed import futures_of, wait

        futures = futures_of(persisted)
        wait(futures)
        for f in futures:
            if f.status == "error":
                f.result()  # raises the task's error
    return persisted


class NMF(ClassNamePrefixFeaturesOutMixin, OutputMixin, EstimatorMixin, TransformerMixin,  # type: ignore[misc]
          BaseEstimator):
    """Non-negative matrix factorization ``X ≈ W H`` by multiplicative updates, one pass per iteration.

    scikit-learn's ``NMF(solver="mu")`` with the Frobenius loss, on data that stay where they
    are. ``W`` (n_samples x n_components) lives row-chunked beside ``X`` — in (cluster) memory,
    or in a temporary Zarr store when the data stream from their source — and each iteration is
    one pass: every chunk updates its block of ``W`` and returns ``WᵀX`` and ``WᵀW``, from which
    the client updates ``H`` (n_components x n_features). From the same initial ``W`` and ``H``,
    every iteration equals scikit-learn's.

    Parameters
    ----------
    n_components : int, 'auto' or None, default='auto'
        Number of components. None: all features. 'auto': from ``H`` with ``init='custom'``,
        else all features.
    init : {'random', 'nndsvd', 'nndsvda', 'nndsvdar', 'custom'} or None, default=None
        Initialization. None: 'nndsvda' when ``n_components <= min(n_samples, n_features)``,
        else 'random'. 'random': ``|sqrt(mean(X) / k) · N(0, 1)|`` (``H`` drawn as
        scikit-learn draws it; ``W`` per seed block of rows). 'nndsvd*': NNDSVD from an
        out-of-core randomized SVD (4 subspace iterations, as passes), zeros kept
        ('nndsvd'), filled with the mean ('nndsvda') or with small random values ('nndsvdar').
        'custom': ``W`` and ``H`` given to ``fit`` / ``fit_transform``.
    solver : {'mu', 'cd'}, default='mu'
        Multiplicative update. ``'cd'`` (scikit-learn's coordinate descent) raises an error:
        it updates ``W`` column by column across all rows and does not fit one pass per
        iteration.
    beta_loss : {'frobenius', 'kullback-leibler', 'itakura-saito'} or float, default='frobenius'
        The loss minimized: ``0.5 ‖X − WH‖²_Fro`` (``'frobenius'`` or 2); the other beta
        divergences raise an error (not implemented).
    tol : float, default=1e-4
        Stop when the error decreased by less than ``tol`` times the initial error over the
        last 10 iterations (checked every 10 iterations, as scikit-learn).
    max_iter : int, default=200
        Maximum number of iterations.
    random_state : int, RandomState instance or None, default=None
        Seeds 'random', 'nndsvd*' (the randomized SVD) and 'nndsvdar'. The same value gives the
        same model on any scheduler, any number of workers and any chunking of the rows.
    alpha_W : float, default=0.0
        Regularization of ``W``, scaled by ``n_features``.
    alpha_H : float or 'same', default='same'
        Regularization of ``H``, scaled by ``n_samples``; 'same': ``alpha_W``.
    l1_ratio : float, default=0.0
        L1 share of the regularization (the rest is L2).
    verbose : int, default=0
        Print one line per iteration (the lines are always logged at INFO level).
    shuffle : bool, default=False
        As scikit-learn: randomize the order of coordinates of the 'cd' solver; the 'mu'
        solver has none, so it does not change the result (as in scikit-learn).
    cache : 'auto' or bool, default='auto'
        Persist the data (storage dtype) in cluster memory for the fit (True), read them from
        their source on every pass (False), or persist when they take at most half the memory
        available ('auto'). ``W`` follows: kept in memory when the data are, else in a
        temporary Zarr store.
    temp_folder : str or path-like, default=None
        Parent folder of the temporary Zarr store of ``W`` when it is not kept in memory
        (default: Dask's ``temporary-directory``, else the system's temporary folder). Every
        worker must be able to read and write it. The store is removed when the fit ends.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        ``H``, in the compute dtype (float64 for float64 data, float32 otherwise).
    n_components_ : int
    reconstruction_err_ : float
        ``‖X − WH‖_Fro`` of the fitted ``W`` and ``H``.
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The column names of a DataFrame (or the feature coordinate of a DataArray) given to
        ``fit``, when all are strings.

    Notes
    -----
    Data passes of ``fit`` / ``fit_transform``: one per iteration, plus one (mean, squared
    norm, smallest entry) for 'random' and 'nndsvd*', plus 6 for the randomized SVD of
    'nndsvd*'. The first iteration's pass also computes ``‖X‖²`` and the smallest entry:
    negative data raise :class:`~daskcluster.errors.InvalidDataError` naming the value, its row
    and feature, before any further iteration. ``transform``: 1 pass, plus 1 when ``tol > 0``,
    plus 1 when its (lazy) result is computed. ``inverse_transform``: none.

    References
    ----------
    D. D. Lee, H. S. Seung. Algorithms for non-negative matrix factorization. NIPS 13, 2001.
    C. Boutsidis, E. Gallopoulos. SVD based initialization: a head start for non-negative
    matrix factorization. Pattern Recognition 41(4), 2008.

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster import NMF
    >>> X = np.array([[1, 1], [2, 1], [3, 1.2], [4, 1], [5, 0.8], [6, 1]])
    >>> model = NMF(n_components=2, init="random", random_state=0, max_iter=500)
    >>> W = model.fit_transform(X)
    >>> W.shape, model.components_.shape
    ((6, 2), (2, 2))
    >>> bool(model.reconstruction_err_ < 0.1)
    True
    """

    def __init__(
        self,
        n_components: int | str | None = "auto",
        *,
        init: str | None = None,
        solver: str = "mu",
        beta_loss: str | float = "frobenius",
        tol: float = 1e-4,
        max_iter: int = 200,
        random_state: Any = None,
        alpha_W: float = 0.0,
        alpha_H: float | str = "same",
        l1_ratio: float = 0.0,
        verbose: int = 0,
        shuffle: bool = False,
        cache: CachePolicy = "auto",
        temp_folder: str | os.PathLike[str] | None = None,
    ) -> None:
        self.n_components = n_components
        self.init = init
        self.solver = solver
        self.beta_loss = beta_loss
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.verbose = verbose
        self.shuffle = shuffle
        self.cache = cache
        self.temp_folder = temp_folder

    # ------------------------------------------------------------------ validation

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None, StrOptions(["auto"])],
        "init": [StrOptions(NMF_INITS), None],
        "beta_loss": [StrOptions(["frobenius", "kullback-leibler", "itakura-saito"]), Real],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "alpha_W": [Interval(Real, 0, None, closed="left")],
        "alpha_H": [Interval(Real, 0, None, closed="left"), StrOptions(["same"])],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "verbose": ["verbose"],
        "solver": [StrOptions(["mu", "cd"])],
        "shuffle": ["boolean"],
        "cache": CACHE,
        "temp_folder": [str, os.PathLike, None],
    }
    _data_checks = (DataCheck("solver", _check_solver, needs_data=False),
                    DataCheck("beta_loss", _check_beta_loss, needs_data=False))
    _fitted_attribute = "components_"

    def _resolve(self, data: RowData, H: Any) -> tuple[int, str]:
        """The number of components and the initialization actually used (as scikit-learn)."""
        n_samples, n_features = data.n_samples, data.n_features
        k: Any = self.n_components
        if k is None:
            k = n_features
        if k == "auto":
            k = np.shape(H)[0] if self.init == "custom" and H is not None and np.ndim(H) == 2 else n_features
        k = int(k)
        init = self.init
        if init is None:
            init = "nndsvda" if k <= min(n_samples, n_features) else "random"
        if init not in ("random", "custom") and k > min(n_samples, n_features):
            raise InvalidParameterError(
                f"init = '{init}' can only be used when n_components <= min(n_samples, n_features); got "
                f"n_components={k} for X of shape {(n_samples, n_features)}.", param="init"
            )
        if init == "nndsvd":
            warnings.warn(
                "The multiplicative update ('mu') solver cannot update zeros present in the initialization, "
                "and so leads to poorer results when used jointly with init='nndsvd'. You may try "
                "init='nndsvda' or init='nndsvdar' instead.",
                UserWarning,
                stacklevel=4,
            )
        return k, init

    # ------------------------------------------------------------------ fitting

    def _fit(self, X: Any, W: Any, H: Any, keep_w: bool) -> np.ndarray | da.Array | None:
        owner = type(self).__name__
        self._check_params()
        labeled = self._labeled(X, reset=True)
        data = as_row_data(labeled.values, owner=owner)
        k, init = self._resolve(data, H)
        if init != "custom" and (W is not None or H is not None):
            warnings.warn(
                "When init!='custom', provided W or H are ignored. Set init='custom' to use them as initialization.",
                RuntimeWarning,
                stacklevel=3,
            )
        rs = check_random_state(owner, self.random_state)
        reg = Regularization.of(float(self.alpha_W), self.alpha_H, float(self.l1_ratio), data.n_samples,
                                data.n_features)
        if init == "custom":
            W0, H0 = custom_init(data, k, W, H, owner)
        t0 = time.perf_counter()
        W_out: np.ndarray | da.Array | None = None
        with ExitStack() as stack:
            if self.verbose:
                stack.enter_context(progress_hook(lambda rep: print(rep.format())))
            work = stack.enter_context(cached(data, self.cache))
            store = None
            if not self._w_in_memory(data, work):
                store = RowStore(work, k, data.dtype, self.temp_folder)
                stack.callback(store.close)
            if init != "custom":
                stats = data_statistics(work, owner)
                mean = stats.sum / (data.n_samples * data.n_features)
                if init == "random":
                    W0, H0 = random_init(work, k, mean, rs)
                else:
                    W0, H0 = nndsvd_init(work, k, init, mean, rs)
            result = fit_multiplicative_update(work, W0, H0, max_iter=self.max_iter, tol=self.tol, reg=reg,
                                               store=store, owner=owner)
            if keep_w:
                if not data.lazy:
                    W_out = result.W.compute()
                elif store is not None:
                    # the store is removed on exit: the last W goes to (cluster) memory first
                    W_out = _persist_now(result.W)
                else:
                    W_out = result.W
        self.components_ = result.H
        self.n_components_ = int(result.H.shape[0])
        self.n_iter_ = int(result.n_iter)
        self.reconstruction_err_ = float(result.error)
        self.n_features_in_ = data.n_features
        logger.info("%s fit in %.2fs: reconstruction_err=%.6g n_iter=%d", owner, time.perf_counter() - t0,
                    self.reconstruction_err_, self.n_iter_)
        return W_out

    def _w_in_memory(self, data: RowData, work: RowData) -> bool:
        """Whether ``W`` stays in (cluster) memory: when the data do (persisted, or NumPy input
        on the local schedulers), unless ``cache=False``."""
        if self.cache is False:
            return False
        return work.array is not data.array or (not data.lazy and active_client() is None)

    def fit(self, X: Any, y: Any = None, W: Any = None, H: Any = None) -> NMF:
        """Learn an NMF model of ``X``.

        Parameters
        ----------
        X : array-like, memmap, dask array, zarr array, path, or :class:`~daskcluster.Scaled` \
of shape (n_samples, n_features)
            Non-negative data.
        y : ignored
        W : array-like or dask array of shape (n_samples, n_components), default=None
            Initial ``W`` when ``init='custom'``.
        H : array-like of shape (n_components, n_features), default=None
            Initial ``H`` when ``init='custom'``.

        Returns
        -------
        self
            Data passes: see the class Notes.
        """
        self._fit(X, W, H, keep_w=False)
        return self

    def fit_transform(self, X: Any, y: Any = None, W: Any = None, H: Any = None) -> np.ndarray | da.Array:
        """Learn an NMF model of ``X`` and return the fitted ``W``.

        Parameters
        ----------
        X, y, W, H
            As in :meth:`fit`.

        Returns
        -------
        W : ndarray or dask.array.Array of shape (n_samples, n_components)
            NumPy for NumPy input; for lazy input a Dask array chunked like ``X`` whose chunks
            are already computed and held in (cluster) memory. Data passes: as :meth:`fit`.
        """
        W_out = self._fit(X, W, H, keep_w=True)
        assert W_out is not None
        return self._output(W_out, split_labels(X))

    # ------------------------------------------------------------------ transforming

    def transform(self, X: Any) -> np.ndarray | da.Array:
        """``W`` of new data with ``H = components_`` fixed, as scikit-learn's ``transform``.

        The multiplicative updates of ``W`` run from ``sqrt(mean(X) / n_components)`` with the
        fitted ``tol`` and ``max_iter`` (see :mod:`daskcluster.decomposition._nmf_transform`).

        Parameters
        ----------
        X : array-like, memmap, dask array, zarr array, path, or :class:`~daskcluster.Scaled` \
of shape (n_samples, n_features)

        Returns
        -------
        W : ndarray or dask.array.Array of shape (n_samples, n_components)
            Lazy (a Dask array chunked like ``X``) for lazy input. Data passes: 1, plus 1 when
            ``tol > 0``, plus 1 when the result is computed.
        """
        self._check_fitted()
        owner = type(self).__name__
        labeled = self._labeled(X, reset=False)
        data = as_row_data(labeled.values, owner=owner)
        check_n_features(data, self.n_features_in_, owner)
        reg = Regularization.of(float(self.alpha_W), self.alpha_H, float(self.l1_ratio), data.n_samples,
                                data.n_features)
        W = solve_w(data, self.components_, max_iter=self.max_iter, tol=self.tol, reg=reg, owner=owner)
        return self._output(W if data.lazy else W.compute(), labeled)

    def inverse_transform(self, X: Any) -> np.ndarray | da.Array:
        """Map ``W`` back to the data space: ``W @ components_``.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_components)
            Transformed data (``W``).

        Returns
        -------
        ndarray or dask.array.Array of shape (n_samples, n_features)
            Lazy for a Dask array. Data passes: none.
        """
        self._check_fitted()
        W: np.ndarray | da.Array = X if isinstance(X, da.Array) else np.asarray(X)
        if W.ndim != 2 or W.shape[1] != self.n_components_:
            raise InvalidDataError(
                f"X has shape {tuple(W.shape)}; {type(self).__name__}.inverse_transform expects "
                f"(n_samples, {self.n_components_}) (the output of transform)."
            )
        if isinstance(W, da.Array):  # block by block: no matmul on Dask's query-planning backend
            H = self.components_
            dtype = np.result_type(W.dtype, H.dtype)
            W = W.rechunk({1: -1})
            return W.map_blocks(np.matmul, H, chunks=(W.chunks[0], (H.shape[1],)), dtype=dtype,
                                meta=np.empty((0, 0), dtype=dtype))
        return W @ self.components_

    @property
    def _n_features_out(self) -> int:
        """Number of transformed output features (for ``get_feature_names_out``)."""
        return int(self.components_.shape[0])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
