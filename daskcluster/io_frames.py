"""Tabular and labelled sources: pandas and dask DataFrames, Parquet datasets, xarray DataArrays.

Each becomes what :func:`daskcluster.io.open_array` chunks by rows:

* a **pandas DataFrame** its numeric columns' values (``DataFrame.to_numpy``);
* a **dask DataFrame** a Dask array of its partitions (``to_dask_array``); unknown partition
  lengths are computed once (a cheap pass: one length per partition), never the values;
* a **Parquet** file or dataset (local path, directory or fsspec URL, optional ``columns``)
  is read with pyarrow: the files' metadata give the rows of every row group (no pass), the
  rows are chunked with the byte rule of :func:`daskcluster.io.chunk_rows`, so the chunks, and
  the per-chunk seeds of a fit, depend on the data alone, not on the files' row groups, and each
  block reads the row groups holding its rows (a dataset's files in the natural order of their
  paths, as ``dask.dataframe.read_parquet``; hive partition keys are not columns here);
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
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from dask.utils import natural_sort_key
from fsspec.core import url_to_fs

from .errors import DataTypeError, InvalidDataError, InvalidParameterError
from .kernels.blocks import ChunkInfo

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


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(
            f"Reading Parquet needs pyarrow ({exc}). Install the extra: pip install \"daskcluster[parquet]\"."
        ) from exc
    return pq


def _parquet_files(path: str, storage_options: dict[str, Any] | None) -> tuple[Any, list[str]]:
    """The filesystem and the data files of a Parquet file or dataset, in reading order: a
    directory's files (those whose names start with '_' or '.' are metadata, skipped, as Arrow's
    dataset discovery does) in natural order of their paths, as ``dask.dataframe.read_parquet``."""
    fs, root = url_to_fs(path, **(storage_options or {}))
    if not fs.isdir(root):
        return fs, [root]
    files = [f for f in fs.find(root) if not any(part[:1] in "_." for part in f[len(root):].strip("/").split("/"))]
    if not files:
        raise InvalidDataError(f"The Parquet dataset '{path}' holds no data files.")
    return fs, sorted(files, key=natural_sort_key)


def _index_columns(schema: Any) -> set[str]:
    """The columns pandas wrote for its index (not data)."""
    meta = schema.pandas_metadata or {}
    return {c for c in meta.get("index_columns", []) if isinstance(c, str)}


def parquet_columns(path: str, *, storage_options: dict[str, Any] | None = None) -> list[str]:
    """The column names of a Parquet file or dataset, from its first file's metadata (no rows
    are read; pandas' index columns left out)."""
    pq = _pyarrow_parquet()
    fs, files = _parquet_files(path, storage_options)
    schema = pq.read_schema(files[0], filesystem=fs)
    index = _index_columns(schema)
    return [str(c) for c in schema.names if c not in index]


@dataclass(frozen=True)
class _RowGroups:
    """Where the rows of a Parquet source are: file and row group of each group, in reading
    order, and the global index of each group's first row (one more entry: the row count)."""

    url: str
    storage_options: dict[str, Any]
    files: tuple[str, ...]
    file_of: tuple[int, ...]
    group_of: tuple[int, ...]
    starts: tuple[int, ...]


def _read_rows(n_rows: int, groups: _RowGroups, columns: tuple[str, ...], dtype: np.dtype,
               chunk: ChunkInfo) -> np.ndarray:
    """Rows ``chunk.start`` to ``chunk.start + n_rows`` of the source: the row groups holding
    them read (those columns only), then cut."""
    pq = _pyarrow_parquet()
    fs, _ = url_to_fs(groups.url, **groups.storage_options)
    starts = np.asarray(groups.starts)
    first = int(np.searchsorted(starts, chunk.start, side="right")) - 1
    last = int(np.searchsorted(starts, chunk.start + n_rows, side="left"))
    parts = []
    for f in sorted({groups.file_of[g] for g in range(first, last)}):
        wanted = [groups.group_of[g] for g in range(first, last) if groups.file_of[g] == f]
        table = pq.ParquetFile(groups.files[f], filesystem=fs).read_row_groups(wanted, columns=list(columns))
        parts.append(np.column_stack([table.column(c).to_numpy() for c in columns]).astype(dtype, copy=False))
    rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
    offset = chunk.start - int(starts[first])
    return rows[offset:offset + n_rows]


def _column_dtypes(schema: Any, columns: list[str], label: str) -> dict[str, Any]:
    try:
        return {c: schema.field(c).type.to_pandas_dtype() for c in columns}
    except NotImplementedError:  # types without a NumPy equivalent (lists, structs, ...)
        bad = [c for c in columns if not _numpy_type(schema.field(c).type)]
        raise DataTypeError(f"{label} has columns that are not numbers: {bad[:5]}. Select the numeric columns "
                            "or encode the others first.") from None


def _numpy_type(arrow_type: Any) -> bool:
    try:
        arrow_type.to_pandas_dtype()
    except NotImplementedError:
        return False
    return True


def open_parquet(path: str, *, columns: list[str] | None, storage_options: dict[str, Any] | None,
                 chunk_bytes: int, min_chunks: int) -> da.Array:
    """A Parquet file or dataset as a row-chunked Dask array of its numeric columns (all, or
    ``columns`` in that order). Data passes: 0 (the files' metadata give the row counts).

    Each block reads, with pyarrow, the row groups that hold its rows (those columns only), so
    the blocks follow :func:`daskcluster.io.chunk_rows`'s byte rule, not the files' row groups,
    and are made by :func:`daskcluster.engine.generated_rows` (the same on both of Dask's array
    backends: Dask DataFrame's conversion to an array does not work on the query-planning one).
    A column holding missing values must be a float column (they are read as NaN).
    """
    pq = _pyarrow_parquet()
    # imported on use: the engine reads its data through this layer
    from .engine.arrays import generated_rows
    from .io import chunk_rows

    if columns is not None and (isinstance(columns, str) or not all(isinstance(c, str) for c in columns)):
        raise InvalidParameterError(
            f"The 'columns' parameter must be a list of column names (str). Got {columns!r} instead."
        )
    label = f"The Parquet data '{path}'"
    fs, files = _parquet_files(path, storage_options)
    schema = pq.read_schema(files[0], filesystem=fs)
    index = _index_columns(schema)
    names = [c for c in schema.names if c not in index]
    if columns is not None:
        missing = [c for c in columns if c not in names]
        if missing:
            raise InvalidParameterError(f"Cannot read the columns {columns!r} of the Parquet data '{path}': "
                                        f"no column {missing}; its columns are {names}.")
        names = list(columns)
    dtypes = _column_dtypes(schema, names, label)
    _check_numeric(dtypes, label)
    dtype = _common_dtype(dtypes.values())
    file_of: list[int] = []
    group_of: list[int] = []
    counts: list[int] = []
    for f, name in enumerate(files):
        meta = pq.ParquetFile(name, filesystem=fs).metadata
        file_schema = meta.schema.to_arrow_schema()
        for c in names:
            if file_schema.get_field_index(c) < 0 or file_schema.field(c).type != schema.field(c).type:
                raise InvalidDataError(f"{label}: the file '{name}' has no column {c!r} of type "
                                       f"{schema.field(c).type}, as its first file has; rewrite it.")
        positions = {c: file_schema.get_field_index(c) for c in names}
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            if np.dtype(dtype).kind != "f":
                _check_no_nulls(group, positions, label, name)
            file_of.append(f)
            group_of.append(g)
            counts.append(group.num_rows)
    n_samples, n_features = int(sum(counts)), len(names)
    rows = chunk_rows(n_samples, n_features, np.dtype(dtype).itemsize, chunk_bytes, min_chunks=min_chunks)
    lengths = [min(rows, n_samples - s) for s in range(0, n_samples, rows)] or [0]
    groups = _RowGroups(path, dict(storage_options or {}), tuple(files), tuple(file_of), tuple(group_of),
                        tuple(int(v) for v in np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))))
    logger.debug("%s: %d x %d in %d row groups, chunks of %d rows", label, n_samples, n_features, len(counts), rows)
    return generated_rows(lengths, _read_rows, (groups, tuple(names), dtype), dtype=dtype, n_columns=n_features,
                          label="parquet")


def _check_no_nulls(group: Any, positions: dict[str, int], label: str, file: str) -> None:
    """Raise if a column of a row group holds missing values (from the file's statistics)."""
    for c, j in positions.items():
        stats = group.column(j).statistics
        if stats is None or not stats.has_null_count or stats.null_count:
            raise InvalidDataError(
                f"{label}: the column {c!r} of '{file}' holds missing values (or does not record that it has "
                "none); impute or drop them, or store the column as floats (missing values read as NaN)."
            )
