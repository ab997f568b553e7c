"""Declarative jobs: a YAML file of ``workflows/`` run on any Dask cluster.

A job is ``data`` -> ``preprocess`` -> ``model`` -> ``evaluate`` -> ``outputs``::

    from daskcluster.deploy import deploy
    from daskcluster.jobs import load_job, run_job

    job = load_job("workflows/mnist_kmeans.yaml", overrides=["model.params.n_clusters=20"])
    with deploy("cluster_configs/local.yaml"):
        result = run_job(job, out_dir="outputs/mnist")
    result.metrics, result.files

:func:`load_job` validates everything before any data is read (the schema in
:mod:`~daskcluster.jobs.schema`; the estimator's own parameter checks against the data's
metadata in :func:`check_job`); :func:`validate_job` gives every problem of a job in one report,
the paths it reads and writes checked against a :class:`PathPolicy`. :func:`apply_model`
applies a saved model to data (``daskcluster predict``). :func:`submit` sends a job to run
*on* a cluster, as a long-running task, and returns its id at once; :func:`status`, :func:`logs` and
:func:`cancel` follow and stop it from any process connected to the same scheduler.
See ``docs/jobs.md``.
"""

from .apply import apply_model
from .policy import PathPolicy
from .registry import ESTIMATORS, EstimatorEntry, register
from .remote import (
    JobStatus,
    UnknownJobError,
    cancel,
    list_jobs,
    logs,
    status,
    submit,
    wait,
)
from .runner import (
    CheckedJob,
    Job,
    JobCancelled,
    JobResult,
    check_job,
    load_job,
    run_job,
)
from .validation import validate_job

__all__ = [
    "ESTIMATORS",
    "CheckedJob",
    "EstimatorEntry",
    "Job",
    "JobCancelled",
    "JobResult",
    "JobStatus",
    "PathPolicy",
    "UnknownJobError",
    "apply_model",
    "cancel",
    "check_job",
    "list_jobs",
    "load_job",
    "logs",
    "register",
    "run_job",
    "status",
    "submit",
    "validate_job",
    "wait",
]
