"""``daskcluster run``, ``submit``, ``status``, ``logs`` and ``cancel``: running jobs."""

from __future__ import annotations

import argparse
import os
import sys
import time
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

    handlers = {"status": cmd_status, "logs": cmd_logs, "cancel": cmd_cancel}
    for name, text in (("status", "a submitted job's state (no id: all jobs)"),
                       ("logs", "a submitted job's log lines"), ("cancel", "stop a submitted job")):
        c = sub.add_parser(name, help=text, description=text + ". Without --scheduler/--cluster, the scheduler "
                                                               "the job was submitted to from this machine.")
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
        super().__init__(f"job {name} failed: {type(exc).__name__}: {exc} (log: {folder}/job.log)")


class _ProgressBar:
    """One tqdm bar per stage (seeding, then the iterations), fed by progress reports."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.key: tuple[str, str] | None = None

    def __call__(self, rep: Any) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        key = (rep.estimator, rep.stage)
        if key != self.key or self.bar is None:
            self.close()
            self.bar = tqdm(total=rep.max_iter, desc=f"{rep.estimator} {rep.stage}", unit="pass",
                            file=sys.stderr, leave=False, disable=None)
            self.key = key
        self.bar.update(max(rep.iteration - self.bar.n, 0))
        if rep.metrics:
            self.bar.set_postfix({k: f"{v:.5g}" for k, v in rep.metrics.items()}, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import ExitStack

    from ..deploy import deploy, load_config
    from ..deploy.files import ConfigError
    from ..jobs import check_job, load_job, run_job

    job = load_job(args.job, overrides=args.overrides, out_dir=args.out)
    if args.cluster:
        load_config(args.cluster)
    checked = check_job(job)  # the whole job and the cluster config are valid before anything starts
    bar = _ProgressBar(not args.no_progress)
    stack = ExitStack()
    closing: list[threading.Thread] = []

    def release() -> None:
        """Shut the cluster down in the background while the local outputs are written."""
        t = threading.Thread(target=stack.close, name="daskcluster-shutdown")
        t.start()
        closing.append(t)

    try:
        # the cluster starts here (so that Ctrl-C reaches it) while a thread opens the job's
        # data (reads MNIST) and imports what the outputs need
        with ThreadPoolExecutor(1, thread_name_prefix="daskcluster-prepare") as pool:
            preparing = pool.submit(_prepare, job)
            d = stack.enter_context(deploy(args.cluster, scheduler=args.scheduler))
            loaded = preparing.result()
        where = f"{d.describe()} ({d.workers_text()}); dashboard {d.dashboard_link}"
        try:
            result = run_job(checked, on_progress=bar, loaded=loaded, on_cluster_done=release)
        except ConfigError:
            raise  # found while checking, before the job started
        except Exception as exc:
            raise JobFailed(job.name, exc, job.output_dir()) from exc
        finally:
            bar.close()
        say(_summary(result, time.perf_counter() - args.started, where))
    finally:
        if closing:
            closing[0].join()
        else:
            stack.close()
    return OK


def _prepare(job: Any) -> Any:
    """Open the job's data and import the plotting library (while the cluster starts)."""
    from ..jobs.sources import load

    loaded = load(job.resolved().data)
    if job.doc.outputs.plots is not False:
        try:
            import matplotlib.backends.backend_agg
            import matplotlib.figure  # noqa: F401
        except ImportError:
            pass
    return loaded


def _connect_args(args: argparse.Namespace) -> argparse.Namespace:
    """--scheduler/--cluster, or where this machine submitted the job."""
    if args.cluster or args.scheduler:
        return args
    from ..jobs.remote import recall

    record = recall(args.id) if getattr(args, "id", None) else None
    if record is None:
        what = f"job {args.id!r} was not submitted from this machine" if getattr(args, "id", None) else "no job id"
        raise UsageError(f"{what}: give --scheduler ADDRESS or --cluster CONFIG.yaml.")
    args.cluster, args.scheduler = record.get("cluster"), None if record.get("cluster") else record["scheduler"]
    return args


def cmd_submit(args: argparse.Namespace) -> int:
    from ..deploy import load_config
    from ..jobs import check_job, load_job
    from ..jobs.remote import remember, submit

    job = load_job(args.job, overrides=args.overrides, out_dir=args.out)
    check_job(job)
    if args.cluster:
        cfg = load_config(args.cluster)
        if cfg.kind != "address":
            raise UsageError(
                f"{args.cluster}: submit needs a scheduler that outlives this command, and a cluster of kind "
                f"'{cfg.kind}' is shut down when daskcluster exits. Use a config of kind 'address' or "
                "--scheduler ADDRESS (or 'daskcluster run' to wait for the job)."
            )
    with cluster(args, wait=False) as d:
        job_id = submit(job, d.client)
        remember(job_id, d.scheduler_address, os.path.abspath(args.cluster) if args.cluster else None)
        say(job_id)
        say(f"submitted to {d.scheduler_address}; outputs: {job.output_dir()}", file=sys.stderr)
        say(f"follow it with: daskcluster status {job_id}   |   daskcluster logs {job_id}", file=sys.stderr)
    return OK


def cmd_status(args: argparse.Namespace) -> int:
    from ..jobs import list_jobs, status, wait

    if args.id is None and not (args.cluster or args.scheduler):
        raise UsageError("give a job id, or --scheduler/--cluster to list the jobs of a scheduler.")
    with cluster(_connect_args(args), wait=False) as d:
        if args.id is None:
            jobs = list_jobs(d.client)
            for st in jobs:
                say(st.format())
            if not jobs:
                say(f"no jobs on {d.scheduler_address}")
            return OK
        st = wait(args.id, d.client) if args.wait else status(args.id, d.client)
        say(st.format())
        return FAILED if args.wait and st.state in ("failed", "lost") else OK


def cmd_logs(args: argparse.Namespace) -> int:
    from ..jobs import logs, status

    with cluster(_connect_args(args), wait=False) as d:
        shown = 0
        while True:
            lines = logs(args.id, d.client)
            for line in lines[shown:]:
                say(line)
            shown = len(lines)
            if not args.follow or status(args.id, d.client).finished:
                return OK
            time.sleep(1.0)


def cmd_cancel(args: argparse.Namespace) -> int:
    from ..jobs import cancel, wait

    with cluster(_connect_args(args), wait=False) as d:
        st = cancel(args.id, d.client)
        if st.finished:
            say(f"{args.id} already {st.state}")
            return OK
        say(f"{args.id}: cancel requested; it stops at its next iteration")
        if args.wait:
            say(wait(args.id, d.client).format())
    return OK
