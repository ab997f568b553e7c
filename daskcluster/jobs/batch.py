"""Jobs whose driver is a batch job of SLURM or PBS (``daskcluster submit --cluster slurm.yaml``).

dask-jobqueue runs a cluster's scheduler inside the process that creates it, so a job on a
jobqueue cluster outlives the submitting command only if that process is itself a batch
job. :func:`submit_batch` writes, in the job's output folder::

    batch/job.yaml       the job as validated here (overrides applied, every path absolute)
    batch/cluster.yaml   the cluster config
    batch/driver.sh      the batch script: the config's header and prologue (dask-jobqueue),
                         then  python -m daskcluster run batch/job.yaml --cluster
                         batch/cluster.yaml --out FOLDER --no-progress
    batch/<id>-<batch id>.out, .err   what the batch system captures (SLURM; PBS: <id>.o<batch id>)

and submits the script (``sbatch``/``qsub``). On the compute node ``daskcluster run`` starts
the config's dask-jobqueue cluster (its workers are more batch jobs, submitted from there),
runs the job and shuts the cluster down; a batch cancel (``scancel``/``qdel``, SIGTERM) stops
it as Ctrl-C does. The job record (:func:`daskcluster.jobs.remote.remember`) keeps the batch
system, the batch job id and the output folder, so :func:`batch_status`, :func:`batch_logs`
and :func:`batch_cancel` work from any later process on a machine with the batch commands:
the state is the batch system's (queued, running, how it ended) together with the job's own
``metrics.json`` (running with its dashboard, done, failed or cancelled).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..deploy.batch import (
    BatchState,
    batch_script,
    batch_state,
    cancel_batch,
    output_files,
    submit_script,
)
from .remote import TERMINAL, JobStatus, new_job_id, remember, wait_for

__all__ = ["batch_cancel", "batch_logs", "batch_status", "batch_wait", "submit_batch"]

logger = logging.getLogger(__name__)

def submit_batch(job: Any, config: Any) -> tuple[str, dict[str, Any]]:
    """Write the driver's batch script for a validated job and submit it; return (id, record).

    Parameters
    ----------
    job : Job
        Validated (``outputs.dir`` is where it writes, as the compute nodes see it).
    config : SLURMConfig or PBSConfig

    Raises
    ------
    BatchError
        The submit command failed or printed no job id (nothing is recorded then).
    """
    from .outputs import write_job, write_text

    resolved = job.resolved()
    folder = resolved.output_dir()
    job_id = new_job_id(resolved.name)
    batch = folder / "batch"
    batch.mkdir(parents=True, exist_ok=True)
    job_file = write_job(batch / "job.yaml", resolved.to_dict())
    config_file = write_job(batch / "cluster.yaml", config.model_dump(mode="json", exclude_none=True))
    command = [config.python or sys.executable, "-m", "daskcluster", "run", str(job_file), "--cluster",
               str(config_file), "--out", str(folder), "--no-progress"]
    script = write_text(batch / "driver.sh", batch_script(config, command, job_name=job_id, workdir=os.getcwd(),
                                                          log_directory=str(batch)))
    batch_id = submit_script(config, script)
    record = {"batch": {"kind": config.kind, "id": batch_id, "script": str(script), "folder": str(batch)},
              "name": resolved.name, "out": str(folder), "config": {"kind": config.kind}}
    remember(job_id, record)
    logger.info("job %s submitted as %s batch job %s (%s)", job_id, config.kind.upper(), batch_id, script)
    return job_id, record


def _job_doc(record: dict[str, Any]) -> dict[str, Any]:
    """The job's ``metrics.json`` if this submission wrote it (not an older run's), else {}."""
    import json

    path = Path(record["out"]) / "metrics.json"
    try:
        if path.stat().st_mtime < float(record.get("submitted", 0.0)) - 1.0:
            return {}
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def batch_status(job_id: str, record: dict[str, Any]) -> JobStatus:
    """The state of a batch-submitted job, from its batch system and its ``metrics.json``."""
    b = record["batch"]
    found = batch_state(b["kind"], b["id"])
    doc = _job_doc(record)
    ours = doc.get("status")
    info: dict[str, Any] = {"batch": _describe(b, found), "dashboard": doc.get("dashboard") or
                            (doc.get("cluster") or {}).get("dashboard")}
    if found is not None and found.state in ("queued", "running"):
        state = "running" if found.state == "running" else "queued"
    elif ours in TERMINAL:
        state = ours
        if doc.get("error"):
            info["error"] = doc["error"]
        if ours == "done":
            info.update(seconds=doc.get("seconds") or {}, metrics=doc.get("metrics") or {})
    elif found is None:
        state = "lost"
        info["error"] = (f"the batch system no longer knows job {b['id']} and the job left no final state in "
                         f"{record['out']}/metrics.json; see 'daskcluster logs {job_id}'")
    elif found.state == "cancelled":
        state = "cancelled"
        info["error"] = f"cancelled in the batch system ({found.raw}) before the job recorded an end"
    else:
        state = "failed"
        code = f", exit code {found.exit_code}" if found.exit_code is not None else ""
        info["error"] = (f"the batch job ended ({found.raw}{code}) before the job recorded an end; see "
                         f"'daskcluster logs {job_id}'")
    return JobStatus(job_id, state, record.get("name"), record.get("out"), info)


def _describe(b: dict[str, Any], found: BatchState | None) -> str:
    return f"{b['kind'].upper()} job {b['id']}: " + (found.raw if found is not None else "no longer listed")


def batch_logs(job_id: str, record: dict[str, Any]) -> list[str]:
    """The job's ``job.log`` lines, then what the batch system captured of the driver (each headed)."""
    b = record["batch"]
    lines: list[str] = []
    job_log = Path(record["out"]) / "job.log"
    if job_log.is_file() and job_log.stat().st_mtime >= float(record.get("submitted", 0.0)) - 1.0:
        lines += job_log.read_text(errors="replace").splitlines()
    for path in output_files(b["folder"], b["id"]):
        text = path.read_text(errors="replace").strip()
        if text:
            lines += [f"--- {path} ---", *text.splitlines()]
    return lines


def batch_cancel(job_id: str, record: dict[str, Any]) -> JobStatus:
    """Cancel the batch job (the driver shuts its cluster down and records 'cancelled');
    returns the state before the cancel."""
    current = batch_status(job_id, record)
    if not current.finished and current.state != "lost":
        cancel_batch(record["batch"]["kind"], record["batch"]["id"])
    return current


def batch_wait(job_id: str, record: dict[str, Any], timeout: float | None = None, poll: float = 2.0) -> JobStatus:
    """Poll until the job is done, failed, cancelled or lost (or ``timeout`` seconds)."""
    return wait_for(lambda: batch_status(job_id, record), job_id, timeout, poll)
