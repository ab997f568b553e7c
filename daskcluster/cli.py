"""The ``daskcluster`` command."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .errors import DaskClusterError

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daskcluster", description="Distributed, out-of-core clustering on Dask.")
    parser.add_argument("--version", action="version", version=f"daskcluster {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every iteration")
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quickstart", help="KMeans on MNIST (or generated data) on a local cluster, with a summary")
    q.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    q.add_argument("--threads", type=int, default=1, help="threads per worker (default: 1)")
    q.add_argument("--n-clusters", type=int, default=None, help="clusters (default: 10)")
    q.add_argument("--random-state", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 1 failed job, 2 usage or validation error)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    for name in ("distributed", "tornado", "bokeh"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        if args.command == "quickstart":
            from .quickstart import run

            run(n_workers=args.workers, threads_per_worker=args.threads, n_clusters=args.n_clusters,
                random_state=args.random_state, out=sys.stdout)
    except DaskClusterError as exc:
        print(f"daskcluster: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    except KeyboardInterrupt:
        print("daskcluster: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
