"""What the command prints: its lines, its error lines, and where the library's log goes."""

from __future__ import annotations

import logging
import sys
from typing import TextIO


def say(text: str = "", file: TextIO | None = None) -> None:
    """Print one line (flushed at once: a job's output is read while it runs)."""
    print(text, file=file or sys.stdout, flush=True)


def error_lines(exc: BaseException) -> str:
    """``daskcluster: error: ...``, one line per line of the message (secret values scrubbed)."""
    from ..jobs.secrets import scrub

    return "\n".join(f"daskcluster: error: {line}" for line in scrub(str(exc)).splitlines() or [type(exc).__name__])


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
    for name in ("distributed", "tornado", "bokeh", "dask_gateway", "dask_jobqueue", "kr8s"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not verbose:  # e.g. "Task exception was never retrieved" from a client closed by Ctrl-C
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
