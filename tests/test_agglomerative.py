"""AgglomerativeClustering: scikit-learn's results below max_samples; above, a weighted tree of
k-means micro-clusters that is exact for rows standing at their micro-cluster's mean, and that
finds blobs of known structure on one chunk, many chunks and a process cluster."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering as SkAgglomerative
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from daskcluster import AgglomerativeClustering
from daskcluster.cluster._linkage import weighted_tree
from daskcluster.errors import InvalidParameterError, NonFiniteDataError

LINKAGES = ["ward", "complete", "average", "single"]
#: Five well-separated blobs (centers 8 apart, unit deviation): their clusters are the truth.
CENTERS = np.array([[0, 0], [8, 0], [0, 8], [8, 8], [4, 4]], dtype=float)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=3000, centers=CENTERS, cluster_std=1.0, random_state=1)
    return X, y


def test_book_children() -> None:
    X = np.array([0, 2, 5, 8.5]).reshape(-1, 1)
    for linkage in ("complete", "ward"):
        agg = AgglomerativeClustering(linkage=linkage).fit(X)
        assert agg.children_.tolist() == [[0, 1], [2, 3], [4, 5]]
        assert agg.fit_path_ == "exact" and agg.n_leaves_ == 4


@pytest.mark.parametrize("linkage", LINKAGES)
def test_equals_sklearn_below_max_samples(linkage: str) -> None:
    X, _ = make_blobs(n_samples=300, centers=4, random_state=0)
    ours = AgglomerativeClustering(n_clusters=4, linkage=linkage, compute_distances=True).fit(X)
    ref = SkAgglomerative(n_clusters=4, linkage=linkage, compute_distances=True).fit(X)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_array_equal(ours.children_, ref.children_)
    np.testing.assert_array_equal(ours.distances_, ref.distances_)
    assert (ours.n_leaves_, ours.n_connected_components_, ours.n_clusters_) == (300, 1, 4)


def test_distance_threshold_and_lazy_input_below_max_samples() -> None:
    X, _ = make_blobs(n_samples=200, centers=3, random_state=2)
    ref = SkAgglomerative(n_clusters=None, distance_threshold=10.0).fit(X)
    ours = AgglomerativeClustering(n_clusters=None, distance_threshold=10.0).fit(da.from_array(X, chunks=70))
    assert isinstance(ours.labels_, da.Array) and ours.labels_.chunks == ((70, 70, 60),)
    np.testing.assert_array_equal(ours.labels_.compute(), ref.labels_)
    assert ours.n_clusters_ == ref.n_clusters_
    np.testing.assert_array_equal(ours.distances_, ref.distances_)


@pytest.mark.parametrize("linkage", LINKAGES)
def test_weighted_tree_is_the_tree_of_repeated_rows(linkage: str) -> None:
    """Phase 2 on points with counts = scikit-learn on the rows repeated: the same merge
    distances above the zero-distance merges of the repeats, and the same partitions."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(40, 2))
    counts = rng.integers(1, 6, size=40)
    rows = np.repeat(points, counts, axis=0)
    tree = weighted_tree(points, counts.astype(float), linkage)
    ref = SkAgglomerative(n_clusters=4, linkage=linkage, compute_distances=True).fit(rows)
    # Summation order differs (row-level vs weighted updates): a few ulps of the distances.
    np.testing.assert_allclose(tree.distances, np.sort(ref.distances_[ref.distances_ > 0]), rtol=1e-12)
    first_row = np.cumsum(counts) - counts
    assert adjusted_rand_score(tree.cut(4), ref.labels_[first_row]) == 1.0
    assert np.all(np.diff(tree.distances) >= 0) and tree.children.max() == 2 * 40 - 3  # the root, node 78, is no child


def two_phase(**kw: object) -> AgglomerativeClustering:
    return AgglomerativeClustering(n_clusters=5, max_samples=500, n_micro_clusters=60, random_state=0, **kw)


@pytest.mark.parametrize("chunks", [None, 3000, 250, (1000, 7, 1993)], ids=["numpy", "one", "many", "uneven"])
def test_two_phase_finds_blobs(blobs: tuple[np.ndarray, np.ndarray], chunks: object) -> None:
    X, y = blobs
    agg = two_phase(compute_distances=True).fit(X if chunks is None else da.from_array(X, chunks=(chunks, 2)))
    assert agg.fit_path_ == "two-phase"
    assert isinstance(agg.labels_, np.ndarray if chunks is None else da.Array)
    labels = dask.compute(agg.labels_)[0]
    assert adjusted_rand_score(y, labels) >= 0.95
    assert agg.n_leaves_ == agg.micro_centers_.shape[0] <= 60 and agg.micro_counts_.sum() == len(X)
    assert agg.children_.shape == (agg.n_leaves_ - 1, 2) and agg.distances_.shape == (agg.n_leaves_ - 1,)
    # every row is in the cluster of its nearest micro-cluster mean's leaf
    assert np.bincount(labels, minlength=5).sum() == len(X) and set(labels) == set(range(5))


def test_two_phase_distance_threshold(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, _y = blobs
    full = two_phase(compute_distances=True).fit(X)
    cut = AgglomerativeClustering(n_clusters=None, distance_threshold=float(full.distances_[-5]) + 1e-9,
                                  max_samples=500, n_micro_clusters=60, random_state=0).fit(X)
    assert cut.n_clusters_ == 5
    assert adjusted_rand_score(full.labels_, cut.labels_) == 1.0


@pytest.mark.slow
def test_two_phase_on_process_cluster(blobs: tuple[np.ndarray, np.ndarray], process_client: object) -> None:
    X, y = blobs
    agg = two_phase(linkage="average").fit(da.from_array(X, chunks=(500, 2)))
    assert isinstance(agg.labels_, da.Array)
    assert adjusted_rand_score(y, agg.labels_.compute()) >= 0.95


def test_nan_named_with_its_row() -> None:
    X = np.random.default_rng(0).normal(size=(50, 2))
    X[17, 1] = np.nan
    with pytest.raises(NonFiniteDataError, match=r"nan at row 17, feature 1"):
        AgglomerativeClustering().fit(X)
    big = np.random.default_rng(0).normal(size=(800, 2))
    big[611, 0] = np.inf
    with pytest.raises(NonFiniteDataError, match=r"row 611, feature 0"):
        two_phase().fit(big)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"linkage": "centroid"}, (r"'linkage' parameter of AgglomerativeClustering must be .*'ward'.*"
                                  r"Got 'centroid'")),
        ({"linkage": "ward", "metric": "cosine"}, "cosine was provided as metric. Ward can only work with euclidean"),
        ({"n_clusters": 2, "distance_threshold": 1.0}, "Exactly one of n_clusters and distance_threshold"),
        ({"n_clusters": None, "distance_threshold": 1.0, "compute_full_tree": False}, "compute_full_tree must be True"),
        ({"max_samples": 1}, r"'max_samples' parameter .* range \[2, inf\)\. Got 1"),
        ({"n_clusters": 8, "n_micro_clusters": 5}, "n_micro_clusters=5 should be >= n_clusters=8"),
    ],
)
def test_bad_parameters(params: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        AgglomerativeClustering(**params).fit(np.zeros((10, 2)))  # type: ignore[arg-type]


def test_options_of_the_exact_route_refused_above_max_samples(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = blobs
    with pytest.raises(InvalidParameterError, match=r"metric='precomputed' needs the exact route.*max_samples >= 3000"):
        two_phase(linkage="average", metric="precomputed").fit(X)
    with pytest.raises(InvalidParameterError, match=r"connectivity=.* needs the exact route"):
        two_phase(connectivity=np.eye(3000)).fit(X)
