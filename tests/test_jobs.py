"""Jobs: every shipped workflow validates, broken jobs name the key before any data is read,
runs write every output, and submitted jobs can be followed and cancelled."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import yaml
import zarr
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from daskcluster import KMeans, persistence
from daskcluster.deploy.files import ConfigError
from daskcluster.io import write_zarr
from daskcluster.jobs import (
    ESTIMATORS,
    EstimatorEntry,
    JobCancelled,
    cancel,
    check_job,
    list_jobs,
    load_job,
    logs,
    run_job,
    sources,
    status,
    submit,
    wait,
)
from daskcluster.jobs.validation import validate_job
from daskcluster.metrics import contingency_matrix

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.yaml"))


@pytest.fixture
def tiny_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Keras-layout MNIST file of 700 digits-like images, found through $DASKCLUSTER_MNIST."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 700).astype(np.uint8)
    x = (rng.random((700, 28, 28)) * 60 + y[:, None, None] * 19).astype(np.uint8)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x[:600], y_train=y[:600], x_test=x[600:], y_test=y[600:])
    monkeypatch.setenv("DASKCLUSTER_MNIST", str(path))
    return path


def blobs_job(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "name": "tiny",
        "data": {"kind": "blobs", "n_samples": 3000, "n_features": 6, "centers": 4, "chunk_rows": 700,
                 "random_state": 1},
        "model": {"name": "KMeans", "params": {"n_clusters": 4, "random_state": 0}},
        "evaluate": {"metrics": ["sizes", "majority_accuracy", "adjusted_rand", "normalized_mutual_info"]},
        "outputs": {"dir": str(tmp_path / "out")},
    }
    for key, value in changes.items():
        node = job
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return job


# ----------------------------------------------------------------------------- validation


def test_the_shipped_workflows_are_there() -> None:
    assert {p.stem for p in WORKFLOWS} >= {"mnist_kmeans", "blobs_out_of_core", "mnist_minibatch", "mnist_pca_gmm"}


@pytest.mark.parametrize("name", ["mnist_kmeans", "mnist_minibatch", "mnist_pca_gmm", "mnist_kmeans_sweep"])
def test_shipped_mnist_workflows_run(name: str, tiny_mnist: Path, tmp_path: Path) -> None:
    job = yaml.safe_load((ROOT / "workflows" / f"{name}.yaml").read_text())
    job["outputs"]["dir"] = str(tmp_path / "out")
    if name == "mnist_kmeans_sweep":
        job["model"]["params"].update(n_clusters=[8, 10], silhouette_sample_size=300)
    if job.get("preprocess"):
        job["preprocess"][0]["pca"]["n_components"] = 10
    result = run_job(job)
    doc = json.loads((result.out_dir / "metrics.json").read_text())
    assert doc["status"] == "done" and doc["estimator"] == job["model"]["name"]
    assert sum(doc["metrics"]["sizes"]) == 700 and doc["metrics"]["majority_accuracy"] > 0.3
    assert (result.out_dir / "sizes.png").stat().st_size > 1000
    assert (result.out_dir / ("sweep.csv" if name == "mnist_kmeans_sweep" else "convergence.png")).exists()


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_shipped_workflow_validates(path: Path, tiny_mnist: Path) -> None:
    checked = check_job(load_job(path))
    assert checked.meta.n_samples is not None and checked.meta.n_features is not None
    if type(ESTIMATORS[checked.job.doc.model.name]) is EstimatorEntry:  # not a sweep
        assert type(checked.estimator).__name__ == checked.job.doc.model.name
    assert validate_job(path).job.doc == checked.job.doc


def test_blobs_workflow_streams_out_of_core() -> None:
    job = load_job(ROOT / "workflows" / "blobs_out_of_core.yaml")
    assert job.doc.model.params["cache"] is False
    assert job.data.n_samples * job.data.n_features * 4 > 3e9  # MNIST-scale features, GBs of rows


BROKEN_JOBS = [
    ({"nmae": "x"}, r"unknown key 'nmae'. Did you mean 'name'\?"),
    ({"name": "has space"}, r"key 'name': must be 1-64 letters"),
    ({"data.kind": "orc"}, r"key 'data.kind': unknown kind 'orc'; use one of: zarr, parquet, npy, raw, mnist, blobs"),
    ({"data.n_sampels": 10}, r"unknown key 'data.n_sampels'. Did you mean 'n_samples'\?"),
    ({"data.n_samples": "many"}, r"key 'data.n_samples': Input should be a valid integer; got 'many'"),
    ({"data.scale": 0}, r"key 'data.scale': must be a finite, non-zero number"),
    ({"model.name": "KMean"}, r"key 'model.name': unknown estimator 'KMean'. Did you mean 'KMeans'\?"),
    ({"model.params.n_cluster": 3}, r"key 'model.params.n_cluster': KMeans has no parameter 'n_cluster'. "
                                    r"Did you mean 'n_clusters'\?"),
    ({"model.params.n_clusters": 0}, r"key 'model.params.n_clusters': The 'n_clusters' parameter of KMeans must be "
                                     r"an int in the range \[1, inf\). Got 0 instead."),
    ({"model.params.tol": -1.0}, r"key 'model.params.tol': The 'tol' parameter of KMeans must be a float"),
    ({"model.params.init": "kmeans++"}, r"key 'model.params.init': The 'init' parameter of KMeans must be "),
    ({"model.params.n_clusters": 5000}, r"key 'model.params.n_clusters': n_samples=3000 should be >= n_clusters=5000"),
    ({"model.params.init": [[0.0, 1.0]]}, r"key 'model.params.init': The shape of the initial centers \(1, 2\) "
                                          r"does not match"),
    ({"preprocess": [{"pca": {"n_components": 9}}]}, r"key 'preprocess\[0\].pca.n_components': 9 must be <= "
                                                     r"min\(n_samples, n_features\)"),
    ({"preprocess": [{"pca": {"n_components": 2}, "standard_scale": {}}]}, r"exactly one of 'standard_scale' or 'pca'"),
    ({"preprocess": [{"pca": {"n_components": 2, "svd_solver": "randomized"}}]},
     r"key 'preprocess\[0\].pca.svd_solver': Input should be 'auto', 'full' or 'tsqr'"),
    ({"evaluate.metrics": ["purity"]}, r"key 'evaluate.metrics\[0\]': Input should be 'sizes', 'score'"),
    ({"evaluate.labels": "none"}, r"key 'evaluate.metrics': majority_accuracy, adjusted_rand, normalized_mutual_info "
                                  r"need true labels, but evaluate.labels is 'none'"),
    ({"evaluate.metrics": ["bic"]}, r"'bic' needs an estimator with a bic\(\) method; KMeans has none"),
    ({"outputs.plots": "yes"}, r"key 'outputs.plots': Input should be a valid boolean, or input should be 'auto'; "
                               r"got 'yes'"),
    ({"outputs.pickle": True}, r"unknown key 'outputs.pickle'"),
]


@pytest.mark.parametrize("changes, match", BROKEN_JOBS, ids=[next(iter(c)) + str(i) for i, (c, _) in
                                                             enumerate(BROKEN_JOBS)])
def test_broken_jobs_name_the_key(tmp_path: Path, changes: dict[str, Any], match: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(blobs_job(tmp_path, **changes)))
    monkeypatch.setattr(sources, "load", lambda spec: pytest.fail("data read before validation ended"))
    with pytest.raises(ConfigError, match=match) as info:
        run_job(path)
    assert all(line.startswith(str(path)) for line in str(info.value).splitlines())
    with pytest.raises(ConfigError, match=match) as info:
        validate_job(path)  # the report of 'daskcluster validate' names the same problem
    assert all(line.startswith(str(path)) for line in str(info.value).splitlines())
    assert not (tmp_path / "out").exists()


def test_six_mistakes_are_reported_in_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Schema, inputs and each estimator parameter are checked even when other blocks are broken."""
    job = blobs_job(tmp_path, **{"evaluate.metrics": ["sizes", "purity"], "outputs.plots": "maybe"})
    job["data"] = {"kind": "npy", "path": str(tmp_path / "missing.npy"), "labels": {"path": str(tmp_path / "y.npy")}}
    job["model"]["params"] = {"n_clusters": 0, "tol": -1.0, "max_iters": 5}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    monkeypatch.setattr(sources, "load", lambda spec: pytest.fail("data read by validation"))
    with pytest.raises(ConfigError) as info:
        validate_job(path)
    lines = str(info.value).splitlines()
    keys = ["evaluate.metrics[1]", "outputs.plots", "data.path", "data.labels.path", "model.params.max_iters",
            "model.params.n_clusters", "model.params.tol"]
    assert len(lines) == len(keys)
    for key in keys:
        assert sum(f"key '{key}'" in line for line in lines) == 1, key
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "no such file or folder" in next(line for line in lines if "'data.path'" in line)


def test_data_without_labels_cannot_be_compared(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((10, 2)))
    job = blobs_job(tmp_path, data={"kind": "npy", "path": str(tmp_path / "x.npy")})
    with pytest.raises(ConfigError, match="data of kind 'npy' comes without labels. Add data.labels"):
        load_job(job)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    job = blobs_job(tmp_path, **{"data.n_features": "six", "model.name": "KMeens", "colour": 1})
    with pytest.raises(ConfigError) as info:
        load_job(job)
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert any("data.n_features" in x for x in lines) and any("colour" in x for x in lines)


def test_overrides_and_out_dir(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(blobs_job(tmp_path)))
    job = load_job(path, overrides=["model.params.n_clusters=3", "data.scale=1/2", "evaluate.labels=none",
                                    "evaluate.metrics=[sizes]"], out_dir=tmp_path / "elsewhere")
    assert job.doc.model.params["n_clusters"] == 3 and job.data.scale == 0.5
    assert job.output_dir() == tmp_path / "elsewhere"
    with pytest.raises(ConfigError, match="expected key=value"):
        load_job(path, overrides=["model.params.n_clusters"])
    with pytest.raises(ConfigError, match="'name' in .* is a str, not a mapping"):
        load_job(path, overrides=["name.x=1"])


def test_a_cluster_config_is_not_a_job() -> None:
    with pytest.raises(ConfigError, match="this is a cluster config"):
        load_job(ROOT / "cluster_configs" / "local.yaml")


def test_the_registry_reaches_every_estimator(tmp_path: Path) -> None:
    assert {"KMeans", "MiniBatchKMeans", "GaussianMixture"} <= set(ESTIMATORS)
    with pytest.raises(ConfigError, match=r"key 'model.params.n_components': The 'n_components' parameter of "
                                          r"GaussianMixture must be an int in the range \[1, inf\)"):
        check_job(load_job(blobs_job(tmp_path, model={"name": "GaussianMixture", "params": {"n_components": 0}})))
    with pytest.raises(ConfigError, match=r"key 'model.params.batch_size': The 'batch_size' parameter of "
                                          r"MiniBatchKMeans"):
        check_job(load_job(blobs_job(tmp_path, model={"name": "MiniBatchKMeans", "params": {"batch_size": 0}})))
    for name, key in (("DBSCAN", "eps"), ("AgglomerativeClustering", "n_clusters"), ("SpectralClustering", "n_clusters"),
                      ("BayesianGaussianMixture", "n_components"), ("NMF", "n_components"), ("OPNMF", "max_iter"),
                      ("kmeans_sweep", "n_clusters"), ("gmm_sweep", "n_components")):
        with pytest.raises(ConfigError, match=rf"key 'model.params.{key}': The '{key}' parameter of {name}"):
            validate_job(blobs_job(tmp_path, model={"name": name, "params": {key: -1}}))


def test_agglomerative_job_and_noise_counted_apart(tmp_path: Path) -> None:
    from daskcluster.jobs.evaluate import evaluate

    job = blobs_job(tmp_path, model={"name": "AgglomerativeClustering", "params": {"n_clusters": 4}})
    result = run_job(job)
    assert result.metrics["adjusted_rand"] > 0.9 and sum(result.metrics["sizes"]) == 3000
    # DBSCAN's noise (label -1) is not a cluster: its rows are counted as 'noise'
    pred = np.array([-1, 0, 0, 1, 1, 1, -1, 2])
    got = evaluate(None, None, pred, np.array([0, 0, 0, 1, 1, 1, 1, 2]), ["sizes", "contingency"])
    assert got["sizes"] == [2, 3, 1] and got["noise"] == 2 and got["cluster_majority"] == [0, 1, 2]
    assert got["contingency"]["clusters"] == [-1, 0, 1, 2]
    assert evaluate(None, None, pred, None, ["sizes"]) == {"sizes": [2, 3, 1], "noise": 2}


# ----------------------------------------------------------------------------- metrics


def test_label_metrics_are_those_of_daskcluster_metrics_and_match_sklearn(tmp_path: Path) -> None:
    from daskcluster.jobs.evaluate import evaluate

    rng = np.random.default_rng(0)
    for n_true, n_pred in ((4, 6), (10, 10), (1, 3)):
        t = rng.integers(0, n_true, 800)
        p = (t + rng.integers(0, 2, 800)) % n_pred
        lazy = da.from_array(p.astype(np.int32), chunks=300)
        got = evaluate(None, None, lazy, t, ["adjusted_rand", "normalized_mutual_info", "majority_accuracy",
                                               "contingency", "sizes"])
        # the same float64 sums as scikit-learn's over the same table: a few ulps apart
        assert got["adjusted_rand"] == pytest.approx(adjusted_rand_score(t, p), abs=1e-12)
        assert got["normalized_mutual_info"] == pytest.approx(normalized_mutual_info_score(t, p), abs=1e-12)
        table = contingency_matrix(t, p)
        assert got["majority_accuracy"] == table.max(axis=0).sum() / 800
        assert got["contingency"]["rows"] == "true label" and got["contingency"]["columns"] == "cluster"
        assert got["contingency"]["counts"] == table.tolist()
        assert got["contingency"]["true_labels"] == list(range(table.shape[0]))
        assert got["sizes"] == np.bincount(p, minlength=table.shape[1]).tolist()
        assert got["cluster_majority"] == table.argmax(axis=0).tolist()


# ----------------------------------------------------------------------------- running


def test_run_writes_every_output(tmp_path: Path) -> None:
    reports: list[Any] = []
    result = run_job(blobs_job(tmp_path, **{"evaluate.metrics": ["sizes", "adjusted_rand", "score"]}),
                     on_progress=reports.append)
    out = tmp_path / "out"
    assert result.out_dir == out
    assert {"model.zip", "labels.zarr", "metrics.json", "job.log", "job.yaml", "convergence.png",
            "sizes.png"} <= {p.name for p in out.iterdir()}
    reference = KMeans(4, random_state=0).fit(sources.load(load_job(blobs_job(tmp_path)).data).X)
    model = persistence.load(out / "model.zip")
    np.testing.assert_array_equal(model.cluster_centers_, reference.cluster_centers_)
    labels = zarr.open_array(str(out / "labels.zarr"), mode="r")
    assert labels.shape == (3000,) and labels.dtype == np.int32
    np.testing.assert_array_equal(labels[:], dask.compute(reference.labels_)[0])
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["status"] == "done" and doc["estimator"] == "KMeans"
    assert doc["model"]["n_iter_"] == reference.n_iter_ and doc["model"]["inertia_"] == pytest.approx(reference.inertia_)
    assert doc["metrics"]["adjusted_rand"] > 0.9 and sum(doc["metrics"]["sizes"]) == 3000
    assert doc["metrics"]["score"] == pytest.approx(-reference.inertia_)
    assert doc["data"]["n_samples"] == 3000 and doc["seconds"]["fit"] > 0
    assert len(doc["iterations"]) == len(reports) > reference.n_iter_
    log = (out / "job.log").read_text()
    assert "KMeans fit 1/300" in log and "done in" in log
    assert yaml.safe_load((out / "job.yaml").read_text())["outputs"]["dir"] == str(out)


def test_run_zarr_with_labels_scaling_and_preprocessing(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 2000)
    X = (rng.normal(size=(2000, 8)) * 3 + y[:, None] * 40 + 100).clip(0, 255).astype(np.uint8)
    write_zarr(X, tmp_path / "x.zarr", chunk_bytes=4000)
    write_zarr(y.astype(np.int32)[:, None], tmp_path / "y.zarr")
    job = {
        "name": "zarr-pca",
        "data": {"kind": "zarr", "path": str(tmp_path / "x.zarr"), "scale": "1/255", "max_rows": 1500,
                 "labels": {"path": str(tmp_path / "y.zarr")}},
        "preprocess": [{"standard_scale": {}}, {"pca": {"n_components": 3}}],
        "model": {"name": "KMeans", "params": {"n_clusters": 3, "random_state": 0}},
        "evaluate": {"metrics": ["majority_accuracy", "contingency"]},
        "outputs": {"dir": str(tmp_path / "out"), "plots": False, "log": False},
    }
    result = run_job(job)
    assert result.n_samples == 1500 and result.estimator.n_features_in_ == 3
    assert result.metrics["majority_accuracy"] > 0.99
    assert np.asarray(result.metrics["contingency"]["counts"]).sum() == 1500
    assert not (tmp_path / "out" / "job.log").exists() and not (tmp_path / "out" / "sizes.png").exists()


def test_run_parquet_with_a_label_column(tmp_path: Path) -> None:
    """A table in Parquet: the features are every column but the labels', which the metrics read."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow", reason="the parquet extra")
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 1200)
    frame = pd.DataFrame(rng.normal(size=(1200, 4)) + y[:, None] * 8, columns=list("abcd"))
    frame.insert(2, "species", y)
    (tmp_path / "table").mkdir()
    frame.iloc[:500].to_parquet(tmp_path / "table" / "part-0.parquet")
    frame.iloc[500:].to_parquet(tmp_path / "table" / "part-1.parquet")
    job = blobs_job(tmp_path, data={"kind": "parquet", "path": str(tmp_path / "table"), "label_column": "species",
                                    "max_rows": 1000},
                    **{"model.params.n_clusters": 3, "evaluate.metrics": ["majority_accuracy", "adjusted_rand"]})
    result = run_job(job)
    assert result.n_samples == 1000 and result.estimator.n_features_in_ == 4
    expected = KMeans(3, random_state=0).fit(frame[list("abcd")].to_numpy()[:1000])
    assert adjusted_rand_score(expected.labels_, y[:1000]) == pytest.approx(result.metrics["adjusted_rand"])
    assert result.metrics["majority_accuracy"] > 0.99

    with pytest.raises(ConfigError, match="label_column 'a' is also one of the feature columns"):
        run_job(blobs_job(tmp_path, data={"kind": "parquet", "path": str(tmp_path / "table"),
                                          "columns": ["a", "b"], "label_column": "a"}))
    with pytest.raises(ConfigError, match="has no column 'kind'; its columns are"):
        run_job(blobs_job(tmp_path, data={"kind": "parquet", "path": str(tmp_path / "table"), "label_column": "kind"}))


def test_gaussian_mixture_job(tmp_path: Path) -> None:
    job = blobs_job(tmp_path, model={"name": "GaussianMixture",
                                     "params": {"n_components": 4, "covariance_type": "diag", "random_state": 0}},
                    **{"evaluate.metrics": ["bic", "adjusted_rand"], "outputs.plots": False})
    result = run_job(job)
    assert result.metrics["adjusted_rand"] > 0.9 and "bic" in result.metrics
    assert persistence.load(result.files["model"]).means_.shape == (4, 6)


def test_a_stop_request_cancels_between_iterations(tmp_path: Path) -> None:
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    with pytest.raises(JobCancelled):
        run_job(blobs_job(tmp_path), should_stop=should_stop)
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["status"] == "cancelled" and not (tmp_path / "out" / "model.zip").exists()


def test_logging_of_the_caller_is_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    before = logging.getLogger("daskcluster").level
    run_job(blobs_job(tmp_path, **{"outputs.plots": False}))
    assert logging.getLogger("daskcluster").level == before
    assert logging.getLogger("daskcluster").propagate


# ----------------------------------------------------------------------------- on the cluster


@pytest.mark.slow
def test_submit_status_logs_then_done(tmp_path: Path, process_client: Any) -> None:
    client = process_client
    job_id = submit(blobs_job(tmp_path, **{"outputs.plots": False}), client)
    assert status(job_id, client).state in ("queued", "running", "done")
    final = wait(job_id, client, timeout=240)  # a hang guard, not a time limit: a loaded machine is slow
    assert final.state == "done", final.info
    assert final.out == str(tmp_path / "out") and (tmp_path / "out" / "model.zip").exists()
    assert any("KMeans fit" in line for line in logs(job_id, client))
    assert job_id in [j.id for j in list_jobs(client)]
    assert "done in" in final.format()


@pytest.mark.slow
def test_cancel_a_running_job(tmp_path: Path, process_client: Any) -> None:
    client = process_client
    job = blobs_job(tmp_path, **{"data.n_samples": 400_000, "data.chunk_rows": 20_000,
                                 "model.params": {"n_clusters": 8, "tol": 0.0, "max_iter": 300, "cache": False,
                                                  "random_state": 0}})
    job_id = submit(job, client)
    deadline = time.monotonic() + 30
    while status(job_id, client).info.get("stage") != "fit" and time.monotonic() < deadline:
        time.sleep(0.1)
    cancel(job_id, client)
    final = wait(job_id, client, timeout=240)  # a hang guard, not a time limit: a loaded machine is slow
    assert final.state == "cancelled"
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["status"] == "cancelled"


@pytest.mark.slow
def test_unknown_job_id(process_client: Any) -> None:
    from daskcluster.jobs import UnknownJobError

    with pytest.raises(UnknownJobError, match="no job 'nope' on the scheduler"):
        status("nope", process_client)


def test_lazy_labels_are_computed_when_written(tmp_path: Path) -> None:
    X = da.from_array(np.random.default_rng(0).normal(size=(500, 3)), chunks=100)
    from daskcluster.jobs.outputs import write_labels

    km = KMeans(2, random_state=0).fit(X)
    write_labels(tmp_path / "l.zarr", km.labels_)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "l.zarr"), mode="r")[:], km.labels_.compute())


# ----------------------------------------------------------------------------- output defects (issue 17, item 8)


def test_sizes_have_every_tick_and_centers_are_titled_by_their_majority_label() -> None:
    from daskcluster.jobs.outputs import image_figures, sizes_figure

    sizes = [5, 9, 2, 7, 3, 8, 1, 6, 4, 10]
    majority = [7, 1, 0, 3, 9, 2, 4, 8, 6, 5]
    ax = sizes_figure(sizes, majority).axes[0]
    assert list(ax.get_xticks()) == list(range(10))
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{j}\n{m}" for j, m in enumerate(majority)]
    ax = sizes_figure(list(range(1, 41))).axes[0]  # 40 clusters: still every tick
    assert list(ax.get_xticks()) == list(range(40))

    class Model:  # a fitted k-means' attributes: ten 28 x 28 centers
        cluster_centers_ = np.random.default_rng(0).random((10, 784))

    fig = image_figures(Model(), majority)["centers.png"]
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert titles == [str(m) for m in sorted(majority)]  # ordered by digit, as the quick start draws them
    assert "most frequent true label" in fig._suptitle.get_text()
    assert [a.get_title() for a in image_figures(Model())["centers.png"].axes if a.get_title()] == \
        [str(j) for j in range(10)]  # without true labels: the cluster numbers


def test_mnist_job_outputs_labels_of_shape_n_and_a_labelled_contingency(tiny_mnist: Path, tmp_path: Path) -> None:
    job = load_job(ROOT / "workflows" / "mnist_kmeans.yaml", overrides=[
        "model.params.n_clusters=10", "evaluate.metrics=[sizes, contingency, majority_accuracy]"],
        out_dir=tmp_path / "out")
    result = run_job(job)
    labels = zarr.open_array(str(tmp_path / "out" / "labels.zarr"), mode="r")
    assert labels.shape == (700,) and labels.dtype == np.int32
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    table = doc["metrics"]["contingency"]
    assert table["rows"] == "true label" and table["columns"] == "cluster"
    assert table["true_labels"] == list(range(10)) and table["clusters"] == list(range(10))
    assert np.asarray(table["counts"]).shape == (10, 10) and np.asarray(table["counts"]).sum() == 700
    assert doc["metrics"]["cluster_majority"] == np.asarray(table["counts"]).argmax(axis=0).tolist()
    assert result.metrics["sizes"] == np.asarray(table["counts"]).sum(axis=0).tolist()
    assert {"centers.png", "sizes.png"} <= {p.name for p in (tmp_path / "out").iterdir()}
