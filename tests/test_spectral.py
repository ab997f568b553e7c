"""SpectralClustering: scikit-learn's results below max_samples (the book's moons, gamma 100 and 1);
above, the spectral embedding of weighted micro-clusters, which is exactly the embedding of the
rows standing at their micro-cluster's mean, and finds blobs of known structure."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import SpectralClustering as SkSpectral
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import rbf_kernel

from daskcluster import SpectralClustering
from daskcluster.cluster._spectral import cluster_qr, weighted_embedding
from daskcluster.errors import InvalidParameterError, NonFiniteDataError

#: Five well-separated blobs (centers 8 apart, unit deviation): their clusters are the truth.
CENTERS = np.array([[0, 0], [8, 0], [0, 8], [8, 8], [4, 4]], dtype=float)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=3000, centers=CENTERS, cluster_std=1.0, random_state=1)
    return X, y


@pytest.fixture(scope="module")
def moons() -> np.ndarray:
    # the book's moons (noise 0.05, random_state 42) at half the book's 1,000 rows, for time
    return make_moons(n_samples=500, noise=0.05, random_state=42)[0]


@pytest.mark.parametrize("gamma", [100, 1])
def test_book_moons_equal_sklearn(moons: np.ndarray, gamma: float) -> None:
    ours = SpectralClustering(n_clusters=2, gamma=gamma, random_state=42).fit(moons)
    ref = SkSpectral(n_clusters=2, gamma=gamma, random_state=42).fit(moons)
    assert ours.fit_path_ == "exact"
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_array_equal(ours.affinity_matrix_, ref.affinity_matrix_)


def test_lazy_input_below_max_samples_gives_lazy_labels(moons: np.ndarray) -> None:
    ref = SkSpectral(n_clusters=2, gamma=100, random_state=42, assign_labels="cluster_qr").fit(moons)
    ours = SpectralClustering(n_clusters=2, gamma=100, random_state=42, assign_labels="cluster_qr")
    labels = ours.fit_predict(da.from_array(moons, chunks=300))
    assert isinstance(labels, da.Array) and labels.chunks == ((300, 200),)
    np.testing.assert_array_equal(labels.compute(), ref.labels_)


def test_weighted_embedding_is_the_embedding_of_repeated_rows() -> None:
    """Each embedding vector, repeated over the rows a point stands for, solves the rows'
    generalized problem L x = λ D x (no self-loops, as scikit-learn), and the λ are the rows'
    smallest eigenvalues, with D-norm 1 as scikit-learn's embedding."""
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(size=(12, 2)), rng.normal(size=(12, 2)) + 3])
    counts = rng.integers(1, 5, size=len(points))
    rows = np.repeat(points, counts, axis=0)
    W = rbf_kernel(rows, gamma=0.5)
    np.fill_diagonal(W, 0.0)
    D = W.sum(axis=1)
    L = np.diag(D) - W
    lam_rows = np.linalg.eigvalsh(L / np.sqrt(np.outer(D, D)))[:3]
    V = weighted_embedding(rbf_kernel(points, gamma=0.5), counts, 3)
    x = np.repeat(V, counts, axis=0)
    lam = np.einsum("ik,ij,jk->k", x, L, x) / np.einsum("ik,i,ik->k", x, D, x)
    # Dense symmetric eigensolvers on matrices of norm <= 2: residuals and eigenvalues are
    # backward stable to a small multiple of n * machine epsilon (n < 100 here).
    np.testing.assert_allclose(L @ x, D[:, None] * x * lam, atol=1e-12)
    np.testing.assert_allclose(lam, lam_rows, atol=1e-12)
    np.testing.assert_allclose(np.einsum("ik,i,ik->k", x, D, x), 1.0, rtol=1e-12)
    assert np.all(V[np.abs(V).argmax(axis=0), np.arange(3)] > 0)


def test_cluster_qr_ignores_repeats() -> None:
    rng = np.random.default_rng(1)
    V = np.linalg.qr(rng.normal(size=(30, 3)))[0]
    counts = rng.integers(1, 4, size=30)
    np.testing.assert_array_equal(np.repeat(cluster_qr(V), counts), cluster_qr(np.repeat(V, counts, axis=0)))


def two_phase(**kw: object) -> SpectralClustering:
    return SpectralClustering(n_clusters=5, gamma=0.1, max_samples=500, n_micro_clusters=60, random_state=0, **kw)


@pytest.mark.parametrize(("chunks", "assign_labels"), [(None, "kmeans"), (3000, "cluster_qr"), (250, "kmeans")],
                         ids=["numpy", "one-chunk", "many-chunks"])
def test_two_phase_finds_blobs(blobs: tuple[np.ndarray, np.ndarray], chunks: object, assign_labels: str) -> None:
    X, y = blobs
    sc = two_phase(assign_labels=assign_labels).fit(X if chunks is None else da.from_array(X, chunks=(chunks, 2)))
    assert sc.fit_path_ == "two-phase"
    assert isinstance(sc.labels_, np.ndarray if chunks is None else da.Array)
    assert adjusted_rand_score(y, dask.compute(sc.labels_)[0]) >= 0.95
    n_micro = sc.micro_centers_.shape[0]
    assert sc.affinity_matrix_.shape == (n_micro, n_micro) and sc.embedding_.shape == (n_micro, 5)
    assert sc.micro_counts_.sum() == len(X)


@pytest.mark.slow
def test_two_phase_on_process_cluster(blobs: tuple[np.ndarray, np.ndarray], process_client: object) -> None:
    X, y = blobs
    sc = two_phase().fit(da.from_array(X, chunks=(500, 2)))
    assert isinstance(sc.labels_, da.Array)
    assert adjusted_rand_score(y, sc.labels_.compute()) >= 0.95


def test_two_phase_same_model_for_same_random_state(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = blobs
    a, b = two_phase().fit(X), two_phase().fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.micro_centers_, b.micro_centers_)


def test_nan_named_with_its_row(moons: np.ndarray) -> None:
    X = moons.copy()
    X[123, 0] = np.nan
    with pytest.raises(NonFiniteDataError, match=r"nan at row 123, feature 0"):
        SpectralClustering(n_clusters=2).fit(X)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"gamma": -1.0}, r"'gamma' parameter of SpectralClustering must be a float in the range \[0.*, inf\)\. Got -1"),
        ({"affinity": "foo"}, r"'affinity' parameter of SpectralClustering must be .*'rbf'.*Got 'foo'"),
        ({"assign_labels": "qr"}, r"'assign_labels' parameter .* Got 'qr'"),
        ({"n_micro_clusters": 3}, "n_micro_clusters=3 should be >= n_clusters=8"),
    ],
)
def test_bad_parameters(params: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        SpectralClustering(**params).fit(np.zeros((10, 2)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"affinity": "nearest_neighbors"}, (r"affinity='nearest_neighbors' needs the exact route.*supports a kernel "
                                            r"of \[.*'rbf'.*max_samples >= 3000")),
        ({"assign_labels": "discretize"}, (r"assign_labels='discretize' needs the exact route.*\['kmeans', "
                                          r"'cluster_qr'\]")),
    ],
)
def test_options_of_the_exact_route_refused_above_max_samples(blobs: tuple[np.ndarray, np.ndarray],
                                                              params: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        two_phase(**params).fit(blobs[0])
