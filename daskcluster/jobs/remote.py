"""Jobs that run *on* the cluster: submit, status, logs, cancel.

:func:`submit` sends the job's driver to the cluster as one long-running task (it leaves
the worker's thread pool through :func:`distributed.worker_client` and submits the fit's
tasks from there) and releases it with :func:`distributed.fire_and_forget`: the scheduler
keeps it running after the submitting process has exited. Everything about a job lives on
the scheduler, so any process connected to it can follow or stop the job:

=============================== ==================================================================
``daskcluster-jobs``             event topic: one event per submitted job (the index)
``daskcluster-job-<id>-status``  event topic: queued, running (stage, iteration, metrics), done,
                                 failed, cancelled; the last event is the job's state
``daskcluster-job-<id>-log``     event topic: the job's log lines (the scheduler keeps the last
                                 ``distributed.admin.low-level-log-length``, 1000 by default;
                                 ``job.log`` in the output folder has them all)
``daskcluster-job-<id>-cancel``  a :class:`distributed.Event`; set by :func:`cancel`, polled by
                                 the driver between iterations
=============================== ==================================================================

The workers must be able to import daskcluster and to read the data and write the output
folder at the paths the job names (submit makes them absolute). If the worker running a
driver dies, the scheduler runs the driver again elsewhere, from the start.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_bytes
from ..errors import DaskClusterError
from ..progress import IterationReport
from .runner import JobCancelled, check_job, load_job, run_job
from .schema import check_plain_name
from .secrets import redact

__all__ = ["JobStatus", "UnknownJobError", "cancel", "list_jobs", "logs", "new_job_id", "recall", "recorded", "remember",
           "status", "submit", "wait", "wait_for"]

logger = logging.getLogger(__name__)

INDEX_TOPIC = "daskcluster-jobs"
TERMINAL = ("done", "failed", "cancelled")
HOME_ENV = "DASKCLUSTER_HOME"


class UnknownJobError(DaskClusterError, LookupError):
    """No job with this id is known to the scheduler."""


def _status_topic(job_id: str) -> str:
    return f"daskcluster-job-{job_id}-status"


def _log_topic(job_id: str) -> str:
    return f"daskcluster-job-{job_id}-log"


def _cancel_name(job_id: str) -> str:
    return f"daskcluster-job-{job_id}-cancel"


def _task_key(job_id: str) -> str:
    return f"daskcluster-job-{job_id}"


# ---------------------------------------------------------------------------- the driver


class _Publisher:
    """Publishes a job's state and log lines to the scheduler's event log."""

    def __init__(self, client: Any, job_id: str, base: dict[str, Any]) -> None:
        self.client = client
        self.job_id = job_id
        self.base = base
        self._last = 0.0

    def state(self, state: str, **info: Any) -> None:
        self.client.log_event(_status_topic(self.job_id),
                              redact({**self.base, "state": state, "time": time.time(), **info}))

    def progress(self, rep: IterationReport) -> None:
        self.state("running", estimator=rep.estimator, stage=rep.stage, iteration=rep.iteration,
                   max_iter=rep.max_iter, metrics={k: float(v) for k, v in rep.metrics.items()},
                   seconds=rep.seconds)


class _LogHandler(logging.Handler):
    """Sends the driver thread's log records to the job's log topic."""

    def __init__(self, client: Any, job_id: str) -> None:
        super().__init__(logging.INFO)
        self.client = client
        self.topic = _log_topic(job_id)
        self.thread = threading.get_ident()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:  # only the driver's own records, never the worker's event loop
            return
        try:
            self.client.log_event(self.topic, self.format(record))
        except Exception:  # a lost log line must not fail the job
            pass


def _drive(job: dict[str, Any], job_id: str, out_dir: str, dashboard: str | None = None) -> str:
    """The driver task: runs a job on the worker that executes it. Module-level (picklable)."""
    from distributed import Event, worker_client

    with worker_client() as client:
        pub = _Publisher(client, job_id, {"name": job.get("name"), "out": out_dir, "dashboard": dashboard})
        cancel_event = Event(_cancel_name(job_id), client=client)
        cancelled = threading.Event()
        finished = threading.Event()

        def watch() -> None:
            while not finished.is_set():
                try:
                    if cancel_event.wait(timeout=1.0):
                        cancelled.set()
                        return
                except Exception:  # the scheduler is going away: the job will fail on its own
                    return

        if cancel_event.is_set():
            pub.state("cancelled", error="cancelled before it started")
            return "cancelled"
        watcher = threading.Thread(target=watch, name=f"daskcluster-cancel-{job_id}", daemon=True)
        watcher.start()
        from distributed import get_worker

        pub.state("running", stage="start", worker=get_worker().address)
        handler = _LogHandler(client, job_id)
        try:
            with client.as_current():
                result = run_job(job, out_dir=out_dir, on_progress=pub.progress, should_stop=cancelled.is_set,
                                 log_handler=handler, dashboard=dashboard)
        except JobCancelled:
            pub.state("cancelled", error="cancelled by request")
            return "cancelled"
        except BaseException as exc:
            pub.state("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            finished.set()
        pub.state("done", seconds=result.seconds, metrics=_scalars(result.metrics), files=result.files,
                  n_samples=result.n_samples, n_features=result.n_features)
        return "done"


def _dashboard_link(client: Any) -> str | None:
    try:
        return str(client.dashboard_link)
    except Exception:  # no dashboard
        return None


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}


# ---------------------------------------------------------------------------- the client side


def new_job_id(name: str) -> str:
    """A new job's id: its name, the time and a random suffix (a plain name, unique)."""
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def submit(job: Any, client: Any, *, out_dir: str | os.PathLike[str] | None = None,
           overrides: list[str] | tuple[str, ...] = (), dashboard: str | None = None) -> str:
    """Validate a job here, send it to run on the cluster of ``client``; return its id at once.

    The job goes on when this process exits. Paths are made absolute: the workers must see
    the same files (a shared file system, or URLs). ``dashboard`` (default: the client's
    link) is kept with the job's state, so that ``status`` shows it from anywhere.
    """
    from distributed import fire_and_forget

    loaded = load_job(job, overrides=overrides, out_dir=out_dir)
    check_job(loaded)
    resolved = loaded.resolved()
    folder = str(resolved.output_dir())
    job_id = new_job_id(resolved.name)
    if dashboard is None:
        dashboard = _dashboard_link(client)
    info = {"id": job_id, "name": resolved.name, "out": folder, "submitted": time.time(),
            "source": loaded.source, "dashboard": dashboard}
    client.log_event(INDEX_TOPIC, info)
    client.log_event(_status_topic(job_id), {"name": resolved.name, "out": folder, "state": "queued",
                                             "time": time.time(), "dashboard": dashboard})
    future = client.submit(_drive, resolved.to_dict(), job_id, folder, dashboard, key=_task_key(job_id),
                           pure=False, retries=0)
    fire_and_forget(future)
    # the scheduler has the task once it answers a request sent after it (same connection order)
    client.sync(client.scheduler.identity)
    return job_id


@dataclass
class JobStatus:
    """The last known state of a submitted job."""

    id: str
    state: str
    name: str | None = None
    out: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def format(self) -> str:
        parts = [f"{self.id}: {self.state}"]
        i = self.info
        if self.state == "running" and i.get("stage") == "start":
            parts.append(f"(starting on {i.get('worker', 'a worker')})")
        if self.state == "running" and i.get("iteration") is not None:
            metrics = " ".join(f"{k}={v:.6g}" for k, v in (i.get("metrics") or {}).items())
            parts.append(f"({i.get('estimator', '')} {i.get('stage')} {i.get('iteration')}/{i.get('max_iter')}"
                         + (f" {metrics}" if metrics else "") + ")")
        if self.state == "done" and i.get("seconds"):
            parts.append(f"in {i['seconds'].get('total', 0):.1f}s")
            shown = {k: v for k, v in (i.get("metrics") or {}).items() if isinstance(v, float)}
            if shown:
                parts.append(" ".join(f"{k}={v:.4g}" for k, v in shown.items()))
        if i.get("error"):
            parts.append(f"- {i['error']}")
        if self.out:
            parts.append(f"outputs: {self.out}")
        if i.get("dashboard") and not self.finished:
            parts.append(f"dashboard: {i['dashboard']}")
        if i.get("batch"):
            parts.append(f"[{i['batch']}]")
        return " ".join(parts)


def _driver_task_state(client: Any, job_id: str) -> tuple[str | None, str | None]:
    """(state, exception text) of the driver task on the scheduler, or (None, None)."""
    key = _task_key(job_id)

    def probe(dask_scheduler: Any, key: str = key) -> tuple[str | None, str | None]:
        ts = dask_scheduler.tasks.get(key)
        if ts is None:
            return None, None
        text = None
        if ts.state == "erred" and ts.exception_blame is not None:
            text = str(ts.exception_blame.exception_text)
        return ts.state, text

    try:
        return client.run_on_scheduler(probe)  # type: ignore[no-any-return]
    except Exception:
        return None, None


def status(job_id: str, client: Any) -> JobStatus:
    """The job's last published state (raises :class:`UnknownJobError` if the scheduler never saw it)."""
    check_plain_name(job_id)
    events = client.get_events(_status_topic(job_id))
    if not events:
        raise UnknownJobError(
            f"no job {job_id!r} on the scheduler at {client.scheduler.address} (it restarted, or the id is "
            "for another scheduler). 'daskcluster status' with no id lists the jobs it knows."
        )
    first = dict(events[0][1])
    last = {"dashboard": first.get("dashboard"), **dict(events[-1][1])}
    state = last.get("state", "unknown")
    if state not in TERMINAL:
        task_state, error = _driver_task_state(client, job_id)
        if task_state == "erred":
            state, last["error"] = "failed", error or "the driver task failed"
        elif task_state is None and state == "running":
            state = "lost"
            last["error"] = "the scheduler no longer has the driver task"
    return JobStatus(job_id, state, last.get("name") or first.get("name"), last.get("out") or first.get("out"), last)


def logs(job_id: str, client: Any) -> list[str]:
    """The job's log lines kept by the scheduler."""
    status(job_id, client)  # unknown ids are errors
    return [str(msg) for _, msg in client.get_events(_log_topic(job_id))]


def cancel(job_id: str, client: Any) -> JobStatus:
    """Ask a job to stop; it stops at its next iteration (or before it starts). Returns its state."""
    from distributed import Event

    current = status(job_id, client)
    if current.finished:
        return current
    Event(_cancel_name(job_id), client=client).set()
    return current


def wait(job_id: str, client: Any, timeout: float | None = None, poll: float = 0.5) -> JobStatus:
    """Poll until the job is done, failed or cancelled (or ``timeout`` seconds)."""
    return wait_for(lambda: status(job_id, client), job_id, timeout, poll)


def wait_for(fetch: Callable[[], JobStatus], job_id: str, timeout: float | None, poll: float) -> JobStatus:
    """Call ``fetch`` every ``poll`` seconds until the job is done, failed, cancelled or lost;
    :class:`TimeoutError` after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        st = fetch()
        if st.finished or st.state == "lost":
            return st
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {st.state} after {timeout}s")
        time.sleep(poll)


def list_jobs(client: Any) -> list[JobStatus]:
    """Every job the scheduler knows, oldest first, with its state."""
    out = []
    for _, info in client.get_events(INDEX_TOPIC):
        try:
            out.append(status(info["id"], client))
        except UnknownJobError:
            continue
    return out


# ---------------------------------------------------------------------------- local records


def _home() -> Path:
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".daskcluster")


def remember(job_id: str, where: dict[str, Any]) -> None:
    """Note where a job was submitted (a :func:`daskcluster.deploy.lifetime.reconnection` record,
    or a batch job's, :func:`daskcluster.jobs.batch.submit_batch`), so that ``status``/``logs``/
    ``cancel``/``list`` find its cluster again (best effort)."""
    check_plain_name(job_id)
    try:
        folder = _home() / "jobs"
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes(folder / f"{job_id}.json", json.dumps({**where, "submitted": time.time()}).encode())
    except OSError as exc:
        logger.warning("could not record job %s under %s: %s", job_id, _home(), exc)


def recall(job_id: str) -> dict[str, Any] | None:
    """Where a job was submitted from this machine, or None."""
    check_plain_name(job_id)
    try:
        return json.loads((_home() / "jobs" / f"{job_id}.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def recorded() -> dict[str, dict[str, Any]]:
    """Every job submitted from this machine: id -> where (oldest first)."""
    out = []
    for path in (_home() / "jobs").glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and ("scheduler" in record or "batch" in record):
            out.append((float(record.get("submitted", 0.0)), path.stem, record))
    return {job_id: record for _, job_id, record in sorted(out, key=lambda t: (t[0], t[1]))}
