"""What the command prints: its lines, its error lines, and where the library's log goes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


def say(text: str = "", file: TextIO | None = None) -> None:
    """Print one line (flushed at once: a job's output is read while it runs)."""
    print(text, file=file or sys.stdout, flush=True)


def error_lines(exc: BaseException) -> str:
    """``daskcluster: error: ...``, one line per line of the message (secret values scrubbed)."""
    from ..jobs.secrets import scrub

    return "\n".join(f"daskcluster: error: {line}" for line in scrub(str(exc)).splitlines() or [type(exc).__name__])


#: Libraries whose log the command keeps to errors (their INFO and WARNING lines are not the user's).
QUIETED = ("distributed", "tornado", "bokeh", "dask_gateway", "dask_jobqueue", "kr8s")


@contextmanager
def restored_logging() -> Iterator[None]:
    """Put back, on leaving, what :func:`setup_logging` (and a Ctrl-C's
    :func:`~daskcluster.deploy.interrupts.quiet_teardown`) change: the root logger's handlers
    and level, and the levels of :data:`QUIETED`, ``asyncio`` and every ``distributed.*`` logger
    with a level of its own; for the command run from Python (``main([...])``), whose process
    goes on."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = (*QUIETED, "asyncio", *(n for n in list(logging.root.manager.loggerDict) if n.startswith("distributed.")))
    levels = {name: logging.getLogger(name).level for name in names}
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def setup_logging(verbose: bool) -> None:
    """Warnings only on stderr (``-v``: every INFO line); a job's own log goes to its job.log."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_daskcluster_cli", False)]:
        root.removeHandler(old)  # main() may run more than once in a process
    handler = logging.StreamHandler(sys.stderr)
    handler._daskcluster_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:  # a job's own log goes to its job.log; the command prints one line per error
        handler.addFilter(lambda record: not record.name.startswith("daskcluster.jobs"))
    from ..jobs.secrets import RedactingFilter

    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in QUIETED:
        logging.getLogger(name).setLevel(logging.ERROR)
    if not verbose:  # e.g. "Task exception was never retrieved" from a client closed by Ctrl-C
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
