"""Tests of daskcluster.io: every source through one conformance suite, then writing."""

from __future__ import annotations

import abc
import logging
import os
import pickle
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import fsspec
import numpy as np
import pytest
import zarr
import zarr.codecs

from daskcluster.engine import row_block
from daskcluster.errors import (
    DataTypeError,
    InvalidDataError,
    InvalidParameterError,
    SourceError,
    SourceNotFoundError,
)
from daskcluster.io import DEFAULT_CHUNK_BYTES, chunk_rows, open_array, write_zarr

N_SAMPLES, N_FEATURES = 1000, 7
CHUNK_BYTES = 4096  # small, to force many chunks: 585 rows of uint8, 73 rows of float64
ZARR_CHUNK_ROWS = 50  # rows per chunk of the Zarr sources below

Made = tuple[Any, dict[str, Any]]


@pytest.fixture(autouse=True)
def synchronous_scheduler() -> Any:
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture
def memory_prefix() -> Any:
    """A unique prefix on fsspec's process-wide memory filesystem, removed afterwards."""
    prefix = f"/daskcluster-test-{uuid.uuid4().hex}"
    yield prefix
    fs = fsspec.filesystem("memory")
    if fs.exists(prefix):
        fs.rm(prefix, recursive=True)


def make_data(dtype: str, n_samples: int = N_SAMPLES, n_features: int = N_FEATURES) -> np.ndarray:
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "u":
        return rng.integers(0, 256, size=(n_samples, n_features)).astype(dtype)
    return rng.standard_normal((n_samples, n_features)).astype(dtype)


def write_zarr_source(X: np.ndarray, store: str, *, path: str = "") -> None:
    """Write X as a plain Zarr array (no daskcluster code), chunked by ZARR_CHUNK_ROWS."""
    if path:
        root = zarr.open_group(store, mode="w")
        group_path, _, array_name = path.rpartition("/")
        group = root.require_group(group_path) if group_path else root
        z = group.create_array(array_name, shape=X.shape, dtype=X.dtype, chunks=(ZARR_CHUNK_ROWS, 3))
        root.create_array("other", shape=(2, 2), dtype="f4")
    else:
        z = zarr.create_array(store, shape=X.shape, dtype=X.dtype, chunks=(ZARR_CHUNK_ROWS, 3))
    z[...] = X


def zarr_rows(X: np.ndarray, chunk_bytes: int) -> int:
    """Rows per Dask chunk expected over a Zarr source chunked by ZARR_CHUNK_ROWS."""
    target = chunk_rows(X.shape[0], X.shape[1], X.dtype.itemsize, chunk_bytes)
    return max(target // ZARR_CHUNK_ROWS, 1) * ZARR_CHUNK_ROWS


# ------------------------------------------------------------- conformance suite


class SourceTests(abc.ABC):
    """Every source kind must open to the same row-chunked 2-D array.

    Subclasses implement ``make``; they override ``expected_rows`` when the source
    fixes its own chunking (Zarr chunks, Dask chunks).
    """

    @abc.abstractmethod
    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        """Store X as this kind of source; return the source and open_array's kwargs."""

    def expected_rows(self, X: np.ndarray, chunk_bytes: int) -> int:
        return chunk_rows(X.shape[0], X.shape[1], X.dtype.itemsize, chunk_bytes)

    @pytest.fixture(params=["uint8", "float32", "float64"])
    def X(self, request: pytest.FixtureRequest) -> np.ndarray:
        return make_data(request.param)

    @pytest.fixture
    def opened(self, X: np.ndarray, tmp_path: Path) -> da.Array:
        source, kwargs = self.make(X, tmp_path)
        return open_array(source, chunk_bytes=CHUNK_BYTES, **kwargs)

    def test_same_values_and_storage_dtype(self, X: np.ndarray, opened: da.Array) -> None:
        assert isinstance(opened, da.Array)
        assert opened.dtype == X.dtype
        values = opened.compute()
        assert values.dtype == X.dtype
        np.testing.assert_array_equal(values, X)

    def test_two_dimensional(self, X: np.ndarray, opened: da.Array) -> None:
        assert opened.ndim == 2
        assert opened.shape == X.shape

    def test_features_in_one_chunk(self, opened: da.Array) -> None:
        assert opened.chunks[1] == (N_FEATURES,)
        assert opened.numblocks[1] == 1

    def test_rows_chunked_by_chunk_bytes(self, X: np.ndarray, opened: da.Array) -> None:
        rows = self.expected_rows(X, CHUNK_BYTES)
        row_chunks = opened.chunks[0]
        assert len(row_chunks) > 1
        assert sum(row_chunks) == N_SAMPLES
        assert all(size == rows for size in row_chunks[:-1]), row_chunks
        assert 0 < row_chunks[-1] <= rows

    def test_blocks_hold_the_right_rows(self, X: np.ndarray, opened: da.Array) -> None:
        start = opened.chunks[0][0]
        np.testing.assert_array_equal(row_block(opened, 1).compute(), X[start : start + opened.chunks[0][1]])

    def test_write_zarr_round_trip(self, X: np.ndarray, tmp_path: Path) -> None:
        source, kwargs = self.make(X, tmp_path)
        out = tmp_path / "written.zarr"
        z = write_zarr(source, out, chunk_bytes=CHUNK_BYTES, **kwargs)
        rows = chunk_rows(N_SAMPLES, N_FEATURES, X.dtype.itemsize, CHUNK_BYTES)
        assert isinstance(z, zarr.Array)
        assert z.dtype == X.dtype
        assert z.chunks == (rows, N_FEATURES)  # rows only
        np.testing.assert_array_equal(z[...], X)
        reopened = open_array(out, chunk_bytes=CHUNK_BYTES)
        np.testing.assert_array_equal(reopened.compute(), X)
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


class TestNumpySource(SourceTests):
    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        return X, {}


class TestMemmapSource(SourceTests):
    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        path = tmp_path / "x.dat"
        X.tofile(path)
        return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape), {}


class TestNpyPathSource(SourceTests):
    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        path = tmp_path / "x.npy"
        np.save(path, X)
        return path, {}


class TestFortranNpyPathSource(SourceTests):
    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        path = tmp_path / "xf.npy"
        np.save(path, np.asfortranarray(X))
        return str(path), {}


class TestRawPathSource(SourceTests):
    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        path = tmp_path / "x.raw"
        with open(path, "wb") as handle:
            handle.write(b"HEADER16 BYTES!!")
            handle.write(X.tobytes())
        return str(path), {"dtype": X.dtype.str, "shape": X.shape, "offset": 16}


class TestZarrPathSource(SourceTests):
    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        path = str(tmp_path / "x.zarr")
        write_zarr_source(X, path)
        return path, {}

    def expected_rows(self, X: np.ndarray, chunk_bytes: int) -> int:
        return zarr_rows(X, chunk_bytes)


class TestZarrGroupComponentSource(TestZarrPathSource):
    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        path = str(tmp_path / "g.zarr")
        write_zarr_source(X, path, path="grp/arr")
        return path, {"component": "grp/arr"}


class TestZarrFileUrlSource(TestZarrPathSource):
    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        path = tmp_path / "u.zarr"
        write_zarr_source(X, str(path))
        return path.as_uri(), {}  # file:///...


class TestZarrMemoryUrlSource(TestZarrPathSource):
    @pytest.fixture(autouse=True)
    def _prefix(self, memory_prefix: str) -> None:
        self.prefix = memory_prefix

    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        url = f"memory://{self.prefix}/m.zarr"
        write_zarr_source(X, url)
        return url, {}


class TestZarrArrayObjectSource(TestZarrPathSource):
    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        path = str(tmp_path / "o.zarr")
        write_zarr_source(X, path)
        return zarr.open_array(path, mode="r"), {}


class TestDaskSplitFeaturesSource(SourceTests):
    """A Dask array keeps its row chunks; only its features are merged into one chunk."""

    ROWS = 90

    def make(self, X: np.ndarray, tmp_path: Path) -> Made:
        return da.from_array(X, chunks=(self.ROWS, 3)), {}

    def expected_rows(self, X: np.ndarray, chunk_bytes: int) -> int:
        return self.ROWS


# ------------------------------------------------------------------- sizing rules


@pytest.mark.parametrize(
    ("n_samples", "n_features", "itemsize", "chunk_bytes", "expected"),
    [
        (1000, 7, 1, 4096, 500),  # 585 rows fit in 4096 bytes: two balanced chunks
        (1000, 7, 8, 4096, 72),  # 73 fit: 14 chunks of at most 72
        (1000, 7, 8, 10**9, 1000),  # at most n_samples
        (1000, 7, 8, 1, 1),  # at least 1
        (0, 7, 8, 4096, 1),  # at least 1 for empty data
        (10, 0, 8, 4096, 10),  # no features: whole array
        (70_000, 784, 1, DEFAULT_CHUNK_BYTES, 35000),
    ],
)
def test_chunk_rows(n_samples: int, n_features: int, itemsize: int, chunk_bytes: int, expected: int) -> None:
    assert chunk_rows(n_samples, n_features, itemsize, chunk_bytes) == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chunk_bytes": 0}, r"'chunk_bytes'.*Got 0"),
        ({"n_samples": -1}, r"'n_samples'.*Got -1"),
        ({"itemsize": 2.5}, r"'itemsize'.*Got 2\.5"),
    ],
)
def test_chunk_rows_rejects_bad_parameters(kwargs: dict[str, Any], match: str) -> None:
    args = {"n_samples": 10, "n_features": 2, "itemsize": 8, "chunk_bytes": 100} | kwargs
    with pytest.raises(InvalidParameterError, match=match):
        chunk_rows(**args)


def test_small_zarr_chunks_are_never_split(tmp_path: Path) -> None:
    """Below the parallelism floor (a few kB here) a Zarr chunk is never split, whatever chunk_bytes."""
    X = make_data("float64")
    path = str(tmp_path / "x.zarr")
    write_zarr_source(X, path)  # Zarr chunks of 50 rows = 2800 bytes
    for chunk_bytes in (1, 2800, 4000, 6000, 10**9):
        A = open_array(path, chunk_bytes=chunk_bytes)
        assert all(size % ZARR_CHUNK_ROWS == 0 for size in A.chunks[0][:-1])
        assert A.chunks[0][0] == min(max(chunk_bytes // 2800, 1) * ZARR_CHUNK_ROWS, N_SAMPLES)


# ------------------------------------------------------------- memory mapping


def test_npy_graph_holds_no_data(tmp_path: Path) -> None:
    X = make_data("float64", n_samples=20_000, n_features=10)  # 1.6 MB
    path = tmp_path / "x.npy"
    np.save(path, X)
    A = open_array(path, chunk_bytes=64_000)
    graph_bytes = len(pickle.dumps(dict(A.__dask_graph__())))
    assert graph_bytes < X.nbytes / 50, graph_bytes
    np.testing.assert_array_equal(A[12_345:12_350].compute(), X[12_345:12_350])


def test_npy_larger_than_what_is_read_is_mapped_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "big.npy"
    shape = (2**25, 32)  # 1 GiB of uint8, sparse on disk
    mapped = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    mapped[5, 3] = 7
    mapped.flush()
    del mapped
    assert path.stat().st_size > 2**30
    tracemalloc.start()
    try:
        A = open_array(path, chunk_bytes=2**20)
        head = A[:10].compute()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert A.shape == shape and A.dtype == np.uint8
    assert head[5, 3] == 7 and head.sum() == 7
    assert peak < 16 * 2**20, f"peak traced memory {peak} bytes: the file was read, not mapped"


def test_memmap_view_reads_per_chunk(tmp_path: Path) -> None:
    X = make_data("float32")
    path = tmp_path / "x.dat"
    X.tofile(path)
    view = np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)[100:400]
    A = open_array(view, chunk_bytes=CHUNK_BYTES)
    np.testing.assert_array_equal(A.compute(), X[100:400])
    assert A.chunks[1] == (N_FEATURES,)


def _graph_blocks(A: da.Array) -> list[Any]:
    graph = dict(A.__dask_graph__())
    return [graph[key] for key in sorted(graph)]


@pytest.mark.skipif(da.Array is not da.core.Array, reason="arrays of Dask's query planning are not built from a graph")
def test_memmap_view_is_not_read_into_memory(tmp_path: Path) -> None:
    # dask.array.from_array copies its input: a memmap view would be read whole into memory
    X = make_data("float32")
    path = tmp_path / "x.dat"
    X.tofile(path)
    view = np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)[100:400:2]
    A = open_array(view, chunk_bytes=CHUNK_BYTES)
    blocks = _graph_blocks(A)
    assert len(blocks) == A.numblocks[0] > 1
    assert all(isinstance(b, np.memmap) and np.shares_memory(b, view) for b in blocks)
    np.testing.assert_array_equal(A.compute(), X[100:400:2])


@pytest.mark.skipif(da.Array is not da.core.Array, reason="arrays of Dask's query planning are not built from a graph")
def test_numpy_array_is_neither_copied_nor_hashed() -> None:
    X = make_data("float64")
    A, B = open_array(X, chunk_bytes=CHUNK_BYTES), open_array(X, chunk_bytes=CHUNK_BYTES)
    blocks = _graph_blocks(A)
    assert len(blocks) == A.numblocks[0] > 1
    assert all(np.shares_memory(b, X) for b in blocks)
    assert A.name != B.name  # a random name: the values are not hashed
    np.testing.assert_array_equal(A.compute(), X)
    empty = open_array(X[:0])
    assert empty.shape == (0, X.shape[1]) and empty.compute().shape == (0, X.shape[1])


# ------------------------------------------------------------- dask and misc.


def test_dask_array_already_well_chunked_is_returned_as_is() -> None:
    A = da.from_array(make_data("float32"), chunks=(100, -1))
    assert open_array(A) is A


def test_dask_array_with_split_features_is_rechunked_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    A = da.from_array(make_data("float32"), chunks=(100, 2))
    with caplog.at_level(logging.INFO, logger="daskcluster.io"):
        B = open_array(A)
    assert B.chunks == (A.chunks[0], (N_FEATURES,))
    assert "4 chunks along features" in caplog.text


def test_list_is_converted() -> None:
    A = open_array([[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(A.compute(), [[1, 2], [3, 4], [5, 6]])


def test_zarr_group_object_with_component(tmp_path: Path) -> None:
    X = make_data("uint8")
    path = str(tmp_path / "g.zarr")
    write_zarr_source(X, path, path="grp/arr")
    A = open_array(zarr.open_group(path, mode="r"), component="grp/arr")
    np.testing.assert_array_equal(A.compute(), X)


def _zero_rows_numpy(tmp_path: Path) -> Made:
    return np.empty((0, 5), dtype=np.float32), {}


def _zero_rows_npy(tmp_path: Path) -> Made:
    np.save(tmp_path / "e.npy", np.empty((0, 5), dtype=np.float32))
    return tmp_path / "e.npy", {}


def _zero_rows_raw(tmp_path: Path) -> Made:
    (tmp_path / "e.raw").write_bytes(b"")
    return tmp_path / "e.raw", {"dtype": "float32", "shape": (0, 5)}


def _zero_rows_zarr(tmp_path: Path) -> Made:
    zarr.create_array(str(tmp_path / "e.zarr"), shape=(0, 5), dtype="float32", chunks=(10, 5))
    return tmp_path / "e.zarr", {}


@pytest.mark.parametrize("make", [_zero_rows_numpy, _zero_rows_npy, _zero_rows_raw, _zero_rows_zarr])
def test_zero_rows_open_and_write(make: Any, tmp_path: Path) -> None:
    source, kwargs = make(tmp_path)
    A = open_array(source, **kwargs)
    assert A.shape == (0, 5) and A.dtype == np.float32
    assert A.compute().shape == (0, 5)
    z = write_zarr(source, tmp_path / "out.zarr", **kwargs)
    assert z.shape == (0, 5) and z.dtype == np.float32


# ----------------------------------------------------------------- bad inputs


def _missing_path(tmp_path: Path) -> Made:
    return tmp_path / "nope.zarr", {}


def _missing_url(tmp_path: Path) -> Made:
    return f"memory:///daskcluster-missing-{uuid.uuid4().hex}/gone.zarr", {}


def _corrupt_npy(tmp_path: Path) -> Made:
    (tmp_path / "x.npy").write_bytes(b"this is not an npy file at all" * 10)
    return tmp_path / "x.npy", {}


def _truncated_npy(tmp_path: Path) -> Made:
    np.save(tmp_path / "t.npy", np.ones((100, 4)))
    with open(tmp_path / "t.npy", "r+b") as handle:
        handle.truncate(300)
    return tmp_path / "t.npy", {}


def _raw_wrong_size(tmp_path: Path) -> Made:
    (tmp_path / "x.raw").write_bytes(bytes(100))
    return tmp_path / "x.raw", {"dtype": "float64", "shape": (10, 2)}


def _raw_without_dtype_shape(tmp_path: Path) -> Made:
    (tmp_path / "data.bin").write_bytes(bytes(100))
    return tmp_path / "data.bin", {}


def _raw_without_shape(tmp_path: Path) -> Made:
    (tmp_path / "data.bin").write_bytes(bytes(100))
    return tmp_path / "data.bin", {"dtype": "uint8"}


def _one_d(tmp_path: Path) -> Made:
    return np.arange(5.0), {}


def _three_d(tmp_path: Path) -> Made:
    return np.zeros((4, 28, 28), dtype=np.uint8), {}


def _three_d_npy(tmp_path: Path) -> Made:
    np.save(tmp_path / "img.npy", np.zeros((4, 28, 28), dtype=np.uint8))
    return tmp_path / "img.npy", {}


def _complex(tmp_path: Path) -> Made:
    return np.zeros((3, 2), dtype=np.complex128), {}


def _strings(tmp_path: Path) -> Made:
    return np.array([["a", "bc"], ["d", "e"]]), {}


def _objects(tmp_path: Path) -> Made:
    return np.array([[1, None]], dtype=object), {}


def _zarr_group_no_component(tmp_path: Path) -> Made:
    write_zarr_source(make_data("uint8", 10), str(tmp_path / "g.zarr"), path="grp/arr")
    return tmp_path / "g.zarr", {}


def _zarr_missing_component(tmp_path: Path) -> Made:
    write_zarr_source(make_data("uint8", 10), str(tmp_path / "g.zarr"), path="grp/arr")
    return tmp_path / "g.zarr", {"component": "nothing"}


def _plain_directory(tmp_path: Path) -> Made:
    (tmp_path / "plain").mkdir()
    return tmp_path / "plain", {}


def _dtype_for_npy(tmp_path: Path) -> Made:
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    return tmp_path / "x.npy", {"dtype": "float32", "shape": (3, 2)}


def _dtype_for_numpy(tmp_path: Path) -> Made:
    return np.ones((3, 2)), {"dtype": "float32"}


def _component_for_npy(tmp_path: Path) -> Made:
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    return tmp_path / "x.npy", {"component": "arr"}


def _bad_chunk_bytes(tmp_path: Path) -> Made:
    return np.ones((3, 2)), {"chunk_bytes": -5}


def _unsupported_type(tmp_path: Path) -> Made:
    return 3.5, {}


def _keep_positive(block: np.ndarray) -> np.ndarray:
    return block[block[:, 0] > 0]


def _unknown_dask_chunks(tmp_path: Path) -> Made:
    A = da.from_array(np.ones((10, 2)), chunks=(5, 2))  # a filter of rows, as A[A[:, 0] > 0] makes
    return A.map_blocks(_keep_positive, chunks=((np.nan, np.nan), (2,)), meta=np.empty((0, 0))), {}


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (_missing_path, SourceNotFoundError, r"nope\.zarr"),
        (_missing_url, SourceNotFoundError, r"gone\.zarr"),
        (_corrupt_npy, SourceError, r"x\.npy.*not a valid \.npy"),
        (_truncated_npy, SourceError, r"t\.npy.*truncated.*3328 bytes.*300 bytes"),
        (_raw_wrong_size, SourceError, r"x\.raw.*100 bytes.*160 bytes"),
        (_raw_without_dtype_shape, SourceError, r"data\.bin.*dtype= and shape="),
        (_raw_without_shape, InvalidParameterError, r"shape=None"),
        (_one_d, InvalidDataError, r"shape \(5,\).*reshape\(-1, 1\)"),
        (_three_d, InvalidDataError, r"shape \(4, 28, 28\).*reshape\(4, -1\)"),
        (_three_d_npy, InvalidDataError, r"img\.npy.*\(4, 28, 28\)"),
        (_complex, DataTypeError, r"complex128.*X\.real"),
        (_strings, DataTypeError, r"<U2.*astype"),
        (_objects, DataTypeError, r"dtype object"),
        (_zarr_group_no_component, InvalidParameterError, r"g\.zarr.*group.*component=.*'grp/arr', 'other'"),
        (_zarr_missing_component, SourceNotFoundError, r"'nothing'.*'grp/arr', 'other'"),
        (_plain_directory, SourceError, r"plain.*not a Zarr store"),
        (_dtype_for_npy, InvalidParameterError, r"dtype='float32'.*x\.npy"),
        (_dtype_for_numpy, InvalidParameterError, r"dtype='float32'.*numpy\.ndarray"),
        (_component_for_npy, InvalidParameterError, r"component='arr'"),
        (_bad_chunk_bytes, InvalidParameterError, r"'chunk_bytes'.*Got -5"),
        (_unsupported_type, DataTypeError, r"got float"),
        (_unknown_dask_chunks, InvalidDataError, r"unknown chunk sizes.*compute_chunk_sizes"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) and hasattr(value, "__name__") else None,
)
def test_bad_inputs(make: Any, error: type[Exception], match: str, tmp_path: Path) -> None:
    source, kwargs = make(tmp_path)
    with pytest.raises(error, match=match):
        open_array(source, **kwargs)


def test_errors_are_caught_as_builtin_exceptions(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_array(tmp_path / "missing.npy")
    with pytest.raises(ValueError):
        open_array(np.arange(3))
    with pytest.raises(TypeError):
        open_array(np.zeros((2, 2), dtype=complex))


# ----------------------------------------------------------------- write_zarr


@pytest.mark.parametrize("dtype, cname, shuffle", [("uint8", "lz4hc", "noshuffle"), ("float32", "lz4", "shuffle")])
def test_write_zarr_uses_the_measured_default_codec(tmp_path: Path, dtype: str, cname: str, shuffle: str) -> None:
    z = write_zarr(make_data(dtype), tmp_path / "x.zarr", chunk_bytes=CHUNK_BYTES)
    (codec,) = z.compressors
    assert isinstance(codec, zarr.codecs.BloscCodec)
    assert codec.cname.value == cname and codec.clevel == 5 and codec.shuffle.value == shuffle
    assert z.metadata.zarr_format == 3 and z.shards is None


def test_write_zarr_without_compression(tmp_path: Path) -> None:
    X = make_data("float32")
    z = write_zarr(X, tmp_path / "x.zarr", compressors=None, chunk_bytes=CHUNK_BYTES)
    assert z.compressors == ()
    np.testing.assert_array_equal(z[...], X)


def test_write_zarr_in_a_group(tmp_path: Path) -> None:
    X = make_data("uint8")
    path = tmp_path / "g.zarr"
    z = write_zarr(X, path, name="train", chunk_bytes=CHUNK_BYTES)
    assert z.path == "train"
    assert isinstance(zarr.open(str(path), mode="r"), zarr.Group)
    np.testing.assert_array_equal(open_array(path, component="train").compute(), X)
    with pytest.raises(InvalidParameterError, match="'train'"):
        open_array(path)


def test_write_zarr_chunks_rows_only_and_default_chunk_bytes(tmp_path: Path) -> None:
    X = make_data("float64", n_samples=300, n_features=40)
    z = write_zarr(X, tmp_path / "x.zarr", chunk_bytes=3200)  # 10 rows of 320 bytes
    assert z.chunks == (10, 40)
    z = write_zarr(X, tmp_path / "y.zarr")
    assert z.chunks == (300, 40)


def test_write_zarr_from_zarr_rechunks_to_rows(tmp_path: Path) -> None:
    X = make_data("float32")
    write_zarr_source(X, str(tmp_path / "in.zarr"), path="grp/arr")  # chunks (50, 3)
    z = write_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", component="grp/arr", chunk_bytes=CHUNK_BYTES)
    assert z.chunks == (chunk_rows(N_SAMPLES, N_FEATURES, 4, CHUNK_BYTES), N_FEATURES)
    np.testing.assert_array_equal(z[...], X)


def test_write_zarr_to_memory_url(memory_prefix: str) -> None:
    X = make_data("uint8")
    url = f"memory://{memory_prefix}/out.zarr"
    z = write_zarr(X, url, chunk_bytes=CHUNK_BYTES)
    np.testing.assert_array_equal(z[...], X)
    np.testing.assert_array_equal(open_array(url).compute(), X)
    fs = fsspec.filesystem("memory")
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(memory_prefix, detail=False)] == ["out.zarr"]


def test_write_zarr_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.npy"
    n_samples, n_features = 20_000, 250  # 40 MB of float64
    mapped = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n_samples, n_features))
    mapped[:] = np.arange(n_features, dtype=np.float64)
    mapped.flush()
    del mapped
    tracemalloc.start()
    try:
        z = write_zarr(path, tmp_path / "big.zarr", chunk_bytes=2**20, compressors=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert z.shape == (n_samples, n_features)
    assert peak < 12 * 2**20, f"peak traced memory {peak} bytes for 1 MiB chunks of a 40 MB array"
    row = np.arange(n_features, dtype=np.float64)
    np.testing.assert_array_equal(z[-3:], np.broadcast_to(row, (3, n_features)))


# ------------------------------------------------------------------- atomicity


FAIL_CHUNK_BYTES = 100 * N_FEATURES * 4  # 100 float32 rows: the failing source's blocks


def failing_source(X: np.ndarray, fail_block: int = 2) -> da.Array:
    """X as a Dask array whose block ``fail_block`` raises when computed."""

    def maybe_fail(block: np.ndarray, block_id: tuple[int, int] | None = None) -> np.ndarray:
        if block_id is not None and block_id[0] == fail_block:
            raise RuntimeError(f"simulated read failure in block {fail_block}")
        return block

    return da.from_array(X, chunks=(100, -1)).map_blocks(maybe_fail, meta=np.empty((0, 0), dtype=X.dtype))


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    X = make_data("float32")
    path = tmp_path / "x.zarr"
    with pytest.raises(RuntimeError, match="block 2"):
        write_zarr(failing_source(X), path, chunk_bytes=FAIL_CHUNK_BYTES)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_to_memory_url_leaves_nothing(memory_prefix: str) -> None:
    X = make_data("float32")
    fs = fsspec.filesystem("memory")
    fs.mkdir(memory_prefix)
    with pytest.raises(RuntimeError, match="block 2"):
        write_zarr(failing_source(X), f"memory://{memory_prefix}/x.zarr", chunk_bytes=FAIL_CHUNK_BYTES)
    assert fs.find(memory_prefix) == []


def test_existing_path_needs_overwrite(tmp_path: Path) -> None:
    X = make_data("uint8")
    path = tmp_path / "x.zarr"
    write_zarr(X, path)
    with pytest.raises(SourceError, match=r"x\.zarr.*already exists.*overwrite=True"):
        write_zarr(X + 1, path)
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], X)


def test_overwrite_replaces_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "x.zarr"
    write_zarr(make_data("uint8"), path, name="old")
    Y = make_data("float32", n_samples=30)
    z = write_zarr(Y, path, overwrite=True)
    np.testing.assert_array_equal(z[...], Y)
    assert isinstance(zarr.open(str(path), mode="r"), zarr.Array)  # the old group is gone
    assert [p.name for p in tmp_path.iterdir()] == ["x.zarr"]


def test_overwrite_from_the_same_store(tmp_path: Path) -> None:
    X = make_data("float64")
    path = tmp_path / "x.zarr"
    write_zarr(X, path, chunk_bytes=CHUNK_BYTES)
    z = write_zarr(path, path, overwrite=True, chunk_bytes=2 * CHUNK_BYTES)
    np.testing.assert_array_equal(z[...], X)
    assert z.chunks[0] == chunk_rows(N_SAMPLES, N_FEATURES, 8, 2 * CHUNK_BYTES)


def test_failed_overwrite_keeps_old_data(tmp_path: Path) -> None:
    X = make_data("uint8")
    path = tmp_path / "x.zarr"
    write_zarr(X, path)
    with pytest.raises(RuntimeError, match="block 2"):
        write_zarr(failing_source(make_data("float32")), path, overwrite=True, chunk_bytes=FAIL_CHUNK_BYTES)
    z = zarr.open_array(str(path), mode="r")
    assert z.dtype == np.uint8
    np.testing.assert_array_equal(z[...], X)
    assert [p.name for p in tmp_path.iterdir()] == ["x.zarr"]


def test_failed_overwrite_on_memory_url_keeps_old_data(memory_prefix: str) -> None:
    X = make_data("uint8")
    url = f"memory://{memory_prefix}/x.zarr"
    write_zarr(X, url)
    with pytest.raises(RuntimeError, match="block 2"):
        write_zarr(failing_source(make_data("float32")), url, overwrite=True, chunk_bytes=FAIL_CHUNK_BYTES)
    np.testing.assert_array_equal(open_array(url).compute(), X)
    Y = make_data("float32", n_samples=20)
    np.testing.assert_array_equal(write_zarr(Y, url, overwrite=True)[...], Y)
    fs = fsspec.filesystem("memory")
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(memory_prefix, detail=False)] == ["x.zarr"]


def test_overwrite_refuses_a_non_zarr_directory(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(SourceError, match=r"precious.*not a Zarr store"):
        write_zarr(np.ones((3, 2)), precious, overwrite=True)
    assert (precious / "thesis.tex").read_text() == "do not delete"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"chunks": 5}, InvalidParameterError, r"\['chunks'\]"),
        ({"name": ""}, InvalidParameterError, r"'name'.*Got ''"),
        ({"overwrite": "yes"}, InvalidParameterError, r"'overwrite'.*Got 'yes'"),
        ({"storage_options": {"anon": True}}, InvalidParameterError, r"storage_options=.*anon"),
    ],
)
def test_write_zarr_bad_parameters(
    kwargs: dict[str, Any], error: type[Exception], match: str, tmp_path: Path
) -> None:
    with pytest.raises(error, match=match):
        write_zarr(np.ones((3, 2)), tmp_path / "x.zarr", **kwargs)
    assert not os.path.exists(tmp_path / "x.zarr")
