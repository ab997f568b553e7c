"""The ``daskcluster`` command, through its entry point, on a real scheduler on loopback:
``dask scheduler`` and two ``dask worker`` processes started here (and killed here)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from daskcluster import KMeans, persistence
from daskcluster.cli import main

ROOT = Path(__file__).resolve().parents[1]


def command() -> list[str]:
    """The installed ``daskcluster`` entry point (``python -m daskcluster`` if it is not on PATH)."""
    exe = shutil.which("daskcluster")
    return [exe] if exe else [sys.executable, "-m", "daskcluster"]


def run_cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command(), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures logging for a command-line process; put it back for the other tests."""
    names = ["", "distributed", "tornado", "bokeh", "dask_gateway", "dask_jobqueue", "kr8s", "daskcluster",
             "asyncio"]
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in names}
    yield
    for n, (level, handlers) in saved.items():
        log = logging.getLogger(n)
        log.setLevel(level)
        log.handlers[:] = handlers


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` on 127.0.0.1 and two ``dask worker --nthreads 1`` processes."""
    folder = tmp_path_factory.mktemp("loopback")
    file = folder / "scheduler.json"
    dask = shutil.which("dask") or os.path.join(os.path.dirname(sys.executable), "dask")
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        log = open(folder / "scheduler.log", "wb")
        logs.append(log)
        procs.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file",
                                       str(file), "--dashboard-address", "127.0.0.1:0"], stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for i in range(2):
            log = open(folder / f"worker{i}.log", "wb")
            logs.append(log)
            procs.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                                           "--memory-limit", "1GiB", "--no-dashboard", "--no-nanny"], stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
        address = json.loads(file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in procs[1:]:
            p.kill()  # workers without a nanny: nothing of theirs to clean up
        if procs:
            procs[0].terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


def write_job(folder: Path, name: str = "cli-blobs", **params: Any) -> Path:
    job = {
        "name": name,
        "data": {"kind": "blobs", "n_samples": 4000, "n_features": 5, "centers": 3, "chunk_rows": 1000,
                 "random_state": 2},
        "model": {"name": "KMeans", "params": {"n_clusters": 3, "random_state": 0, **params}},
        "evaluate": {"metrics": ["sizes", "adjusted_rand"]},
        "outputs": {"dir": str(folder / "out"), "plots": False},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


# ----------------------------------------------------------------------------- no cluster needed


def test_help_and_usage_through_the_entry_point() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for name in ("quickstart", "run", "submit", "status", "logs", "cancel", "validate", "datasets", "info"):
        assert name in out.stdout
    bad = run_cli("nosuchcommand")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_validate_through_the_entry_point(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"name": "b", "data": {"kind": "blobs", "n_samples": 10, "n_features": 2},
                                      "model": {"name": "KMeans", "params": {"n_clusters": 0, "tool": 1}}}))
    files = [str(p) for p in sorted((ROOT / "cluster_configs").glob("*.yaml"))] + [
        str(ROOT / "workflows" / "blobs_out_of_core.yaml"), str(broken)]
    out = run_cli("validate", *files)
    assert out.returncode == 2
    assert out.stdout.count("\nok ") + out.stdout.startswith("ok ") == len(files) - 1
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [  # every problem, in one run
        f"{broken}: key 'model.params.tool': KMeans has no parameter 'tool'. Did you mean 'tol'?",
        f"{broken}: key 'model.params.n_clusters': The 'n_clusters' parameter of KMeans must be an int in the "
        "range [1, inf). Got 0 instead."]


def test_exit_status_2_for_usage_and_validation_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = write_job(tmp_path)
    local = tmp_path / "threads.yaml"  # a local cluster starts while the job is checked: a light one
    local.write_text(yaml.safe_dump({"kind": "local", "n_workers": 1, "processes": False, "dashboard_address": ":0"}))
    assert main(["run", str(job), "--cluster", str(local), "--set", "model.params.n_clusters=0"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"daskcluster: error: {job}: key 'model.params.n_clusters': The 'n_clusters' parameter of KMeans must be "
        "an int in the range [1, inf). Got 0 instead."]
    assert not (tmp_path / "out").exists()  # nothing ran
    assert main(["run", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: no such file" in capsys.readouterr().err
    assert main(["submit", str(job), "--cluster", str(ROOT / "cluster_configs" / "local.yaml")]) == 2
    assert "submit needs a cluster that outlives this command, and a local cluster's scheduler and workers are " \
           "processes of the daskcluster command" in capsys.readouterr().err
    assert main(["datasets", "mnist", str(tmp_path / "m.zarr"), "--path", "/nope/mnist.npz"]) == 2
    assert capsys.readouterr().err == "daskcluster: error: --path /nope/mnist.npz: no such file or directory. " \
                                     "Give the Keras mnist.npz file.\n"
    assert main(["status", "some-id"]) == 2
    assert "give --scheduler ADDRESS or --cluster" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2


def test_an_invalid_job_is_reported_before_a_cluster_that_cannot_start(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The scheduler is reached for while the job is validated; when both fail, the job's report is
    what the command says (it is the first thing to fix), and nothing is written."""
    job = write_job(tmp_path, n_clusters=0)
    nowhere = tmp_path / "nowhere.yaml"  # nothing listens on port 1: refused at once, given up after 2 s
    nowhere.write_text(yaml.safe_dump({"kind": "address", "address": "tcp://127.0.0.1:1", "timeout": "2s"}))
    assert main(["run", str(job), "--cluster", str(nowhere)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"daskcluster: error: {job}: key 'model.params.n_clusters': The 'n_clusters' parameter of KMeans must be "
        "an int in the range [1, inf). Got 0 instead."]
    assert not (tmp_path / "out").exists()


def test_info_without_a_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "daskcluster 0.1.0" in out and "dask-jobqueue" in out and "dask-gateway" in out
    assert "cluster: LocalCluster" in out and "dashboard: http://127.0.0.1:8787/status once started" in out


def test_main_from_python_leaves_logging_and_warnings_as_they_were(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The command run in-process (``main([...])``) sets where the log goes and keeps distributed,
    tornado and the like to errors while it runs; the process goes on after it with its own."""
    import warnings

    names = ("distributed", "distributed.scheduler", "tornado", "asyncio")
    scheduler = logging.getLogger("distributed.scheduler")
    old_level = scheduler.level
    scheduler.setLevel(logging.INFO)
    try:
        root = logging.getLogger()
        before = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in names},
                  list(warnings.filters))
        assert main(["run", str(tmp_path / "absent.yaml")]) == 2
        assert "absent.yaml: no such file" in capsys.readouterr().err
        after = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in names},
                 list(warnings.filters))
        assert after == before
    finally:
        scheduler.setLevel(old_level)


def test_datasets_blobs_and_mnist_to_zarr(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import zarr

    out = tmp_path / "blobs.zarr"
    assert main(["datasets", "blobs", str(out), "--n-samples", "5000", "--n-features", "4", "--centers", "3",
                 "--chunk-rows", "1000", "--chunk-bytes", "40000"]) == 0
    x = zarr.open_array(str(out), mode="r")
    y = zarr.open_array(str(tmp_path / "blobs-labels.zarr"), mode="r")
    assert x.shape == (5000, 4) and x.chunks == (2500, 4) and y.shape == (5000,)
    assert main(["datasets", "blobs", str(out), "--n-samples", "10", "--n-features", "2"]) == 2
    assert "blobs.zarr already exists; pass --overwrite to replace it" in capsys.readouterr().err

    rng = np.random.default_rng(0)
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=rng.integers(0, 255, (50, 28, 28), dtype=np.uint8), y_train=np.arange(50) % 10,
             x_test=rng.integers(0, 255, (10, 28, 28), dtype=np.uint8), y_test=np.arange(10))
    assert main(["datasets", "mnist", str(tmp_path / "m.zarr"), "--path", str(npz), "--split", "all"]) == 0
    assert zarr.open_array(str(tmp_path / "m.zarr"), mode="r").shape == (60, 784)

    raw = tmp_path / "x.bin"
    np.arange(40, dtype=np.float32).tofile(raw)
    assert main(["datasets", "ingest", str(raw), str(tmp_path / "r.zarr"), "--dtype", "float32",
                 "--shape", "10,4"]) == 0
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "r.zarr"), mode="r")[:],
                                  np.arange(40, dtype=np.float32).reshape(10, 4))


# ----------------------------------------------------------------------------- on a real scheduler


@pytest.mark.slow
def test_run_on_an_existing_scheduler_gives_the_in_process_model(scheduler: str, tmp_path: Path) -> None:
    import zarr

    from daskcluster.io import write_zarr

    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 6000)
    X = (rng.normal(size=(6000, 6)) + y[:, None] * 5).astype(np.float32)
    write_zarr(X, tmp_path / "x.zarr", chunk_bytes=24_000)
    write_zarr(y[:, None].astype(np.int32), tmp_path / "y.zarr")
    job = {"name": "zarr-job", "data": {"kind": "zarr", "path": str(tmp_path / "x.zarr"),
                                        "labels": {"path": str(tmp_path / "y.zarr")}},
           "model": {"name": "KMeans", "params": {"n_clusters": 4, "random_state": 0}},
           "evaluate": {"metrics": ["sizes", "majority_accuracy"]}, "outputs": {"plots": False}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    out = run_cli("-v", "run", str(path), "--scheduler", scheduler, "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    # the dashboard is announced once the scheduler answers: before the fit's first iteration
    err = out.stderr.splitlines()
    announced = next(i for i, line in enumerate(err) if line.startswith("cluster: existing scheduler"))
    first_iteration = next(i for i, line in enumerate(err) if "KMeans fit 1/" in line)
    assert announced < first_iteration
    link = err[announced].split("dashboard: ", 1)[1]
    with urllib.request.urlopen(link, timeout=30) as page:  # bokeh is installed: the page is served
        assert page.status == 200 and b"Dask" in page.read()
    log = (tmp_path / "out" / "job.log").read_text()
    assert f"dashboard: {link}" in log and log.index(f"dashboard: {link}") < log.index("data: ")
    assert "zarr-job: KMeans on zarr" in out.stdout and "6,000 x 6" in out.stdout
    assert f"existing scheduler at {scheduler}" in out.stdout and "metrics: majority_accuracy=1.0000" in out.stdout
    model = persistence.load(tmp_path / "out" / "model.zip")
    reference = KMeans(4, random_state=0).fit(str(tmp_path / "x.zarr"))  # in process, synchronous scheduler
    np.testing.assert_array_equal(model.cluster_centers_, reference.cluster_centers_)
    assert model.n_iter_ == reference.n_iter_ and model.inertia_ == pytest.approx(reference.inertia_, rel=1e-12)
    labels = zarr.open_array(str(tmp_path / "out" / "labels.zarr"), mode="r")[...].reshape(-1)
    np.testing.assert_array_equal(labels, reference.labels_.compute())
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["cluster"]["n_workers"] == 2 and doc["cluster"]["scheduler"] == scheduler
    assert doc["cluster"]["dashboard"] == link


@pytest.mark.slow
def test_submit_returns_at_once_and_the_job_finishes_after_it_exits(
        scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKCLUSTER_HOME", str(tmp_path / "home"))
    job = write_job(tmp_path, "long-job", n_clusters=8, max_iter=6, tol=0.0, cache=False)
    # one blob cut into 8 clusters converges slowly, and every pass regenerates the data:
    # long enough to be seen running
    job_doc = yaml.safe_load(job.read_text())
    job_doc["data"].update(n_samples=60_000, n_features=40, chunk_rows=6_000, centers=1)
    job_doc["evaluate"]["metrics"] = ["sizes"]
    job.write_text(yaml.safe_dump(job_doc))
    t0 = time.perf_counter()
    out = run_cli("submit", str(job), "--scheduler", scheduler, env={"DASKCLUSTER_HOME": str(tmp_path / "home")})
    submit_seconds = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    assert job_id.startswith("long-job-") and "daskcluster status" in out.stderr
    assert not (tmp_path / "out" / "metrics.json").exists() or \
        json.loads((tmp_path / "out" / "metrics.json").read_text())["status"] != "done"

    # the submitting process has exited; the job goes on: running, then done
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert main(["status", job_id]) == 0  # the scheduler is found from this machine's record
        line = capsys.readouterr().out.strip()
        seen.append(line.split(": ", 1)[1].split()[0])
        if seen[-1] == "running":
            running_line = line
        if seen[-1] == "done":
            break
        time.sleep(0.3)
    assert "running" in seen and seen[-1] == "done", seen
    assert "dashboard: http://127.0.0.1:" in running_line  # status shows it while the job runs
    assert line.startswith(f"{job_id}: done in") and f"outputs: {tmp_path / 'out'}" in line
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["status"] == "done"
    assert (tmp_path / "out" / "model.zip").exists() and (tmp_path / "out" / "labels.zarr").exists()
    assert main(["logs", job_id, "--scheduler", scheduler]) == 0
    lines = capsys.readouterr().out
    assert "KMeans fit 1/6" in lines and "done in" in lines
    assert main(["status", "--scheduler", scheduler]) == 0
    assert f"{job_id}: done" in capsys.readouterr().out
    home = {"DASKCLUSTER_HOME": str(tmp_path / "home")}
    listed = run_cli("list", env=home)  # no --scheduler: the schedulers of this machine's job records
    assert listed.returncode == 0 and listed.stdout.startswith(f"{job_id}: done"), listed.stderr
    assert run_cli("status", env=home).stdout == listed.stdout  # no id: the same list
    assert main(["status", "no-such-job", "--scheduler", scheduler]) == 2
    assert "no job 'no-such-job' on the scheduler" in capsys.readouterr().err
    assert submit_seconds < 30


@pytest.mark.slow
def test_cancel_through_the_command(scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from distributed import Client

    from daskcluster.jobs import status, submit

    job = write_job(tmp_path, "to-cancel", n_clusters=8, max_iter=300, tol=0.0, cache=False)
    job_doc = yaml.safe_load(job.read_text())
    job_doc["data"].update(n_samples=100_000, chunk_rows=10_000, centers=1)
    job.write_text(yaml.safe_dump(job_doc))
    with Client(scheduler) as client:
        job_id = submit(job, client)
        deadline = time.monotonic() + 60
        while status(job_id, client).info.get("stage") != "fit" and time.monotonic() < deadline:
            time.sleep(0.1)
    assert main(["cancel", job_id, "--scheduler", scheduler, "--wait"]) == 0
    out = capsys.readouterr().out
    assert "cancel requested" in out and f"{job_id}: cancelled" in out


@pytest.mark.slow
def test_failed_job_exits_1_with_one_line(scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    X = np.ones((200, 3))
    X[150, 1] = np.nan
    np.save(tmp_path / "nan.npy", X)
    job = {"name": "nan-job", "data": {"kind": "npy", "path": str(tmp_path / "nan.npy")},
           "model": {"name": "KMeans", "params": {"n_clusters": 2}}, "outputs": {"dir": str(tmp_path / "out")}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    assert main(["run", str(tmp_path / "job.yaml"), "--scheduler", scheduler, "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("cluster: existing scheduler") and "dashboard: http://" in err[0]
    assert err[1].startswith("daskcluster: job nan-job failed: NonFiniteDataError")
    assert "row 150" in err[1] and err[1].endswith(f"(log: {tmp_path / 'out'}/job.log)")
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["status"] == "failed"


@pytest.mark.slow
def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    """Ctrl-C in a terminal reaches the whole process group: the command and its local cluster's
    worker processes. One line, exit status 130, the cancel a warning in job.log."""
    local = tmp_path / "local.yaml"
    local.write_text(yaml.safe_dump({"kind": "local", "n_workers": 2, "threads_per_worker": 1, "processes": True,
                                     "dashboard_address": "127.0.0.1:0"}))
    job = write_job(tmp_path, "interrupted", max_iter=300, tol=0.0, cache=False, n_clusters=60, init="k-means++")
    job_doc = yaml.safe_load(job.read_text())
    # every pass regenerates 600,000 x 20 numbers and k-means++ makes one pass per center: Ctrl-C
    # comes during the 60 seeding passes, long before the fit could end
    job_doc["data"].update(n_samples=600_000, n_features=20, chunk_rows=50_000)
    job.write_text(yaml.safe_dump(job_doc))
    # Ctrl-C as in a terminal: the command gets the default SIGINT disposition even when this
    # test runs in the background (where shells start commands with SIGINT ignored)
    proc = subprocess.Popen([*command(), "run", str(job), "--cluster", str(local)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        log = tmp_path / "out" / "job.log"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (log.exists() and "KMeans init 1/" in log.read_text()):
            time.sleep(0.05)
        assert proc.poll() is None, "the job ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the command and its workers
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("cluster: LocalCluster") and \
        lines[1] == "daskcluster: interrupted; what was started has been shut down", err
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["status"] == "cancelled"
    log = log.read_text()
    assert "WARNING daskcluster.jobs: job interrupted cancelled: interrupted (Ctrl-C)" in log and " ERROR " not in log


@pytest.mark.slow
def test_info_on_a_scheduler(scheduler: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--scheduler", scheduler]) == 0
    out = capsys.readouterr().out
    assert f"scheduler: {scheduler}: 2 worker(s), 2 thread(s)" in out
    assert "dashboard: http://127.0.0.1:" in out and "(answers HTTP 200)" in out  # bokeh is installed
