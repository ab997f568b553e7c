"""A saved model applied to data: ``predict``/``transform``/``score`` (Python, command, job kind), and
the job kinds beyond one estimator (sweeps, NMF, BayesianGaussianMixture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import zarr

from daskcluster import GaussianMixture, KMeans, MiniBatchKMeans, persistence
from daskcluster.cli import main
from daskcluster.data import scaled
from daskcluster.errors import InvalidDataError, InvalidParameterError
from daskcluster.io import open_array, write_zarr
from daskcluster.jobs import run_job
from daskcluster.jobs.apply import apply_model
from daskcluster.jobs.schema import ZarrData


@pytest.fixture
def blobs_store(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=8, size=(4, 5))
    X = centers[rng.integers(0, 4, 2000)] + rng.normal(size=(2000, 5))
    path = tmp_path / "x.zarr"
    write_zarr(X, path, chunk_bytes=16_000)  # several chunks of rows
    return path


ESTIMATORS = {
    "KMeans": lambda: KMeans(4, random_state=0),
    "MiniBatchKMeans": lambda: MiniBatchKMeans(4, random_state=0, batch_size=256),
    "GaussianMixture": lambda: GaussianMixture(4, covariance_type="diag", random_state=0),
}


def _here(labels: Any) -> np.ndarray:
    """Lazy or eager labels as a NumPy array."""
    return np.asarray(labels.compute() if hasattr(labels, "compute") else labels)


def _saved(name: str, store: Path, folder: Path) -> tuple[Any, Path]:
    model = ESTIMATORS[name]().fit(scaled(open_array(store), 0.5))
    path = folder / f"{name}.zip"
    persistence.save(model, path)
    return model, path


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_predict_writes_the_labels_of_model_predict(name: str, blobs_store: Path, tmp_path: Path) -> None:
    model, path = _saved(name, blobs_store, tmp_path)
    data = ZarrData(kind="zarr", path=str(blobs_store), scale=0.5, max_rows=1500)
    result = apply_model(path, data, "predict", out=tmp_path / "labels.zarr")
    labels = zarr.open_array(str(tmp_path / "labels.zarr"), mode="r")
    assert labels.shape == (1500,) and labels.dtype == np.int32 and result.n_samples == 1500
    expected = _here(model.predict(scaled(open_array(blobs_store)[:1500], 0.5)))
    np.testing.assert_array_equal(labels[:], expected)
    with pytest.raises(Exception, match="already exists; pass overwrite=True"):
        apply_model(path, data, "predict", out=tmp_path / "labels.zarr")


def test_transform_and_score_and_their_errors(blobs_store: Path, tmp_path: Path) -> None:
    model, path = _saved("KMeans", blobs_store, tmp_path)
    data = ZarrData(kind="zarr", path=str(blobs_store), scale=0.5)
    apply_model(path, data, "transform", out=tmp_path / "t.zarr")
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "t.zarr"), mode="r")[:],
                                  _here(model.transform(scaled(open_array(blobs_store), 0.5))))
    assert apply_model(path, data, "score").score == model.score(scaled(open_array(blobs_store), 0.5))
    _, gm_path = _saved("GaussianMixture", blobs_store, tmp_path)
    with pytest.raises(InvalidParameterError, match=r"GaussianMixture .* has no transform\(\); it has: predict, score"):
        apply_model(gm_path, data, "transform", out=tmp_path / "t2.zarr")
    write_zarr(np.zeros((10, 3)), tmp_path / "narrow.zarr")
    with pytest.raises(InvalidDataError, match="have 3 features; the model was fitted on 5"):
        apply_model(path, ZarrData(kind="zarr", path=str(tmp_path / "narrow.zarr")), "predict",
                    out=tmp_path / "n.zarr")
    assert not (tmp_path / "n.zarr").exists()


def test_predict_and_score_from_the_command_on_a_process_cluster(blobs_store: Path, tmp_path: Path,
                                                                 process_client: Any,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model, path = _saved("KMeans", blobs_store, tmp_path)
    address = process_client.scheduler.address
    out = tmp_path / "cli-labels.zarr"
    assert main(["predict", str(path), str(blobs_store), "--scale", "1/2", "--out", str(out),
                 "--scheduler", address]) == 0
    assert "wrote" in capsys.readouterr().out
    labels = zarr.open_array(str(out), mode="r")
    assert labels.shape == (2000,)
    np.testing.assert_array_equal(labels[:], _here(model.predict(scaled(open_array(blobs_store), 0.5))))
    assert main(["score", str(path), str(blobs_store), "--scale", "0.5", "--scheduler", address]) == 0
    assert float(capsys.readouterr().out.strip()) == pytest.approx(model.score(scaled(open_array(blobs_store), 0.5)),
                                                                  rel=1e-9)
    assert main(["predict", str(path), str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "x.zarr")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_apply_as_a_job_kind(blobs_store: Path, tmp_path: Path) -> None:
    model, path = _saved("GaussianMixture", blobs_store, tmp_path)
    job = {"name": "apply-gmm", "data": {"kind": "zarr", "path": str(blobs_store), "scale": 0.5},
           "model": {"name": "apply", "params": {"model": str(path)}},
           "evaluate": {"labels": "none", "metrics": ["sizes", "score", "calinski_harabasz"]},
           "outputs": {"dir": str(tmp_path / "out"), "plots": False}}
    result = run_job(job)
    X = scaled(open_array(blobs_store), 0.5)
    expected = _here(model.predict(X))
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out" / "labels.zarr"), mode="r")[:], expected)
    assert result.metrics["sizes"] == np.bincount(expected, minlength=4).tolist()
    assert result.metrics["score"] == pytest.approx(model.score(X), rel=1e-12)
    from sklearn.metrics import calinski_harabasz_score

    assert result.metrics["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(_here(X.source) * 0.5,
                                                                                        expected), rel=1e-9)
    np.testing.assert_array_equal(persistence.load(tmp_path / "out" / "model.zip").means_, model.means_)
    bad = {**job, "model": {"name": "apply", "params": {"model": str(tmp_path / "none.zip")}}}
    with pytest.raises(Exception, match=r"key 'model.params.model': no model file at"):
        run_job(bad)


def _blobs_job(tmp_path: Path, model: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    return {"name": "kind", "data": {"kind": "blobs", "n_samples": 1200, "n_features": 4, "centers": 3,
                                     "chunk_rows": 400, "random_state": 2},
            "model": model, "evaluate": {"metrics": metrics}, "outputs": {"dir": str(tmp_path / "out")}}


def test_kmeans_sweep_job_writes_its_table_and_best_model(tmp_path: Path) -> None:
    job = _blobs_job(tmp_path, {"name": "kmeans_sweep", "params": {"n_clusters": [2, 3, 4], "random_state": 0,
                                                                   "silhouette_sample_size": 500}},
                     ["sizes", "adjusted_rand"])
    result = run_job(job)
    table = pd.read_csv(tmp_path / "out" / "sweep.csv")
    assert table["n_clusters"].tolist() == [2, 3, 4] and "silhouette" in table.columns
    assert isinstance(result.estimator, KMeans) and result.metrics["adjusted_rand"] > 0.9
    assert persistence.load(tmp_path / "out" / "model.zip").n_clusters == result.estimator.n_clusters
    bad = _blobs_job(tmp_path, {"name": "kmeans_sweep", "params": {"n_clusters": [2, 0], "tol": -1}}, ["sizes"])
    with pytest.raises(Exception) as info:
        run_job(bad)
    assert "key 'model.params.n_clusters'" in str(info.value)


def test_nmf_and_bayesian_mixture_jobs(tmp_path: Path) -> None:
    nmf = _blobs_job(tmp_path, {"name": "NMF", "params": {"n_components": 3, "random_state": 0, "max_iter": 400}}, [])
    nmf["data"]["center_box"] = [5.0, 20.0]  # non-negative rows
    result = run_job(nmf)
    assert result.estimator.components_.shape == (3, 4)
    assert not (tmp_path / "out" / "labels.zarr").exists()
    nmf["evaluate"] = {"metrics": ["sizes"]}
    with pytest.raises(Exception, match="sizes need cluster labels, and NMF gives none"):
        run_job(nmf)
    bgm = _blobs_job(tmp_path, {"name": "BayesianGaussianMixture", "params": {"n_components": 5, "random_state": 0}},
                     ["sizes", "normalized_mutual_info"])
    bgm["outputs"]["dir"] = str(tmp_path / "bgm")
    result = run_job(bgm)
    assert result.metrics["normalized_mutual_info"] > 0.9
    doc = json.loads((tmp_path / "bgm" / "metrics.json").read_text())
    assert doc["status"] == "done" and doc["estimator"] == "BayesianGaussianMixture"
