"""Cluster configs: every shipped file validates, broken ones name the key, and each backend
does what its file says — LocalCluster and an existing scheduler for real, SLURM/PBS job
scripts and Kubernetes resources as generated, and a real dask-gateway server on localhost."""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from daskcluster.deploy import (
    ClusterStartError,
    ConfigError,
    MissingExtraError,
    config_files,
    deploy,
    jobqueue_cluster,
    kubernetes_spec,
    load_config,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = config_files(ROOT / "cluster_configs")


def _config(name: str, **changes: Any) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "cluster_configs" / name).read_text())
    doc.update(changes)
    return doc


# ----------------------------------------------------------------------------- validation


def test_there_is_one_config_per_way_to_get_a_cluster() -> None:
    assert {p.stem for p in CONFIGS} >= {"local", "address", "slurm", "pbs", "kubernetes", "gateway"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.kind == path.stem
    text = path.read_text()
    assert text.count("#") >= 8  # documented key by key


BROKEN = [
    ("local.yaml", {"n_wokers": 2}, r"local.yaml: unknown key 'n_wokers'. Did you mean 'n_workers'\?"),
    ("local.yaml", {"n_workers": "two"}, r"key 'n_workers': Input should be a valid integer; got 'two'"),
    ("local.yaml", {"n_workers": "2"}, r"key 'n_workers'.*Write the value without quotes"),
    ("local.yaml", {"memory_limit": "lots"}, r"key 'memory_limit': must be a size such as '4GiB'"),
    ("local.yaml", {"kind": "laptop"}, r"key 'kind': unknown kind 'laptop'; use one of: local, address"),
    ("address.yaml", {"address": "tcp://h:8786"}, r"give exactly one of 'address', 'address_env' or 'scheduler_file'"),
    ("address.yaml", {"tls": {"ca_file": "a"}}, r"missing required key 'tls.cert_file'"),
    ("address.yaml", {"address_env": "1NOPE"}, r"key 'address_env': must be the name of an environment variable"),
    ("slurm.yaml", {"walltime": "2h"}, r"key 'walltime': must be a time limit like '01:30:00'"),
    ("slurm.yaml", {"cores": 0}, r"key 'cores': Input should be greater than or equal to 1; got 0"),
    ("slurm.yaml", {"adapt": {"maximum_jobs": 3}}, r"give exactly one of 'scale'.*or 'adapt'"),
    ("pbs.yaml", {"adapt": {"minimum_jobs": 5, "maximum_jobs": 2}}, r"key 'adapt': minimum_jobs=5 must be <= maximum_jobs=2"),
    ("pbs.yaml", {"memory": None}, r"key 'memory': Input should be a valid string; got None"),
    ("kubernetes.yaml", {"image": None}, r"key 'image'"),
    ("kubernetes.yaml", {"resources": {"limits": {"cpu": "two"}}}, r"key 'resources.limits.cpu': must be a Kubernetes quantity"),
    ("kubernetes.yaml", {"env": {"DB_PASSWORD": "hunter2"}}, r"key 'env':.*secrets never sit in these files.*secret_env"),
    ("gateway.yaml", {"auth": {"type": "basic", "password": "hunter2"}},
     r"key 'auth.password': secrets never sit in these files.*'password_env: MY_VARIABLE'"),
    ("gateway.yaml", {"scale": 2, "adapt": {"maximum": 3}}, r"give at most one of 'scale'.*or 'adapt'"),
    ("gateway.yaml", {"cluster_options": {"api_token": "x"}}, r"cluster option 'api_token' looks like a secret"),
]


@pytest.mark.parametrize("name, changes, match", BROKEN, ids=[f"{b[0]}-{next(iter(b[1]))}" for b in BROKEN])
def test_broken_configs_name_the_file_and_key(tmp_path: Path, name: str, changes: dict[str, Any], match: str) -> None:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(_config(name, **changes)))
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))


def test_file_level_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: local\n  n_workers: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML \(line \d+, column \d+\)"):
        load_config(bad)
    bad.write_text("- kind: local\n")
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        load_config(bad)
    bad.write_text("n_workers: 2\n")
    with pytest.raises(ConfigError, match="missing required key 'kind'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml")


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"kind: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(evil)
    assert not marker.exists()


def test_overrides_are_validated_too() -> None:
    cfg = load_config(ROOT / "cluster_configs" / "slurm.yaml", overrides=["cores=16", "queue=debug"])
    assert cfg.cores == 16 and cfg.queue == "debug"
    with pytest.raises(ConfigError, match="key 'cores': Input should be a valid integer"):
        load_config(ROOT / "cluster_configs" / "slurm.yaml", overrides=["cores=many"])


def test_a_missing_extra_says_which_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, *args: Any) -> Any:
        if name.startswith(("dask_jobqueue", "dask_kubernetes", "dask_gateway")):
            raise ImportError(f"No module named '{name}'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    for name, extra in (("slurm.yaml", "slurm"), ("pbs.yaml", "pbs"), ("kubernetes.yaml", "kubernetes"),
                        ("gateway.yaml", "gateway")):
        with pytest.raises(MissingExtraError, match=rf"pip install 'daskcluster\[{extra}\]'"):
            with deploy(ROOT / "cluster_configs" / name):
                pass


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dask_gateway", reason="the gateway extra is part of the test extra")
    monkeypatch.delenv("DASK_GATEWAY_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="key 'address_env' names the environment variable DASK_GATEWAY_ADDRESS, "
                                          "which is not set"):
        with deploy(ROOT / "cluster_configs" / "gateway.yaml"):
            pass


# ----------------------------------------------------------------------------- local and address


def test_local_cluster_starts_and_is_shut_down() -> None:
    cfg = {"kind": "local", "n_workers": 1, "threads_per_worker": 2, "processes": False, "dashboard_address": ":0"}
    with deploy(cfg) as d:
        assert d.client.submit(sum, [1, 2]).result() == 3
        assert len(d.client.scheduler_info()["workers"]) == 1
        cluster = d.cluster
    assert cluster.status.name == "closed"


def test_address_connects_and_leaves_the_scheduler_running() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        with deploy(scheduler=cluster.scheduler_address) as d:
            assert d.cluster is None and d.client.submit(sum, [2, 3]).result() == 5
        assert cluster.status.name == "running"
        os.environ["DASKCLUSTER_TEST_ADDRESS"] = cluster.scheduler_address
        try:
            with deploy({"kind": "address", "address_env": "DASKCLUSTER_TEST_ADDRESS"}) as d:
                assert d.scheduler_address == cluster.scheduler_address
        finally:
            del os.environ["DASKCLUSTER_TEST_ADDRESS"]


def test_unreachable_scheduler_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterStartError, match=rf"cannot start or reach the cluster .*127.0.0.1:{port}"):
        with deploy({"kind": "address", "address": f"tcp://127.0.0.1:{port}", "timeout": "1s"}):
            pass


# ----------------------------------------------------------------------------- SLURM, PBS, Kubernetes


def test_slurm_job_script_carries_the_request() -> None:
    pytest.importorskip("dask_jobqueue", reason="the slurm extra is part of the test extra")
    doc = _config("slurm.yaml", scheduler_host="127.0.0.1", dashboard_address=":0",
                  job_extra_directives=["--exclusive"])
    cluster = jobqueue_cluster(load_config(doc))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --cpus-per-task=8" in script
    assert "#SBATCH --mem=32G" in script
    assert "#SBATCH -t 02:00:00" in script
    assert "#SBATCH -p normal" in script and "#SBATCH -A my-project" in script
    assert "#SBATCH --exclusive" in script and "module load python" in script
    assert "--nthreads 4" in script  # 8 cores over 2 worker processes


def test_pbs_job_script_carries_the_request() -> None:
    pytest.importorskip("dask_jobqueue", reason="the pbs extra is part of the test extra")
    doc = _config("pbs.yaml", scheduler_host="127.0.0.1", dashboard_address=":0", processes=1)
    cluster = jobqueue_cluster(load_config(doc))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#PBS -l select=1:ncpus=8:mem=32GB" in script
    assert "#PBS -l walltime=02:00:00" in script
    assert "#PBS -q workq" in script and "#PBS -A my-project" in script


def test_kubernetes_spec_carries_image_workers_and_resources() -> None:
    pytest.importorskip("dask_kubernetes", reason="the kubernetes extra is part of the test extra")
    spec = kubernetes_spec(load_config(ROOT / "cluster_configs" / "kubernetes.yaml"))
    assert spec["kind"] == "DaskCluster" and spec["metadata"]["name"] == "daskcluster"
    worker = spec["spec"]["worker"]
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    container = worker["spec"]["containers"][0]
    assert worker["replicas"] == 4
    assert container["image"] == scheduler["image"] == "ghcr.io/dask/dask:2026.8.0-py3.11"
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
    assert scheduler["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    assert container["args"][:2] == ["dask", "worker"] and scheduler["args"][:2] == ["dask", "scheduler"]
    env = {e["name"]: e for e in container["env"]}
    assert env["EXTRA_PIP_PACKAGES"]["value"] == "daskcluster"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "s3-credentials", "key": "secret-access-key"}}


# ----------------------------------------------------------------------------- dask-gateway, for real


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gateway_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real dask-gateway server on localhost: UnsafeLocalBackend (scheduler and workers as
    local processes), SimpleAuthenticator with a password."""
    pytest.importorskip("dask_gateway_server", reason="dask-gateway-server[local] is part of the test extra")
    pytest.importorskip("dask_gateway", reason="the gateway extra is part of the test extra")
    dask_cmd = shutil.which("dask") or os.path.join(os.path.dirname(sys.executable), "dask")
    server_cmd = shutil.which("dask-gateway-server") or os.path.join(os.path.dirname(sys.executable),
                                                                     "dask-gateway-server")
    folder = tmp_path_factory.mktemp("gateway")
    api, proxy = _free_port(), _free_port()
    (folder / "config.py").write_text(textwrap.dedent(f"""
        from dask_gateway_server.options import Options, Integer, Float
        c.DaskGateway.address = "127.0.0.1:{api}"
        c.Proxy.address = "127.0.0.1:{proxy}"
        c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
        c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
        c.SimpleAuthenticator.password = "test-password"
        c.ClusterConfig.scheduler_cmd = [{dask_cmd!r}, "scheduler"]
        c.ClusterConfig.worker_cmd = [{dask_cmd!r}, "worker"]
        c.ClusterConfig.worker_threads = 1
        c.ClusterConfig.idle_timeout = 120
        c.Backend.cluster_options = Options(
            Integer("worker_cores", default=1, min=1, max=2),
            Float("worker_memory", default=1, min=0.5, max=2),
            handler=lambda options: {{"worker_cores": options.worker_cores,
                                     "worker_memory": int(options.worker_memory * 2**30)}},
        )
    """))
    log = open(folder / "server.log", "wb")
    proc = subprocess.Popen([server_cmd, "-f", str(folder / "config.py")], cwd=folder, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api}/api/health", timeout=2) as r:
                    if b"pass" in r.read():
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask-gateway-server did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield {"address": f"http://127.0.0.1:{api}", "proxy": f"tls://127.0.0.1:{proxy}", "password": "test-password"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
def test_gateway_cluster_scales_fits_and_shuts_down(gateway_server: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from dask_gateway import BasicAuth, Gateway

    from daskcluster import KMeans

    monkeypatch.setenv("DASK_GATEWAY_ADDRESS", gateway_server["address"])
    monkeypatch.setenv("DASK_GATEWAY_PROXY_ADDRESS", gateway_server["proxy"])
    monkeypatch.setenv("DASK_GATEWAY_PASSWORD", gateway_server["password"])
    doc = _config("gateway.yaml", proxy_address_env="DASK_GATEWAY_PROXY_ADDRESS", wait_timeout="90s")
    doc["cluster_options"] = {"worker_cores": 1, "worker_memory": 1}
    X = np.random.default_rng(0).normal(size=(3000, 4)) + np.repeat(np.eye(4) * 8, 750, axis=0)
    reference = KMeans(4, random_state=0).fit(X)
    with deploy(doc) as d:
        assert len(d.client.scheduler_info()["workers"]) == 2
        km = KMeans(4, random_state=0).fit(X)  # on the gateway cluster (the default client)
        name = d.cluster.name
    np.testing.assert_allclose(km.cluster_centers_, reference.cluster_centers_, rtol=1e-12)
    gateway = Gateway(gateway_server["address"], proxy_address=gateway_server["proxy"],
                      auth=BasicAuth("daskcluster", gateway_server["password"]))
    try:
        deadline = time.monotonic() + 30
        while name in {c.name for c in gateway.list_clusters()} and time.monotonic() < deadline:
            time.sleep(0.5)
        assert name not in {c.name for c in gateway.list_clusters()}
    finally:
        gateway.close()
        gateway.close = lambda: None  # its __del__ would close it again, after its loop stopped


@pytest.mark.slow
def test_gateway_unknown_cluster_option_names_the_key(gateway_server: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_GATEWAY_ADDRESS", gateway_server["address"])
    monkeypatch.setenv("DASK_GATEWAY_PASSWORD", gateway_server["password"])
    doc = _config("gateway.yaml", proxy_address=gateway_server["proxy"])
    doc["cluster_options"] = {"worker_gpus": 1}
    with pytest.raises(ConfigError, match=r"key 'cluster_options.worker_gpus': the gateway .* offers no such option. "
                                          r"It offers: worker_cores, worker_memory"):
        with deploy(doc):
            pass


# ----------------------------------------------------------------------------- jobs that outlive the command


def _cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The ``daskcluster`` command in a process of its own (it ends before the next one starts), run
    in the folder of the jobs' outputs (DASKCLUSTER_HOME's parent)."""
    return subprocess.run([sys.executable, "-m", "daskcluster", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env}, cwd=Path(env["DASKCLUSTER_HOME"]).parent)


def _blobs_job(folder: Path, name: str, slow: bool = False) -> Path:
    """KMeans on 3,000 generated rows; ``slow``: 600,000 rows generated again by every pass (seconds
    each) and k-means++ for 60 centers (a pass per center), which a test stops long before its end."""
    data = {"n_samples": 600_000, "n_features": 20, "chunk_rows": 50_000} if slow else {}
    params = {"n_clusters": 60, "init": "k-means++", "tol": 0.0, "cache": False} if slow else {}
    doc = {"name": name,
           "data": {"kind": "blobs", "n_samples": 3000, "n_features": 4, "centers": 3, "chunk_rows": 1000,
                    "random_state": 1, **data},
           "model": {"name": "KMeans", "params": {"n_clusters": 3, "random_state": 0, **params}},
           "evaluate": {"metrics": ["sizes"]},
           "outputs": {"dir": str(folder / name), "plots": False}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
def test_a_job_submitted_through_the_gateway_outlives_the_command(gateway_server: dict[str, str],
                                                                  tmp_path: Path) -> None:
    """submit creates a gateway cluster that stays up and exits; status, logs, list and cancel,
    each from a new process, find the cluster again through the gateway by its name."""
    from dask_gateway import BasicAuth, Gateway

    env = {"DASKCLUSTER_HOME": str(tmp_path / "home"), "DASK_GATEWAY_PASSWORD": gateway_server["password"]}
    config = tmp_path / "gateway.yaml"
    doc = _config("gateway.yaml", address=gateway_server["address"], address_env=None,
                  proxy_address=gateway_server["proxy"], scale=1, wait_for_workers=1, wait_timeout="90s")
    doc.update(cluster_options={"worker_cores": 1, "worker_memory": 1})
    doc = {k: v for k, v in doc.items() if v is not None}
    refused = _cli("submit", str(_blobs_job(tmp_path, "quick")), "--cluster", str(_write(config, doc)), env=env)
    assert refused.returncode == 2 and "'shutdown_on_close: true', so the gateway shuts the cluster down" \
        in refused.stderr
    doc["shutdown_on_close"] = False
    _write(config, doc)
    gateway = Gateway(gateway_server["address"], proxy_address=gateway_server["proxy"],
                      auth=BasicAuth("daskcluster", gateway_server["password"]))
    names: set[str] = set()
    try:
        out = _cli("submit", str(_blobs_job(tmp_path, "quick")), "--cluster", str(config), env=env)
        assert out.returncode == 0, out.stderr
        job_id = out.stdout.strip()
        names = {c.name for c in gateway.list_clusters()}
        assert len(names) == 1  # created by submit, still up after it exited
        (name,) = names
        assert f"(gateway cluster {name})" in out.stderr and f"/clusters/{name}/status" in out.stderr

        done = _cli("status", job_id, "--wait", env=env)
        assert done.returncode == 0 and done.stdout.startswith(f"{job_id}: done"), done.stdout + done.stderr
        assert json.loads((tmp_path / "quick" / "metrics.json").read_text())["status"] == "done"
        logs = _cli("logs", job_id, env=env)
        assert logs.returncode == 0 and "job quick done" in logs.stdout

        # a second job on the same cluster: named in the config this time, cancelled from a new process
        doc["cluster_name"] = name
        _write(config, doc)
        slow = _blobs_job(tmp_path, "slow", slow=True)
        out = _cli("submit", str(slow), "--cluster", str(config), env=env)
        assert out.returncode == 0, out.stderr
        slow_id = out.stdout.strip()
        assert {c.name for c in gateway.list_clusters()} == {name}  # connected to, not created
        _wait_for_line(tmp_path / "slow" / "job.log", "KMeans init 1/")
        cancelled = _cli("cancel", slow_id, "--wait", env=env)
        assert cancelled.returncode == 0 and f"{slow_id}: cancelled" in cancelled.stdout, cancelled.stderr

        listed = _cli("list", env=env)
        assert listed.returncode == 0, listed.stderr
        assert f"{job_id}: done" in listed.stdout and f"{slow_id}: cancelled" in listed.stdout
        no_id = _cli("status", env=env)  # no id: the clusters this machine's job records name
        assert no_id.returncode == 0 and no_id.stdout == listed.stdout
    finally:
        for cluster_name in names:
            gateway.stop_cluster(cluster_name)
        gateway.close()
        gateway.close = lambda: None  # its __del__ would close it again, after its loop stopped
    deadline = time.monotonic() + 60
    while True:  # the gateway stops the cluster in the background
        gone = _cli("status", job_id, env=env)
        if gone.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert gone.returncode == 2 and f"no running cluster '{name}'" in gone.stderr


def _wait_for_line(log: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (log.exists() and text in log.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {log}"
        time.sleep(0.2)


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def test_importing_dask_jobqueue_keeps_the_ctrl_c_handler() -> None:
    """dask-jobqueue installs a SIGINT handler calling sys.exit() when imported; loading it
    through the backend registry keeps the process's own handler, so Ctrl-C stays a
    KeyboardInterrupt for the job's cancel path."""
    pytest.importorskip("dask_jobqueue", reason="the 'jobqueue' extra is not installed")
    import signal

    from daskcluster.deploy.backends import require

    def own(*_: object) -> None:  # pragma: no cover - never called
        pass

    previous = signal.signal(signal.SIGINT, own)
    try:
        require("slurm")
        assert signal.getsignal(signal.SIGINT) is own
    finally:
        signal.signal(signal.SIGINT, previous)


def test_local_workers_do_not_report_the_scheduler_their_command_stopped() -> None:
    """The preload of a command's local workers drops the heartbeat's report of a scheduler
    gone (the command stops it on purpose), and nothing else the worker logs."""
    from daskcluster.deploy import interrupts

    worker_logger = logging.getLogger("distributed.worker")
    before = list(worker_logger.filters)
    try:
        interrupts.quiet_scheduler_loss()
        interrupts.quiet_scheduler_loss()  # once only
        assert sum(isinstance(f, interrupts.SchedulerGone) for f in worker_logger.filters) == 1

        def passes(message: str) -> bool:
            record = worker_logger.makeRecord("distributed.worker", logging.ERROR, __file__, 1, message, (), None)
            return bool(worker_logger.filter(record))

        assert not passes("Failed to communicate with scheduler during heartbeat.")
        assert passes("Compute Failed")
        assert passes("Worker is at 95% memory usage")
    finally:
        worker_logger.filters[:] = before


def _distributed_levels() -> dict[str, int]:
    return {name: lg.level for name, lg in list(logging.root.manager.loggerDict.items())
            if isinstance(lg, logging.Logger) and (name == "distributed" or name.startswith("distributed."))}


@pytest.fixture
def distributed_logs(log_messages: Any) -> Iterator[list[str]]:
    """What ``distributed.scheduler`` lets through (set to INFO here, ``distributed.worker`` left
    at NOTSET); every distributed logger's level is put back after."""
    import distributed  # noqa: F401 - its config sets the levels it sets in a command

    saved = _distributed_levels()
    logging.getLogger("distributed.worker").setLevel(logging.NOTSET)
    try:
        with log_messages("distributed.scheduler", logging.INFO) as messages:
            yield messages
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def test_a_ctrl_c_teardown_is_quiet_and_leaves_the_levels_as_they_were(distributed_logs: list[str]) -> None:
    """During the teardown distributed logs nothing below CRITICAL, whatever a logger's level
    (one set, one NOTSET); afterwards every level is the one it had and errors are reported."""
    from daskcluster.deploy.interrupts import quiet_teardown

    before = _distributed_levels()
    scheduler, worker = logging.getLogger("distributed.scheduler"), logging.getLogger("distributed.worker")
    with quiet_teardown():
        assert scheduler.getEffectiveLevel() == worker.getEffectiveLevel() == logging.CRITICAL
        scheduler.error("during the teardown")
    scheduler.error("after the teardown")
    assert _distributed_levels() == before
    assert (scheduler.level, worker.level) == (logging.INFO, logging.NOTSET)
    assert distributed_logs == ["after the teardown"]


def test_a_command_ending_after_ctrl_c_stays_quiet_until_it_exits(distributed_logs: list[str]) -> None:
    """The command's own end (``daskcluster.cli`` after Ctrl-C): nothing below CRITICAL that
    distributed logs afterwards reaches its output, whatever a logger's level."""
    from daskcluster.deploy.interrupts import quiet_teardown, quiet_until_exit

    with quiet_teardown():
        pass
    quiet_until_exit()
    logging.getLogger("distributed.scheduler").error("while the process exits")
    logging.getLogger("distributed.scheduler").critical("a crash")
    assert distributed_logs == ["a crash"]
    assert logging.getLogger("distributed.worker").getEffectiveLevel() == logging.CRITICAL


def test_a_teardown_that_raises_leaves_the_levels_as_they_were(distributed_logs: list[str]) -> None:
    from daskcluster.deploy.interrupts import quiet_teardown

    before = _distributed_levels()
    with pytest.raises(RuntimeError, match="the close failed"), quiet_teardown():
        raise RuntimeError("the close failed")
    assert _distributed_levels() == before


def test_overlapping_teardowns_stay_quiet_until_the_last_ends(distributed_logs: list[str]) -> None:
    """Two clusters stopped in two threads may end in either order."""
    from contextlib import ExitStack

    from daskcluster.deploy.interrupts import quiet_teardown

    before = _distributed_levels()
    first, second = ExitStack(), ExitStack()
    first.enter_context(quiet_teardown())
    second.enter_context(quiet_teardown())
    first.close()
    assert logging.getLogger("distributed.scheduler").getEffectiveLevel() == logging.CRITICAL
    second.close()
    assert _distributed_levels() == before


@pytest.mark.parametrize("interrupted", [True, False], ids=["ctrl-c", "normal-exit"])
def test_cluster_lifetime_quiets_only_the_shutdown_after_ctrl_c(
        distributed_logs: list[str], monkeypatch: pytest.MonkeyPatch, interrupted: bool) -> None:
    """A command's cluster stopped after Ctrl-C: what distributed logs while it shuts down is
    dropped, and the process (a notebook, a session that caught the KeyboardInterrupt) reports
    distributed's errors again afterwards. Without Ctrl-C the shutdown's errors are reported."""
    from contextlib import contextmanager

    from daskcluster.deploy import lifetime as lifetime_module

    @contextmanager
    def cluster(*_: Any, **__: Any) -> Iterator[Any]:
        yield "deployment"
        logging.getLogger("distributed.scheduler").error("lost the tasks of the workers stopped")

    monkeypatch.setattr(lifetime_module, "deploy", cluster)
    before = _distributed_levels()

    class Stop(Exception):
        pass

    with pytest.raises(KeyboardInterrupt if interrupted else Stop):
        with lifetime_module.ClusterLifetime() as lifetime:
            assert lifetime.start(lambda: "prepared") == ("deployment", "prepared")
            raise KeyboardInterrupt if interrupted else Stop
    logging.getLogger("distributed.scheduler").error("later")
    assert _distributed_levels() == before
    shutdown = [] if interrupted else ["lost the tasks of the workers stopped"]
    assert distributed_logs == [*shutdown, "later"]
