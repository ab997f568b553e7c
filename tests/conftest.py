"""Shared fixtures: the synchronous scheduler by default, a real process cluster for slow tests,
and real MNIST when it is on this machine."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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


@pytest.fixture
def lost_row_state() -> Iterator[list[int]]:
    """While the test runs, every chunk drops the state it keeps between passes
    (:mod:`daskcluster.engine.rowstate`: Elkan's bounds, k-means|| nearest candidates) after
    each pass, as when a worker is lost; yields the number of chunks that held state at each
    pass."""
    from daskcluster.engine import rowstate
    from daskcluster.progress import progress_hook

    seen: list[int] = []

    def forget(rep: object) -> None:
        held = rowstate.held()
        seen.append(sum(held.values()))
        for token in held:
            rowstate.drop(token)

    with progress_hook(forget):
        yield seen


def stroke_rows(n: int, d: int, seed: int) -> np.ndarray:
    """uint8 rows whose non-zeros lie in a band of 24 features (most 8-feature groups all zero,
    as in digit images; 60 % of the band non-zero), an all-zero row, a row of 255 and a row with
    a single non-zero in its last feature."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 256, size=(n, d)).astype(np.uint8)
    x[rng.random((n, d)) >= 0.6] = 0
    band = np.random.default_rng(seed).integers(0, max(1, d - 24), n)
    cols = np.arange(d)
    x[(cols[None] < band[:, None]) | (cols[None] >= band[:, None] + 24)] = 0
    x[0] = 0
    if n > 1:
        x[1] = 255
    if n > 2:
        x[2] = 0
        x[2, -1] = 7
    return x


@pytest.fixture(scope="session")
def stroke_bytes() -> Callable[[int, int, int], np.ndarray]:
    """:func:`stroke_rows`: uint8 rows that take the walks over non-zero groups."""
    return stroke_rows


class _Messages(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def captured_messages(name: str, level: int) -> Iterator[list[str]]:
    """The messages logger ``name`` lets through at ``level`` or above meanwhile. The logger is
    set to ``level`` and enabled for the duration (whatever an earlier test, a silenced cluster
    or a command's logging setup left), then put back as it was."""
    handler = _Messages(level)
    logger = logging.getLogger(name)
    before, disabled = logger.level, logger.disabled
    logger.setLevel(level)
    logger.disabled = False
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
        logger.disabled = disabled


@pytest.fixture(scope="session")
def log_messages() -> Callable[[str, int], AbstractContextManager[list[str]]]:
    """:func:`captured_messages`: what a logger lets through meanwhile."""
    return captured_messages
