"""Shared fixtures: the synchronous scheduler by default, a real process cluster for slow tests,
and real MNIST when it is on this machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from daskcluster.datasets import find_mnist, load_mnist_npz

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _synchronous_scheduler(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run every test on Dask's synchronous scheduler unless it asks for a cluster."""
    if "process_client" in request.fixturenames or "no_sync" in request.keywords:
        yield
        return
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="session")
def process_cluster() -> Iterator[object]:
    """A real LocalCluster of 2 worker processes with 1 thread each, shared by the slow tests."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit="2GiB") as cluster:
        yield cluster


@pytest.fixture
def process_client(process_cluster: object) -> Iterator[object]:
    """A Client of :func:`process_cluster`, the default scheduler inside the test."""
    from distributed import Client

    with Client(process_cluster) as client:  # type: ignore[arg-type]
        yield client


@pytest.fixture(scope="session")
def mnist() -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST (70,000 x 784 uint8, labels); skips when the file is absent."""
    path = find_mnist(ROOT)
    if path is None:
        pytest.skip("real MNIST not found (../shared/data/mnist.npz or $DASKCLUSTER_MNIST)")
    return load_mnist_npz(path)


@pytest.fixture(scope="module")
def X_blobs() -> np.ndarray:
    """6,000 rows of 10 Gaussian blobs in 8 dimensions (the k-means tests' small data)."""
    X, _ = make_blobs(6000, 8, centers=10, cluster_std=2.0, random_state=3)
    return X
