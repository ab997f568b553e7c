"""Ctrl-C belongs to the command, not to the worker processes it started.

A terminal sends SIGINT to the whole foreground process group: to the ``daskcluster``
command *and* to the worker processes of the local cluster it started. A worker that takes
it dies printing a traceback of its event loop (about 30 lines per worker), and the
scheduler logs the loss of its tasks, while the command is already shutting the cluster
down in order. This module is a Dask preload (``LocalCluster(preload=[__name__])``): each
worker process ignores SIGINT from its start, and is stopped by the command that owns it.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

logger = logging.getLogger(__name__)


def dask_setup(worker: Any) -> None:
    """Ignore SIGINT in this worker process (only a process's main thread can; threads are skipped)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def quiet_teardown() -> None:
    """After Ctrl-C: the cluster is being stopped on purpose; drop what distributed logs about it
    (workers killed, tasks lost), which would bury the command's one line."""
    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.CRITICAL)
