"""The ``daskcluster`` command.

=========== =====================================================================================
quickstart  KMeans on MNIST (or generated data) on a local cluster, with a summary
run         run a job file on a cluster (the local default, ``--cluster FILE`` or ``--scheduler``)
submit      send a job to run *on* a cluster that outlives the command (an address, a dask-gateway
            cluster kept up, or on SLURM/PBS as a batch job of its own); prints its id and returns
status      a submitted job's state and dashboard (no id: as ``list``)
logs        a submitted job's log lines
cancel      stop a submitted job at its next iteration
list        the submitted jobs of a cluster (default: of every cluster this machine submitted to)
validate    check cluster configs and job files (nothing starts, no data is read)
datasets    write a dataset (generated blobs, MNIST, a .npy/raw/Zarr source) into Zarr
info        versions, optional backends, the cluster that would be used and its dashboard
predict     a saved model's labels of data, written by the workers (``transform``, ``score`` alike)
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

from .. import __version__
from ..errors import DaskClusterError
from . import apply, datasets, info, jobs, quickstart, validate
from .console import error_lines, restored_logging, say, setup_logging
from .jobs import JobFailed
from .options import FAILED, INTERRUPTED, OK, USAGE, UsageError

__all__ = ["FAILED", "INTERRUPTED", "OK", "USAGE", "UsageError", "main", "say"]

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daskcluster", description="Distributed, out-of-core clustering on Dask.",
                                     epilog="Exit status: 0 success, 1 failed job, 2 usage or validation error.")
    parser.add_argument("--version", action="version", version=f"daskcluster {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every iteration; tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quickstart.add_parser(sub)
    jobs.add_parsers(sub)
    apply.add_parsers(sub)
    validate.add_parser(sub)
    datasets.add_parser(sub)
    info.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 1 failed job, 2 usage or validation error).

    Called without ``argv`` (the ``daskcluster`` command, ``python -m daskcluster``), the process
    ends as soon as the command is done: see :func:`_end_process`. Called with ``argv`` (from
    Python), the logging and warning filters the command sets are put back as they were when it
    returns (:func:`~.console.restored_logging`).
    """
    if argv is None:
        _end_process(_main(None, ends_process=True))
    import warnings

    with warnings.catch_warnings(), restored_logging():
        return _main(argv, ends_process=False)


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


def _main(argv: list[str] | None, ends_process: bool) -> int:
    t_start = time.perf_counter()
    args = _parser().parse_args(argv)
    args.started = t_start
    setup_logging(args.verbose)
    import warnings

    # the dashboard moves to a free port when 8787 is taken; the summary prints its link
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        if ends_process:  # nothing distributed logs from now on follows the command's line
            from ..deploy.interrupts import quiet_until_exit

            quiet_until_exit()
        print("daskcluster: interrupted; what was started has been shut down", file=sys.stderr)
        return INTERRUPTED
    except JobFailed as exc:
        if args.verbose:
            logger.exception("job failed")
        print(f"daskcluster: {exc}", file=sys.stderr)
        return FAILED
    except DaskClusterError as exc:
        if args.verbose:
            logger.exception("error")
        print(error_lines(exc), file=sys.stderr)
        from ..deploy import MissingExtraError

        usage = isinstance(exc, (ValueError, LookupError, MissingExtraError))
        return USAGE if usage else FAILED
    except Exception as exc:
        if args.verbose:
            logger.exception("error")
        from ..jobs.secrets import scrub

        print(scrub(f"daskcluster: error: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return FAILED
