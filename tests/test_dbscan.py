"""DBSCAN against scikit-learn's: the same core samples, noise and labels (scikit-learn numbers
clusters by their first core sample and gives a border sample the first cluster its search
reaches, which this implementation reproduces, so labels are compared exactly), whatever the
chunks, the partitions and the scheduler; predict against the book's recipe; bad input."""

from __future__ import annotations

import gc
import os

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import DBSCAN as SkDBSCAN
from sklearn.datasets import make_blobs, make_moons
from sklearn.neighbors import KNeighborsClassifier

from daskcluster import DBSCAN, persistence
from daskcluster.cluster.dbscan import _plan
from daskcluster.errors import (
    InvalidDataError,
    InvalidParameterError,
    NonFiniteDataError,
    NotFittedError,
)

# Exact equality is the right check: both sides decide "within eps" by the same float64 sum of
# squared differences, feature by feature, compared with eps**2 (scikit-learn's k-d tree), and
# neighbour counts of unit or integer weights are exact sums. Only the order of summing
# non-integer weights differs, which no test here uses.


def moons(eps: float = 0.05) -> tuple[np.ndarray, float]:
    X, _ = make_moons(n_samples=1000, noise=0.05, random_state=42)
    return X, eps


@pytest.fixture
def small_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many partitions on small data: boxes of ~150 rows, so clusters cross many borders."""
    monkeypatch.setattr(_plan, "PARTITION_ROWS", 150)
    monkeypatch.setattr(_plan, "MIN_PARALLEL_ROWS", 100)


def fitted(X: np.ndarray | da.Array, eps: float, min_samples: int = 5, **kw: object) -> DBSCAN:
    return DBSCAN(eps=eps, min_samples=min_samples).fit(X, **kw)


def assert_same(model: DBSCAN, X: np.ndarray, eps: float, min_samples: int = 5,
                sample_weight: np.ndarray | None = None) -> SkDBSCAN:
    ref = SkDBSCAN(eps=eps, min_samples=min_samples, algorithm="kd_tree").fit(X, sample_weight=sample_weight)
    labels, cores, components = dask.compute(model.labels_, model.core_sample_indices_, model.components_)
    np.testing.assert_array_equal(cores, ref.core_sample_indices_)
    np.testing.assert_array_equal(labels, ref.labels_)
    np.testing.assert_array_equal(components, ref.components_)
    assert model.n_clusters_ == ref.labels_.max() + 1
    assert labels.dtype == np.int64 and cores.dtype == np.int64
    return ref


def test_moons_as_the_book() -> None:
    X, eps = moons(0.05)
    model = fitted(X, eps)
    assert len(model.core_sample_indices_) == 808
    assert set(np.unique(model.labels_)) == {-1, 0, 1, 2, 3, 4, 5, 6}
    assert_same(model, X, eps)
    wide = fitted(X, 0.2)
    assert set(np.unique(wide.labels_)) == {0, 1}  # the two moons
    assert_same(wide, X, 0.2)
    assert isinstance(model.labels_, np.ndarray) and model.n_features_in_ == 2


@pytest.mark.parametrize("chunks", [1000, 97, (100, 600, 300)], ids=["one", "many", "uneven"])
@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_moons_chunks_and_partitions(chunks: object, eps: float, small_partitions: None) -> None:
    X, _ = moons()
    model = fitted(da.from_array(X, chunks=(chunks, 2)), eps)
    assert model._plan.n_partitions >= 4
    assert isinstance(model.labels_, da.Array) and isinstance(model.core_sample_indices_, da.Array)
    assert model.labels_.chunks == da.from_array(X, chunks=(chunks, 2)).chunks[:1]
    assert_same(model, X, eps)


@pytest.mark.parametrize("n_features, eps, min_samples", [(2, 0.4, 5), (3, 0.8, 5), (5, 1.2, 4)])
def test_blobs_and_more_dimensions(n_features: int, eps: float, min_samples: int, small_partitions: None) -> None:
    X, _ = make_blobs(2500, n_features=n_features, centers=6, random_state=n_features)
    model = fitted(da.from_array(X, chunks=(700, n_features)), eps, min_samples)
    ref = assert_same(model, X, eps, min_samples)
    assert ref.labels_.max() >= 2 and (ref.labels_ == -1).any()


def test_long_thin_cluster_crosses_many_partitions(small_partitions: None) -> None:
    t = np.linspace(0, 60, 3000)
    X = np.column_stack([t, np.sin(t)]) + np.random.default_rng(0).normal(0, 0.01, (3000, 2))
    model = fitted(X, 0.1, 3)
    assert model._plan.n_partitions >= 15
    assert set(np.unique(model.labels_)) == {0}
    assert_same(model, X, 0.1, 3)


def test_ties_at_eps_on_a_lattice(small_partitions: None) -> None:
    """Coordinates on a 0.1 lattice put many pairs at exactly eps (to rounding)."""
    X = np.round(np.random.default_rng(1).uniform(0, 10, (2000, 2)), 1)
    assert_same(fitted(X, 0.2, 4), X, 0.2, 4)


def test_sample_weight_as_scikit_learn(small_partitions: None) -> None:
    X, eps = moons(0.1)
    w = np.random.default_rng(2).integers(-1, 4, len(X)).astype(float)  # zero and negative too
    model = fitted(da.from_array(X, chunks=(250, 2)), eps, 5, sample_weight=w)
    assert_same(model, X, eps, 5, sample_weight=w)
    heavy = np.ones(len(X))
    heavy[7] = 5  # a core sample by itself
    assert 7 in fitted(X, 1e-9, 5, sample_weight=heavy).core_sample_indices_


def test_all_noise_and_float32() -> None:
    X, _ = moons()
    model = fitted(X, 1e-6)
    assert (model.labels_ == -1).all() and model.core_sample_indices_.shape == (0,)
    assert model.components_.shape == (0, 2) and model.n_clusters_ == 0
    X32 = X.astype(np.float32)
    assert_same(fitted(X32, 0.05), X32, 0.05)


def book_recipe(model: DBSCAN, X_new: np.ndarray, eps: float) -> np.ndarray:
    """Hands-On ML's recipe: a classifier on the core samples, anomalies beyond eps (a lazy
    fit's arrays computed first: Dask's query-planning backend has no integer indexing)."""
    labels, cores, components = dask.compute(model.labels_, model.core_sample_indices_, model.components_)
    knn = KNeighborsClassifier(n_neighbors=1).fit(components, labels[cores])
    dist, _ = knn.kneighbors(X_new, n_neighbors=1)
    pred = knn.predict(X_new)
    pred[dist.ravel() > eps] = -1
    return pred


@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_predict_matches_the_book(eps: float, small_partitions: None) -> None:
    X, _ = moons()
    model = fitted(X, eps)
    X_new = np.vstack([[[-0.5, 0], [0, 0.5], [1, -0.1], [2, 1]],
                       np.random.default_rng(3).uniform([-1.5, -1], [2.5, 1.5], (500, 2))])
    expected = book_recipe(model, X_new, eps)
    np.testing.assert_array_equal(model.predict(X_new), expected)
    lazy = model.predict(da.from_array(X_new, chunks=(100, 2)))
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), expected)
    assert (expected == -1).any() and (expected >= 0).any()
    np.testing.assert_array_equal(model.predict(X[model.core_sample_indices_]),
                                  model.labels_[model.core_sample_indices_])


def test_lazy_results_keep_their_folder_while_read(small_partitions: None) -> None:
    X, eps = moons()
    model = fitted(da.from_array(X, chunks=(300, 2)), eps)
    folder = model._cores.path
    assert os.path.isdir(folder) and not [f for f in os.listdir(folder) if f.startswith("stage-")]
    expected = model.labels_.compute()
    labels, predicted = model.labels_, model.predict(da.from_array(X, chunks=(500, 2)))
    model.fit(da.from_array(X, chunks=(300, 2)))  # a new fit: the old arrays still read the old folder
    gc.collect()
    np.testing.assert_array_equal(labels.compute(), expected)
    np.testing.assert_array_equal(predicted.compute(), expected)
    del labels, predicted
    gc.collect()
    assert not os.path.exists(folder)
    # an estimator gone, its labels still readable
    labels = DBSCAN(eps=eps).fit(da.from_array(X, chunks=(300, 2))).labels_
    gc.collect()
    np.testing.assert_array_equal(labels.compute(), expected)
    assert isinstance(fitted(X, eps)._cores, list)  # in-memory input: no folder kept


@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
def test_saved_model_predicts_the_same(lazy: bool, small_partitions: None, tmp_path: object) -> None:
    X, eps = moons()
    model = fitted(da.from_array(X, chunks=(300, 2)) if lazy else X, eps)
    X_new = np.random.default_rng(5).uniform([-1.5, -1], [2.5, 1.5], (400, 2))
    expected = model.predict(X_new)
    labels, cores, components = dask.compute(model.labels_, model.core_sample_indices_, model.components_)
    path = persistence.save(model, tmp_path / "dbscan.zip")  # type: ignore[operator]
    not_saved = persistence.read_header(path)["not_saved"]
    n_partitions = model._plan.n_partitions
    assert n_partitions >= 4
    if lazy:  # the core samples were read from the fit's folder into the file: it may go
        assert set(not_saved) == {"labels_", "core_sample_indices_", "components_"}
        folder = model._cores.path
        del model
        gc.collect()
        assert not os.path.exists(folder)
    else:
        assert not_saved == {}
    loaded = persistence.load(path)
    assert loaded._plan.n_partitions == n_partitions and loaded.n_clusters_ == labels.max() + 1
    np.testing.assert_array_equal(loaded.predict(X_new), expected)
    lazy_labels = loaded.predict(da.from_array(X_new, chunks=(100, 2)))
    assert isinstance(lazy_labels, da.Array)
    np.testing.assert_array_equal(lazy_labels.compute(), expected)
    np.testing.assert_array_equal(loaded.predict(X[cores]), labels[cores])
    if not lazy:
        np.testing.assert_array_equal(loaded.labels_, labels)
        np.testing.assert_array_equal(loaded.core_sample_indices_, cores)
        np.testing.assert_array_equal(loaded.components_, components)


def test_damaged_predict_state_is_refused() -> None:
    X, eps = moons()
    model = fitted(X, eps)
    model._kd_plan = {**model._kd_plan, "left": model._kd_plan["left"] + 100}
    with pytest.raises(InvalidDataError, match=r"partition plan is not a valid k-d tree .* Fit the model again"):
        model.predict(X)
    model._kd_plan = {k: v for k, v in model._kd_plan.items() if k != "lo"}
    with pytest.raises(InvalidDataError, match=r"partition plan must hold the arrays \['dim', .*got \['dim'"):
        model.predict(X)
    model._kd_plan = {**model._kd_plan, "lo": 1.0}
    with pytest.raises(InvalidDataError, match=r"partition plan holds something other than its arrays"):
        model.predict(X)
    model = fitted(X, eps)
    model._cores = [c[:, :-1] for c in model._cores]
    with pytest.raises(InvalidDataError, match=r"core samples do not match its 1 partitions of 2 features"):
        model.predict(X)


@pytest.mark.slow
def test_process_cluster(process_client: object, small_partitions: None) -> None:
    X, eps = moons()
    model = fitted(da.from_array(X, chunks=(150, 2)), eps)
    assert_same(model, X, eps)
    X_new = np.random.default_rng(4).uniform([-1.5, -1], [2.5, 1.5], (300, 2))
    np.testing.assert_array_equal(model.predict(da.from_array(X_new, chunks=(100, 2))).compute(),
                                  book_recipe(model, X_new, eps))


@pytest.mark.parametrize("params, match", [
    ({"eps": 0.0}, r"'eps' parameter of DBSCAN must be a float in the range \(0(\.0)?, inf\)\. Got 0\.0"),
    ({"eps": -1}, r"'eps' .* Got -1 instead"),
    ({"min_samples": 0}, r"'min_samples' parameter of DBSCAN must be an int in the range \[1, inf\)\. Got 0"),
    ({"metric": "manhattan"}, r"'metric' .* must be 'euclidean' \(or 'minkowski' with p=2\).* Got 'manhattan'"),
    ({"metric": "minkowski", "p": 1}, r"'p' parameter of DBSCAN must be 2 or None.* Got 1 instead"),
    ({"algorithm": "kd_tree"}, r"'algorithm' .* must be 'auto'.* Got 'kd_tree'"),
    ({"leaf_size": 10}, r"'leaf_size' .* must be 30.* Got 10"),
    ({"n_jobs": 2}, r"'n_jobs' .* must be None.* Got 2"),
    ({"metric_params": {"w": 1}}, r"'metric_params' .* must be None"),
])
def test_bad_parameters(params: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        DBSCAN(**params).fit(np.zeros((10, 2)))  # type: ignore[arg-type]


def test_bad_data() -> None:
    X, _ = moons()
    X = X.copy()
    X[612, 1] = np.nan
    with pytest.raises(NonFiniteDataError, match=r"non-finite value \(.*nan.*\) in chunk 2 at row 612, feature 1"):
        DBSCAN(eps=0.1).fit(da.from_array(X, chunks=(250, 2)))
    X[612, 1] = np.inf
    with pytest.raises(ValueError, match=r"non-finite value \(.*inf.*\) in chunk 0 at row 612"):
        DBSCAN(eps=0.1).fit(X)
    with pytest.raises(InvalidDataError, match=r"sample_weight.shape == \(3,\), expected \(1000,\)"):
        DBSCAN().fit(np.zeros((1000, 2)), sample_weight=np.ones(3))
    w = np.ones(1000)
    w[5] = np.nan
    with pytest.raises(InvalidDataError, match=r"sample_weight contains a non-finite value \(nan\) at row 5"):
        DBSCAN().fit(np.zeros((1000, 2)), sample_weight=w)
    with pytest.raises(InvalidDataError, match=r"n_features=11 .*O\(n_samples²\).* 100,000 rows \(got n_samples=100,001\)"):
        DBSCAN().fit(da.zeros((100_001, 11), chunks=(50_000, 11)))
    with pytest.raises(NotFittedError, match="not fitted yet"):
        DBSCAN().predict(np.zeros((2, 2)))
    with pytest.raises(InvalidDataError, match="X has 3 features, but DBSCAN is expecting 2 features"):
        DBSCAN(eps=0.1).fit(np.zeros((10, 2))).predict(np.zeros((2, 3)))
