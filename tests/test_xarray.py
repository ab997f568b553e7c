"""xarray DataArrays as data: a dask-backed one stays lazy and is never pulled to the client."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import psutil
import pytest

from daskcluster import KMeans
from daskcluster.data import as_row_data, memory_budget

xr = pytest.importorskip("xarray", reason="DataArray input needs the 'xarray' extra")


def test_numpy_backed_dataarray_gives_the_numpy_model() -> None:
    X = np.random.default_rng(0).normal(size=(600, 3))
    arr = xr.DataArray(X, dims=("sample", "feature"))
    a = KMeans(3, init=X[:3].copy(), n_init=1).fit(arr)
    b = KMeans(3, init=X[:3].copy(), n_init=1).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert isinstance(a.labels_, np.ndarray)


@pytest.mark.slow
def test_dataarray_larger_than_worker_memory_is_streamed_not_pulled_to_the_client() -> None:
    from distributed import Client, LocalCluster

    n, d = 100_000, 40  # 32 MB of float64, generated chunk by chunk on the workers
    data = da.random.RandomState(0).standard_normal((n, d), chunks=(10_000, d))
    arr = xr.DataArray(data, dims=("sample", "feature"))
    assert isinstance(as_row_data(arr, owner="test").array, da.Array)
    # workers of 25 MB each: the array cannot be held; memory management off so that the
    # limit is only what the fit plans with (a worker process alone takes most of it)
    off = {f"distributed.worker.memory.{k}": False for k in ("target", "spill", "pause", "terminate")}
    with dask.config.set(off), LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                            memory_limit="25MB", dashboard_address=None) as cluster, \
            Client(cluster):
        assert 8 * n * d > max(25e6, memory_budget())  # above a worker's limit and the cache budget
        client_rss = psutil.Process().memory_info().rss
        km = KMeans(3, init="random", n_init=1, max_iter=2, random_state=0).fit(arr)
        grown = psutil.Process().memory_info().rss - client_rss
        assert isinstance(km.labels_, da.Array)
        assert grown < 8 * n * d / 4, f"the client grew by {grown / 1e6:.0f} MB"
        counts = np.bincount(km.labels_.compute(), minlength=3)
        assert counts.sum() == n and (counts > 0).all()
