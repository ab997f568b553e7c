"""Tabular and labelled sources: pandas and dask DataFrames, Parquet datasets, xarray DataArrays.

Each becomes what :func:`daskcluster.io.open_array` chunks by rows:

* a **pandas DataFrame** its numeric columns' values (``DataFrame.to_numpy``);
* a **dask DataFrame** a Dask array of its partitions (``to_dask_array``); unknown partition
  lengths are computed once (a cheap pass: one length per partition), never the values;
* a **Parquet** file or dataset (local path, directory or fsspec URL, optional ``columns``)
  is read by ``dask.dataframe.read_parquet`` and then as a dask DataFrame, re-chunked by rows
  with the byte rule of :func:`daskcluster.io.chunk_rows`, so the chunks, and the per-chunk
  seeds of a fit, depend on the data alone, not on the files' row groups;
* an **xarray DataArray** its ``.data``: a dask-backed one stays lazy (never pulled to the
  client); a NumPy-backed one is used in place.

Only numeric (and boolean) columns are accepted; any other column raises an error naming it
before anything is read. Parquet needs the ``parquet`` extra (``pip install
"daskcluster[parquet]"``, pyarrow), xarray the ``xarray`` extra.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import dask.array as da
import numpy as np

from .errors import DataTypeError, InvalidDataError, InvalidParameterError

__all__ = ["column_names", "frame_values", "is_frame", "is_parquet_path", "open_parquet"]

logger = logging.getLogger(__name__)

_PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")


def _module(x: Any) -> str:
    return type(x).__module__.split(".")[0]


def _is_pandas(x: Any) -> bool:
    return _module(x) == "pandas" and type(x).__name__ == "DataFrame"


def _is_dask_frame(x: Any) -> bool:
    return _module(x) in ("dask", "dask_expr") and type(x).__name__ == "DataFrame"


def _is_data_array(x: Any) -> bool:
    return _module(x) == "xarray" and type(x).__name__ == "DataArray"


def is_frame(x: Any) -> bool:
    """Whether ``x`` is a pandas or dask DataFrame or an xarray DataArray."""
    return _is_pandas(x) or _is_dask_frame(x) or _is_data_array(x)


def _kind(dt: Any) -> str:
    """The NumPy kind of a pandas or NumPy dtype ('O' for strings, categories, objects)."""
    try:
        return str(np.dtype(getattr(dt, "numpy_dtype", dt)).kind)
    except TypeError:
        return str(getattr(dt, "kind", "O"))


def _check_numeric(dtypes: Any, label: str) -> None:
    """Raise if a column is not numeric or boolean, naming it."""
    bad = [(name, dt) for name, dt in dtypes.items() if _kind(dt) not in "biuf"]
    if bad:
        listing = ", ".join(f"{name!r} ({dt})" for name, dt in bad[:5])
        raise DataTypeError(
            f"{label} has columns that are not numbers: {listing}. Select the numeric columns "
            "(e.g. X.select_dtypes('number')) or encode the others first."
        )


def _common_dtype(dtypes: Any) -> np.dtype:
    found = [np.dtype(getattr(dt, "numpy_dtype", dt)) for dt in dtypes]
    dtype = np.result_type(*found) if found else np.dtype(np.float64)
    return np.dtype(np.uint8) if dtype.kind == "b" else dtype


def frame_values(x: Any) -> Any:
    """The values of a pandas or dask DataFrame or a DataArray: a NumPy or Dask array of shape
    (n_samples, n_features). Data passes: 0 (a dask DataFrame of unknown partition lengths: one
    pass computing the lengths only)."""
    if _is_data_array(x):
        if x.ndim != 2:
            raise InvalidDataError(f"Expected a 2-D DataArray (samples, features); got dims {x.dims}.")
        return x.data if isinstance(x.data, da.Array) else np.asarray(x.data)
    _check_numeric(x.dtypes, "The DataFrame X")
    dtype = _common_dtype(x.dtypes)
    if _is_pandas(x):
        try:
            return x.to_numpy(dtype=dtype)
        except (TypeError, ValueError) as exc:  # pd.NA in a nullable column
            raise InvalidDataError(f"The DataFrame X holds missing values ({exc}); impute or drop them first.") from exc
    return _dask_frame_values(x, dtype)


def _dask_frame_values(x: Any, dtype: np.dtype) -> da.Array:
    """A dask DataFrame's values as a Dask array, partition lengths computed once when unknown.

    The lengths are those of the array's own blocks: the DataFrame's optimiser may merge
    partitions (e.g. the small files of a Parquet dataset read for few columns), so lengths
    counted on the DataFrame can disagree with the blocks of the array it becomes."""
    array = x.to_dask_array()
    if any(math.isnan(c) for c in array.chunks[0]):
        array = array.compute_chunk_sizes()
    return array if array.dtype == dtype else array.astype(dtype)


def column_names(x: Any) -> np.ndarray | None:
    """Column names of a pandas or dask DataFrame when all are str, as an object array; None for
    other input or non-str names. Mixed str and non-str names raise scikit-learn's error."""
    if not (_is_pandas(x) or _is_dask_frame(x)):
        return None
    names = list(x.columns)
    kinds = {isinstance(n, str) for n in names}
    if kinds == {True}:
        return np.asarray(names, dtype=object)
    if kinds == {True, False}:
        types = sorted({type(n).__name__ for n in names})
        raise DataTypeError(
            "Feature names are only supported if all input features have string names, but your "
            f"input has {types} as feature name / column name types. If you want feature names "
            "to be stored and validated, you must convert them all to strings, by using X.columns "
            "= X.columns.astype(str) for example. Otherwise you can remove feature / column names "
            "from your input data, or convert them all to a non-string data type."
        )
    return None


def is_parquet_path(fs: Any, path: str) -> bool:
    """Whether ``path`` on ``fs`` is a Parquet file (by its suffix) or a directory holding
    Parquet files (a dataset, with or without ``_metadata``)."""
    if path.rstrip("/").endswith(_PARQUET_SUFFIXES):
        return True
    try:
        if not fs.isdir(path):
            return False
        names = [os.path.basename(p.rstrip("/")) for p in fs.find(path, maxdepth=3)]
    except (OSError, ValueError):
        return False
    return "_metadata" in names or any(n.endswith(_PARQUET_SUFFIXES) for n in names)


def parquet_columns(path: str, *, storage_options: dict[str, Any] | None = None) -> list[str]:
    """The column names of a Parquet file or dataset, from its metadata (no rows are read)."""
    dd = _dask_dataframe()
    return [str(c) for c in dd.read_parquet(path, storage_options=storage_options or None).columns]


def _dask_dataframe() -> Any:
    try:
        import dask.dataframe as dd
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"Reading Parquet needs pyarrow and dask.dataframe ({exc}). Install the extra: "
            'pip install "daskcluster[parquet]".'
        ) from exc
    return dd


def open_parquet(path: str, *, columns: list[str] | None, storage_options: dict[str, Any] | None,
                 chunk_bytes: int, min_chunks: int) -> da.Array:
    """A Parquet file or dataset as a row-chunked Dask array of its numeric columns (all, or
    ``columns`` in that order). Data passes: 1 light one for the partition lengths (none when
    the files' metadata give them)."""
    dd = _dask_dataframe()
    from .io import chunk_rows

    if columns is not None and (isinstance(columns, str) or not all(isinstance(c, str) for c in columns)):
        raise InvalidParameterError(
            f"The 'columns' parameter must be a list of column names (str). Got {columns!r} instead."
        )
    try:
        frame = dd.read_parquet(path, columns=list(columns) if columns is not None else None,
                                storage_options=storage_options or None)
    except (KeyError, ValueError) as exc:
        raise InvalidParameterError(f"Cannot read the columns {columns!r} of the Parquet data '{path}': {exc}") from exc
    label = f"The Parquet data '{path}'"
    _check_numeric(frame.dtypes, label)
    array = _dask_frame_values(frame, _common_dtype(frame.dtypes))
    n_samples, n_features = (int(s) for s in array.shape)
    rows = chunk_rows(n_samples, n_features, array.dtype.itemsize, chunk_bytes, min_chunks=min_chunks)
    logger.debug("%s: %d x %d in chunks of %d rows", label, n_samples, n_features, rows)
    return array.rechunk({0: rows, 1: -1})
