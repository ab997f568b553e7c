"""What every command of ``daskcluster`` shares: exit statuses, argument types, cluster options."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import DaskClusterError

#: Exit statuses.
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


class UsageError(DaskClusterError, ValueError):
    """A command line that cannot be acted on."""


def count(minimum: int) -> Callable[[str], int]:
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


def nonnegative_float(text: str) -> float:
    """An argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0; got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0; got {text}")
    return value


def cluster_options(p: argparse.ArgumentParser, required: bool = False) -> None:
    """``--cluster CONFIG.yaml`` or ``--scheduler ADDRESS`` (one of them)."""
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--cluster", metavar="CONFIG.yaml", help="a cluster config (see cluster_configs/)")
    g.add_argument("--scheduler", metavar="ADDRESS", help="an existing scheduler, e.g. tcp://127.0.0.1:8786")


@contextmanager
def cluster(args: argparse.Namespace, *, wait: bool = True) -> Iterator[Any]:
    """The cluster of ``--cluster``/``--scheduler`` (the local default without either)."""
    from ..deploy import deploy

    with deploy(args.cluster, scheduler=args.scheduler, wait_for_workers=wait) as d:
        yield d
