"""The command's local cluster, hosted in a child process of its own.

``daskcluster run`` on the local default (or a config of kind ``local``) does not start its
``LocalCluster`` inside the command's process: it starts ``python -m
daskcluster.deploy.local_process``, which starts the same ``LocalCluster`` (same workers,
threads, memory limits, nannies and dashboard) and says its scheduler's address on its
standard output. The scheduler, its dashboard (bokeh, pandas) and the nannies then import
and start on another core while the command imports and validates the job, instead of
taking turns with it under one interpreter lock.

The child lives as long as its standard input is open: the command closes it to shut the
cluster down, and a command that dies (even by ``SIGKILL``) closes it too, so a cluster is
never left behind. The child ignores SIGINT, as the workers do (:mod:`.interrupts`): Ctrl-C
belongs to the command, which then shuts the cluster down.

This module imports only the standard library; the child imports ``distributed``.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from .interrupts import quiet_teardown

__all__ = ["LocalProcess"]

logger = logging.getLogger(__name__)


class LocalProcess:
    """A ``distributed.LocalCluster`` running in a child process.

    Parameters
    ----------
    options : mapping
        Keyword arguments of ``LocalCluster`` (JSON-able: numbers, strings, lists, None).

    Examples
    --------
    >>> host = LocalProcess({"n_workers": 1, "dashboard_address": ":0"}).start()  # doctest: +SKIP
    >>> address = host.wait(timeout=60)                                          # doctest: +SKIP
    >>> host.close()                                                             # doctest: +SKIP
    """

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)
        self.process: subprocess.Popen[bytes] | None = None
        self.scheduler_address: str | None = None

    def start(self) -> LocalProcess:
        """Start the child (returns at once; the cluster starts in the background)."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, json.dumps(self.options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
        )
        return self

    def wait(self, timeout: float) -> str:
        """The scheduler's address, once the child's cluster is up.

        Raises
        ------
        OSError
            The child could not start the cluster (its error), or said nothing within
            ``timeout`` seconds (it is then stopped).
        """
        proc = self.process
        assert proc is not None and proc.stdout is not None, "start() first"
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                self.close()
                raise OSError(f"the local cluster did not start within {timeout:g}s")
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                code = proc.wait()
                raise OSError(f"the process hosting the local cluster exited ({code}) before it started")
            line += chunk
        said = json.loads(line.decode())
        if "error" in said:
            self.close()
            raise OSError(f"the local cluster did not start: {said['error']}")
        self.scheduler_address = str(said["address"])
        return self.scheduler_address

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def close(self, timeout: float = 60.0) -> None:
        """Shut the cluster down and wait for the child to end (killed after ``timeout`` seconds)."""
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the local cluster (pid %d) did not stop within %gs; killing it", proc.pid, timeout)
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()


def _host(options: dict[str, Any]) -> int:
    """The child: start the cluster, say its address, hold it until standard input closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    say = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the cluster prints goes where the command's errors go
    import warnings

    # the dashboard moves to a free port when 8787 is taken; the command prints its link
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    try:
        from distributed import LocalCluster

        # reachable from the command's process (threads alone would talk ``inproc://``)
        cluster = LocalCluster(**{"protocol": "tcp://", **options})
    except BaseException as exc:  # noqa: BLE001 - said to the command, which raises it
        say.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        say.close()
        return 1
    say.write(json.dumps({"address": cluster.scheduler_address}) + "\n")
    say.close()
    try:
        while os.read(0, 65536):  # until the command closes the pipe, or dies
            pass
    finally:
        with quiet_teardown():  # stopped on purpose: what distributed logs about it is noise
            cluster.close()
    return 0


if __name__ == "__main__":
    os._exit(_host(json.loads(sys.argv[1])))
