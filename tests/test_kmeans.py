"""KMeans behaviour: seeding quality, reproducibility, inputs, errors, memory."""

from __future__ import annotations

import os
import threading
import time
import warnings

import dask
import dask.array as da
import numpy as np
import psutil
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from daskcluster import KMeans, scaled
from daskcluster.engine import count_passes
from daskcluster.errors import (
    DaskClusterError,
    DataTypeError,
    InvalidDataError,
    InvalidParameterError,
    NonFiniteDataError,
    NotFittedError,
    SourceError,
)
from daskcluster.io import write_zarr

# ------------------------------------------------------------------ seeding quality


@pytest.mark.parametrize("init", ["k-means||", "k-means++", "random"])
def test_seeding_quality_on_blobs(X_blobs: np.ndarray, init: str) -> None:
    Xd = da.from_array(X_blobs, chunks=900)
    n_init = 3
    ours = KMeans(10, init=init, n_init=n_init, random_state=0).fit(Xd)
    ref = SkKMeans(10, init="k-means++" if init != "random" else "random", n_init=n_init, random_state=0).fit(X_blobs)
    assert ours.inertia_ <= ref.inertia_ * 1.01


def test_kmeans_parallel_quality_on_mnist(mnist: tuple[np.ndarray, np.ndarray]) -> None:
    X8 = mnist[0][:20000]
    ours = KMeans(10, n_init=2, random_state=0, max_iter=100).fit(scaled(da.from_array(X8, chunks=2500), 1 / 255))
    ref = SkKMeans(10, n_init=2, random_state=0, max_iter=100).fit((X8 / 255).astype(np.float32))
    assert ours.inertia_ <= ref.inertia_ * 1.01
    assert ours.cluster_centers_.dtype == np.float32


def test_kmeans_parallel_passes(X_blobs: np.ndarray) -> None:
    """k-means|| costs init_max_iter + 1 passes; Lloyd one per iteration plus the final inertia."""
    Xd = da.from_array(X_blobs, chunks=1000)
    with count_passes() as c:
        km = KMeans(10, init_max_iter=3, random_state=0, tol=0, max_iter=4).fit(Xd)
    assert km.n_iter_ == 4
    assert c.passes == (3 + 1) + 4 + 1
    with count_passes() as c:
        KMeans(10, init="k-means++", random_state=0, max_iter=1).fit(Xd)
    assert c.passes == 10 + 1 + 1


@pytest.fixture
def kept_model(X_blobs: np.ndarray) -> KMeans:
    """The k-means|| fit of :func:`test_kmeans_parallel_same_model_when_chunks_lose_their_kept_state`
    whose chunks keep their state (a test lists it before ``lost_row_state``, which pytest then
    sets up after it)."""
    return KMeans(10, random_state=3, init_max_iter=4).fit(da.from_array(X_blobs, chunks=700))


def test_kmeans_parallel_same_model_when_chunks_lose_their_kept_state(X_blobs: np.ndarray, kept_model: KMeans,
                                                                     lost_row_state: list[int]) -> None:
    """The chunks keep their rows' nearest candidate from round to round (only the previous
    round's candidates are measured); a chunk that lost it (a worker lost, a task moved)
    measures every candidate again and the model is the same."""
    Xd = da.from_array(X_blobs, chunks=700)
    kept = kept_model
    lost = KMeans(10, random_state=3, init_max_iter=4).fit(Xd)
    assert max(lost_row_state) == Xd.numblocks[0]  # every chunk had kept its state, and lost it
    np.testing.assert_array_equal(lost.cluster_centers_, kept.cluster_centers_)
    assert lost.inertia_ == kept.inertia_ and lost.n_iter_ == kept.n_iter_


def test_kmeans_parallel_reclusters_with_weights() -> None:
    """Most candidates come from a sparse far blob; unweighted reclustering would put both
    centers there. With the candidates weighted, one center stays on the dense blob."""
    rng = np.random.default_rng(0)
    dense = rng.normal(0, 0.1, size=(20000, 2))
    sparse = rng.normal(50, 5, size=(200, 2))
    X = np.concatenate([dense, sparse])
    km = KMeans(2, oversampling_factor=20, init_max_iter=2, random_state=0, max_iter=1).fit(da.from_array(X, chunks=5000))
    centers = km.cluster_centers_[np.argsort(km.cluster_centers_[:, 0])]
    assert np.abs(centers[0]).max() < 1.0
    assert np.abs(centers[1] - 50).max() < 3.0


def test_kmeans_parallel_runs_more_rounds_instead_of_padding() -> None:
    X, _ = make_blobs(3000, 4, centers=6, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        km = KMeans(6, oversampling_factor=0.2, init_max_iter=1, random_state=0).fit(da.from_array(X, chunks=500))
    ref = SkKMeans(6, n_init=1, random_state=0).fit(X)
    assert km.inertia_ <= ref.inertia_ * 1.01


@pytest.mark.parametrize("init", ["k-means||", "k-means++", "random"])
def test_fewer_distinct_points_than_clusters(init: str) -> None:
    X = np.repeat(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]]), 20, axis=0)
    with pytest.warns(ConvergenceWarning, match="distinct"):
        km = KMeans(5, init=init, random_state=0).fit(da.from_array(X, chunks=25))
    # every center is a data point: never the origin, never NaN
    assert np.isfinite(km.cluster_centers_).all()
    for c in km.cluster_centers_:
        assert np.any(np.all(np.isclose(X, c), axis=1))
    assert km.inertia_ == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------ reproducibility


@pytest.mark.parametrize("init", ["k-means||", "k-means++", "random"])
def test_same_random_state_same_model_whatever_chunking_of_scheduler(X_blobs: np.ndarray, init: str) -> None:
    import dask

    Xd = da.from_array(X_blobs, chunks=700)
    a = KMeans(10, init=init, random_state=42).fit(Xd)
    with dask.config.set(scheduler="threads", num_workers=2):
        b = KMeans(10, init=init, random_state=42).fit(Xd)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_ and a.n_iter_ == b.n_iter_


@pytest.mark.slow
def test_same_model_on_threads_one_worker_and_two_workers(X_blobs: np.ndarray) -> None:
    import dask
    from distributed import Client, LocalCluster

    Xd = da.from_array(X_blobs, chunks=700)
    models = []
    with dask.config.set(scheduler="threads"):
        models.append(KMeans(10, random_state=7).fit(Xd))
    for n_workers in (1, 2):
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
                Client(cl):
            models.append(KMeans(10, random_state=7).fit(Xd))
    for m in models[1:]:
        np.testing.assert_array_equal(m.cluster_centers_, models[0].cluster_centers_)
        assert m.inertia_ == models[0].inertia_


# ------------------------------------------------------------------ every source, same model


class SourceContract:
    """Each data source gives the same fitted model as the in-memory array."""

    def make(self, X: np.ndarray, tmp_path: object) -> object:
        raise NotImplementedError

    def test_same_model_as_in_memory(self, tmp_path: object) -> None:
        X, _ = make_blobs(2000, 5, centers=4, random_state=0)
        X = X.astype(np.float32)
        init = X[:4].copy()
        ref = KMeans(4, init=init).fit(X)
        ours = KMeans(4, init=init).fit(self.make(X, tmp_path))
        # chunking may differ from the in-memory array's, so float32 sums may differ in the last bit
        np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-5)
        np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-5)
        assert ours.n_iter_ == ref.n_iter_
        np.testing.assert_array_equal(dask.compute(ours.labels_)[0], ref.labels_)  # lazy for lazy input
        seeded = KMeans(4, random_state=0).fit(self.make(X, tmp_path))
        np.testing.assert_allclose(seeded.inertia_, KMeans(4, random_state=0).fit(X).inertia_, rtol=1e-5)


class TestNumpySource(SourceContract):
    def make(self, X, tmp_path):  # type: ignore[no-untyped-def]
        return X.copy()


class TestDaskSource(SourceContract):
    def make(self, X, tmp_path):  # type: ignore[no-untyped-def]
        return da.from_array(X, chunks=(333, 2))


class TestNpySource(SourceContract):
    def make(self, X, tmp_path):  # type: ignore[no-untyped-def]
        path = os.path.join(tmp_path, "x.npy")
        np.save(path, X)
        return path


class TestMemmapSource(SourceContract):
    def make(self, X, tmp_path):  # type: ignore[no-untyped-def]
        path = os.path.join(tmp_path, "x.mm")
        mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
        mm[:] = X
        mm.flush()
        return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)


class TestZarrSource(SourceContract):
    def make(self, X, tmp_path):  # type: ignore[no-untyped-def]
        path = os.path.join(tmp_path, "x.zarr")
        if not os.path.exists(path):
            write_zarr(X, path, chunk_bytes=8000)
        return path


class TestZarrArraySource(SourceContract):
    def make(self, X, tmp_path):  # type: ignore[no-untyped-def]
        import zarr

        path = os.path.join(tmp_path, "g.zarr")
        if not os.path.exists(path):
            write_zarr(X, path, name="X", chunk_bytes=8000)
        return zarr.open_array(path, path="X", mode="r")


# ------------------------------------------------------------------ bad input

BAD_PARAMS = [
    ({"n_clusters": 0}, r"'n_clusters' parameter of KMeans must be an int in the range \[1, inf\)\. Got 0"),
    ({"n_clusters": 2.5}, r"'n_clusters' .* Got 2\.5"),
    ({"tol": -1}, r"'tol' parameter of KMeans must be a float in the range \[0\.0, inf\)\. Got -1 instead"),
    ({"max_iter": 0}, r"'max_iter' .* Got 0"),
    ({"n_init": 0}, r"'n_init' .* Got 0"),
    ({"init": "kmeans"}, r"'init' parameter of KMeans must be a str among .*Got 'kmeans'"),
    ({"init": np.zeros((3, 2))}, r"shape of the initial centers \(3, 2\) does not match the number of clusters 2\."),
    ({"oversampling_factor": 0}, r"'oversampling_factor' .* \(0\.0, inf\)\. Got 0"),
    ({"init_max_iter": 0}, r"'init_max_iter' .* Got 0"),
    ({"cache": "yes"}, r"'cache' .* Got 'yes'"),
    ({"random_state": -3}, r"'random_state' .* Got -3"),
]


@pytest.mark.parametrize("params, match", BAD_PARAMS)
def test_bad_parameters(params: dict, match: str) -> None:
    X = np.random.default_rng(0).normal(size=(20, 4))
    kw = {"n_clusters": 2, **params}
    with pytest.raises(InvalidParameterError, match=match):
        KMeans(**kw).fit(X)


def _nan_at(n: int, row: int) -> np.ndarray:
    X = np.random.default_rng(0).normal(size=(n, 3))
    X[row, 1] = np.inf
    return X


BAD_DATA = [
    (np.zeros(10), InvalidDataError, r"2-D.*\(10,\)"),
    (np.zeros((4, 28, 28)), InvalidDataError, r"\(4, 28, 28\)"),
    (np.zeros((0, 3)), InvalidDataError, r"0 sample\(s\)"),
    (np.zeros((2, 3)), InvalidDataError, r"n_samples=2 should be >= n_clusters=3"),
    (np.array([["a", "b"]] * 5), DataTypeError, r"<U1|str|string"),
    (np.zeros((5, 2), dtype=complex), DataTypeError, r"complex"),
    (da.from_array(_nan_at(100, 57), chunks=30), NonFiniteDataError, r"chunk 1 at row 57"),
    ("/no/such/file.npy", SourceError, r"/no/such/file\.npy"),
    ({"a": 1}, DataTypeError, r"dict"),
]


@pytest.mark.parametrize("X, exc, match", BAD_DATA)
def test_bad_data(X: object, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match) as info:
        KMeans(3, random_state=0).fit(X)
    assert isinstance(info.value, DaskClusterError)


def test_corrupt_npy_and_errors_are_builtin_too(tmp_path: object) -> None:
    path = os.path.join(tmp_path, "bad.npy")
    with open(path, "wb") as f:
        f.write(b"not an npy file at all")
    with pytest.raises(OSError, match="bad.npy"):
        KMeans(2).fit(path)


def test_predict_errors() -> None:
    X = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(NotFittedError, match="not fitted"):
        KMeans(2).predict(X)
    km = KMeans(2, random_state=0).fit(X)
    with pytest.raises(InvalidDataError, match="X has 3 features, but KMeans is expecting 4"):
        km.predict(X[:, :3])
    with pytest.raises(InvalidDataError, match=r"sample_weight\.shape == \(5,\), expected \(30,\)"):
        KMeans(2).fit(X, sample_weight=np.ones(5))
    with pytest.raises(InvalidDataError, match="non-negative; found -1"):
        KMeans(2).fit(X, sample_weight=np.r_[-1.0, np.ones(29)])


def test_fit_does_not_change_parameters() -> None:
    X = np.random.default_rng(0).normal(size=(30, 4))
    km = KMeans(2, init=X[:2].copy(), n_init=5)
    with pytest.warns(RuntimeWarning, match="performing only one init"):
        km.fit(X)
    assert km.n_init == 5


def test_sklearn_clone_and_params() -> None:
    from sklearn.base import clone

    km = KMeans(4, init="random", tol=0.1, cache=False)
    assert clone(km).get_params() == km.get_params()


# ------------------------------------------------------------------ memory


@pytest.mark.slow
@pytest.mark.parametrize("init", ["k-means||", "k-means++"])
def test_streamed_fit_never_materializes_data_on_client(process_client: object, tmp_path: object, init: str) -> None:
    """A cache=False fit on a Zarr store: the data (64 MB) never comes to the client process."""
    n, d = 250_000, 64
    path = os.path.join(tmp_path, "big.zarr")
    from daskcluster.datasets import make_blobs as lazy_blobs

    X, _, _ = lazy_blobs(n, d, centers=5, chunk_rows=25_000, random_state=0, dtype="float32")
    write_zarr(X, path, chunk_bytes=2_000_000)
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    t = threading.Thread(target=sample)
    t.start()
    try:
        km = KMeans(5, init=init, cache=False, random_state=0, max_iter=5).fit(path)
    finally:
        stop.set()
        t.join()
    assert isinstance(km.labels_, da.Array)
    assert np.isfinite(km.inertia_)
    assert peak[0] - base < 32e6, f"client RSS grew by {(peak[0] - base) / 1e6:.1f} MB for a 64 MB dataset"


@pytest.mark.slow
def test_fit_leaves_no_keys_on_cluster(process_client: object, X_blobs: np.ndarray) -> None:
    """Seeding and iterations release everything: no growth of worker memory fit after fit."""
    Xd = da.from_array(X_blobs, chunks=1000)

    def n_keys() -> int:
        return sum(process_client.run(lambda dask_worker: len(dask_worker.data)).values())  # type: ignore[attr-defined]

    KMeans(10, random_state=0, cache=True).fit(Xd)
    before = n_keys()
    for seed in range(3):
        KMeans(10, random_state=seed, cache=True).fit(Xd)
    time.sleep(0.2)
    assert n_keys() <= before
