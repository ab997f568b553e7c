"""Model-selection sweeps: the same models as separate fits, in shared passes, scored right."""

from __future__ import annotations

from itertools import pairwise

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn import metrics as skm

from daskcluster import GaussianMixture, KMeans
from daskcluster.engine import count_passes, rowstate
from daskcluster.errors import InvalidDataError, InvalidParameterError
from daskcluster.kernels import assign as A
from daskcluster.kernels import sweep as S
from daskcluster.kernels.blocks import Affine, ChunkInfo
from daskcluster.metrics import (
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)
from daskcluster.metrics._silhouette import silhouette_scores_of_sample
from daskcluster.mixture import gmm_bic_table
from daskcluster.selection import find_elbow, gmm_sweep, kmeans_sweep


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    rng = np.random.default_rng(3)
    centers = rng.uniform(-12, 12, size=(5, 6))
    X = np.concatenate([c + rng.normal(size=(700, 6)) for c in centers])
    return X[rng.permutation(len(X))]


def _chunked(X: np.ndarray, rows: int = 500) -> da.Array:
    return da.from_array(X, chunks=(rows, X.shape[1]))


# --------------------------------------------------------------------------- k-means


@pytest.mark.parametrize("chunks", [None, 500, 333])
def test_kmeans_sweep_equals_separate_fits_in_fewer_passes(blobs: np.ndarray, chunks: int | None) -> None:
    X = blobs if chunks is None else _chunked(blobs, chunks)
    ks = [2, 3, 4, 5, 6, 8]
    with count_passes() as sweep_passes:
        table = kmeans_sweep(X, n_clusters=ks, random_state=7, silhouette_sample_size=1000)
    assert table["n_clusters"].tolist() == ks
    longest = 0
    for k in ks:
        with count_passes() as single:
            ref = KMeans(k, random_state=7).fit(X)
        longest = max(longest, single.passes)
        got = table.set_index("n_clusters").loc[k]
        model = got["model"]
        assert isinstance(model, KMeans)
        np.testing.assert_allclose(model.cluster_centers_, ref.cluster_centers_, rtol=1e-9, atol=1e-9)
        assert model.n_iter_ == ref.n_iter_ == got["n_iter"]
        assert got["inertia"] == pytest.approx(ref.inertia_, rel=1e-9)
        np.testing.assert_array_equal(*dask.compute(model.labels_, ref.labels_))
    assert sweep_passes.passes == table.attrs["passes"]
    assert sweep_passes.passes <= 1.5 * longest, (sweep_passes.passes, longest)
    # about the longest fit plus the two scoring passes, not the sum of the fits
    assert sweep_passes.passes <= longest + 2


def test_elkan_sweep_equals_lloyd_sweep_and_separate_elkan_fits(blobs: np.ndarray) -> None:
    """Each run of a sweep keeps its own bounds beside the chunks (one state per run, every
    run in the same passes): the same models as Lloyd's sweep and as separate fits."""
    X = _chunked(blobs, 700)
    ks = [2, 4, 7]
    lloyd = kmeans_sweep(X, n_clusters=ks, random_state=3, n_init=2, scores=False).set_index("n_clusters")
    elkan = kmeans_sweep(X, n_clusters=ks, random_state=3, n_init=2, scores=False,
                         algorithm="elkan").set_index("n_clusters")
    for k in ks:
        single = KMeans(k, random_state=3, n_init=2, algorithm="elkan").fit(X)
        for model in (lloyd.loc[k, "model"], single):
            np.testing.assert_allclose(elkan.loc[k, "model"].cluster_centers_, model.cluster_centers_, rtol=1e-9,
                                       atol=1e-9)
            assert elkan.loc[k, "n_iter"] == model.n_iter_
        assert elkan.loc[k, "inertia"] == pytest.approx(lloyd.loc[k, "inertia"], rel=1e-9)
    assert rowstate.held() == {}


@pytest.mark.parametrize(("init", "n_init"), [("random", 3), ("k-means++", 1), ("k-means++", 2)])
def test_kmeans_sweep_other_inits_and_n_init(blobs: np.ndarray, init: str, n_init: int) -> None:
    X = _chunked(blobs)
    with count_passes() as sweep_passes:
        table = kmeans_sweep(X, n_clusters=[1, 3, 5], init=init, n_init=n_init, random_state=1, scores=False)
    longest = 0
    for k in (1, 3, 5):
        with count_passes() as single:
            ref = KMeans(k, init=init, n_init=n_init, random_state=1).fit(X)
        longest = max(longest, single.passes)
        model = table.set_index("n_clusters").loc[k, "model"]
        np.testing.assert_allclose(model.cluster_centers_, ref.cluster_centers_, rtol=1e-9, atol=1e-9)
        assert model.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)
        assert model.n_iter_ == ref.n_iter_
    assert table["silhouette"].isna().all() and table["davies_bouldin"].isna().all()
    assert sweep_passes.passes <= longest + 1


def test_kmeans_sweep_scores_equal_the_metrics(blobs: np.ndarray) -> None:
    X = _chunked(blobs)
    table = kmeans_sweep(X, n_clusters=[2, 4, 5, 7], random_state=0, silhouette_sample_size=800)
    for _, row in table.iterrows():
        labels = np.asarray(dask.compute(row["model"].labels_)[0])
        assert row["calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(blobs, labels), rel=1e-9)
        assert row["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(blobs, labels), rel=1e-9)
        assert row["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(X, row["model"].labels_), rel=1e-9)
        assert row["davies_bouldin"] == pytest.approx(davies_bouldin_score(X, row["model"].labels_), rel=1e-9)
        expected = silhouette_score(X, row["model"].labels_, sample_size=800, random_state=0)
        assert row["silhouette"] == pytest.approx(expected, abs=1e-10)
    assert table.attrs["elbow"] == 5
    assert bool(table.loc[table["n_clusters"] == 5, "elbow"].iloc[0])
    assert table.attrs["best_model"].n_clusters == 5
    assert table["best"].sum() == 1


def test_kmeans_sweep_scaled_uint8_source(tmp_path) -> None:
    from daskcluster import scaled
    from daskcluster.io import write_zarr

    rng = np.random.default_rng(0)
    X = np.clip(np.concatenate([rng.normal(m, 12, size=(600, 16)) for m in (40, 120, 200)]), 0, 255).astype(np.uint8)
    path = tmp_path / "x.zarr"
    write_zarr(X, path, chunk_bytes=256 * 16)
    table = kmeans_sweep(scaled(path, 1 / 255), n_clusters=[2, 3, 4], random_state=0, silhouette_sample_size=500)
    for k in (2, 3, 4):
        ref = KMeans(k, random_state=0).fit(scaled(path, 1 / 255))
        model = table.set_index("n_clusters").loc[k, "model"]
        np.testing.assert_allclose(model.cluster_centers_, ref.cluster_centers_, rtol=1e-5, atol=1e-6)
        assert isinstance(model.labels_, da.Array)  # lazy for a lazy source
    assert table.attrs["elbow"] == 3


def test_kmeans_sweep_rejects_bad_input(blobs: np.ndarray) -> None:
    with pytest.raises(InvalidParameterError, match="'init'.*k-means\\+\\+"):
        kmeans_sweep(blobs, n_clusters=[2, 3], init="greedy")
    with pytest.raises(InvalidParameterError, match="must not be empty"):
        kmeans_sweep(blobs, n_clusters=[])
    with pytest.raises(InvalidParameterError, match="n_clusters"):
        kmeans_sweep(blobs, n_clusters=[0, 2])
    with pytest.raises(InvalidDataError, match="n_samples=4 should be >= every n_clusters"):
        kmeans_sweep(blobs[:4], n_clusters=[2, 5])
    with pytest.raises(InvalidParameterError, match="silhouette_sample_size"):
        kmeans_sweep(blobs, n_clusters=[2, 3], silhouette_sample_size=1)
    bad = blobs.copy()
    bad[100, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        kmeans_sweep(bad, n_clusters=[2, 3])


@pytest.mark.parametrize("tile", [1, 7, 256, 100_000])
def test_sweep_kernel_obeys_the_map_reduce_law(blobs: np.ndarray, tile: int, monkeypatch) -> None:
    monkeypatch.setattr(A, "tile_rows", lambda n_features, itemsize: tile)  # tile boundaries are invisible
    rng = np.random.default_rng(0)
    members = (
        S.Member(S.ROUND, blobs[:3].copy(), ell=4.0, entropy=11, round=1),
        S.Member(S.LLOYD, blobs[10:15].copy(), n_far=5),
        S.Member(S.LLOYD, blobs[20:22].copy(), n_far=0),
    )
    params = S.SweepParams(members, Affine(), moments=True)
    spec = tuple((m.kind, m.ell, m.n_far) for m in members)
    w = rng.uniform(0.5, 2, size=len(blobs))
    whole = S.sweep_kernel(blobs, w, ChunkInfo(0, 0), params)
    cuts = [0, 700, 701, 2000, len(blobs)]
    parts = [S.sweep_kernel(blobs[a:b], w[a:b], ChunkInfo(i, a), params) for i, (a, b) in enumerate(pairwise(cuts))]
    merged = S.combine_sweep(parts, members=spec)
    single = S.combine_sweep([whole], members=spec)
    # the k-means|| round: same cost and, after pruning, the same candidates (keys are per chunk, so
    # compare the costs and that every kept key passes the global threshold)
    assert merged.parts[0].cost == pytest.approx(single.parts[0].cost, rel=1e-12)
    assert (merged.parts[0].key < 4.0 / merged.parts[0].cost).all()
    for j in (1, 2):
        a, b = merged.parts[j], single.parts[j]
        np.testing.assert_allclose(a.weight_in_clusters, b.weight_in_clusters, rtol=1e-12)
        np.testing.assert_allclose(a.sums, b.sums, rtol=1e-10)
        assert a.inertia == pytest.approx(b.inertia, rel=1e-12)
        np.testing.assert_array_equal(np.sort(a.far.index), np.sort(b.far.index))
    # and the statistics of a naive Lloyd step
    centers = members[1].centers
    d2 = ((blobs[:, None] - centers[None]) ** 2).sum(-1)
    lab = d2.argmin(1)
    np.testing.assert_allclose(single.parts[1].sums, [(w[lab == c, None] * blobs[lab == c]).sum(0) for c in range(5)],
                               rtol=1e-10)
    np.testing.assert_array_equal(single.parts[1].far.index, np.argsort(-d2.min(1), kind="stable")[:5])
    assert single.parts[1].inertia == pytest.approx(float(d2.min(1) @ w), rel=1e-10)
    np.testing.assert_allclose(merged.moments.mean, blobs.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(merged.moments.var, blobs.var(axis=0), rtol=1e-10)


# --------------------------------------------------------------------------- silhouette and elbow


def test_silhouette_of_sample_equals_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(1500, 7))
    label_sets = [rng.integers(0, k, size=1500) for k in (2, 5, 9)]
    singleton = label_sets[1].copy()
    singleton[17] = 99  # a cluster of one row scores 0
    label_sets.append(singleton)
    got = silhouette_scores_of_sample(rows, label_sets)
    for value, labels in zip(got, label_sets):
        assert value == pytest.approx(skm.silhouette_score(rows, labels), abs=1e-12)
    with pytest.raises(InvalidDataError, match="Number of labels is 1"):
        silhouette_scores_of_sample(rows, [np.zeros(1500, dtype=int)])


@pytest.mark.parametrize(
    ("ks", "inertia", "elbow"),
    [
        ([1, 2, 3, 4, 5, 6], [1000, 400, 90, 80, 75, 72], 3),
        ([2, 3, 4, 5, 6, 7], [5.9e5, 2.1e5, 8.0e4, 3.0e4, 2.9e4, 2.88e4], 5),
        ([1, 2, 3], [3.0, 2.0, 1.0], None),  # the log of a falling line bends the wrong way
        ([2, 3], [10.0, 1.0], None),
        ([1, 2, 3, 4], [100.0, 10.0, 0.0, 0.0], 2),  # zero inertia: the linear scale
    ],
)
def test_find_elbow(ks: list[int], inertia: list[float], elbow: int | None) -> None:
    assert find_elbow(ks, inertia) == elbow


# --------------------------------------------------------------------------- Gaussian mixtures


def test_gmm_sweep_equals_the_bic_table_and_scores_its_labels(blobs: np.ndarray) -> None:
    X = _chunked(blobs)
    grid = {"n_components": [1, 3, 5], "covariance_type": ["full", "diag"], "random_state": 0}
    with count_passes() as sweep_passes:
        table = gmm_sweep(X, silhouette_sample_size=700, **grid)
    ref = gmm_bic_table(X, **grid)
    np.testing.assert_allclose(table["bic"], ref["bic"], rtol=1e-12)
    np.testing.assert_allclose(table["aic"], ref["aic"], rtol=1e-12)
    assert table.attrs["best_model"].n_components == 5
    assert (table["fit_time"] > 0).all()
    longest = 0
    for _, row in table.iterrows():
        with count_passes() as single:
            gm = GaussianMixture(row["n_components"], covariance_type=row["covariance_type"], random_state=0).fit(X)
        longest = max(longest, single.passes)
        np.testing.assert_allclose(row["model"].means_, gm.means_, rtol=1e-9, atol=1e-9)
        if row["n_components"] == 1:
            assert np.isnan(row["silhouette"]) and np.isnan(row["calinski_harabasz"])
            continue
        labels = np.asarray(dask.compute(gm.predict(X))[0])
        assert row["calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(blobs, labels), rel=1e-9)
        assert row["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(blobs, labels), rel=1e-9)
        assert row["silhouette"] == pytest.approx(silhouette_score(X, labels, sample_size=700, random_state=0),
                                                  abs=1e-10)
    # every model's EM shares the passes: the initializations (one k-means fit per number of
    # components) add up, the EM iterations do not
    assert sweep_passes.passes == table.attrs["passes"]
    assert sweep_passes.passes < 0.5 * longest * len(table)


def test_choose_k_workflow_runs_small(tmp_path, monkeypatch) -> None:
    import importlib.util
    import json
    from pathlib import Path

    from PIL import Image

    monkeypatch.setenv("DASKCLUSTER_MNIST", str(tmp_path / "absent.npz"))  # the generated digits
    path = Path(__file__).resolve().parents[1] / "workflows" / "choose_k.py"
    spec = importlib.util.spec_from_file_location("choose_k", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(tmp_path / "out"), "--small", "--rows", "1500"]) == 0
    summary = json.loads((tmp_path / "out" / "choose_k.json").read_text())
    assert [row["n_clusters"] for row in summary["table"]] == [2, 3, 4, 5, 6]
    assert summary["data"].startswith("generated")
    assert summary["elbow"] in range(2, 7)
    inertia = [row["inertia"] for row in summary["table"]]
    assert inertia == sorted(inertia, reverse=True)
    for name in ("choose_k.png", "elbow.png", "silhouette_diagram.png", "centers.png"):
        with Image.open(tmp_path / "out" / name) as image:
            assert image.size[0] > 100 and image.size[1] > 100
