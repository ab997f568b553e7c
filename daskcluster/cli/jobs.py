"""``daskcluster run``, ``submit``, ``status``, ``logs`` and ``cancel``: running jobs."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .console import say
from .options import FAILED, OK, UsageError, cluster, cluster_options


def add_parsers(sub: Any) -> None:
    """The job commands, in the order ``--help`` lists them."""
    r = sub.add_parser("run", help="run a job file on a cluster and write its outputs",
                       description="Run a job (workflows/*.yaml) on a cluster: the local default, a config "
                                   "(--cluster) or an existing scheduler (--scheduler).")
    r.add_argument("job", metavar="JOB.yaml")
    cluster_options(r)
    r.add_argument("--out", metavar="DIR", help="output folder (default: the job's outputs.dir)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a key of the job, e.g. --set model.params.n_clusters=20 (repeatable)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(handler=cmd_run)

    s = sub.add_parser("submit", help="send a job to run on a cluster; print its id and return",
                       description="Send a job to run ON the cluster (as a long-running task); print its id and "
                                   "return at once. The job goes on after this command exits.")
    s.add_argument("job", metavar="JOB.yaml")
    cluster_options(s, required=True)
    s.add_argument("--out", metavar="DIR", help="output folder, as the workers see it (default: outputs.dir)")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    s.set_defaults(handler=cmd_submit)

    handlers = {"status": cmd_status, "logs": cmd_logs, "cancel": cmd_cancel, "list": cmd_list}
    for name, text in (("status", "a submitted job's state (no id: as 'list')"),
                       ("logs", "a submitted job's log lines"), ("cancel", "stop a submitted job"),
                       ("list", "the submitted jobs of a cluster (default: of every cluster this machine "
                                "submitted to)")):
        where = "" if name == "list" else (". Without --scheduler/--cluster, the cluster the job was submitted to "
                                           "from this machine (a dask-gateway cluster is found by its name)")
        c = sub.add_parser(name, help=text, description=text + where + ".")
        if name != "list":
            c.add_argument("id", metavar="ID", nargs="?" if name == "status" else None)
        cluster_options(c)
        if name in ("status", "cancel"):
            c.add_argument("--wait", action="store_true", help="wait until the job is done, failed or cancelled")
        if name == "logs":
            c.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
        c.set_defaults(handler=handlers[name])


class JobFailed(Exception):
    """A job that started and failed (exit status 1, one line, the job's log named)."""

    def __init__(self, name: str, exc: BaseException, folder: Any) -> None:
        from ..jobs.secrets import scrub

        super().__init__(scrub(f"job {name} failed: {type(exc).__name__}: {exc} (log: {folder}/job.log)"))


def _summary(result: Any, wall: float, where: str) -> str:
    from ..jobs.runner import fitted_scalars

    est = result.estimator
    scalars = " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in fitted_scalars(est).items() if k != "n_features_in_")
    shown = " ".join(f"{k}={v:.4f}" for k, v in result.metrics.items() if isinstance(v, float))
    lines = [
        f"{result.name}: {type(est).__name__} on {result.description}, {result.n_samples:,} x {result.n_features}",
        f"  cluster: {where}",
        f"  fit: {result.seconds.get('fit', 0):.2f}s ({scalars}); whole job {result.seconds.get('total', 0):.2f}s, "
        f"command {wall:.2f}s",
    ]
    if shown:
        lines.append(f"  metrics: {shown}")
    if "sizes" in result.metrics:
        lines.append(f"  cluster sizes: {result.metrics['sizes']}")
    lines.append(f"  outputs: {result.out_dir} ({', '.join(sorted(_short(p) for p in result.files.values()))})")
    return "\n".join(lines)


def _short(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def cmd_run(args: argparse.Namespace) -> int:
    from ..deploy.files import ConfigError
    from ..deploy.lifetime import ClusterLifetime, starts_before_validation
    from ..jobs import run_job
    from ..progress import ProgressBar

    # The whole job and the cluster config are valid, in one report, before the job starts.
    # A cluster that only this command's processes make up (the local default, an existing
    # scheduler) starts meanwhile; any other is started only once everything is valid.
    checked = None if starts_before_validation(args.cluster, args.scheduler) else _validate(args)
    _stop_on_sigterm()
    bar = ProgressBar(leave=False, file=sys.stderr, disable=True if args.no_progress else None)
    announcement = _Announcement(job_valid=checked is not None)
    with ClusterLifetime(args.cluster, scheduler=args.scheduler, on_up=announcement.cluster_up) as lifetime:
        # the cluster starts here (so that Ctrl-C reaches it) while a thread validates the job
        # (if not yet done), opens its data (reads MNIST) and imports what the outputs need
        d, (checked, loaded) = lifetime.start(lambda: _prepare(args, checked, announcement))
        job = checked.job
        where = f"{d.describe()} ({d.workers_text()}); dashboard {d.dashboard_link}"
        try:
            # --no-progress: no bar at all (not a disabled one, which would import tqdm for nothing)
            result = run_job(checked, on_progress=None if args.no_progress else bar, loaded=loaded,
                             on_cluster_done=lifetime.release,
                             dashboard=d.dashboard_link)
        except ConfigError:
            raise  # found while checking, before the job started
        except Exception as exc:
            raise JobFailed(job.name, exc, job.output_dir()) from exc
        finally:
            bar.close()
        say(_summary(result, time.perf_counter() - args.started, where))
    return OK


#: Packages that libraries import when installed but that no job needs, by library: Dask's arrays
#: import xarray and pydata sparse (with Numba) only to recognise their types (a DataArray, sparse
#: chunks), which no job has; scikit-learn imports pandas (with pyarrow) in ``sklearn.utils.fixes``
#: and never uses it there. ``run`` imports those libraries without them (:func:`import_for_jobs`);
#: they stay importable, for the jobs that use them (Parquet data, a sweep's table).
NOT_FOR_JOBS = {"dask.array": ("xarray", "sparse"), "sklearn.base": ("pandas",)}


def import_for_jobs() -> None:
    """Import the libraries of :data:`NOT_FOR_JOBS` without the packages listed for them (before
    the job package, which imports them). Nothing changes for a library already imported."""
    from .._lazy import import_without

    for module, optional in NOT_FOR_JOBS.items():
        import_without(module, optional)


def _validate(args: argparse.Namespace) -> Any:
    """The job of ``run`` and its cluster config checked together (:func:`validate_command`)."""
    import_for_jobs()
    from ..jobs.validation import validate_command

    checked, _ = validate_command(args.job, overrides=args.overrides, out_dir=args.out, cluster=args.cluster)
    return checked


def _stop_on_sigterm() -> None:
    """SIGTERM (``kill``, a batch system's ``scancel``/``qdel``) stops ``run`` as Ctrl-C does: the job
    records 'cancelled' and the cluster it started (dask-jobqueue's worker jobs too) is shut down."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


class _Announcement:
    """Says where the cluster is once it is up *and* the job is valid (whichever comes last), so
    that an invalid job's report stays the only output, and a valid job's dashboard link comes
    before any data are read."""

    def __init__(self, job_valid: bool) -> None:
        self._lock = threading.Lock()
        self._valid = job_valid
        self._deployment: Any = None

    def cluster_up(self, d: Any) -> None:
        with self._lock:
            self._deployment = d
            if self._valid:
                announce(d)

    def job_is_valid(self) -> None:
        with self._lock:
            self._valid = True
            if self._deployment is not None:
                announce(self._deployment)


def announce(d: Any) -> None:
    """The cluster is up: say where, and its dashboard, at once (on stderr, before any iteration)."""
    link = d.dashboard_link
    say(f"cluster: {d.describe()}; dashboard: {link or 'none (the scheduler serves no dashboard)'}",
        file=sys.stderr)


def _prepare(args: argparse.Namespace, checked: Any, announcement: _Announcement) -> tuple[Any, Any]:
    """The checked job (validated here if not yet) and its data opened (MNIST read): the work of
    ``run`` that needs no cluster, done while the cluster starts. (The plotting library is imported
    while the fit runs: :func:`daskcluster.jobs.runner.run_job`.)"""
    if checked is None:
        checked = _validate(args)
        announcement.job_is_valid()
    from ..jobs.sources import load

    job = checked.job
    loaded = load(job.resolved().data)
    return checked, loaded


@contextmanager
def _job_cluster(args: argparse.Namespace) -> Iterator[Any]:
    """The cluster of ``--scheduler``/``--cluster``, or the one this machine submitted job ``args.id`` to."""
    if args.cluster or args.scheduler:
        with cluster(args, wait=False) as d:
            yield d
        return
    from ..deploy.lifetime import reconnect
    from ..jobs.remote import recall

    record = recall(args.id)
    if record is None:
        raise UsageError(f"job {args.id!r} was not submitted from this machine: give --scheduler ADDRESS or "
                         "--cluster CONFIG.yaml.")
    with reconnect(record) as d:
        yield d


def cmd_submit(args: argparse.Namespace) -> int:
    from ..deploy.batch import BATCH_KINDS
    from ..deploy.lifetime import outlives_command, reconnection
    from ..jobs.remote import remember, submit
    from ..jobs.validation import validate_command

    # paths may exist only on the workers: the driver checks them there
    checked, config = validate_command(args.job, overrides=args.overrides, out_dir=args.out, cluster=args.cluster,
                                       inputs_here=False)
    job = checked.job
    if config is not None:
        why = outlives_command(config)
        if why is not None:
            raise UsageError(f"{args.cluster}: submit needs a cluster that outlives this command, and {why} "
                             "(Or use 'daskcluster run' to wait for the job.)")
        if config.kind in BATCH_KINDS:
            return _submit_batch(job, config)
    with cluster(args, wait=False) as d:
        announce(d)
        job_id = submit(job, d.client, dashboard=d.dashboard_link)
        where = reconnection(d)
        remember(job_id, where)
        say(job_id)
        gateway = where["config"].get("cluster_name")
        say(f"submitted to {d.scheduler_address}" + (f" (gateway cluster {gateway})" if gateway else "")
            + f"; outputs: {job.output_dir()}", file=sys.stderr)
        say(f"follow it with: daskcluster status {job_id}   |   daskcluster logs {job_id}", file=sys.stderr)
    return OK


def _submit_batch(job: Any, config: Any) -> int:
    """The driver as a batch job: script written, submitted, recorded (:mod:`daskcluster.jobs.batch`)."""
    from ..jobs.batch import submit_batch

    job_id, record = submit_batch(job, config)
    b = record["batch"]
    say(job_id)
    say(f"submitted as {b['kind'].upper()} batch job {b['id']} (script: {b['script']}); outputs: {record['out']}",
        file=sys.stderr)
    say(f"follow it with: daskcluster status {job_id}   |   daskcluster logs {job_id}   (the dashboard link "
        "appears in status once the job runs)", file=sys.stderr)
    return OK


def _batch_record(args: argparse.Namespace) -> dict[str, Any] | None:
    """The record of job ``args.id`` if it was submitted as a batch job from this machine."""
    if args.scheduler or args.id is None:
        return None
    from ..deploy.batch import BATCH_KINDS
    from ..jobs.remote import recall

    record = recall(args.id)
    if record is not None and "batch" in record:
        return record
    if args.cluster and _config_kind(args.cluster) in BATCH_KINDS:
        raise UsageError(f"job {args.id!r} was not submitted from this machine (no record under "
                         f"~/.daskcluster/jobs or $DASKCLUSTER_HOME/jobs): the batch job's state is in its "
                         "output folder's metrics.json and job.log.")
    return None


def _config_kind(path: str) -> str | None:
    from ..deploy import load_config

    return str(load_config(path).kind)


def cmd_status(args: argparse.Namespace) -> int:
    from ..jobs import status, wait

    if args.id is None:
        return cmd_list(args)
    record = _batch_record(args)
    if record is not None:
        from ..jobs.batch import batch_status, batch_wait

        st = batch_wait(args.id, record) if args.wait else batch_status(args.id, record)
        say(st.format())
        return FAILED if args.wait and st.state in ("failed", "lost") else OK
    with _job_cluster(args) as d:
        st = wait(args.id, d.client) if args.wait else status(args.id, d.client)
        say(st.format())
        return FAILED if args.wait and st.state in ("failed", "lost") else OK


def cmd_list(args: argparse.Namespace) -> int:
    """The jobs of ``--scheduler``/``--cluster``; without either, of every cluster this machine submitted to."""
    from ..deploy import ClusterStartError, ConfigError
    from ..deploy.batch import BATCH_KINDS
    from ..deploy.lifetime import reconnect
    from ..jobs import list_jobs

    kind = _config_kind(args.cluster) if args.cluster else None
    if kind in BATCH_KINDS:
        if not _list_batch_jobs(kind):
            say(f"no {str(kind).upper()} batch jobs were submitted from this machine")
        return OK
    if args.cluster or args.scheduler:
        targets: list[tuple[str, Any]] = [(args.scheduler or args.cluster, None)]
    else:
        targets = _recorded_clusters()
        batch_jobs = _list_batch_jobs(None)
        if not targets and not batch_jobs:
            raise UsageError("no job was submitted from this machine: give --scheduler ADDRESS or --cluster "
                             "CONFIG.yaml to list the jobs of a cluster.")
    unreachable = 0
    for label, record in targets:
        try:
            with (cluster(args, wait=False) if record is None else reconnect(record)) as d:
                jobs = list_jobs(d.client)
                for st in jobs:
                    say(st.format())
                if not jobs:
                    say(f"no jobs on {d.scheduler_address}")
        except (ClusterStartError, ConfigError) as exc:
            if record is None:
                raise
            unreachable += 1
            say(f"{label}: not reachable (the cluster is gone?): {str(exc).splitlines()[0]}", file=sys.stderr)
    return FAILED if targets and unreachable == len(targets) else OK


def _list_batch_jobs(kind: str | None) -> int:
    """Print the state of every batch job submitted from this machine (of ``kind``, or all); their number."""
    from ..jobs.batch import batch_status
    from ..jobs.remote import recorded

    shown = 0
    for job_id, record in recorded().items():
        if "batch" in record and kind in (None, record["batch"]["kind"]):
            say(batch_status(job_id, record).format())
            shown += 1
    return shown


def _recorded_clusters() -> list[tuple[str, Any]]:
    """One record per cluster this machine submitted jobs to (a gateway cluster by its name)."""
    from ..jobs.remote import recorded

    seen: dict[str, Any] = {}
    for record in recorded().values():
        if "batch" in record:
            continue
        config = record.get("config") or {}
        label = str(config.get("cluster_name") or record["scheduler"])
        seen.setdefault(label, record)
    return list(seen.items())


def cmd_logs(args: argparse.Namespace) -> int:
    from ..jobs import logs, status

    record = _batch_record(args)
    if record is not None:
        return _batch_logs(args, record)
    with _job_cluster(args) as d:
        shown = 0
        while True:
            lines = logs(args.id, d.client)
            for line in lines[shown:]:
                say(line)
            shown = len(lines)
            if not args.follow or status(args.id, d.client).finished:
                return OK
            time.sleep(1.0)


def _batch_logs(args: argparse.Namespace, record: dict[str, Any]) -> int:
    from ..jobs.batch import batch_logs, batch_status

    shown = 0
    while True:
        lines = batch_logs(args.id, record)
        for line in lines[shown:]:
            say(line)
        shown = len(lines)
        st = batch_status(args.id, record)
        if not args.follow or st.finished or st.state == "lost":
            return OK
        time.sleep(2.0)


def cmd_cancel(args: argparse.Namespace) -> int:
    from ..jobs import cancel, wait

    record = _batch_record(args)
    if record is not None:
        from ..jobs.batch import batch_cancel, batch_wait

        st = batch_cancel(args.id, record)
        if st.finished or st.state == "lost":
            say(f"{args.id} already {st.state}")
            return OK
        say(f"{args.id}: {record['batch']['kind'].upper()} batch job {record['batch']['id']} cancelled; the job "
            "shuts its cluster down and records 'cancelled'")
        if args.wait:
            say(batch_wait(args.id, record).format())
        return OK
    with _job_cluster(args) as d:
        st = cancel(args.id, d.client)
        if st.finished:
            say(f"{args.id} already {st.state}")
            return OK
        say(f"{args.id}: cancel requested; it stops at its next iteration")
        if args.wait:
            say(wait(args.id, d.client).format())
    return OK
