"""Ctrl-C belongs to the command, not to the worker processes it started.

A terminal sends SIGINT to the whole foreground process group: to the ``daskcluster``
command *and* to the worker processes of the local cluster it started. A worker that takes
it dies printing a traceback of its event loop (about 30 lines per worker), and the
scheduler logs the loss of its tasks, while the command is already shutting the cluster
down in order. This module is a Dask preload (``LocalCluster(preload=[__name__])``): each
worker process ignores SIGINT from its start, and is stopped by the command that owns it,
without reporting that its heartbeat found the scheduler gone (:class:`SchedulerGone`).
While the command stops its cluster after Ctrl-C, :func:`quiet_teardown` holds distributed's
loggers quiet, and only then.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)


#: What a worker logs (with a traceback, at ERROR) when its heartbeat finds the scheduler gone.
SCHEDULER_GONE = "Failed to communicate with scheduler during heartbeat"


class SchedulerGone(logging.Filter):
    """Drops a worker's report that its heartbeat found the scheduler gone. The scheduler of a
    local cluster lives in the process the command started, and goes away when the command
    stops the cluster (after Ctrl-C, or at the end of a job): a worker whose heartbeat falls
    between the scheduler's end and its own would print a 30-line traceback under the command's
    last line. A scheduler that died otherwise is reported by the command itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(SCHEDULER_GONE)


def quiet_scheduler_loss() -> None:
    """Install :class:`SchedulerGone` on distributed's worker logger of this process (once)."""
    worker_logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, SchedulerGone) for f in worker_logger.filters):
        worker_logger.addFilter(SchedulerGone())


def dask_setup(worker: Any) -> None:
    """Ignore SIGINT in this worker process (only a process's main thread can; threads are
    skipped), and the report of a scheduler gone (:class:`SchedulerGone`)."""
    quiet_scheduler_loss()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: dict[logging.Logger, int] = {}


@contextmanager
def quiet_teardown() -> Iterator[None]:
    """Drop what distributed logs below CRITICAL while a cluster is stopped on purpose.

    After Ctrl-C the command stops its cluster; what distributed logs about that (workers
    killed, tasks lost, comms closed) would bury the command's one line. For the duration of
    the ``with`` block, the ``distributed`` logger and every ``distributed.*`` logger with a
    level of its own are set to CRITICAL; on leaving (also when the block raises) each level
    changed is set back to exactly what it was, NOTSET included. What distributed logs before
    and after the teardown, in this process (a terminal command, a notebook, a Python session
    that caught the KeyboardInterrupt), is reported as usual.

    Yields
    ------
    None

    Notes
    -----
    Logger levels rather than a :class:`logging.Filter`: the level of ``distributed`` alone
    holds every child logger left at NOTSET (all but the few ``distributed``'s config sets,
    such as ``distributed.client`` and ``distributed.gc``, which are set here too), including
    a logger first created during the teardown. A filter on a logger sees only the records of
    that very logger, not those its children pass up, so it would have to go on every
    ``distributed.*`` logger, and miss those created meanwhile; a filter on handlers would have
    to go on every handler a record may reach (distributed's own on ``distributed``, the root's
    of the command, a notebook or a test runner, any added meanwhile) and judge every other
    library's records too.

    A logger first created during the teardown with a level of its own is neither quieted
    nor changed; a level that other code sets during the block is overwritten on leaving. Levels are the process's: records that distributed logs from any thread
    during the block are dropped, as are those of another cluster of the same process. Blocks
    may overlap (two clusters stopped in two threads): the loggers stay quiet until the last
    one ends, which restores the levels the first one found.

    Examples
    --------
    >>> with quiet_teardown():  # doctest: +SKIP
    ...     cluster.close()
    """
    global _quiet_depth
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved.update(_silence("distributed", logging.CRITICAL))
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                for quieted, level in _quiet_saved.items():
                    quieted.setLevel(level)
                _quiet_saved.clear()


def quiet_until_exit() -> None:
    """Drop what distributed logs below CRITICAL for the rest of this process: for a command
    that ends after Ctrl-C, once its cluster is stopped (:func:`quiet_teardown`), so that what
    distributed's threads log while the process exits (comms closed, a late heartbeat) cannot
    follow the command's last line. Nothing is restored: the process is ending."""
    _silence("distributed", logging.CRITICAL)


def _silence(root: str, level: int) -> dict[logging.Logger, int]:
    """Raise ``root`` and its children with a level of their own below ``level`` to ``level``;
    return the levels they had."""
    family = [logging.getLogger(root)]
    family += [lg for name, lg in list(logging.root.manager.loggerDict.items())
               if name.startswith(root + ".") and isinstance(lg, logging.Logger) and lg.level != logging.NOTSET]
    saved = {lg: lg.level for lg in family if lg.level < level}
    for lg in saved:
        lg.setLevel(level)
    return saved
