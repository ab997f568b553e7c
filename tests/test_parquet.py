"""Parquet files and datasets as sources: the source contract, columns=, fsspec URLs, ingest."""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest
from test_kmeans import SourceContract

from daskcluster import KMeans
from daskcluster.errors import DataTypeError, InvalidParameterError
from daskcluster.io import open_array, write_zarr

pytest.importorskip("pyarrow", reason="Parquet needs the 'parquet' extra (pyarrow)")


def _frame(X: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])


class TestParquetFileSource(SourceContract):
    def make(self, X, tmp_path):  # type: ignore[no-untyped-def]
        path = os.path.join(tmp_path, "x.parquet")
        if not os.path.exists(path):
            _frame(X).to_parquet(path, row_group_size=300)
        return path


class TestParquetDatasetSource(SourceContract):
    def make(self, X, tmp_path):  # type: ignore[no-untyped-def]
        path = os.path.join(tmp_path, "dataset")
        if not os.path.exists(path):
            os.makedirs(path)
            for i, start in enumerate(range(0, len(X), 700)):  # files of unequal partitions
                _frame(X[start:start + 700]).to_parquet(os.path.join(path, f"part.{i}.parquet"))
        return path


@pytest.fixture
def table(tmp_path: object) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 4))
    frame = _frame(X).assign(name=[f"row{i}" for i in range(1000)], flag=X[:, 0] > 0)
    path = os.path.join(tmp_path, "t.parquet")  # type: ignore[arg-type]
    frame.to_parquet(path)
    return X, path


def test_columns_select_and_order_the_features(table: tuple[np.ndarray, str]) -> None:
    X, path = table
    A = open_array(path, columns=["f2", "f0"])
    assert A.shape == (1000, 2) and A.dtype == np.float64
    np.testing.assert_array_equal(A.compute(), X[:, [2, 0]])
    with pytest.raises(DataTypeError, match="'name'"):
        open_array(path)
    with pytest.raises(InvalidParameterError, match="columns"):
        open_array(path, columns=["nope"])
    with pytest.raises(InvalidParameterError, match="columns= selects the columns of a Parquet"):
        open_array(X, columns=["f0"])


def test_one_column_of_a_dataset_of_small_files(tmp_path: object) -> None:
    """Reading few columns of small files lets the frame's optimiser merge partitions: the
    array's blocks must follow what is read, not the files."""
    X = np.random.default_rng(1).normal(size=(1200, 3))
    path = os.path.join(tmp_path, "small")  # type: ignore[arg-type]
    os.makedirs(path)
    _frame(X[:500]).to_parquet(os.path.join(path, "part.0.parquet"))
    _frame(X[500:]).to_parquet(os.path.join(path, "part.1.parquet"))
    A = open_array(path, columns=["f1"])
    assert A.shape == (1200, 1) and sum(A.chunks[0]) == 1200
    np.testing.assert_array_equal(A.compute(), X[:, [1]])


def test_fsspec_url_and_ingest_to_zarr(table: tuple[np.ndarray, str], tmp_path: object) -> None:
    import fsspec

    X, path = table
    fs = fsspec.filesystem("memory")
    with open(path, "rb") as src, fs.open("/bench/t.parquet", "wb") as dst:
        dst.write(src.read())
    cols = ["f0", "f1", "f2", "f3"]
    np.testing.assert_array_equal(open_array("memory://bench/t.parquet", columns=cols).compute(), X)
    out = os.path.join(tmp_path, "t.zarr")  # type: ignore[arg-type]
    z = write_zarr(path, out, columns=cols)
    np.testing.assert_array_equal(z[:], X)
    fs.rm("/bench", recursive=True)


def test_dask_dataframe_lengths_computed_once_and_model_equal(table: tuple[np.ndarray, str]) -> None:
    import dask.dataframe as dd

    X, _ = table
    ddf = dd.from_pandas(_frame(X), npartitions=3).clear_divisions()
    A = open_array(ddf)
    assert A.shape == X.shape and not any(np.isnan(c) for c in A.chunks[0])
    init = X[:3].copy()
    a = KMeans(3, init=init, n_init=1).fit(ddf)
    b = KMeans(3, init=init, n_init=1).fit(X)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(a.labels_), b.labels_)


def test_missing_pyarrow_names_the_extra(table: tuple[np.ndarray, str], monkeypatch: pytest.MonkeyPatch) -> None:
    _, path = table
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r'daskcluster\[parquet\]'):
        open_array(path, columns=["f0"])


def test_missing_values_and_files_that_disagree(tmp_path: object) -> None:
    """Missing values: integer data holding some are refused when opened (nothing read); in
    float data they are read as NaN (as pandas does). A dataset whose files disagree on a
    column is refused."""
    from daskcluster.errors import InvalidDataError

    frame = pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64"), "f": [1.0, None, 3.0]})
    path = os.path.join(tmp_path, "nulls.parquet")  # type: ignore[arg-type]
    frame.to_parquet(path)
    with pytest.raises(InvalidDataError, match=r"column 'i' .* holds missing values"):
        open_array(path, columns=["i"])
    np.testing.assert_array_equal(open_array(path).compute(), [[1.0, 1.0], [np.nan, np.nan], [3.0, 3.0]])
    folder = os.path.join(tmp_path, "mixed")  # type: ignore[arg-type]
    os.makedirs(folder)
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(os.path.join(folder, "part.0.parquet"))
    pd.DataFrame({"a": [1, 2]}).to_parquet(os.path.join(folder, "part.1.parquet"))
    with pytest.raises(InvalidDataError, match=r"part.1.parquet' has no column 'a' of type double"):
        open_array(folder)
