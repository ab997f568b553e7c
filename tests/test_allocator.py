"""The workers' allocator setting: every cluster daskcluster starts gives it to its workers
before their process starts, and a value the user set is kept."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import pytest
import yaml

from daskcluster.deploy import deploy, load_config
from daskcluster.deploy.allocator import (
    MMAP_THRESHOLD,
    WORKER_ALLOCATOR,
    pod_env,
    pre_spawn_environ,
    prologue_exports,
)
from daskcluster.deploy.backends import jobqueue_cluster, kubernetes_spec

ROOT = Path(__file__).resolve().parents[1]
NAME = "MALLOC_MMAP_THRESHOLD_"


def test_the_threshold_is_at_glibc_ceiling_and_above_a_default_chunk() -> None:
    from daskcluster.io import DEFAULT_CHUNK_BYTES

    assert MMAP_THRESHOLD == 32 * 2**20  # glibc rejects more on 64-bit systems
    assert DEFAULT_CHUNK_BYTES <= MMAP_THRESHOLD
    assert WORKER_ALLOCATOR == {NAME: str(MMAP_THRESHOLD)}


def test_pre_spawn_environ_adds_the_setting_and_keeps_the_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {"MALLOC_TRIM_THRESHOLD_": 65536}}):
        assert pre_spawn_environ() == {"MALLOC_TRIM_THRESHOLD_": 65536, NAME: str(MMAP_THRESHOLD)}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {NAME: 1 << 20}}):
        assert pre_spawn_environ()[NAME] == 1 << 20
    monkeypatch.setenv(NAME, "4096")  # set in the environment the nannies inherit
    assert NAME not in pre_spawn_environ()


def test_batch_prologue_and_pod_env_keep_the_users() -> None:
    assert prologue_exports(["module load python"]) == [f"export {NAME}={MMAP_THRESHOLD}", "module load python"]
    assert prologue_exports([f"export {NAME}=0"]) == [f"export {NAME}=0"]
    assert pod_env({"A": "1"}) == {NAME: str(MMAP_THRESHOLD), "A": "1"}
    assert pod_env({NAME: "0"}) == {NAME: "0"}


def test_local_cluster_workers_start_with_it() -> None:
    """A real LocalCluster of processes started by ``deploy``: its workers' environment holds the
    setting (set before their process started: glibc reads it only then)."""
    cfg = {"kind": "local", "n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"}
    expected = os.environ.get(NAME, str(MMAP_THRESHOLD))
    with deploy(cfg) as d:
        seen = d.client.run(lambda: os.environ.get(NAME))
    assert len(seen) == 2 and set(seen.values()) == {expected}


def test_slurm_job_script_exports_it() -> None:
    pytest.importorskip("dask_jobqueue", reason="the slurm extra is part of the test extra")
    doc = yaml.safe_load((ROOT / "cluster_configs" / "slurm.yaml").read_text())
    doc.update(scheduler_host="127.0.0.1", dashboard_address=":0")
    cluster = jobqueue_cluster(load_config(doc))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert f"export {NAME}={MMAP_THRESHOLD}" in script
    assert script.index(f"export {NAME}") < script.index("module load python")  # the user's lines come after


def test_kubernetes_workers_get_it() -> None:
    pytest.importorskip("dask_kubernetes", reason="the kubernetes extra is part of the test extra")
    spec = kubernetes_spec(load_config(ROOT / "cluster_configs" / "kubernetes.yaml"))
    env = spec["spec"]["worker"]["spec"]["containers"][0]["env"]
    assert {"name": NAME, "value": str(MMAP_THRESHOLD)} in env
