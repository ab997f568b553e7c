"""Out of core: a streamed fit on workers whose memory is far below the dataset's size."""

from __future__ import annotations

import os
import threading
import time

import dask
import dask.array as da
import numpy as np
import psutil
import pytest

from daskcluster import KMeans, scaled
from daskcluster.datasets import make_blobs
from daskcluster.engine import heap, readahead
from daskcluster.io import open_array, write_zarr


def _taken_ahead(client: object) -> int:
    """Chunks the workers' tasks took from a read-ahead so far."""
    return sum(c["ahead"] for c in client.run(readahead.counts).values())  # type: ignore[attr-defined]


@pytest.mark.slow
def test_streamed_fit_with_small_workers_equals_in_memory_fit(tmp_path: object) -> None:
    from distributed import Client, LocalCluster

    n, d = 1_600_000, 256  # 410 MB of uint8, each worker limited to 300 MiB, 4 MiB chunks
    X, _, _ = make_blobs(n, d, centers=10, cluster_std=20.0, center_box=(60, 200), chunk_rows=200_000,
                         random_state=0, dtype="float32")
    X8 = da.clip(X, 0, 255).astype(np.uint8)
    path = os.path.join(tmp_path, "x.zarr")
    write_zarr(X8, path, chunk_bytes=4 * 2**20)
    stored = open_array(path)
    assert stored.size * stored.dtype.itemsize == n * d  # (no Array.nbytes on the query-planning backend)
    init = stored[:: n // 10][:10].compute().astype(np.float32) / 255

    # A worker's own footprint (Python, NumPy, SciPy, scikit-learn, Numba, pandas and what else
    # is installed) is ~300 MiB before any data; the limit leaves room for a few chunks, not for
    # the 410 MB of data, and the growth above the footprint is what the test bounds.
    limit = 450 * 2**20
    growth_bound = 160 * 2**20  # a few 4 MiB chunks and their casts per worker, far below the data
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=limit,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        # the footprint before data: libraries imported and the compiled kernels loaded by a small fit
        KMeans(10, init=init, max_iter=1, tol=0).fit(scaled(open_array(path, chunk_bytes=4 * 2**20)[:40_000], 1 / 255))
        pids = list(client.run(os.getpid).values())
        procs = [psutil.Process(p) for p in pids]
        start = {pr.pid: pr.memory_info().rss for pr in procs}
        peak = {p: 0 for p in pids}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for pr in procs:
                    try:
                        peak[pr.pid] = max(peak[pr.pid], pr.memory_info().rss)
                    except psutil.NoSuchProcess:  # a worker killed for its memory: the assertion below fails
                        peak[pr.pid] = max(peak[pr.pid], limit)
                time.sleep(0.01)

        t = threading.Thread(target=sample)
        t.start()
        try:
            source = open_array(path, chunk_bytes=4 * 2**20)
            taken = _taken_ahead(client)
            # cache=False: streamed from the store on every pass ("auto" would hold the 410 MB in
            # the workers' 2 x 450 MiB, whose budget is half of that); one chunk read ahead per
            # worker thread, whatever the first read's timing (the default, 'auto', reads none
            # ahead of a page-cached store, as this one may or may not be)
            with dask.config.set({readahead.READ_AHEAD_CONFIG: 1}):
                streamed = KMeans(10, init=init, max_iter=3, tol=0, cache=False).fit(scaled(source, 1 / 255))
        finally:
            stop.set()
            t.join()
        # the peak above was measured with reads and compute overlapped, and nothing stays behind
        assert _taken_ahead(client) > taken
        assert not any(client.run(readahead.held).values())
        assert not any(client.run(heap.runs).values())  # the heap's threshold restored after the runs
    assert max(peak.values()) < limit, {p: v / 2**20 for p, v in peak.items()}
    growth = {p: (peak[p] - start[p]) / 2**20 for p in peak}
    assert max(growth.values()) < growth_bound / 2**20 < n * d / 2**20, growth
    in_memory = KMeans(10, init=init, max_iter=3, tol=0).fit(scaled(stored.compute(), 1 / 255))
    np.testing.assert_allclose(streamed.cluster_centers_, in_memory.cluster_centers_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(streamed.inertia_, in_memory.inertia_, rtol=1e-5)
    assert streamed.n_iter_ == in_memory.n_iter_ == 3
