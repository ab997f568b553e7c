"""KMeans against scikit-learn where the algorithms coincide (same explicit init, n_init=1)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs

from daskcluster import KMeans, scaled

CHUNKINGS = {
    "one": lambda n: (n,),
    "many": lambda n: (n // 7,) * 7 + ((n % 7,) if n % 7 else ()),
    "uneven": lambda n: (13, 500, 1, n - 514),
    "zero-length": lambda n: (300, 0, n - 600, 0, 300),
}


def blobs(dtype: type, n: int = 1500, d: int = 6, k: int = 5, seed: int = 0) -> np.ndarray:
    X, _ = make_blobs(n, d, centers=k, cluster_std=2.5, random_state=seed)
    return X.astype(dtype)


def reference(X: np.ndarray, init: np.ndarray, **kw: object) -> SkKMeans:
    return SkKMeans(len(init), init=init, n_init=1, algorithm="lloyd", **kw).fit(X)


@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-7), (np.float32, 1e-4)])
@pytest.mark.parametrize("chunking", sorted(CHUNKINGS))
def test_equals_sklearn_lloyd(dtype: type, rtol: float, chunking: str, algorithm: str) -> None:
    """Both algorithms take the labels of scikit-learn's Lloyd in every iteration: same n_iter,
    labels and (to float rounding of the sums) centers; 'elkan' computes fewer distances."""
    X = blobs(dtype)
    init = X[[3, 100, 200, 700, 1200]].copy()
    ref = reference(X, init)
    Xd = da.from_array(X, chunks=(CHUNKINGS[chunking](len(X)), X.shape[1]))
    km = KMeans(5, init=init, n_init=1, algorithm=algorithm).fit(Xd)
    assert km.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(km.inertia_, ref.inertia_, rtol=rtol)
    assert km.cluster_centers_.dtype == ref.cluster_centers_.dtype
    np.testing.assert_array_equal(km.labels_.compute(), ref.labels_)
    if algorithm == "elkan":  # and the same centers as our Lloyd, to the order of float64 additions
        lloyd = KMeans(5, init=init, n_init=1, algorithm="lloyd").fit(Xd)
        np.testing.assert_allclose(km.cluster_centers_, lloyd.cluster_centers_, rtol=1e-12, atol=1e-12)


def test_equals_sklearn_with_sample_weight_and_max_iter() -> None:
    X = blobs(np.float64)
    w = np.random.default_rng(1).uniform(0.1, 3.0, len(X))
    init = X[:5].copy()
    for max_iter in (1, 2, 5):
        ref = reference(X, init, max_iter=max_iter).fit(X, sample_weight=w)
        km = KMeans(5, init=init, max_iter=max_iter).fit(da.from_array(X, chunks=400), sample_weight=w)
        assert km.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-7)
        np.testing.assert_allclose(km.inertia_, ref.inertia_, rtol=1e-7)


def test_equals_sklearn_on_scaled_uint8() -> None:
    rng = np.random.default_rng(0)
    X8 = rng.integers(0, 256, size=(800, 10), dtype=np.uint8)
    X8[:400, :5] //= 4
    init = (X8[[0, 500, 700]] / 255).astype(np.float32)
    ref = reference((X8 / 255).astype(np.float32), init)
    km = KMeans(3, init=init).fit(scaled(X8, 1 / 255))
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(km.inertia_, ref.inertia_, rtol=1e-4)
    assert km.n_iter_ == ref.n_iter_


def test_predict_transform_score_equal_sklearn() -> None:
    X = blobs(np.float64)
    init = X[:5].copy()
    ref = reference(X, init)
    km = KMeans(5, init=init).fit(X)
    Xd = da.from_array(X, chunks=250)
    np.testing.assert_array_equal(km.predict(X), ref.predict(X))
    np.testing.assert_array_equal(km.predict(Xd).compute(), ref.predict(X))
    np.testing.assert_allclose(km.transform(X), ref.transform(X), rtol=1e-7)
    assert isinstance(km.transform(Xd), da.Array)
    np.testing.assert_allclose(km.score(Xd), ref.score(X), rtol=1e-7)
    np.testing.assert_array_equal(KMeans(5, init=init).fit_predict(X), ref.labels_)
    np.testing.assert_allclose(KMeans(5, init=init).fit_transform(X), ref.transform(X), rtol=1e-7)


def test_eager_in_eager_out_lazy_in_lazy_out() -> None:
    X = blobs(np.float64, n=300)
    km = KMeans(3, random_state=0).fit(X)
    assert isinstance(km.labels_, np.ndarray)
    km = KMeans(3, random_state=0).fit(da.from_array(X, chunks=100))
    assert isinstance(km.labels_, da.Array)
    assert km.labels_.chunks == ((100, 100, 100),)


def test_empty_cluster_relocated_to_far_point_not_origin() -> None:
    X = np.concatenate([np.full((50, 2), 10.0), np.full((50, 2), 20.0), [[100.0, 100.0]]])
    X += np.random.default_rng(0).normal(0, 0.1, X.shape)
    # third center far from everything: its cluster is empty in the first iteration
    init = np.array([[10.0, 10.0], [20.0, 20.0], [-500.0, -500.0]])
    ref = reference(X, init)
    km = KMeans(3, init=init).fit(da.from_array(X, chunks=30))
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-7)
    assert not np.any(np.all(km.cluster_centers_ == 0, axis=1))
    assert np.any(np.all(np.abs(km.cluster_centers_ - 100) < 1, axis=1))


@pytest.mark.slow
def test_equals_sklearn_on_process_cluster(process_client: object) -> None:
    X = blobs(np.float64, n=3000)
    init = X[[1, 2, 3, 4, 5]].copy()
    ref = reference(X, init)
    km = KMeans(5, init=init, cache=True).fit(da.from_array(X, chunks=(400, 6)))
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-7)
    np.testing.assert_allclose(km.inertia_, ref.inertia_, rtol=1e-7)
    assert km.n_iter_ == ref.n_iter_
