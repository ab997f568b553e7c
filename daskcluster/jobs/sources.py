"""A job's ``data`` and ``preprocess`` blocks: metadata first (no data read), then the arrays.

:func:`peek` learns shape and dtype from metadata alone (Zarr metadata, ``.npy`` headers,
the ``.npz`` member headers of MNIST, the parameters of generated blobs) so that a job is
validated before any data is read. :func:`load` opens the source lazily (Zarr, ``.npy``,
raw files, blobs) or reads it (MNIST ``.npz``, 55 MB), and :func:`preprocess` applies
standard scaling and PCA through dask-ml (PCA by :class:`daskcluster.decomposition.PCA` on
Dask's query-planning array backend, where dask-ml's cannot run).
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import dask
import dask.array as da
import numpy as np

from .. import io, io_frames
from ..data import Scaled, scaled
from ..datasets import MNIST_ENV, find_mnist, load_mnist_npz, make_blobs
from ..deploy.files import ConfigError
from ..errors import SourceError, SourceNotFoundError
from ..locations import is_url
from .schema import (
    BlobsData,
    LabelsSpec,
    MnistData,
    NpyData,
    ParquetData,
    PCAStep,
    PreprocessStep,
    RawData,
    StandardScaleStep,
    ZarrData,
)

__all__ = ["DataMeta", "LoadedData", "load", "load_labels", "peek", "preprocess", "resolve_mnist"]

logger = logging.getLogger(__name__)

_MNIST_ROWS = {"train": ("x_train",), "test": ("x_test",), "all": ("x_train", "x_test")}


@dataclass(frozen=True)
class DataMeta:
    """Shape and dtype of the data the model will see, from metadata alone.

    ``n_samples`` is None when the source cannot be reached from here (e.g. a path that
    exists only on the workers); shape-dependent checks then wait for the run.
    """

    n_samples: int | None
    n_features: int | None
    dtype: np.dtype
    has_labels: bool
    description: str


@dataclass
class LoadedData:
    """The data as the estimator receives it, and the true labels when known."""

    X: Any
    y: Any
    description: str
    n_samples: int
    n_features: int


def resolve_mnist(spec: MnistData) -> str:
    """The MNIST file a spec means (its ``path``, or :func:`find_mnist`)."""
    if spec.path is not None:
        if not os.path.isfile(spec.path):
            raise SourceNotFoundError(f"key 'data.path': no MNIST file at {spec.path!r}.")
        return os.path.abspath(spec.path)
    found = find_mnist()
    if found is None:
        raise SourceNotFoundError(
            f"key 'data.path': MNIST not found. Set data.path, or ${MNIST_ENV}, or put the Keras file at "
            "shared/data/mnist.npz above the working directory."
        )
    return str(found.resolve())


def _npz_member_shape(path: str, member: str) -> tuple[int, ...]:
    """Shape of one array of an ``.npz`` file, from its ``.npy`` header only."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(member + ".npy") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, _, _ = read[version](f)  # the header of one member: no data read
            return tuple(shape)
    except (KeyError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise SourceError(f"key 'data.path': {path!r} is not a Keras-layout MNIST file ({exc}).") from None


def peek(spec: Any, steps: list[PreprocessStep] = ()) -> DataMeta:  # type: ignore[assignment]
    """Shape and dtype of ``spec``'s data after ``steps``, reading metadata only."""
    steps = list(steps)
    n: int | None
    d: int | None
    dtype: np.dtype[Any]
    if isinstance(spec, BlobsData):
        n, d, dtype, labels = spec.n_samples, spec.n_features, np.dtype(spec.dtype), True
        what = f"generated blobs ({spec.centers} centers)"
    elif isinstance(spec, MnistData):
        path = resolve_mnist(spec)
        n = sum(_npz_member_shape(path, m)[0] for m in _MNIST_ROWS[spec.split])
        d, dtype, labels, what = 784, np.dtype(np.uint8), True, f"MNIST {spec.split} ({path})"
    elif isinstance(spec, RawData):
        n, d = spec.shape
        dtype, labels, what = np.dtype(spec.dtype), spec.labels is not None, f"raw file {spec.path}"
        if os.path.exists(spec.path):
            io.open_array(spec.path, dtype=spec.dtype, shape=spec.shape, offset=spec.byte_offset)  # checks the size
    else:
        assert isinstance(spec, (ZarrData, ParquetData, NpyData))
        labels, what = spec.has_labels, f"{spec.kind} {spec.path}"
        reachable = is_url(spec.path) or os.path.exists(spec.path)
        if not reachable:
            n = d = None
            dtype = np.dtype(np.float64)
        else:
            X = _open(spec)
            n, d, dtype = int(X.shape[0]), int(X.shape[1]), X.dtype
    if spec.max_rows is not None and n is not None:
        n = min(n, spec.max_rows)
    for i, step in enumerate(steps):
        if step.pca is None:
            continue
        if n is not None and d is not None and step.pca.n_components > min(n, d):
            raise ConfigError(
                f"key 'preprocess[{i}].pca.n_components': {step.pca.n_components} must be <= "
                f"min(n_samples, n_features) = min({n}, {d}) = {min(n, d)}."
            )
        d = step.pca.n_components
    if steps:
        dtype = np.dtype(np.float64 if dtype == np.float64 else np.float32)
    return DataMeta(n, d, dtype, labels, what)


def _storage_options(spec: ZarrData | ParquetData) -> dict[str, Any] | None:
    if not spec.storage_options:
        return None
    from .secrets import resolve_storage_options

    return resolve_storage_options(spec.storage_options)


def _feature_columns(spec: ParquetData) -> list[str] | None:
    """The table's feature columns: as given, or every column but the labels' when they are in it."""
    if spec.columns is not None or spec.label_column is None:
        return spec.columns
    names = io_frames.parquet_columns(spec.path, storage_options=_storage_options(spec))
    if spec.label_column not in names:
        raise SourceError(f"key 'data.label_column': the Parquet data {spec.path!r} has no column "
                          f"{spec.label_column!r}; its columns are {names}.")
    return [c for c in names if c != spec.label_column]


def _open(spec: ZarrData | ParquetData | NpyData | RawData) -> da.Array:
    kwargs: dict[str, Any] = {}
    if spec.chunk_bytes is not None:
        kwargs["chunk_bytes"] = spec.chunk_bytes
    if isinstance(spec, (ZarrData, ParquetData)) and spec.storage_options:
        kwargs["storage_options"] = _storage_options(spec)
    if isinstance(spec, ZarrData) and spec.component is not None:
        kwargs["component"] = spec.component
    if isinstance(spec, ParquetData):
        kwargs["columns"] = _feature_columns(spec)
    if isinstance(spec, RawData):
        kwargs.update(dtype=spec.dtype, shape=spec.shape, offset=spec.byte_offset)
    return io.open_array(spec.path, **kwargs)


def _label_column(spec: ParquetData, n_samples: int) -> da.Array:
    """The true labels held in a column of the table, lazily: shape (n_samples,)."""
    column = io.open_array(spec.path, columns=[spec.label_column], storage_options=_storage_options(spec))
    return column[:n_samples, 0]


def load_labels(spec: LabelsSpec, n_samples: int | None = None) -> da.Array:
    """True labels from a 1-D ``.npy`` or a Zarr array of shape (n,) or (n, 1), lazily."""
    path = spec.path
    if not (is_url(path) or os.path.exists(path)):
        raise SourceNotFoundError(f"no labels at {path!r}.")
    if path.endswith(".npy"):
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        y = da.from_array(arr, chunks=1_000_000)
    else:
        import zarr

        z = zarr.open_array(path, path=spec.component or "", mode="r")
        y = da.from_array(z, chunks=z.chunks)  # as da.from_zarr, which not every Dask array backend has
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise SourceError(f"labels at {path!r} must have shape (n_samples,) or (n_samples, 1); got {y.shape}.")
    if n_samples is not None:
        if int(y.shape[0]) < n_samples:
            raise SourceError(f"labels at {path!r} have {y.shape[0]} rows; the data has {n_samples}.")
        y = y[:n_samples]
    labels: da.Array = y
    return labels


def load(spec: Any) -> LoadedData:
    """Open (or read, for MNIST) the data of ``spec``; scaling is applied inside the kernels."""
    X: Any
    y: Any = None
    if isinstance(spec, BlobsData):
        X, y, _ = make_blobs(spec.n_samples, spec.n_features, centers=spec.centers, cluster_std=spec.cluster_std,
                             center_box=spec.center_box, chunk_rows=spec.chunk_rows,
                             random_state=spec.random_state, dtype=spec.dtype)
        what = f"generated blobs ({spec.centers} centers, {spec.dtype})"
    elif isinstance(spec, MnistData):
        path = resolve_mnist(spec)
        X, y = load_mnist_npz(path, split=spec.split, max_rows=spec.max_rows)  # only the rows it needs
        what = f"MNIST {spec.split} ({path})"
    else:
        X = _open(spec)
        what = f"{spec.kind} {spec.path}"
    if spec.max_rows is not None:
        X = X[: spec.max_rows]
        y = y[: spec.max_rows] if y is not None else None
    n, d = int(X.shape[0]), int(X.shape[1])
    if y is None and getattr(spec, "labels", None) is not None:
        y = load_labels(spec.labels, n)
    elif y is None and isinstance(spec, ParquetData) and spec.label_column is not None:
        y = _label_column(spec, n)
    if spec.scale is not None or spec.offset:
        X = scaled(X, spec.scale if spec.scale is not None else 1.0, spec.offset)
    return LoadedData(X, y, what, n, d)


def _dask_ml_runs() -> bool:
    """Whether dask-ml's PCA and StandardScaler can run on Dask's array backend.

    They call ``dask.array.linalg`` (``tsqr``, ``svd``, ``svd_compressed``) and
    ``dask.array.nanvar``, which Dask's query-planning array backend does not have (there
    ``dask.array.linalg`` and ``nanvar`` are stubs raising ``NotImplementedError``): the classic
    backend is told by ``dask.array.linalg`` being a module.
    """
    return isinstance(getattr(da, "linalg", None), ModuleType)


def _pca(step: PCAStep) -> Any:
    """The PCA of a ``pca`` step: dask-ml's, with the step's solver, where it runs.

    Elsewhere (Dask's query-planning backend, see :func:`_dask_ml_runs`) the step is
    :class:`daskcluster.decomposition.PCA`: exact, as 'tsqr' and 'full' are (and 'auto' on data
    it would not sketch), from the covariance in one pass; ``random_state`` then has nothing to
    seed. dask-ml stays the PCA of jobs where it runs, so that a job's results do not change with
    this package's version.
    """
    if _dask_ml_runs():
        from dask_ml.decomposition import PCA

        return PCA(n_components=step.n_components, svd_solver=step.svd_solver, whiten=step.whiten,
                   random_state=step.random_state)
    from ..decomposition import PCA as ExactPCA

    logger.info("preprocess: dask-ml cannot run on Dask's query-planning backend: exact PCA from the covariance "
                "in place of its '%s' solver", step.svd_solver)
    return ExactPCA(n_components=step.n_components, whiten=step.whiten)


def _standardized(arr: da.Array, step: StandardScaleStep) -> da.Array:
    """``arr`` standard-scaled by dask-ml's StandardScaler where it runs (see
    :func:`_dask_ml_runs`); elsewhere by the same arithmetic: the columns' means and population
    variances in one pass (float64), a zero deviation taken as 1 (scikit-learn's rule)."""
    if _dask_ml_runs():
        from dask_ml.preprocessing import StandardScaler

        return StandardScaler(with_mean=step.with_mean, with_std=step.with_std).fit(arr).transform(arr)
    mean, var = dask.compute(arr.mean(axis=0, dtype=np.float64), arr.var(axis=0, dtype=np.float64))
    scale = np.sqrt(var)
    scale[scale == 0.0] = 1.0
    shift = mean if step.with_mean else np.zeros_like(mean)
    divide = scale if step.with_std else np.ones_like(scale)
    return (arr - shift.astype(arr.dtype)) / divide.astype(arr.dtype)


def preprocess(X: Any, steps: list[PreprocessStep]) -> Any:
    """Apply standard scaling and PCA (dask-ml's where it runs: see :func:`_dask_ml_runs`) in
    order; returns a lazy float array.

    Data passes: standard scaling 1 to fit; PCA ('tsqr') 2 to fit (1 from the covariance). The
    transformed array is lazy: when the model streams (``cache=False``), every pass recomputes
    the steps.
    """
    if not steps:
        return X
    affine = (1.0, 0.0)
    if isinstance(X, Scaled):
        affine = (X.scale, X.offset)
        X = X.source
    arr = io.open_array(X) if not isinstance(X, da.Array) else X
    dtype = np.float64 if arr.dtype == np.float64 else np.float32
    arr = arr.astype(dtype)
    if affine != (1.0, 0.0):
        arr = arr * dtype(affine[0]) + dtype(affine[1])
    for step in steps:
        if step.standard_scale is not None:
            s = step.standard_scale
            logger.info("preprocess: standard scaling (with_mean=%s, with_std=%s)", s.with_mean, s.with_std)
            arr = _standardized(arr, s)
        else:
            p = step.pca
            assert p is not None
            logger.info("preprocess: PCA to %d components (%s)", p.n_components, p.svd_solver)
            arr = _pca(p).fit(arr).transform(arr)
        arr = arr.astype(dtype)
    return arr
