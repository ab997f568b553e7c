"""Ctrl-C belongs to the command, not to the worker processes it started.

A terminal sends SIGINT to the whole foreground process group: to the ``daskcluster``
command *and* to the worker processes of the local cluster it started. A worker that takes
it dies printing a traceback of its event loop (about 30 lines per worker), and the
scheduler logs the loss of its tasks, while the command is already shutting the cluster
down in order. This module is a Dask preload (``LocalCluster(preload=[__name__])``): each
worker process ignores SIGINT from its start, and is stopped by the command that owns it,
without reporting that its heartbeat found the scheduler gone (:class:`SchedulerGone`).
"""

from __future__ import annotations

import logging
import signal
import threading
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


def quiet_teardown() -> None:
    """After Ctrl-C: the cluster is being stopped on purpose; drop what distributed logs about it
    (workers killed, tasks lost), which would bury the command's one line."""
    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.CRITICAL)
