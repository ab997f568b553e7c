"""Submission through dask-jobqueue: the driver as a batch job.

Everywhere: the batch script (header made by dask-jobqueue's job class from the cluster config,
the prologue, the ``daskcluster run`` command), and a clear error when the batch system's
commands are not installed. Where SLURM is installed (``apt-get install slurm-wlm munge``), a
real single-node SLURM (munged, slurmctld and slurmd on this machine, private configuration
and ports) runs the whole loop: submit -> the job finishes -> status, logs, list and cancel,
each from a new process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("dask_jobqueue", reason="the slurm extra is part of the test extra")

from test_deploy import _blobs_job, _write  # noqa: E402  (the same small and slow jobs)

from daskcluster.deploy import load_config  # noqa: E402
from daskcluster.deploy.batch import BatchError, batch_script  # noqa: E402
from daskcluster.jobs import load_job  # noqa: E402
from daskcluster.jobs.batch import submit_batch  # noqa: E402
from daskcluster.jobs.remote import recorded  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")


def _slurm_config(tmp: Path, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "slurm", "cores": 1, "memory": "1GiB", "processes": 1, "walltime": "00:10:00",
        "job_name": "dc-worker", "python": sys.executable, "log_directory": str(tmp / "worker-logs"),
        "scheduler_host": "127.0.0.1", "dashboard_address": "127.0.0.1:0", "scale": {"jobs": 1},
        "wait_for_workers": 1, "wait_timeout": "180s",
    }
    doc.update(changes)
    return doc


# ----------------------------------------------------------------------------- everywhere


def test_the_driver_script_has_dask_jobqueues_header_and_runs_the_job(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "cluster_configs" / "slurm.yaml").read_text())
    doc["job_extra_directives"] = ["--exclusive"]
    config = load_config(doc)
    script = batch_script(config, ["python", "-m", "daskcluster", "run", "my job.yaml"], job_name="j-1",
                          workdir="/data/my project", log_directory="/out/batch")
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for directive in ("-J j-1", "--cpus-per-task=8", "--mem=32G", "-t 02:00:00", "-p normal", "-A my-project",
                      "--exclusive", "-o /out/batch/j-1-%J.out", "-e /out/batch/j-1-%J.err"):
        assert f"#SBATCH {directive}" in lines
    # the prologue, then the command, quoted for the shell, run in the submission's folder
    assert lines[-3:] == ["module load python", "cd '/data/my project'",
                          "exec python -m daskcluster run 'my job.yaml'"]
    pbs = batch_script(load_config(yaml.safe_load((ROOT / "cluster_configs" / "pbs.yaml").read_text())),
                       ["daskcluster", "run", "j.yaml"], job_name="j-1", workdir="/w")
    assert "#PBS -l select=1:ncpus=8:mem=32GB" in pbs and "#PBS -N j-1" in pbs
    assert pbs.endswith("cd /w\nexec daskcluster run j.yaml\n")


def test_without_the_batch_commands_submit_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No sbatch on this machine: one line naming the command, nothing recorded; the files
    that would have been submitted are there to read."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("DASKCLUSTER_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    job = load_job(_blobs_job(tmp_path, "quick"))
    with pytest.raises(BatchError, match="'sbatch' is not installed here"):
        submit_batch(job, load_config(_slurm_config(tmp_path)))
    assert recorded() == {}
    batch = tmp_path / "quick" / "batch"
    script = (batch / "driver.sh").read_text()
    assert f"run {batch / 'job.yaml'} --cluster {batch / 'cluster.yaml'} --out {tmp_path / 'quick'}" in script
    assert load_job(batch / "job.yaml").doc.outputs.dir == str(tmp_path / "quick")  # resolved, valid
    assert load_config(batch / "cluster.yaml").kind == "slurm"


# ----------------------------------------------------------------------------- a real SLURM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout:g}s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A single-node SLURM on this machine (its own munge key and socket, config, ports and
    spool); yields the environment that points SLURM's commands at it."""
    missing = [b for b in SLURM_BINARIES if shutil.which(b) is None
               and not os.path.exists(f"/usr/sbin/{b}")]
    if missing:
        pytest.skip(f"SLURM is not installed here (no {', '.join(missing)}; Debian: apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("a private slurmd needs root to start jobs on this machine")
    root = tmp_path_factory.mktemp("slurm")
    for d in ("munge", "state", "spool", "log"):
        (root / d).mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = root / "munge" / "socket"
    host = socket.gethostname()
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=daskcluster", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}", "AuthType=auth/munge", f"AuthInfo=socket={sock}", "CredType=cred/munge",
        "SlurmUser=root", "SlurmdUser=root", f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}", f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}", f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}", "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core", "MpiDefault=none", "ReturnToService=2", "KillWait=30",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=4000 State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4", ""]))
    # this checkout's package, in the commands and in the batch jobs (sbatch passes the environment on)
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "SLURM_CONF": str(conf), "PYTHONPATH": pythonpath}
    sbin = [p for p in ("/usr/sbin", "/sbin") if p not in env.get("PATH", "")]
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), *sbin])
    started: list[Path] = []
    try:
        subprocess.run(["munged", "--force", f"--socket={sock}", f"--key-file={key}",
                        f"--pid-file={root / 'munge' / 'pid'}", f"--log-file={root / 'log' / 'munged.log'}",
                        f"--seed-file={root / 'munge' / 'seed'}"], env=env, check=True, timeout=30)
        started.append(root / "munge" / "pid")
        subprocess.run(["slurmctld", "-i"], env=env, check=True, timeout=30)
        started.append(root / "slurmctld.pid")
        subprocess.run(["slurmd"], env=env, check=True, timeout=30)
        started.append(root / "slurmd.pid")

        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            return out.stdout.strip() == "idle"

        _wait_until(idle, "the SLURM node is idle")
        yield env
    finally:
        for pid_file in reversed(started):  # only the daemons this fixture started, by their pid
            try:
                os.kill(int(pid_file.read_text().split()[0]), 15)
            except (OSError, ValueError):
                pass


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daskcluster", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def _squeue(env: dict[str, str]) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], env=env, capture_output=True, text=True)
    return out.stdout.split("\n")[:-1]


@pytest.mark.slow
def test_a_job_submitted_to_slurm_runs_as_a_batch_job(slurm: dict[str, str], tmp_path: Path) -> None:
    """submit writes the driver's script and sbatch-es it, then exits; the job's own cluster runs
    on the node (its worker is one more batch job) and finishes; status, logs, list and cancel
    each work from a new process; a cancelled job records 'cancelled' and leaves no batch job."""
    env = {**slurm, "DASKCLUSTER_HOME": str(tmp_path / "home")}
    config = _write(tmp_path / "slurm.yaml", _slurm_config(tmp_path))

    out = _cli("submit", str(_blobs_job(tmp_path, "quick")), "--cluster", str(config), env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    record = json.loads((tmp_path / "home" / "jobs" / f"{job_id}.json").read_text())
    batch_id = record["batch"]["id"]
    assert f"submitted as SLURM batch job {batch_id}" in out.stderr
    assert "#SBATCH --cpus-per-task=1" in (tmp_path / "quick" / "batch" / "driver.sh").read_text()

    done = _cli("status", job_id, "--wait", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"{job_id}: done") and f"SLURM job {batch_id}" in done.stdout
    metrics = json.loads((tmp_path / "quick" / "metrics.json").read_text())
    assert metrics["status"] == "done" and sum(metrics["metrics"]["sizes"]) == 3000
    assert metrics["cluster"]["n_workers"] == 1
    assert list((tmp_path / "worker-logs").glob("dc-worker-*.err"))  # the worker ran as a batch job
    logs = _cli("logs", job_id, env=env, cwd=tmp_path)
    assert logs.returncode == 0 and "job quick done" in logs.stdout

    slow = _cli("submit", str(_blobs_job(tmp_path, "slow", slow=True)), "--cluster", str(config), env=env,
                cwd=tmp_path)
    assert slow.returncode == 0, slow.stderr
    slow_id = slow.stdout.strip()
    _wait_until(lambda: (tmp_path / "slow" / "job.log").exists()
                and "KMeans init 1/" in (tmp_path / "slow" / "job.log").read_text(), "the slow job iterates",
                timeout=300)
    running = _cli("status", slow_id, env=env, cwd=tmp_path)
    assert running.stdout.startswith(f"{slow_id}: running") and "dashboard: http" in running.stdout, running.stdout
    assert len(_squeue(env)) == 2  # the driver and its worker
    cancelled = _cli("cancel", slow_id, "--wait", env=env, cwd=tmp_path)
    assert cancelled.returncode == 0 and f"{slow_id}: cancelled" in cancelled.stdout, cancelled.stdout
    assert json.loads((tmp_path / "slow" / "metrics.json").read_text())["status"] == "cancelled"
    _wait_until(lambda: _squeue(env) == [], "the driver shut its worker's batch job down")

    listed = _cli("list", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert f"{job_id}: done" in listed.stdout and f"{slow_id}: cancelled" in listed.stdout
    assert _cli("list", "--cluster", str(config), env=env, cwd=tmp_path).stdout == listed.stdout


@pytest.mark.slow
def test_a_job_submitted_as_a_pbs_batch_job_runs(slurm: dict[str, str], tmp_path: Path) -> None:
    """The PBS path (qsub, qstat -f, PBS's output file names, dask-jobqueue's PBSCluster for the
    workers) against the same SLURM through its PBS/Torque commands (slurm-wlm-torque)."""
    if shutil.which("qsub", path=slurm["PATH"]) is None:
        pytest.skip("SLURM's PBS commands are not installed (Debian: apt-get install slurm-wlm-torque)")
    env = {**slurm, "DASKCLUSTER_HOME": str(tmp_path / "home")}
    config = _write(tmp_path / "pbs.yaml", _slurm_config(tmp_path, kind="pbs"))

    out = _cli("submit", str(_blobs_job(tmp_path, "quick")), "--cluster", str(config), env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    assert "#PBS -l select=1:ncpus=1:mem=" in (tmp_path / "quick" / "batch" / "driver.sh").read_text()
    done = _cli("status", job_id, "--wait", env=env, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith(f"{job_id}: done"), done.stdout + done.stderr
    assert "[PBS job " in done.stdout
    assert json.loads((tmp_path / "quick" / "metrics.json").read_text())["status"] == "done"
    logs = _cli("logs", job_id, env=env, cwd=tmp_path)
    assert logs.returncode == 0 and "job quick done" in logs.stdout
    listed = _cli("list", "--cluster", str(config), env=env, cwd=tmp_path)
    assert listed.stdout.startswith(f"{job_id}: done"), listed.stdout + listed.stderr
