"""The ``daskcluster`` command.

=========== =====================================================================================
quickstart  KMeans on MNIST (or generated data) on a local cluster, with a summary
run         run a job file on a cluster (the local default, ``--cluster FILE`` or ``--scheduler``)
submit      send a job to run *on* a cluster; prints its id and returns at once
status      a submitted job's state (no id: every job the scheduler knows)
logs        a submitted job's log lines
cancel      stop a submitted job at its next iteration
validate    check cluster configs and job files (nothing starts, no data is read)
datasets    write a dataset (generated blobs, MNIST, a .npy/raw/Zarr source) into Zarr
info        versions, optional backends, the cluster that would be used and its dashboard
=========== =====================================================================================

Exit status: 0 success, 1 failed job (or cluster that cannot start), 2 usage or validation
error (one line per problem, no traceback), 130 interrupted (Ctrl-C; what was started is
shut down).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from . import __version__
from .errors import DaskClusterError

logger = logging.getLogger(__name__)

#: Exit statuses.
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


class UsageError(DaskClusterError, ValueError):
    """A command line that cannot be acted on."""


# ----------------------------------------------------------------------------- parser


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an int >= ``minimum`` (argparse then exits with status 2 and the message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0; got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0; got {text}")
    return value


def _cluster_options(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--cluster", metavar="CONFIG.yaml", help="a cluster config (see cluster_configs/)")
    g.add_argument("--scheduler", metavar="ADDRESS", help="an existing scheduler, e.g. tcp://127.0.0.1:8786")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daskcluster", description="Distributed, out-of-core clustering on Dask.",
                                     epilog="Exit status: 0 success, 1 failed job, 2 usage or validation error.")
    parser.add_argument("--version", action="version", version=f"daskcluster {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every iteration; tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    q = sub.add_parser("quickstart", help="KMeans on MNIST (or generated data) on a local cluster, with a summary")
    q.add_argument("--workers", type=_count(1), default=2, help="worker processes (default: 2)")
    q.add_argument("--threads", type=_count(1), default=1, help="threads per worker (default: 1)")
    q.add_argument("--n-clusters", type=_count(1), default=None, help="clusters (default: 10)")
    q.add_argument("--random-state", type=int, default=0)

    r = sub.add_parser("run", help="run a job file on a cluster and write its outputs",
                       description="Run a job (workflows/*.yaml) on a cluster: the local default, a config "
                                   "(--cluster) or an existing scheduler (--scheduler).")
    r.add_argument("job", metavar="JOB.yaml")
    _cluster_options(r)
    r.add_argument("--out", metavar="DIR", help="output folder (default: the job's outputs.dir)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a key of the job, e.g. --set model.params.n_clusters=20 (repeatable)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")

    s = sub.add_parser("submit", help="send a job to run on a cluster; print its id and return",
                       description="Send a job to run ON the cluster (as a long-running task); print its id and "
                                   "return at once. The job goes on after this command exits.")
    s.add_argument("job", metavar="JOB.yaml")
    _cluster_options(s, required=True)
    s.add_argument("--out", metavar="DIR", help="output folder, as the workers see it (default: outputs.dir)")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    for name, text in (("status", "a submitted job's state (no id: all jobs)"),
                       ("logs", "a submitted job's log lines"), ("cancel", "stop a submitted job")):
        c = sub.add_parser(name, help=text, description=text + ". Without --scheduler/--cluster, the scheduler "
                                                               "the job was submitted to from this machine.")
        c.add_argument("id", metavar="ID", nargs="?" if name == "status" else None)
        _cluster_options(c)
        if name in ("status", "cancel"):
            c.add_argument("--wait", action="store_true", help="wait until the job is done, failed or cancelled")
        if name == "logs":
            c.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")

    v = sub.add_parser("validate", help="check cluster configs and job files (nothing starts)")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    d = sub.add_parser("datasets", help="write a dataset into Zarr (generated, MNIST, or another source)")
    dsub = d.add_subparsers(dest="dataset", required=True, metavar="SOURCE")
    b = dsub.add_parser("blobs", help="Gaussian blobs of any size, generated chunk by chunk")
    b.add_argument("out", metavar="OUT.zarr")
    b.add_argument("--n-samples", type=_count(1), required=True)
    b.add_argument("--n-features", type=_count(1), required=True)
    b.add_argument("--centers", type=_count(1), default=8)
    b.add_argument("--cluster-std", type=_nonnegative_float, default=1.0)
    b.add_argument("--chunk-rows", type=_count(1), default=100_000)
    b.add_argument("--random-state", type=int, default=0)
    b.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    m = dsub.add_parser("mnist", help="MNIST from the Keras .npz file, uint8")
    m.add_argument("out", metavar="OUT.zarr")
    m.add_argument("--path", help="the .npz file (default: $DASKCLUSTER_MNIST or shared/data/mnist.npz)")
    m.add_argument("--split", choices=("all", "train", "test"), default="all")
    i = dsub.add_parser("ingest", help="copy a .npy, raw binary or Zarr source into Zarr")
    i.add_argument("source", metavar="SOURCE")
    i.add_argument("out", metavar="OUT.zarr")
    i.add_argument("--dtype", help="raw files: the dtype, e.g. uint8")
    i.add_argument("--shape", help="raw files: ROWS,COLUMNS")
    i.add_argument("--byte-offset", type=_count(0), default=0, help="raw files: header bytes to skip")
    i.add_argument("--component", help="Zarr groups: the array inside")
    for p in (b, m, i):
        p.add_argument("--chunk-bytes", type=_count(1), default=None, help="bytes per Zarr chunk (default 32 MiB)")
        p.add_argument("--overwrite", action="store_true", help="replace an existing store (atomically)")
        _cluster_options(p)
    for p in (b, m):
        p.add_argument("--labels", metavar="LABELS.zarr", help="where the labels go (default: OUT-labels.zarr)")

    n = sub.add_parser("info", help="versions, backends, the cluster that would be used and its dashboard")
    _cluster_options(n)
    n.add_argument("--start", action="store_true", help="start (or connect to) the cluster to show its dashboard")
    return parser


# ----------------------------------------------------------------------------- helpers


def _say(text: str = "", file: TextIO | None = None) -> None:
    print(text, file=file or sys.stdout, flush=True)


@contextmanager
def _cluster(args: argparse.Namespace, *, wait: bool = True) -> Iterator[Any]:
    from .deploy import deploy

    with deploy(args.cluster, scheduler=args.scheduler, wait_for_workers=wait) as d:
        yield d


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
    from .jobs.runner import fitted_scalars

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


# ----------------------------------------------------------------------------- commands


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from .quickstart import run

    run(n_workers=args.workers, threads_per_worker=args.threads, n_clusters=args.n_clusters,
        random_state=args.random_state, out=sys.stdout)
    return OK


def _cmd_run(args: argparse.Namespace, t_start: float) -> int:
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import ExitStack

    from .deploy import deploy, load_config
    from .deploy.files import ConfigError
    from .jobs import check_job, load_job, run_job

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
            raise _JobFailed(job.name, exc, job.output_dir()) from exc
        finally:
            bar.close()
        _say(_summary(result, time.perf_counter() - t_start, where))
    finally:
        if closing:
            closing[0].join()
        else:
            stack.close()
    return OK


def _prepare(job: Any) -> Any:
    """Open the job's data and import the plotting library (while the cluster starts)."""
    from .jobs.sources import load

    loaded = load(job.resolved().data)
    if job.doc.outputs.plots is not False:
        try:
            import matplotlib.backends.backend_agg
            import matplotlib.figure  # noqa: F401
        except ImportError:
            pass
    return loaded


class _JobFailed(Exception):
    def __init__(self, name: str, exc: BaseException, folder: Any) -> None:
        super().__init__(f"job {name} failed: {type(exc).__name__}: {exc} (log: {folder}/job.log)")


def _connect_args(args: argparse.Namespace) -> argparse.Namespace:
    """--scheduler/--cluster, or where this machine submitted the job."""
    if args.cluster or args.scheduler:
        return args
    from .jobs.remote import recall

    record = recall(args.id) if getattr(args, "id", None) else None
    if record is None:
        what = f"job {args.id!r} was not submitted from this machine" if getattr(args, "id", None) else "no job id"
        raise UsageError(f"{what}: give --scheduler ADDRESS or --cluster CONFIG.yaml.")
    args.cluster, args.scheduler = record.get("cluster"), None if record.get("cluster") else record["scheduler"]
    return args


def _cmd_submit(args: argparse.Namespace) -> int:
    from .deploy import load_config
    from .jobs import check_job, load_job
    from .jobs.remote import remember, submit

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
    with _cluster(args, wait=False) as d:
        job_id = submit(job, d.client)
        remember(job_id, d.scheduler_address, os.path.abspath(args.cluster) if args.cluster else None)
        _say(job_id)
        _say(f"submitted to {d.scheduler_address}; outputs: {job.output_dir()}", file=sys.stderr)
        _say(f"follow it with: daskcluster status {job_id}   |   daskcluster logs {job_id}", file=sys.stderr)
    return OK


def _cmd_status(args: argparse.Namespace) -> int:
    from .jobs import list_jobs, status, wait

    if args.id is None and not (args.cluster or args.scheduler):
        raise UsageError("give a job id, or --scheduler/--cluster to list the jobs of a scheduler.")
    with _cluster(_connect_args(args), wait=False) as d:
        if args.id is None:
            jobs = list_jobs(d.client)
            for st in jobs:
                _say(st.format())
            if not jobs:
                _say(f"no jobs on {d.scheduler_address}")
            return OK
        st = wait(args.id, d.client) if args.wait else status(args.id, d.client)
        _say(st.format())
        return FAILED if args.wait and st.state in ("failed", "lost") else OK


def _cmd_logs(args: argparse.Namespace) -> int:
    from .jobs import logs, status

    with _cluster(_connect_args(args), wait=False) as d:
        shown = 0
        while True:
            lines = logs(args.id, d.client)
            for line in lines[shown:]:
                _say(line)
            shown = len(lines)
            if not args.follow or status(args.id, d.client).finished:
                return OK
            time.sleep(1.0)


def _cmd_cancel(args: argparse.Namespace) -> int:
    from .jobs import cancel, wait

    with _cluster(_connect_args(args), wait=False) as d:
        st = cancel(args.id, d.client)
        if st.finished:
            _say(f"{args.id} already {st.state}")
            return OK
        _say(f"{args.id}: cancel requested; it stops at its next iteration")
        if args.wait:
            _say(wait(args.id, d.client).format())
    return OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from .deploy import EXTRAS, describe, is_cluster_config, load_config
    from .deploy.files import ConfigError, load_yaml
    from .jobs import check_job, load_job

    bad = 0
    for path in args.files:
        try:
            doc = load_yaml(path)
            if is_cluster_config(doc):
                cfg = load_config(path, overrides=args.overrides)
                _say(f"ok {path}: cluster config, {describe(cfg)}")
                if cfg.kind in EXTRAS:
                    import importlib.util

                    module, extra, package = EXTRAS[cfg.kind]
                    if importlib.util.find_spec(module.split(".")[0]) is None:
                        _say(f"   note: kind '{cfg.kind}' needs {package}: pip install 'daskcluster[{extra}]'")
            else:
                checked = check_job(load_job(path, overrides=args.overrides))
                m = checked.meta
                shape = f"{m.n_samples:,} x {m.n_features}" if m.n_samples is not None else "shape checked at run"
                _say(f"ok {path}: job '{checked.job.name}', {checked.job.doc.model.name} on {m.description} ({shape})")
                for note in checked.notes:
                    _say(f"   note: {note}")
        except ConfigError as exc:
            bad += 1
            _say(str(exc), file=sys.stderr)
    return USAGE if bad else OK


def _cmd_datasets(args: argparse.Namespace) -> int:
    from . import io

    for target in (args.out, getattr(args, "labels", None)):
        if target and "://" not in target and os.path.exists(target) and not args.overwrite:
            raise UsageError(f"{target} already exists; pass --overwrite to replace it (atomically).")
    kwargs: dict[str, Any] = {"overwrite": args.overwrite}
    if args.chunk_bytes is not None:
        kwargs["chunk_bytes"] = args.chunk_bytes
    labels_path = None
    y: Any = None
    with _maybe_cluster(args):
        if args.dataset == "blobs":
            from .datasets import make_blobs

            X, y, _ = make_blobs(args.n_samples, args.n_features, centers=args.centers, cluster_std=args.cluster_std,
                                 chunk_rows=args.chunk_rows, random_state=args.random_state, dtype=args.dtype)
            source: Any = X
        elif args.dataset == "mnist":
            from .datasets import load_mnist_npz
            from .jobs.schema import MnistData
            from .jobs.sources import resolve_mnist

            path = resolve_mnist(MnistData(kind="mnist", path=args.path))
            source, y = load_mnist_npz(path, split=args.split)
        else:
            source = args.source
            if args.dtype or args.shape:
                if not (args.dtype and args.shape):
                    raise UsageError("a raw file needs both --dtype and --shape ROWS,COLUMNS.")
                try:
                    kwargs["shape"] = tuple(int(v) for v in args.shape.split(","))
                except ValueError:
                    raise UsageError(f"--shape {args.shape!r}: expected ROWS,COLUMNS such as 60000,784.") from None
                kwargs.update(dtype=args.dtype, offset=args.byte_offset)
            if args.component:
                kwargs["component"] = args.component
        t0 = time.perf_counter()
        z = io.write_zarr(source, args.out, **kwargs)
        _say(f"wrote {args.out}: {z.shape[0]:,} x {z.shape[1]} {z.dtype}, chunks {z.chunks} "
             f"in {time.perf_counter() - t0:.1f}s")
        if y is not None:
            base = args.out.rstrip("/")
            labels_path = args.labels or base.removesuffix(".zarr") + "-labels.zarr"
            import dask.array as da

            ya = y if isinstance(y, da.Array) else da.from_array(y, chunks=1_000_000)
            io.write_zarr(ya.astype("int32")[:, None], labels_path, overwrite=args.overwrite)
            _say(f"wrote {labels_path}: labels, int32 (n_samples, 1)")
            _say(f"use in a job: data: {{kind: zarr, path: {os.path.abspath(args.out)}, "
                 f"labels: {{path: {os.path.abspath(labels_path)}}}}}")
    return OK


@contextmanager
def _maybe_cluster(args: argparse.Namespace) -> Iterator[None]:
    """A cluster when one is asked for; otherwise Dask's threaded scheduler on this machine."""
    if args.cluster or args.scheduler:
        with _cluster(args):
            yield
    else:
        import dask

        with dask.config.set(scheduler="threads"):
            yield


def _cmd_info(args: argparse.Namespace) -> int:
    import importlib.metadata as md
    import platform

    from .deploy import EXTRAS, default_config, describe, load_config

    _say(f"daskcluster {__version__} (Python {platform.python_version()}, {platform.platform()})")
    for package in ("dask", "distributed", "numpy", "scikit-learn", "zarr", "dask-ml", "pydantic", "PyYAML",
                    "tqdm", "matplotlib"):
        try:
            _say(f"  {package:<14} {md.version(package)}")
        except md.PackageNotFoundError:
            _say(f"  {package:<14} (not installed)")
    _say("backends:")
    for kind, (_, extra, package) in EXTRAS.items():
        try:
            state = md.version(package)
        except md.PackageNotFoundError:
            state = f"not installed: pip install 'daskcluster[{extra}]'"
        _say(f"  {kind:<11} {package} {state}")
    cfg: Any = load_config(args.cluster) if args.cluster else None
    if args.scheduler:
        where = f"existing scheduler at {args.scheduler}"
    else:
        where = describe(cfg or default_config()) + (f" ({args.cluster})" if args.cluster else " (the default)")
    _say(f"cluster: {where}")
    connect = args.start or args.scheduler or (cfg is not None and cfg.kind == "address")
    if not connect:
        port = (cfg or default_config()).dashboard_address if hasattr(cfg or default_config(), "dashboard_address") \
            else None
        _say(f"dashboard: http://127.0.0.1{port}/status once started (--start starts it to check)"
             if port else "dashboard: none configured")
        return OK
    with _cluster(args, wait=False) as d:
        info = d.client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        _say(f"scheduler: {d.scheduler_address}: {len(workers)} worker(s), {threads} thread(s)")
        _say(f"dashboard: {d.dashboard_link}")
    return OK


# ----------------------------------------------------------------------------- main


def _setup_logging(verbose: bool) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_daskcluster_cli", False)]:
        root.removeHandler(old)  # main() may run more than once in a process
    handler = logging.StreamHandler(sys.stderr)
    handler._daskcluster_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:  # a job's own log goes to its job.log; the command prints one line per error
        handler.addFilter(lambda record: not record.name.startswith("daskcluster.jobs"))
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in ("distributed", "tornado", "bokeh", "dask_gateway", "dask_jobqueue", "kr8s"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not verbose:  # e.g. "Task exception was never retrieved" from a client closed by Ctrl-C
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def _error_lines(exc: BaseException) -> str:
    return "\n".join(f"daskcluster: error: {line}" for line in str(exc).splitlines() or [type(exc).__name__])


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 1 failed job, 2 usage or validation error).

    Called without ``argv`` (the ``daskcluster`` command, ``python -m daskcluster``), the process
    ends as soon as the command is done: see :func:`_end_process`.
    """
    status = _main(argv)
    if argv is None:
        _end_process(status)
    return status


def _end_process(status: int) -> None:
    """Flush and end the process without the interpreter's teardown.

    By now everything the command started is shut down and every file it wrote is closed;
    tearing down the modules of the scientific stack (NumPy, SciPy, scikit-learn, Dask,
    distributed, zarr) would only add a few tenths of a second to every command.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(status)


def _main(argv: list[str] | None) -> int:
    t_start = time.perf_counter()
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    import warnings

    # the dashboard moves to a free port when 8787 is taken; the summary prints its link
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    commands = {
        "quickstart": _cmd_quickstart, "submit": _cmd_submit, "status": _cmd_status, "logs": _cmd_logs,
        "cancel": _cmd_cancel, "validate": _cmd_validate, "datasets": _cmd_datasets, "info": _cmd_info,
    }
    try:
        if args.command == "run":
            return _cmd_run(args, t_start)
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("daskcluster: interrupted; what was started has been shut down", file=sys.stderr)
        return INTERRUPTED
    except _JobFailed as exc:
        if args.verbose:
            logger.exception("job failed")
        print(f"daskcluster: {exc}", file=sys.stderr)
        return FAILED
    except DaskClusterError as exc:
        if args.verbose:
            logger.exception("error")
        print(_error_lines(exc), file=sys.stderr)
        from .deploy import MissingExtraError

        usage = isinstance(exc, (ValueError, LookupError, MissingExtraError))
        return USAGE if usage else FAILED
    except Exception as exc:
        if args.verbose:
            logger.exception("error")
        print(f"daskcluster: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
