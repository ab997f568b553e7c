"""Estimator input: any supported source as one validated, row-chunked array.

:class:`RowData` is what an estimator's ``fit`` works on: the Dask array in its storage
dtype, the affine scaling applied inside kernels, the compute dtype, and whether the
caller gave lazy input (then outputs are lazy too). :func:`cached` decides, per fit,
whether the array is persisted in (cluster) memory or streamed from its source on every pass.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal, Union

import dask
import dask.array as da
import numpy as np
import psutil
from scipy import sparse

from . import io, io_frames, io_sparse
from .errors import DataTypeError, InvalidDataError, InvalidParameterError
from .io import MinChunks, active_client
from .kernels.blocks import Affine, compute_dtype_for

logger = logging.getLogger(__name__)

CachePolicy = Union[Literal["auto"], bool]

#: Fraction of the memory a cached array may take (of the workers' memory limits, or of this
#: machine's available memory without a distributed Client): see :func:`memory_budget`.
CACHE_FRACTION = 0.5


@dataclass(frozen=True)
class Scaled:
    """A source seen through the map ``x * scale + offset``, applied inside the kernels.

    Build it with :func:`scaled`. The stored data keep their dtype (``uint8`` MNIST stays
    ``uint8`` on disk and in the cache); only a slice at a time is cast and scaled.
    """

    source: Any
    scale: float = 1.0
    offset: float = 0.0


def scaled(source: Any, scale: float, offset: float = 0.0) -> Scaled:
    """Wrap ``source`` (anything an estimator accepts) so that it is read as ``x * scale + offset``.

    Parameters
    ----------
    source : array-like, dask array, zarr array, or path
    scale : float
        Finite and non-zero, e.g. ``1 / 255`` for 8-bit pixels.
    offset : float, default=0.0

    Examples
    --------
    >>> import numpy as np
    >>> from daskcluster import KMeans, scaled
    >>> X = np.random.default_rng(0).integers(0, 256, size=(100, 4), dtype=np.uint8)
    >>> km = KMeans(n_clusters=2, random_state=0).fit(scaled(X, 1 / 255))
    >>> bool(km.cluster_centers_.max() <= 1.0)
    True
    """
    for name, value in (("scale", scale), ("offset", offset)):
        if not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise InvalidParameterError(f"The '{name}' parameter of scaled must be a finite float. Got {value!r} instead.")
    if scale == 0:
        raise InvalidParameterError("The 'scale' parameter of scaled must be a non-zero float. Got 0 instead.")
    if isinstance(source, Scaled):
        return Scaled(source.source, source.scale * scale, source.offset * scale + offset)
    return Scaled(source, float(scale), float(offset))


@dataclass(frozen=True)
class RowData:
    """Validated estimator input.

    Attributes
    ----------
    array : dask.array.Array of shape (n_samples, n_features)
        Storage dtype, chunked along rows only.
    affine : Affine
        Scaling applied inside kernels.
    dtype : numpy.dtype
        Compute dtype (float64 for float64 storage, float32 otherwise).
    lazy : bool
        Whether the caller passed lazy data (Dask, Zarr, a path, a dask DataFrame or a
        dask-backed DataArray): outputs are then lazy.
    stored_bytes : int or None
        Bytes a sparse array holds (values, indices, row pointers) when known; None otherwise.
    """

    array: da.Array
    affine: Affine
    dtype: np.dtype
    lazy: bool
    stored_bytes: int | None = None

    @property
    def n_samples(self) -> int:
        return int(self.array.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.array.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of the array in its storage dtype (from the metadata: no ``Array.nbytes``, which
        dask's query-planning backend lacks); for sparse data the stored bytes when known, else
        the dense size (an upper bound)."""
        if self.stored_bytes is not None:
            return self.stored_bytes
        return math.prod(self.array.shape) * self.array.dtype.itemsize

    @property
    def is_sparse(self) -> bool:
        """Whether the chunks are SciPy CSR matrices."""
        return io_sparse.is_sparse_array(self.array)

    @property
    def n_chunks(self) -> int:
        return len(self.array.chunks[0])

    @property
    def starts(self) -> tuple[int, ...]:
        """Global index of each chunk's first row."""
        return tuple(int(s) for s in np.concatenate(([0], np.cumsum(self.array.chunks[0])[:-1])))

    def to_compute(self, x: np.ndarray) -> np.ndarray:
        """Rows of the storage array in the compute dtype with the scaling applied (a copy)."""
        return self.affine.apply(np.array(x, dtype=self.dtype))


def as_row_data(
    X: Any,
    *,
    owner: str,
    min_samples: int = 1,
    chunk_bytes: int | None = None,
    min_chunks: MinChunks = None,
    accept_sparse: bool = False,
) -> RowData:
    """Validate ``X`` and return it as :class:`RowData`. Reads no data, only metadata (a dask
    DataFrame's partition lengths are computed once, if unknown).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), numpy.memmap, dask array, zarr array,
        path or URL of a Zarr store, Parquet dataset or ``.npy`` file, pandas or dask
        DataFrame (numeric columns), xarray DataArray (a dask-backed one stays lazy), SciPy
        sparse matrix or array, Dask array of sparse chunks, or :class:`Scaled`.
    owner : str
        Name of the estimator, for messages.
    min_samples : int, default=1
    chunk_bytes : int, optional
        Largest bytes of a row chunk when daskcluster chooses the chunking (default
        :data:`daskcluster.io.DEFAULT_CHUNK_BYTES`).
    min_chunks : int, "auto" or None, default=None
        Row chunks wanted for parallelism when daskcluster chooses the chunking; None reads the
        Dask configuration key ``"daskcluster.min-chunks"`` (default 16). See
        :func:`daskcluster.io.open_array`.
    accept_sparse : bool, default=False
        Whether the caller's kernels take sparse (CSR) chunks; otherwise sparse input raises
        scikit-learn's error.

    Notes
    -----
    A Dask array keeps its row chunks. Anything else is chunked by
    :func:`daskcluster.io.open_array`, from its shape, dtype and the two settings above only, so
    the chunk boundaries, and the per-chunk seeds of a fit, are the same on any cluster.
    """
    affine = Affine()
    if isinstance(X, Scaled):
        affine = Affine(X.scale, X.offset)
        X = X.source
    if io_frames.is_frame(X):
        X = io_frames.frame_values(X)
    lazy = isinstance(X, (da.Array, str, os.PathLike)) or type(X).__module__.startswith("zarr")
    stored_bytes = None
    if sparse.issparse(X) or io_sparse.is_sparse_array(X):
        _check_sparse(owner, accept_sparse, affine)
        if sparse.issparse(X):
            X = io_sparse.csr_input(X)
            stored_bytes = io_sparse.stored_nbytes(X)
    elif not lazy and not isinstance(X, np.ndarray):
        if hasattr(X, "__array__") or isinstance(X, (list, tuple)):
            try:
                X = np.asarray(X)
            except (TypeError, ValueError) as exc:
                raise DataTypeError(f"{owner} cannot use X of type {type(X).__name__}: {exc}") from exc
        else:
            raise DataTypeError(
                f"{owner} expects X as a NumPy array, a memmap, a Dask array, a Zarr array, or a path "
                f"to a Zarr store or .npy file; got {type(X).__name__}."
            )
    if isinstance(X, np.ndarray) and X.dtype == object:
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataTypeError(
                f"{owner} needs numbers; X has dtype object with a value that is not one: {exc}. "
                "Convert it with X.astype(numpy.float64) after fixing those values."
            ) from exc
    kwargs: dict[str, Any] = {"min_chunks": min_chunks}
    if chunk_bytes is not None:
        kwargs["chunk_bytes"] = chunk_bytes
    array = io.open_array(X, **kwargs)
    if io_sparse.is_sparse_array(array):  # also a path to a store of sparse row blocks
        _check_sparse(owner, accept_sparse, affine)
    n_samples, n_features = array.shape
    if n_samples < min_samples:
        raise InvalidDataError(
            f"Found array with {n_samples} sample(s) (shape={array.shape}) while a minimum of "
            f"{min_samples} is required by {owner}."
        )
    if n_features < 1:
        raise InvalidDataError(
            f"Found array with 0 feature(s) (shape={array.shape}) while a minimum of 1 is required by {owner}."
        )
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)
    return RowData(array, affine, compute_dtype_for(array.dtype), lazy, stored_bytes)


def _check_sparse(owner: str, accept_sparse: bool, affine: Affine) -> None:
    """Refuse sparse input where it cannot work, with scikit-learn's message."""
    if not accept_sparse:
        raise DataTypeError(
            f"Sparse data was passed for {owner}, but dense data is required. Use '.toarray()' to "
            "convert to a dense numpy array."
        )
    if affine.offset != 0:
        raise InvalidParameterError(
            f"scaled(X, scale, offset) with sparse X needs offset=0 (an offset makes every value "
            f"non-zero); got offset={affine.offset!r}. Scale only, or center the data densely."
        )


def feature_names(X: Any) -> np.ndarray | None:
    """The column names of ``X`` as scikit-learn's ``feature_names_in_`` takes them: an object
    array of str for a pandas or dask DataFrame whose column names are all str (or a
    :class:`Scaled` wrapping one), None for any other input.

    Raises
    ------
    DataTypeError
        The column names mix str and other types (scikit-learn's error).
    """
    if isinstance(X, Scaled):
        X = X.source
    return io_frames.column_names(X)


def as_sample_weight(sample_weight: Any, data: RowData, *, owner: str) -> da.Array | None:
    """Validate ``sample_weight`` and chunk it like ``data``'s rows (``None`` for unit weights).

    A NumPy array is checked at once; a Dask array's checks cost one pass over the weights
    (not over ``X``).
    """
    if sample_weight is None:
        return None
    n = data.n_samples
    if isinstance(sample_weight, numbers.Real):
        if not np.isfinite(sample_weight) or sample_weight <= 0:
            raise InvalidDataError(f"sample_weight must be a positive finite number; got {sample_weight!r}.")
        return None if sample_weight == 1 else da.full(n, float(sample_weight), chunks=(data.array.chunks[0],))
    if isinstance(sample_weight, da.Array):
        w = sample_weight.astype(np.float64)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != n:
        raise InvalidDataError(
            f"sample_weight.shape == {tuple(w.shape)}, expected ({n},): one weight per row of X."
        )
    if isinstance(w, np.ndarray):
        lo, total, finite = w.min(), w.sum(), np.isfinite(w).all()
        w = da.from_array(w, chunks=(data.array.chunks[0],))
    else:
        w = w.rechunk((data.array.chunks[0],))
        lo, total, finite = dask.compute(w.min(), w.sum(), da.isfinite(w).all())
    if not finite:
        raise InvalidDataError("sample_weight contains NaN or infinity; give finite weights.")
    if lo < 0:
        raise InvalidDataError(f"sample_weight must be non-negative; found {float(lo)!r}.")
    if total <= 0:
        raise InvalidDataError("sample_weight: all weights are zero; at least one row needs a positive weight.")
    return w


def check_n_features(data: RowData, n_features_in: int, owner: str) -> None:
    """Raise if ``data`` has another number of features than the fitted estimator."""
    if data.n_features != n_features_in:
        raise InvalidDataError(
            f"X has {data.n_features} features, but {owner} is expecting {n_features_in} features as input."
        )


def memory_budget() -> int:
    """Bytes a cached array may take: :data:`CACHE_FRACTION` of the sum of the workers' memory
    limits (a worker without one counts this machine's total memory), or of the memory available
    on this machine when no distributed Client is active."""
    client = active_client()
    if client is not None:
        workers = client.scheduler_info().get("workers", {})
        limits = [w.get("memory_limit") or psutil.virtual_memory().total for w in workers.values()]
        return int(CACHE_FRACTION * sum(limits))
    return int(CACHE_FRACTION * psutil.virtual_memory().available)


@contextmanager
def cached(data: RowData, cache: CachePolicy) -> Iterator[RowData]:
    """Yield ``data`` persisted in memory or left streaming, per ``cache``; release on exit.

    ``cache=True`` persists, ``False`` streams from the source on every pass, ``"auto"``
    persists when the array's bytes in its storage dtype (:attr:`RowData.nbytes`) are at most
    :func:`memory_budget`, which is already :data:`CACHE_FRACTION` of the workers' memory
    limits (or of this machine's available memory). With ``"auto"``, in-memory input (not
    :attr:`RowData.lazy`) without a distributed Client is already cached and is used as is.
    """
    if cache not in ("auto", True, False):
        raise InvalidParameterError(f"The 'cache' parameter must be one of {{'auto', True, False}}. Got {cache!r} instead.")
    client = active_client()
    if cache == "auto":
        if not data.lazy and client is None:
            persist = False
        else:
            budget = memory_budget()
            persist = data.nbytes <= budget
            logger.info(
                "cache='auto': %s (%.1f MB of %.1f MB budget)",
                "persisting" if persist else "streaming",
                data.nbytes / 1e6,
                budget / 1e6,
            )
    else:
        persist = bool(cache)
    if not persist:
        yield data
        return
    with warnings.catch_warnings():
        # in-memory input goes to the workers once, inside the graph of this persist
        warnings.filterwarnings("ignore", message="Sending large graph")
        persisted = data.array.persist()
    if client is not None:
        from distributed import wait

        wait(persisted)
    try:
        yield replace(data, array=persisted)
    finally:
        del persisted
