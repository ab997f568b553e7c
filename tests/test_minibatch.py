"""Tests of MiniBatchKMeans: the update against Lloyd and scikit-learn, the chunk schedule,
reassignment, early stopping, determinism across schedulers and workers, errors, workflows."""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.datasets import make_blobs
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskcluster import KMeans, scaled
from daskcluster.cluster._minibatch import MiniBatchKMeans
from daskcluster.engine import count_passes, sequential
from daskcluster.errors import (
    InvalidDataError,
    InvalidParameterError,
    NonFiniteDataError,
    NotFittedError,
)
from daskcluster.io import open_array, write_zarr
from daskcluster.kernels import minibatch as M

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    X, _ = make_blobs(n_samples=6000, centers=5, n_features=4, cluster_std=1.0, random_state=0)
    return X


def lloyd_step(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """One Lloyd step, naively."""
    d = ((X[:, None, :] - centers[None]) ** 2).sum(-1)
    labels = d.argmin(1)
    return np.array([X[labels == j].mean(0) for j in range(len(centers))])


def replay_schedule(
    X: np.ndarray, chunks: tuple[int, ...], entropy: int, epochs: int, batch_size: int
) -> list[np.ndarray]:
    """The batches our fit draws, in order, rebuilt from the schedule functions."""
    starts = np.concatenate(([0], np.cumsum(chunks)[:-1]))
    out = []
    for e in range(epochs):
        for c in M.epoch_order(len(chunks), entropy, e):
            for b in M.chunk_batches(chunks[c], batch_size, entropy, e, int(c)):
                out.append(X[starts[c] + b])
    return out


# --------------------------------------------------------------------------- the update


def test_one_full_batch_step_is_a_lloyd_step(blobs: np.ndarray) -> None:
    init = blobs[[0, 1500, 3000, 4500, 5999]].copy()
    km = MiniBatchKMeans(5, init=init, batch_size=len(blobs), max_iter=1, reassignment_ratio=0.0,
                         random_state=0).fit(blobs)
    assert km.n_steps_ == 1 and km.n_iter_ == 1
    np.testing.assert_allclose(km.cluster_centers_, lloyd_step(blobs, init), rtol=1e-12, atol=1e-12)
    ref = KMeans(5, init=init, max_iter=1, tol=0.0).fit(blobs)
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-12, atol=1e-12)


def test_partial_fit_matches_sklearn_on_the_same_batches(blobs: np.ndarray) -> None:
    init = blobs[:5].copy()
    ours = MiniBatchKMeans(5, init=init, reassignment_ratio=0.0, random_state=0)
    ref = SkMiniBatchKMeans(5, init=init, n_init=1, reassignment_ratio=0.0, random_state=0)
    rng = np.random.default_rng(1)
    for _ in range(30):
        batch = blobs[rng.integers(0, len(blobs), size=int(rng.integers(50, 400)))]
        ours.partial_fit(batch)
        ref.partial_fit(batch)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-6, atol=1e-6)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_steps_ == ref.n_steps_ == 30


def test_fit_is_sklearn_partial_fit_on_our_schedule(blobs: np.ndarray) -> None:
    """``fit`` = scikit-learn's step applied to the batches of our chunk schedule, in order."""
    X = da.from_array(blobs, chunks=1100)  # 6 chunks, the last one short
    init = blobs[:5].copy()
    ours = MiniBatchKMeans(5, init=init, batch_size=256, max_iter=2, max_no_improvement=None, reassignment_ratio=0.0,
                           random_state=3).fit(X)
    ref = SkMiniBatchKMeans(5, init=init, n_init=1, reassignment_ratio=0.0)
    batches = replay_schedule(blobs, X.chunks[0], ours._entropy, 2, 256)
    for b in batches:
        ref.partial_fit(b)
    assert ours.n_steps_ == len(batches) == ref.n_steps_
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-6, atol=1e-6)


def test_dask_batch_partial_fit_equals_numpy_batch(blobs: np.ndarray) -> None:
    a = MiniBatchKMeans(5, random_state=0)
    b = MiniBatchKMeans(5, random_state=0)
    for i in range(0, 3000, 500):
        a.partial_fit(blobs[i : i + 500])
        b.partial_fit(da.from_array(blobs[i : i + 500], chunks=200))
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert isinstance(b.labels_, da.Array)
    np.testing.assert_array_equal(b.labels_.compute(), a.labels_)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-12)


def test_fit_then_partial_fit_continues_from_the_counts(blobs: np.ndarray) -> None:
    km = MiniBatchKMeans(5, random_state=0, reassignment_ratio=0.0).fit(blobs)
    counts = km._counts.copy()
    centers = km.cluster_centers_.copy()
    km.partial_fit(blobs[:100])
    assert km._counts.sum() == pytest.approx(counts.sum() + 100)
    assert np.abs(km.cluster_centers_ - centers).max() < 0.1  # heavy counts: a small move


# --------------------------------------------------------------------------- quality


def test_blobs_inertia_within_2_percent_of_kmeans(blobs: np.ndarray) -> None:
    full = KMeans(5, random_state=0).fit(blobs)
    mb = MiniBatchKMeans(5, random_state=0, batch_size=512).fit(da.from_array(blobs, chunks=1000))
    assert mb.inertia_ <= 1.02 * full.inertia_
    assert isinstance(mb.labels_, da.Array)


def test_mnist_inertia_within_2_percent_of_kmeans(mnist: tuple[np.ndarray, np.ndarray]) -> None:
    X = scaled(mnist[0][:20000], 1 / 255)
    full = KMeans(10, random_state=0).fit(X)
    mb = MiniBatchKMeans(10, random_state=0).fit(X)
    assert mb.inertia_ <= 1.02 * full.inertia_, (mb.inertia_, full.inertia_)
    assert mb.n_iter_ <= 5  # early stopping, as scikit-learn


# --------------------------------------------------------------------------- reassignment


def starved_init(X: np.ndarray) -> np.ndarray:
    init = X[:4].copy()
    return np.vstack([init, np.full((1, X.shape[1]), 1e3)])  # far from every row: gets nothing


@pytest.mark.parametrize("parallel_chunks", [1, 2])
def test_reassignment_moves_a_starved_center(blobs: np.ndarray, parallel_chunks: int) -> None:
    X = da.from_array(blobs, chunks=1500)
    init = starved_init(blobs)
    kw: dict[str, Any] = dict(init=init, batch_size=256, max_iter=1, random_state=0, parallel_chunks=parallel_chunks)
    kept = MiniBatchKMeans(5, reassignment_ratio=0.0, **kw).fit(X)
    assert np.allclose(kept.cluster_centers_[4], 1e3)  # without reassignment it starves
    assert kept._counts[4] == 0
    moved = MiniBatchKMeans(5, reassignment_ratio=0.01, **kw).fit(X)
    assert np.abs(moved.cluster_centers_[4]).max() < 50  # now among the data
    assert moved._counts[4] > 0
    assert np.bincount(dask.compute(moved.labels_)[0], minlength=5)[4] > 0


def test_partial_fit_reassigns_like_sklearn(blobs: np.ndarray) -> None:
    init = starved_init(blobs)
    ours = MiniBatchKMeans(5, init=init, random_state=0).partial_fit(blobs[:500])
    ref = SkMiniBatchKMeans(5, init=init, n_init=1, random_state=0).partial_fit(blobs[:500])
    for km in (ours, ref):  # both move the empty center onto a row of the batch
        assert any(np.array_equal(km.cluster_centers_[4], row) for row in blobs[:500])


def test_reassignment_kernel_caps_at_half_the_batch() -> None:
    state = M.MiniBatchState.start(np.zeros((6, 2)))
    state.counts[:] = [100, 0.1, 0.1, 0.1, 0.1, 0.1]
    x = np.arange(8.0).reshape(4, 2) + 500  # all rows nearest... every center: ties go to 0
    _, _, _, moved = M.minibatch_step(x, None, state, 0.5, np.random.default_rng(0), reassign=True)
    assert len(moved) == 2  # at most half of the 4 rows
    assert set(moved) <= {1, 2, 3, 4, 5}
    assert (state.counts[moved] == state.counts[[j for j in range(6) if j not in moved]].min()).all()


# --------------------------------------------------------------------------- schedule


def test_epoch_order_and_batches_are_seeded_permutations() -> None:
    o1, o2 = M.epoch_order(10, 7, 0), M.epoch_order(10, 7, 1)
    assert sorted(o1) == list(range(10)) and sorted(o2) == list(range(10))
    assert not np.array_equal(o1, o2)
    np.testing.assert_array_equal(o1, M.epoch_order(10, 7, 0))
    assert not np.array_equal(o1, M.epoch_order(10, 8, 0))
    batches = M.chunk_batches(1000, 96, 7, 0, 3)
    assert len(batches) == 10 and all(95 <= len(b) <= 105 for b in batches)
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1000))  # each row once
    assert M.chunk_batches(0, 96, 7, 0, 3) == []
    assert len(M.chunk_batches(40, 96, 7, 0, 3)) == 1


def test_fit_visits_chunks_in_the_seeded_order(blobs: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    X = da.from_array(blobs, chunks=600)
    with caplog.at_level(logging.DEBUG, logger="daskcluster.engine.sequential"):
        km = MiniBatchKMeans(5, random_state=11, max_iter=3, max_no_improvement=None).fit(X)
    orders = [m.group(1) for m in (re.search(r"chunk order (\[.*\])", r.message) for r in caplog.records) if m]
    assert orders == [str(M.epoch_order(10, km._entropy, e).tolist()) for e in range(3)]


def test_read_ahead_is_bounded(blobs: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[int] = []
    load, run = sequential._load_block, M.chunk_steps_kernel

    def counting_load(*args: Any) -> Any:
        events.append(+1)
        return load(*args)

    def counting_run(*args: Any) -> Any:
        events.append(-1)
        return run(*args)

    monkeypatch.setattr(sequential, "_load_block", counting_load)
    monkeypatch.setattr(M, "chunk_steps_kernel", counting_run)
    X = da.from_array(blobs, chunks=300)  # 20 chunks
    for parallel_chunks, prefetch in ((1, 0), (1, 2), (3, 1)):
        events.clear()
        MiniBatchKMeans(5, random_state=0, max_iter=2, max_no_improvement=None, batch_size=100,
                        prefetch=prefetch, parallel_chunks=parallel_chunks, compute_labels=False).fit(X)
        held = np.cumsum(events)
        assert events.count(-1) == 40
        assert held.max() <= parallel_chunks + prefetch


# --------------------------------------------------------------------------- stopping


def test_count_passes_counts_each_epoch_as_one_pass(blobs: np.ndarray) -> None:
    """An epoch reads every chunk once: one pass, even when early stopping cuts it short;
    partial_fit reads its batch once; labels_ of in-memory data cost one more pass."""
    X = da.from_array(blobs, chunks=1000)
    with count_passes() as full:
        km = MiniBatchKMeans(5, random_state=0, batch_size=250, max_iter=3, max_no_improvement=None,
                             compute_labels=False).fit(X)
    assert (full.passes, full.rows) == (km.n_iter_, 3 * len(blobs)) == (3, 18000)
    with count_passes() as stopped:
        km = MiniBatchKMeans(5, random_state=0, batch_size=250, max_iter=50, max_no_improvement=3,
                             compute_labels=False).fit(X)
    assert km.n_steps_ % 24 != 0 and stopped.passes == km.n_iter_ == -(-km.n_steps_ // 24)
    with count_passes() as labelled:
        km = MiniBatchKMeans(5, random_state=0, batch_size=250, max_iter=2, max_no_improvement=None,
                             parallel_chunks=2).fit(blobs)
    assert labelled.passes == km.n_iter_ + 1 == 3
    with count_passes() as partial:
        MiniBatchKMeans(5, random_state=0).partial_fit(X[:1000]).partial_fit(X[1000:1500])
    assert (partial.passes, partial.rows) == (2, 1500)


def test_early_stopping_rules(blobs: np.ndarray) -> None:
    X = da.from_array(blobs, chunks=1000)
    steps_per_epoch = 6 * 4  # 6 chunks of 1000 rows, batches of 250
    full = MiniBatchKMeans(5, random_state=0, batch_size=250, max_iter=3, max_no_improvement=None).fit(X)
    assert (full.n_steps_, full.n_iter_) == (3 * steps_per_epoch, 3)
    patient = MiniBatchKMeans(5, random_state=0, batch_size=250, max_iter=50, max_no_improvement=3).fit(X)
    assert patient.n_steps_ < 50 * steps_per_epoch
    assert patient.n_iter_ == -(-patient.n_steps_ // steps_per_epoch)
    by_tol = MiniBatchKMeans(5, random_state=0, batch_size=250, max_iter=50, max_no_improvement=None, tol=1e3).fit(X)
    assert by_tol.n_steps_ == 2  # the first step is never judged, the second is within tol


def test_compute_labels_false(blobs: np.ndarray) -> None:
    km = MiniBatchKMeans(5, random_state=0, compute_labels=False).fit(blobs)
    assert not hasattr(km, "labels_")
    full = -km.score(blobs)
    assert km.inertia_ == pytest.approx(full, rel=0.2)  # smoothed batch inertia x n_samples
    np.testing.assert_array_equal(km.fit_predict(blobs), km.predict(blobs))


# --------------------------------------------------------------------------- determinism


def fit_model(X: Any, **kw: Any) -> MiniBatchKMeans:
    params: dict[str, Any] = dict(random_state=5, batch_size=200, max_no_improvement=20, reassignment_ratio=0.05)
    params.update(kw)
    return MiniBatchKMeans(6, **params).fit(X)


def assert_same_model(a: MiniBatchKMeans, b: MiniBatchKMeans) -> None:
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a._counts, b._counts)
    assert (a.n_steps_, a.n_iter_) == (b.n_steps_, b.n_iter_)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-9)


@pytest.mark.parametrize("parallel_chunks", [1, 3])
def test_deterministic_across_local_schedulers(blobs: np.ndarray, parallel_chunks: int) -> None:
    X = da.from_array(blobs, chunks=700)
    ref = fit_model(X, parallel_chunks=parallel_chunks)
    assert_same_model(ref, fit_model(X, parallel_chunks=parallel_chunks))
    with dask.config.set(scheduler="threads"):
        assert_same_model(ref, fit_model(X, parallel_chunks=parallel_chunks, prefetch=1))
    other = fit_model(X, parallel_chunks=parallel_chunks, random_state=6)
    assert not np.array_equal(ref.cluster_centers_, other.cluster_centers_)


def test_zarr_memmap_and_scaled_sources(blobs: np.ndarray, tmp_path: Path) -> None:
    U = np.clip(blobs * 10 + 128, 0, 255).astype(np.uint8)
    write_zarr(U, tmp_path / "u.zarr", chunk_bytes=4 * 1024)  # Zarr chunks of 1024 rows
    rows = open_array(tmp_path / "u.zarr", chunk_bytes=8 * 1024).chunks[0]
    ref = fit_model(scaled(da.from_array(U, chunks=(rows, 4)), 1 / 255))
    from_zarr = fit_model(scaled(open_array(tmp_path / "u.zarr", chunk_bytes=8 * 1024), 1 / 255))
    assert_same_model(ref, from_zarr)
    assert isinstance(from_zarr.labels_, da.Array)
    np.save(tmp_path / "u.npy", U)
    mm = np.load(tmp_path / "u.npy", mmap_mode="r")
    from_memmap = fit_model(scaled(mm, 1 / 255))
    assert isinstance(from_memmap.labels_, np.ndarray)
    assert from_memmap.inertia_ == pytest.approx(-from_memmap.score(scaled(U, 1 / 255)), rel=1e-4)  # float32


@pytest.mark.slow
def test_deterministic_on_a_process_cluster(blobs: np.ndarray, process_client: Any) -> None:
    X = da.from_array(blobs, chunks=700)
    models = {pc: fit_model(X, parallel_chunks=pc) for pc in (1, 3)}
    with dask.config.set(scheduler="synchronous"):
        for pc, model in models.items():
            assert_same_model(fit_model(X, parallel_chunks=pc), model)


@pytest.mark.slow
def test_one_and_two_workers_give_the_same_model(blobs: np.ndarray, process_client: Any) -> None:
    from distributed import Client, LocalCluster

    X = da.from_array(blobs, chunks=700)
    two = fit_model(X, parallel_chunks=2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster):
        one = fit_model(X, parallel_chunks=2)
    assert_same_model(one, two)


# --------------------------------------------------------------------------- weights, edge cases


def test_unit_weights_change_nothing_and_weights_enter_the_inertia(blobs: np.ndarray) -> None:
    a = fit_model(blobs)
    b = MiniBatchKMeans(6, random_state=5, batch_size=200, max_no_improvement=20,
                        reassignment_ratio=0.05).fit(blobs, sample_weight=np.ones(len(blobs)))
    assert_same_model(a, b)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(blobs))
    c = MiniBatchKMeans(6, random_state=5).fit(blobs, sample_weight=w)
    assert c.inertia_ == pytest.approx(-c.score(blobs, sample_weight=w), rel=1e-9)


def test_zero_length_chunk_and_tiny_data() -> None:
    X = np.arange(40.0).reshape(20, 2)
    Xd = da.concatenate([da.from_array(X[:10], chunks=10), da.zeros((0, 2), chunks=((0,), (2,))),
                         da.from_array(X[10:], chunks=10)])
    km = MiniBatchKMeans(2, random_state=0).fit(Xd)
    assert km.labels_.compute().shape == (20,)
    km = MiniBatchKMeans(3, random_state=0, batch_size=1024).fit(X[:3])
    assert sorted(km.cluster_centers_[:, 0].tolist()) == [0.0, 2.0, 4.0]


def test_non_finite_rows_are_reported(blobs: np.ndarray) -> None:
    X = blobs.copy()
    X[1234, 2] = np.nan
    with pytest.raises(NonFiniteDataError, match=r"nan.*row 1234, feature 2"):
        MiniBatchKMeans(5, random_state=0, init=blobs[:5], max_no_improvement=None).fit(X)


def test_predict_transform_attributes(blobs: np.ndarray) -> None:
    km = MiniBatchKMeans(5, random_state=0).fit(blobs)
    np.testing.assert_array_equal(km.predict(blobs), km.labels_)
    assert km.transform(blobs[:7]).shape == (7, 5)
    assert km.n_features_in_ == 4
    lazy = km.predict(da.from_array(blobs, chunks=1000))
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), km.labels_)


@pytest.mark.parametrize(
    "init, n_init, slack", [("k-means++", "auto", 1.05), ("random", "auto", 10), ("k-means||", 2, 1.05)]
)
def test_inits(blobs: np.ndarray, init: str, n_init: Any, slack: float, capsys: pytest.CaptureFixture[str]) -> None:
    X = da.from_array(blobs, chunks=1500)
    km = MiniBatchKMeans(5, init=init, n_init=n_init, random_state=0, verbose=1).fit(X)
    # random seeding may leave two centers in one blob, a local minimum mini-batches do not leave
    assert km.inertia_ <= slack * -KMeans(5, random_state=0).fit(blobs).score(blobs)
    assert "MiniBatchKMeans fit 1/100" in capsys.readouterr().out
    stream = MiniBatchKMeans(5, init=init, random_state=0).partial_fit(blobs[:600])
    assert stream.cluster_centers_.shape == (5, 4) and stream.n_steps_ == 1


@parametrize_with_checks(
    [MiniBatchKMeans(n_clusters=3, random_state=0)],
    # batches hold rows, not weights: a row of weight 2 and two copies of it land in different batches
    expected_failed_checks=lambda est: {"check_sample_weight_equivalence_on_dense_data": "mini-batches see rows",
                                        "check_sample_weight_equivalence_on_sparse_data": "mini-batches see rows"},
)
def test_sklearn_api_checks(estimator: object, check: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_clusters": 0},
         r"'n_clusters' parameter of MiniBatchKMeans must be an int in the range \[1, inf\)\. Got 0"),
        ({"init": "kmeans"}, r"'init' parameter .* Got 'kmeans'"),
        ({"init": 3}, r"'init' parameter .* Got 3"),
        ({"max_iter": 0}, r"'max_iter' .* Got 0"),
        ({"batch_size": -5}, r"'batch_size' .* Got -5"),
        ({"tol": -1.0}, r"'tol' .* Got -1\.0"),
        ({"max_no_improvement": -1}, r"'max_no_improvement' .* or None\. Got -1"),
        ({"init_size": 0}, r"'init_size' .* Got 0"),
        ({"n_init": 0}, r"'n_init' .* Got 0"),
        ({"reassignment_ratio": -0.5}, r"'reassignment_ratio' .* Got -0\.5"),
        ({"cache": "yes"}, r"'cache' .* Got 'yes'"),
        ({"prefetch": -1}, r"'prefetch' .* Got -1"),
        ({"parallel_chunks": 0}, r"'parallel_chunks' .* Got 0"),
        ({"compute_labels": "yes"}, r"'compute_labels' .* Got 'yes'"),
        ({"verbose": -2}, r"'verbose' .* Got -2"),
        ({"random_state": "seed"}, r"'random_state' .* Got 'seed'"),
        ({"init": np.zeros((3, 4))}, r"shape of the initial centers \(3, 4\) does not match the number of clusters 5\."),
    ],
)
def test_wrong_params(blobs: np.ndarray, params: dict[str, Any], match: str) -> None:
    kw: dict[str, Any] = {"n_clusters": 5}
    kw.update(params)
    with pytest.raises(InvalidParameterError, match=match):
        MiniBatchKMeans(**kw).fit(blobs[:100])
    if "random_state" not in params:
        with pytest.raises(InvalidParameterError, match=match):
            MiniBatchKMeans(**kw).partial_fit(blobs[:100])


def test_data_errors(blobs: np.ndarray) -> None:
    with pytest.raises(InvalidDataError, match="n_samples=3 should be >= n_clusters=5"):
        MiniBatchKMeans(5).fit(blobs[:3])
    with pytest.raises(InvalidDataError, match="n_samples=3 should be >= n_clusters=5"):
        MiniBatchKMeans(5).partial_fit(blobs[:3])
    km = MiniBatchKMeans(5, random_state=0).partial_fit(blobs[:100])
    with pytest.raises(InvalidDataError, match="X has 3 features, but MiniBatchKMeans is expecting 4"):
        km.partial_fit(blobs[:100, :3])
    with pytest.raises(NotFittedError, match="not fitted yet"):
        MiniBatchKMeans(5).predict(blobs)
    with pytest.warns(RuntimeWarning, match="init_size=2 should be larger than n_clusters=5"):
        MiniBatchKMeans(5, init_size=2, random_state=0).fit(blobs[:100])
    with pytest.warns(RuntimeWarning, match="performing only one init .* n_init=3"):
        MiniBatchKMeans(5, init=blobs[:5], n_init=3).fit(blobs[:100])


# --------------------------------------------------------------------------- workflows


def load_workflow(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"workflow_{name}", ROOT / "workflows" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def assert_nontrivial_png(path: Path, min_size: tuple[int, int] = (200, 150)) -> None:
    from PIL import Image

    assert path.is_file() and path.stat().st_size > 2000, path
    with Image.open(path) as img:
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
        pixels = np.asarray(img.convert("L"), dtype=float)
    assert pixels.std() > 5  # not a blank canvas


def test_patch_dictionary_workflow(tmp_path: Path) -> None:
    wf = load_workflow("patch_dictionary")
    assert wf.main([str(tmp_path), "--small", "--images", "sample"]) == 0
    assert_nontrivial_png(tmp_path / "patch_dictionary.png")
    assert_nontrivial_png(tmp_path / "patch_samples.png")


def test_patch_dictionary_falls_back_without_olivetti(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    import sklearn.datasets

    def offline(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no network")

    monkeypatch.setattr(sklearn.datasets, "fetch_olivetti_faces", offline)
    wf = load_workflow("patch_dictionary")
    images, collection = wf.load_images("auto")
    assert collection == "sample" and len(images) == 2
    assert "Olivetti faces unavailable (OSError: no network)" in caplog.text


def test_color_quantization_workflow(tmp_path: Path) -> None:
    wf = load_workflow("color_quantization")
    assert wf.main([str(tmp_path / "out"), "--small", "--n-colors", "8"]) == 0
    assert_nontrivial_png(tmp_path / "out" / "color_quantization.png", (400, 200))
    assert (tmp_path / "out" / "palette.png").is_file()
    image = wf.load_china(small=True)
    quantized, palette, _ = wf.quantize(image, 8, 0)
    assert len(np.unique(quantized.reshape(-1, 3), axis=0)) <= 8
    assert palette.shape == (8, 3)
