"""``daskcluster quickstart``: KMeans on MNIST (or generated data) on a local cluster, with a summary."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .options import OK, count


def add_parser(sub: Any) -> None:
    """The ``quickstart`` command."""
    q = sub.add_parser("quickstart", help="KMeans on MNIST (or generated data) on a local cluster, with a summary")
    q.add_argument("--workers", type=count(1), default=2, help="worker processes (default: 2)")
    q.add_argument("--threads", type=count(1), default=1, help="threads per worker (default: 1)")
    q.add_argument("--n-clusters", type=count(1), default=None, help="clusters (default: 10)")
    q.add_argument("--random-state", type=int, default=0)
    q.set_defaults(handler=cmd_quickstart)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ..quickstart import run

    run(n_workers=args.workers, threads_per_worker=args.threads, n_clusters=args.n_clusters,
        random_state=args.random_state, out=sys.stdout)
    return OK
