"""Metrics equal scikit-learn's on in-memory data, for NumPy and lazy Dask labels."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import make_blobs

from daskcluster import metrics as M
from daskcluster.errors import InvalidDataError
from daskcluster.engine import count_passes


@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = make_blobs(1200, 5, centers=4, cluster_std=2.0, random_state=0)
    pred = (y + (np.arange(1200) % 7 == 0)) % 4  # a noisy clustering
    return X, y, pred


LABEL_SCORES = [
    (M.adjusted_rand_score, skm.adjusted_rand_score),
    (M.normalized_mutual_info_score, skm.normalized_mutual_info_score),
    (M.homogeneity_completeness_v_measure, skm.homogeneity_completeness_v_measure),
]


@pytest.mark.parametrize("ours, theirs", LABEL_SCORES)
@pytest.mark.parametrize("lazy", [False, True])
def test_label_scores_equal_sklearn(clustered, ours, theirs, lazy: bool) -> None:  # type: ignore[no-untyped-def]
    _, y, pred = clustered
    t, p = (da.from_array(y, chunks=250), da.from_array(pred, chunks=333)) if lazy else (y, pred)
    np.testing.assert_allclose(ours(t, p), theirs(y, pred), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ours, theirs", LABEL_SCORES)
def test_label_scores_on_arbitrary_label_values(ours, theirs) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    y = rng.choice([-5, 3, 1000, 7], 500)
    pred = rng.choice([2.0, -1.0, 9.0], 500)
    np.testing.assert_allclose(ours(y, da.from_array(pred, chunks=100)), theirs(y, pred), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ["perfect", "one-cluster", "singletons"])
def test_label_score_edge_cases(case: str) -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = {"perfect": np.array([5, 5, 3, 3, 1, 1]), "one-cluster": np.zeros(6, int), "singletons": np.arange(6)}[case]
    for ours, theirs in LABEL_SCORES:
        np.testing.assert_allclose(ours(y, pred), theirs(y, pred), rtol=1e-10, atol=1e-12)


def test_accuracies(clustered) -> None:  # type: ignore[no-untyped-def]
    _, y, pred = clustered
    perm = np.array([2, 0, 3, 1])[pred]
    table = skm.cluster.contingency_matrix(y, perm)
    assert M.majority_label_accuracy(y, perm) == pytest.approx(table.max(0).sum() / len(y))
    assert M.matched_accuracy(da.from_array(y, chunks=100), perm) == pytest.approx(M.majority_label_accuracy(y, pred))


@pytest.mark.parametrize("score, theirs", [(M.calinski_harabasz_score, skm.calinski_harabasz_score),
                                           (M.davies_bouldin_score, skm.davies_bouldin_score)])
@pytest.mark.parametrize("lazy", [False, True])
def test_geometric_scores_equal_sklearn(clustered, score, theirs, lazy: bool) -> None:  # type: ignore[no-untyped-def]
    X, _, pred = clustered
    Xs, labels = (da.from_array(X, chunks=(170, 5)), da.from_array(pred, chunks=100)) if lazy else (X, pred)
    with count_passes() as c:
        got = score(Xs, labels)
    np.testing.assert_allclose(got, theirs(X, pred), rtol=1e-10)
    assert c.passes == 2


def test_geometric_scores_with_string_labels_and_gaps(clustered) -> None:  # type: ignore[no-untyped-def]
    X, _, pred = clustered
    names = np.array(["a", "c", "q", "z"])[pred]
    np.testing.assert_allclose(M.calinski_harabasz_score(X, names), skm.calinski_harabasz_score(X, names), rtol=1e-10)
    gaps = pred * 3
    np.testing.assert_allclose(M.davies_bouldin_score(X, gaps), skm.davies_bouldin_score(X, gaps), rtol=1e-10)


def test_inertia_equals_kmeans_inertia(clustered) -> None:  # type: ignore[no-untyped-def]
    from sklearn.cluster import KMeans

    X, _, _ = clustered
    km = KMeans(4, n_init=1, random_state=0).fit(X)
    np.testing.assert_allclose(M.inertia(da.from_array(X, chunks=300), km.cluster_centers_), km.inertia_, rtol=1e-10)


def test_silhouette_exact_and_sampled(clustered) -> None:  # type: ignore[no-untyped-def]
    X, _, pred = clustered
    exact = skm.silhouette_score(X, pred)
    np.testing.assert_allclose(M.silhouette_score(X, pred, sample_size=None), exact, rtol=1e-10)
    bound = M.silhouette_error_bound(400)
    estimates = [M.silhouette_score(da.from_array(X, chunks=200), da.from_array(pred, chunks=200), sample_size=400,
                                    random_state=s) for s in range(10)]
    assert all(abs(e - exact) <= bound for e in estimates)
    assert len(set(estimates)) > 1  # really sampled
    assert M.silhouette_score(X, pred, sample_size=400, random_state=3) == estimates[3]


def test_metric_errors(clustered) -> None:  # type: ignore[no-untyped-def]
    X, _, pred = clustered
    with pytest.raises(InvalidDataError, match="Number of labels is 1"):
        M.calinski_harabasz_score(X, np.zeros(len(X), int))
    with pytest.raises(InvalidDataError, match=r"shape \(1200,\)"):
        M.davies_bouldin_score(X, pred[:10])
    with pytest.raises(InvalidDataError, match=r"same length.*\(3,\) and \(2,\)"):
        M.adjusted_rand_score([1, 2, 3], [1, 2])
