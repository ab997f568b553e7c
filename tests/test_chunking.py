"""How many row chunks daskcluster makes: bytes, parallelism, the floor, pinning, Zarr splits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from daskcluster import KMeans
from daskcluster.data import as_row_data
from daskcluster.engine import row_block
from daskcluster.errors import InvalidParameterError
from daskcluster.io import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_MIN_CHUNKS,
    MIN_CHUNK_BYTES,
    chunk_rows,
    open_array,
    resolve_min_chunks,
    worker_threads,
    write_zarr,
)

MiB = 2**20


def rows_of(n_mib: float, n_features: int = 1000) -> np.ndarray:
    """A uint8 array of about ``n_mib`` MiB whose values identify each element."""
    n = -(-int(n_mib * MiB) // n_features)
    return (np.arange(n * n_features, dtype=np.int64) % 251).astype(np.uint8).reshape(n, n_features)


def n_chunks(A: da.Array) -> int:
    return len(A.chunks[0])


# ---------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("n_samples", "n_features", "itemsize", "kwargs", "expected"),
    [
        (70_000, 784, 1, {}, 35_000),  # bytes only (min_chunks=1): 2 chunks, as before
        (70_000, 784, 1, {"min_chunks": 16}, 5_385),  # MNIST: 55 MB // 4 MiB = 13 chunks
        (70_000, 784, 1, {"min_chunks": 4}, 17_500),
        (5_000, 784, 1, {"min_chunks": 16}, 5_000),  # 3.9 MB < the floor: one chunk
        (1_000_000, 100, 8, {"min_chunks": 16}, 41_667),  # 800 MB: bytes (32 MiB) give 24 chunks
        (70_000, 784, 1, {"min_chunks": 16, "chunk_bytes": MiB}, 1_321),  # the cap beats the floor
        (0, 784, 1, {"min_chunks": 16}, 1),
        (3, 784, 1, {"min_chunks": 16, "min_chunk_bytes": 1}, 1),  # never more chunks than rows
    ],
)
def test_chunk_rows_rule(n_samples: int, n_features: int, itemsize: int, kwargs: dict, expected: int) -> None:
    rows = chunk_rows(n_samples, n_features, itemsize, **kwargs)
    assert rows == expected
    cap = kwargs.get("chunk_bytes", DEFAULT_CHUNK_BYTES)
    assert rows * n_features * itemsize <= max(cap, n_features * itemsize)


def test_default_splits_in_memory_mnist_for_parallelism() -> None:
    A = open_array(np.zeros((70_000, 784), dtype=np.uint8))
    assert n_chunks(A) == 13  # bytes alone: 2
    assert all(size * 784 >= MIN_CHUNK_BYTES for size in A.chunks[0])
    assert A.chunks[0] == (5_385,) * 12 + (5_380,)  # balanced


def test_tiny_arrays_stay_one_chunk() -> None:
    for min_chunks in (None, 16, 1000):
        assert open_array(np.ones((500, 20)), min_chunks=min_chunks).chunks[0] == (500,)
    assert as_row_data(np.ones((500, 20)), owner="t", min_chunks="auto").n_chunks == 1


def test_chunk_bytes_stays_the_upper_bound() -> None:
    X = rows_of(20)
    for chunk_bytes in (MiB, 3 * MiB, 8 * MiB):
        A = open_array(X, chunk_bytes=chunk_bytes, min_chunks=2)
        assert max(A.chunks[0]) * X.shape[1] <= chunk_bytes
        assert n_chunks(A) == -(-X.shape[0] // (chunk_bytes // X.shape[1]))


@pytest.mark.parametrize("min_chunks", [None, 1, 64, "auto"])
def test_a_dask_array_keeps_its_chunks(min_chunks: object) -> None:
    X = rows_of(20)
    D = da.from_array(X, chunks=(X.shape[0] // 3 + 1, -1))
    assert open_array(D, min_chunks=min_chunks).chunks == D.chunks
    assert as_row_data(D, owner="t", min_chunks=min_chunks).array.chunks == D.chunks
    split = da.from_array(X, chunks=(5_000, 250))
    assert open_array(split, min_chunks=min_chunks).chunks == (split.chunks[0], (1000,))


def test_memmap_and_npy_follow_the_rule(tmp_path: Path) -> None:
    X = rows_of(20)
    np.save(tmp_path / "x.npy", X)
    expected = chunk_rows(*X.shape, 1, min_chunks=DEFAULT_MIN_CHUNKS)
    for source in (tmp_path / "x.npy", np.load(tmp_path / "x.npy", mmap_mode="r")):
        A = open_array(source)
        assert A.chunks[0][0] == expected and n_chunks(A) == 5
        np.testing.assert_array_equal(row_block(A, 2).compute(), X[2 * expected : 3 * expected])


# ---------------------------------------------------------------- cluster size and pinning


def test_default_chunking_does_not_depend_on_the_cluster() -> None:
    from distributed import Client, LocalCluster

    X = rows_of(40)
    alone = as_row_data(X, owner="t").array.chunks
    with dask.config.set(scheduler="threads", num_workers=7):
        assert as_row_data(X, owner="t").array.chunks == alone
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster):
        assert as_row_data(X, owner="t").array.chunks == alone
    assert n_chunks(open_array(X)) == 10  # 40 MiB // 4 MiB


def test_auto_uses_twice_the_worker_threads() -> None:
    from distributed import Client, LocalCluster

    X = rows_of(40)
    with dask.config.set(scheduler="synchronous"):
        assert worker_threads() == 1 and n_chunks(open_array(X, min_chunks="auto")) == 2
    with dask.config.set(scheduler="threads", num_workers=3):
        assert worker_threads() == 3 and n_chunks(open_array(X, min_chunks="auto")) == 6
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster):
        assert worker_threads() == 2
        assert n_chunks(open_array(X, min_chunks="auto")) == 4
        with dask.config.set({"daskcluster.min-chunks": "auto"}):
            assert as_row_data(X, owner="t").n_chunks == 4
    # the floor still holds: 40 MiB give at most 10 chunks of 4 MiB
    with dask.config.set(scheduler="threads", num_workers=64):
        assert n_chunks(open_array(X, min_chunks="auto")) == 10


def test_config_pins_the_number_of_chunks() -> None:
    X = rows_of(40)
    with dask.config.set({"daskcluster.min-chunks": 4}):
        assert resolve_min_chunks() == 4
        assert n_chunks(open_array(X)) == 4
        assert as_row_data(X, owner="t").n_chunks == 4
        assert n_chunks(open_array(X, min_chunks=8)) == 8  # the argument wins
    with dask.config.set({"daskcluster.min-chunks": "3"}):  # as read from the environment
        assert n_chunks(open_array(X)) == 3
    assert resolve_min_chunks() == DEFAULT_MIN_CHUNKS


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "many"])
def test_bad_min_chunks(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match=rf"'min_chunks'.*Got {bad!r} instead"):
        open_array(np.ones((10, 2)), min_chunks=bad)  # type: ignore[arg-type]
    with dask.config.set({"daskcluster.min-chunks": bad}):
        with pytest.raises(InvalidParameterError, match="daskcluster.min-chunks"):
            as_row_data(np.ones((10, 2)), owner="t")


def test_same_model_on_threads_and_a_local_cluster_with_default_chunks() -> None:
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(140_000, 16)) + rng.integers(0, 4, size=(140_000, 1)) * 5).astype(np.float32)
    assert as_row_data(X, owner="t").n_chunks == 2  # 9 MB: two chunks of at least 4 MiB
    with dask.config.set(scheduler="threads", num_workers=2):
        a = KMeans(4, random_state=3, max_iter=5).fit(X)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster):
        b = KMeans(4, random_state=3, max_iter=5).fit(X)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-6)
    assert a.n_iter_ == b.n_iter_


# ---------------------------------------------------------------------------------- Zarr


@pytest.fixture(scope="module")
def one_big_zarr_chunk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    X = rows_of(17)
    path = tmp_path_factory.mktemp("zarr") / "big.zarr"
    z = zarr.create_array(str(path), shape=X.shape, dtype=X.dtype, chunks=X.shape)
    z[...] = X
    return path, X


def test_a_big_zarr_chunk_is_read_by_several_tasks(one_big_zarr_chunk: tuple[Path, np.ndarray]) -> None:
    path, X = one_big_zarr_chunk
    A = open_array(path)  # 17 MiB in one Zarr chunk: 4 tasks of at least 4 MiB
    assert n_chunks(A) == 4
    assert max(A.chunks[0]) - min(A.chunks[0]) <= 1
    np.testing.assert_array_equal(A.compute(), X)
    np.testing.assert_array_equal(row_block(A, 3).compute(), X[-A.chunks[0][3] :])
    assert n_chunks(open_array(path, min_chunks=1)) == 1
    with dask.config.set({"daskcluster.min-chunks": 3}):
        B = open_array(path)
        assert n_chunks(B) == 3
        np.testing.assert_array_equal(B.compute(), X)


def test_zarr_chunks_are_split_only_as_parallelism_needs(tmp_path: Path) -> None:
    X = rows_of(17)
    z = zarr.create_array(str(tmp_path / "x.zarr"), shape=X.shape, dtype=X.dtype, chunks=(X.shape[0] // 2 + 1, 1000))
    z[...] = X
    stored = z.chunks[0]
    # 2 Zarr chunks of 8.5 MiB already give 2 tasks: not split for a smaller chunk_bytes
    A = open_array(tmp_path / "x.zarr", chunk_bytes=MiB, min_chunks=2)
    assert A.chunks[0] == (stored, X.shape[0] - stored)
    # 4 wanted: each Zarr chunk is split in two, and no task straddles two Zarr chunks
    B = open_array(tmp_path / "x.zarr", min_chunks=4)
    assert n_chunks(B) == 4
    assert B.chunks[0][0] + B.chunks[0][1] == stored
    np.testing.assert_array_equal(B.compute(), X)
    # small Zarr chunks are grouped whole, never split
    write_zarr(X, tmp_path / "small.zarr", chunk_bytes=MiB)
    small = zarr.open_array(str(tmp_path / "small.zarr"), mode="r").chunks[0]
    C = open_array(tmp_path / "small.zarr", min_chunks=16)
    assert all(size % small == 0 for size in C.chunks[0][:-1])


def test_write_zarr_writes_the_chunks_open_array_reads(tmp_path: Path) -> None:
    X = rows_of(20)
    z = write_zarr(X, tmp_path / "x.zarr")
    assert z.chunks[0] == chunk_rows(*X.shape, 1, min_chunks=DEFAULT_MIN_CHUNKS)
    A = open_array(tmp_path / "x.zarr")
    assert A.chunks[0] == open_array(X).chunks[0]
    assert all(size == z.chunks[0] for size in A.chunks[0][:-1])
    np.testing.assert_array_equal(A.compute(), X)
    assert write_zarr(X, tmp_path / "one.zarr", min_chunks=1).chunks[0] == X.shape[0]


# ------------------------------------------------------------------------ query planning


def test_io_and_data_work_with_dask_query_planning(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import numpy as np, dask, dask.array as da
        from daskcluster.io import open_array, write_zarr
        from daskcluster.data import as_row_data, cached
        assert type(da.ones(2)).__module__.startswith("dask.array._array_expr"), type(da.ones(2))
        X = (np.arange(60_000 * 100) % 7).astype(np.float32).reshape(60_000, 100)
        out = {str(tmp_path)!r}
        z = write_zarr(X, out + "/x.zarr", chunk_bytes=2**20)
        np.save(out + "/x.npy", X)
        for source in (X, out + "/x.zarr", out + "/x.npy", da.from_array(X, chunks=(7_000, 50))):
            data = as_row_data(source, owner="t", min_chunks=4)
            assert data.nbytes == X.nbytes
            with dask.config.set(scheduler="threads"):
                with cached(data, "auto") as work:
                    assert float(work.array.sum(dtype=np.float64).compute()) == float(X.sum(dtype=np.float64))
        print("ok", z.chunks)
        """
    )
    env = dict(os.environ, DASK_ARRAY__QUERY_PLANNING="True")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")
