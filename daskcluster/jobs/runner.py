"""Load, check and run a job: data -> preprocess -> model -> evaluate -> outputs.

:func:`load_job` validates the whole file (schema and estimator parameters, against the
data's metadata) before any data is read; :func:`run_job` runs it on the current Dask
scheduler (a ``Client`` when given) and writes the outputs.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..deploy.files import ConfigError, apply_overrides, load_yaml, validation_problems
from ..errors import DaskClusterError
from ..locations import is_url
from ..locks import FileLock
from .registry import ESTIMATORS
from .schema import DATA_KINDS, METRICS, JobDoc, LabelsSpec, MnistData

if TYPE_CHECKING:
    from ..progress import IterationReport
    from .sources import DataMeta, LoadedData

# Dask, Zarr, scikit-learn and the outputs' libraries are imported where they are used, so
# that reading and checking a job's schema is quick and the command can start the cluster
# while they load.

__all__ = ["CheckedJob", "Job", "JobCancelled", "JobResult", "check_job", "fitted_scalars", "load_job", "run_job"]

logger = logging.getLogger("daskcluster.jobs")

#: The lock file a run holds in its output folder: two runs into one folder are refused.
LOCK_NAME = ".daskcluster.lock"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class JobCancelled(DaskClusterError, RuntimeError):
    """The job was asked to stop (``daskcluster cancel`` or Ctrl-C); it stopped between iterations."""


@dataclass(frozen=True)
class Job:
    """A validated job: its document, its ``data`` block's model, and where it came from."""

    doc: JobDoc
    data: Any
    source: str

    @property
    def name(self) -> str:
        return self.doc.name

    def to_dict(self) -> dict[str, Any]:
        """The job as plain JSON-able data (what ``job.yaml`` holds and ``submit`` sends)."""
        d = self.doc.model_dump(mode="json", exclude_none=True)
        d["data"] = self.data.model_dump(mode="json", exclude_none=True)
        return d

    def output_dir(self, override: str | os.PathLike[str] | None = None) -> Path:
        text = os.fspath(override) if override is not None else self.doc.outputs.dir
        return Path(text.replace("{name}", self.name)).absolute()

    def with_output_dir(self, folder: str | os.PathLike[str]) -> Job:
        """The job with ``outputs.dir`` replaced (``--out``)."""
        outputs = self.doc.outputs.model_copy(update={"dir": os.fspath(folder)})
        return replace(self, doc=self.doc.model_copy(update={"outputs": outputs}))

    def resolved(self) -> Job:
        """The job with every path absolute (and MNIST located), as the workers must see it."""
        data = self.data
        updates: dict[str, Any] = {}
        if isinstance(data, MnistData):
            from .sources import resolve_mnist

            updates["path"] = resolve_mnist(data)
        elif getattr(data, "path", None) is not None and not is_url(data.path):
            updates["path"] = os.path.abspath(data.path)
        labels = getattr(data, "labels", None)
        if labels is not None and not is_url(labels.path):
            updates["labels"] = labels.model_copy(update={"path": os.path.abspath(labels.path)})
        doc = self.doc
        if isinstance(doc.evaluate.labels, LabelsSpec) and not is_url(doc.evaluate.labels.path):
            ev = doc.evaluate.model_copy(update={"labels": doc.evaluate.labels.model_copy(
                update={"path": os.path.abspath(doc.evaluate.labels.path)})})
            doc = doc.model_copy(update={"evaluate": ev})
        doc = doc.model_copy(update={"outputs": doc.outputs.model_copy(update={"dir": str(self.output_dir())})})
        return replace(self, doc=doc, data=data.model_copy(update=updates))


def load_job(source: str | os.PathLike[str] | Mapping[str, Any] | Job, *,
             overrides: list[str] | tuple[str, ...] = (), out_dir: str | os.PathLike[str] | None = None) -> Job:
    """Read and validate a job (a YAML file or a dict); reads no data.

    Parameters
    ----------
    source : path, mapping or Job
    overrides : list of str
        ``key.sub=value`` strings applied before validation (``--set``).
    out_dir : path, optional
        Replaces ``outputs.dir`` (``--out``).

    Raises
    ------
    ConfigError
        Every problem of the schema, one line each, naming the file and the key.
    """
    if isinstance(source, Job):
        return source
    if isinstance(source, Mapping):
        name, doc = "<job>", dict(source)
    else:
        name, doc = str(source), load_yaml(source)
    doc = apply_overrides(doc, list(overrides), name)
    if out_dir is not None:
        doc.setdefault("outputs", {})
        if isinstance(doc["outputs"], dict):
            doc["outputs"] = {**doc["outputs"], "dir": os.fspath(out_dir)}
    if "kind" in doc and "model" not in doc:
        raise ConfigError(f"{name}: this is a cluster config (it has 'kind'), not a job; pass it with --cluster.")
    parsed, problems = validation_problems(JobDoc, doc)
    data_doc = doc.get("data")
    data = None
    if isinstance(data_doc, dict):
        kind = data_doc.get("kind")
        if kind is None:
            problems.append(f"missing required key 'data.kind'. Add one of: {', '.join(DATA_KINDS)}.")
        elif kind not in DATA_KINDS:
            problems.append(f"key 'data.kind': unknown kind {kind!r}; use one of: {', '.join(DATA_KINDS)}.")
        else:
            data, more = validation_problems(DATA_KINDS[kind], data_doc, ("data",))
            problems += more
    model_doc = doc.get("model")
    model_name = model_doc.get("name") if isinstance(model_doc, dict) else None
    if isinstance(model_name, str) and model_name not in ESTIMATORS:
        import difflib

        close = difflib.get_close_matches(model_name, list(ESTIMATORS), n=1)
        fix = f"Did you mean '{close[0]}'?" if close else f"Use one of: {', '.join(ESTIMATORS)}."
        problems.append(f"key 'model.name': unknown estimator {model_name!r}. {fix}")
    if parsed is not None:
        problems += _evaluate_problems(parsed, data)
    if problems or parsed is None or data is None:
        raise ConfigError("\n".join(f"{name}: {p}" for p in problems))
    return Job(parsed, data, name)


def _evaluate_problems(doc: JobDoc, data: Any) -> list[str]:
    problems = []
    needs = [m for m in doc.evaluate.metrics if METRICS[m][0]]
    if needs:
        has = doc.evaluate.labels != "none" and (
            isinstance(doc.evaluate.labels, LabelsSpec) or data is None or data.has_labels)
        if not has:
            why = "evaluate.labels is 'none'" if doc.evaluate.labels == "none" else \
                f"data of kind '{data.kind}' comes without labels"
            problems.append(f"key 'evaluate.metrics': {', '.join(needs)} need true labels, but {why}. "
                            "Add data.labels (or evaluate.labels: {path: ...}), or drop those metrics.")
    entry = ESTIMATORS.get(doc.model.name)
    if entry is not None:
        problems += entry.metric_problems(doc.evaluate)
    return problems


@dataclass
class CheckedJob:
    """A job whose estimator was built and checked against the data's metadata."""

    job: Job
    meta: DataMeta
    estimator: Any
    notes: list[str] = field(default_factory=list)


def _placeholder(meta: DataMeta, params: Mapping[str, Any]) -> Any:
    """RowData of the data's shape and dtype, never computed (for the estimator's checks)."""
    import dask.array as da

    from ..data import as_row_data

    n = meta.n_samples if meta.n_samples is not None else 2**31
    d = meta.n_features
    if d is None:  # unknown here: take it from an array parameter if there is one
        arrays = [np.asarray(v) for v in params.values() if isinstance(v, list) and v and isinstance(v[0], list)]
        d = int(arrays[0].shape[1]) if arrays else 1
    return as_row_data(da.empty((n, d), dtype=meta.dtype, chunks=(n, d)), owner="job")


def check_job(job: Job) -> CheckedJob:
    """Build the estimator and run its own parameter checks against the data's metadata.

    Reads metadata only (Zarr metadata, ``.npy`` headers, the MNIST file's member headers).

    Raises
    ------
    ConfigError
        Naming the file and the key (``model.params.n_clusters``...).
    """
    from .sources import peek

    name = job.source
    try:
        meta = peek(job.data, job.doc.preprocess)
        entry = ESTIMATORS[job.doc.model.name]
        estimator = entry.build(dict(job.doc.model.params))
        if meta.n_samples is not None and meta.n_samples < entry.min_samples:
            raise ConfigError(f"key 'data': {meta.n_samples} row(s); {entry.name} needs at least {entry.min_samples}.")
        entry.check(estimator, _placeholder(meta, job.doc.model.params))
    except ConfigError as exc:
        raise ConfigError("\n".join(f"{name}: {line}" for line in str(exc).splitlines())) from None
    except DaskClusterError as exc:
        if isinstance(exc, (ValueError, OSError)):
            raise ConfigError(f"{name}: {exc}") from None
        raise
    notes = []
    if meta.n_samples is None:
        notes.append(f"{meta.description} is not reachable from here: its shape is checked when the job runs")
    return CheckedJob(job, meta, estimator, notes)


@dataclass
class JobResult:
    """What a run produced."""

    name: str
    out_dir: Path
    estimator: Any
    metrics: dict[str, Any]
    files: dict[str, str]
    seconds: dict[str, float]
    n_samples: int
    n_features: int
    description: str


def fitted_scalars(estimator: Any) -> dict[str, Any]:
    """The fitted attributes that are numbers or booleans (``inertia_``, ``n_iter_``, ``converged_``...)."""
    out: dict[str, Any] = {}
    for k, v in vars(estimator).items():
        if k.endswith("_") and not k.startswith("_") and isinstance(v, (bool, int, float, np.generic)):
            out[k] = v.item() if isinstance(v, np.generic) else v
    return out


def _cluster_info(dashboard: str | None = None) -> dict[str, Any]:
    """Where the job runs: the scheduler, its workers and threads, and the dashboard link."""
    import dask

    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return {"scheduler": str(dask.config.get("scheduler", None) or "threads")}
    info = client.scheduler_info()
    workers = info.get("workers", {})
    return {"scheduler": info.get("address"), "n_workers": len(workers),
            "threads": int(sum(w.get("nthreads", 0) for w in workers.values())),
            "dashboard": dashboard or client.dashboard_link}


def _done_with_cluster(labels_pred: Any, labels_true: Any, metrics: Collection[str]) -> bool:
    """Whether the rest of a job needs no cluster: labels in memory here, no metric that reads X."""
    in_memory = (labels_pred is None or isinstance(labels_pred, np.ndarray)) and (
        labels_true is None or isinstance(labels_true, np.ndarray))
    return in_memory and not any(METRICS[m].reads_data for m in metrics)


def run_job(
    job: Job | CheckedJob | str | os.PathLike[str] | Mapping[str, Any],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    on_progress: Callable[[IterationReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    log_handler: logging.Handler | None = None,
    loaded: LoadedData | None = None,
    on_cluster_done: Callable[[], None] | None = None,
    dashboard: str | None = None,
) -> JobResult:
    """Run a job on the current Dask scheduler (the default ``Client`` if there is one).

    Parameters
    ----------
    job : Job, CheckedJob, path or mapping
        A :class:`CheckedJob` is not checked again.
    out_dir : path, optional
        Replaces ``outputs.dir``.
    on_progress : callable, optional
        Called with every iteration's :class:`~daskcluster.progress.IterationReport`.
    should_stop : callable, optional
        Polled between stages and iterations; when it returns True the job stops with
        :class:`JobCancelled`.
    log_handler : logging.Handler, optional
        Receives the job's log records (INFO and up) besides ``job.log``.
    loaded : LoadedData, optional
        The job's data, already opened with :func:`daskcluster.jobs.sources.load` (the command
        reads MNIST while the cluster starts).
    on_cluster_done : callable, optional
        Called once nothing more will run on the cluster (right after the fit when the labels
        are in memory here and no metric reads the data; else after the evaluation and the
        labels), before the rest is computed and written here: the command shuts the cluster
        down meanwhile.
    dashboard : str, optional
        The dashboard link to record (default: the client's); ``job.log`` and the running
        ``metrics.json`` have it before any data are read.

    Returns
    -------
    JobResult

    Raises
    ------
    LockedError
        Another run writes into the same output folder (it holds ``.daskcluster.lock``).

    Notes
    -----
    ``metrics.json`` says ``"status": "running"`` (with the pid and host) while the job runs,
    then ``"done"``, ``"failed"`` (with the error) or ``"cancelled"``; a run killed outright
    leaves ``"running"``, and the next run in the folder says so in the log and removes the
    temporaries the dead run left. ``job.log`` keeps every run, each opened by a separator.
    """
    if isinstance(job, CheckedJob) and out_dir is None:
        checked = job  # checked by the caller (the command): not again
        job = checked.job
    else:
        job = load_job(job.job if isinstance(job, CheckedJob) else job)
        if out_dir is not None:
            job = job.with_output_dir(out_dir)
        checked = check_job(job)
    job = job.resolved()
    folder = job.output_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / LOCK_NAME, f"the output folder '{folder}'"):
        notes = _previous_run(folder)
        return _run_locked(job, checked, folder, notes, on_progress=on_progress, should_stop=should_stop,
                           log_handler=log_handler, loaded=loaded, on_cluster_done=on_cluster_done,
                           dashboard=dashboard)


def _previous_run(folder: Path) -> list[str]:
    """Clean what a killed run left (temporaries) and say what it left, for the log."""
    from ..atomic import clean_stale_in, pid_alive

    notes = []
    cleaned = clean_stale_in(folder)
    if cleaned:
        notes.append(f"removed {len(cleaned)} temporaries left by an earlier run that died: "
                     + ", ".join(p.name for p in cleaned))
    try:
        doc = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return notes
    if isinstance(doc, dict) and doc.get("status") == "running":
        pid = doc.get("pid")
        if doc.get("host") != socket.gethostname() or not isinstance(pid, int) or not pid_alive(pid):
            notes.append(f"the previous run of job {doc.get('job')} in this folder (pid {pid} on "
                         f"{doc.get('host')}, started {doc.get('started')}) died without finishing")
    return notes


def _run_locked(job: Job, checked: CheckedJob, folder: Path, notes: list[str], *, on_progress: Callable[[IterationReport], None] | None,
                should_stop: Callable[[], bool] | None, log_handler: logging.Handler | None,
                loaded: LoadedData | None, on_cluster_done: Callable[[], None] | None,
                dashboard: str | None) -> JobResult:
    from .._lazy import import_in_background
    from ..progress import progress_hook
    from . import outputs as out
    from .evaluate import evaluate
    from .sources import load, load_labels, preprocess

    spec = job.doc
    seconds: dict[str, float] = {}
    iterations: list[dict[str, Any]] = []
    files: dict[str, str] = {}
    t_start = time.perf_counter()

    def stop_point() -> None:
        if should_stop is not None and should_stop():
            raise JobCancelled(f"job {job.name} cancelled")

    def hook(rep: IterationReport) -> None:
        iterations.append({"estimator": rep.estimator, "stage": rep.stage, "iteration": rep.iteration,
                           "max_iter": rep.max_iter,
                           "seconds": rep.seconds, "metrics": dict(rep.metrics)})
        if on_progress is not None:
            on_progress(rep)
        stop_point()

    base_doc: dict[str, Any] = {"job": job.name, "description": spec.description, "source": job.source,
                                "estimator": spec.model.name, "params": spec.model.params}
    with out.job_log(folder / "job.log" if spec.outputs.log else None, log_handler):
        for note in notes:
            logger.warning("%s", note)
        try:
            cluster = _cluster_info(dashboard)
            # a run killed outright leaves this record: its status says it never finished
            out.write_json(folder / "metrics.json", {**base_doc, "status": "running", "pid": os.getpid(),
                                                     "host": socket.gethostname(), "started": _now(),
                                                     "cluster": cluster})
            out.write_job(folder / "job.yaml", job.to_dict())
            logger.info("job %s: %s on %s -> %s", job.name, spec.model.name, checked.meta.description, folder)
            if cluster.get("dashboard"):
                logger.info("dashboard: %s", cluster["dashboard"])
            stop_point()
            t0 = time.perf_counter()
            data = loaded if loaded is not None else load(job.data)
            X = preprocess(data.X, spec.preprocess)
            seconds["load"] = time.perf_counter() - t0
            logger.info("data: %s, %d x %d", data.description, data.n_samples, data.n_features)
            stop_point()
            t0 = time.perf_counter()
            if spec.outputs.plots is not False:
                import_in_background(out.PLOT_MODULES)  # while the passes run on the cluster
            with progress_hook(hook):
                fitted = ESTIMATORS[spec.model.name].fit(checked.estimator, X)
            estimator = fitted.model
            seconds["fit"] = time.perf_counter() - t0
            logger.info("fit: %.2fs, %s", seconds["fit"], fitted_scalars(estimator))
            stop_point()
            t0 = time.perf_counter()
            labels_pred = getattr(estimator, "labels_", None)
            if labels_pred is None and hasattr(estimator, "predict") and (
                    spec.outputs.labels or spec.evaluate.metrics):
                labels_pred = estimator.predict(X)
            labels_true = data.y
            if spec.evaluate.labels == "none":
                labels_true = None
            elif isinstance(spec.evaluate.labels, LabelsSpec):
                labels_true = load_labels(spec.evaluate.labels, data.n_samples)
            if spec.outputs.labels and labels_pred is not None and not isinstance(labels_pred, np.ndarray):
                # lazy labels: one pass over the data writes them, and the metrics read the store
                files["labels"] = str(out.write_labels(folder / "labels.zarr", labels_pred))
                labels_pred = out.read_labels(folder / "labels.zarr")
            released = False
            if on_cluster_done is not None and _done_with_cluster(labels_pred, labels_true, spec.evaluate.metrics):
                on_cluster_done()  # everything left is computed and written here
                released = True
            metrics = evaluate(estimator, X, labels_pred, labels_true, list(spec.evaluate.metrics))
            seconds["evaluate"] = time.perf_counter() - t0
            logger.info("metrics: %s", {k: v for k, v in metrics.items() if k != "contingency"})
            stop_point()
            t0 = time.perf_counter()
            if spec.outputs.labels and labels_pred is not None and "labels" not in files:
                files["labels"] = str(out.write_labels(folder / "labels.zarr", labels_pred))
            if on_cluster_done is not None and not released:
                on_cluster_done()  # what follows is written from here, without the cluster
            meta = {"job": job.name, "data": data.description, "n_samples": data.n_samples}
            if spec.outputs.model:
                files["model"] = str(out.write_model(folder / "model.zip", estimator, meta))
            if spec.outputs.plots is not False:
                for p in out.write_plots(folder, estimator, iterations, metrics.get("sizes"),
                                         metrics.get("cluster_majority")):
                    files[p.stem] = str(p)
            for name, table in fitted.tables.items():
                files[name] = str(out.write_table(folder / f"{name}.csv", table))
            seconds["outputs"] = time.perf_counter() - t0
            seconds["total"] = time.perf_counter() - t_start
            files["metrics"] = str(folder / "metrics.json")
            if spec.outputs.log:
                files["log"] = str(folder / "job.log")
            doc = {**base_doc, "status": "done",
                   "data": {"description": data.description, "n_samples": data.n_samples,
                            "n_features": data.n_features, "preprocess": [s.name for s in spec.preprocess]},
                   "model": fitted_scalars(estimator), "metrics": metrics, "seconds": seconds,
                   "cluster": cluster, "files": files, "iterations": iterations}
            out.write_json(folder / "metrics.json", doc)
            logger.info("job %s done in %.2fs; outputs in %s", job.name, seconds["total"], folder)
        except BaseException as exc:
            state = "cancelled" if isinstance(exc, (JobCancelled, KeyboardInterrupt)) else "failed"
            if state == "cancelled":  # asked for: not an error
                logger.warning("job %s cancelled: %s", job.name, str(exc) or "interrupted (Ctrl-C)")
            else:
                logger.error("job %s failed: %s", job.name, exc or type(exc).__name__, exc_info=True)
            try:
                out.write_json(folder / "metrics.json", {**base_doc, "status": state,
                                                         "error": f"{type(exc).__name__}: {exc}",
                                                         "seconds": seconds, "iterations": iterations})
            except Exception as write_error:  # the original error matters more
                logger.debug("could not record the failure in metrics.json: %s", write_error)
            raise
    return JobResult(job.name, folder, estimator, metrics, files, seconds, data.n_samples, data.n_features,
                     data.description)
