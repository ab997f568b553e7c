"""A cluster's lifetime for one command: started, announced, released, shut down.

Every command that needs a cluster for a while (``daskcluster run``) goes through
:class:`ClusterLifetime`:

1. :meth:`ClusterLifetime.start` starts (or connects to) the cluster in the calling thread
   (so that Ctrl-C reaches it) while another thread does the work that needs no cluster
   (validating the job when :func:`starts_before_validation` allows, opening the job's data);
   a local cluster is hosted in a child process (:mod:`.local_process`), so that its
   scheduler, dashboard and workers start on another core while this process imports;
2. the cluster is *announced* the moment its scheduler is up, before the command waits for
   workers and before any job runs: the ``on_up`` callback gets the :class:`Deployment`
   (the command prints the dashboard link);
3. :meth:`ClusterLifetime.release` shuts the cluster down in a background thread once the
   job says nothing more will run on it (the local outputs are written meanwhile);
4. leaving the ``with`` block waits for that shutdown, or shuts the cluster down itself; after
   Ctrl-C, with distributed's loggers quiet for that time only (:func:`.interrupts.quiet_teardown`).

A job *submitted* to a cluster outlives the command only where the cluster does:
:func:`outlives_command` says whether a config's cluster stays up after daskcluster exits
(and if not, why), :func:`reconnection` is what a job records to find its cluster again,
and :func:`reconnect` connects to it from another process:

========== ======================================================================
kind       after the command exits
========== ======================================================================
address    the scheduler runs on (daskcluster never started it)
gateway    with ``shutdown_on_close: false`` the gateway keeps the cluster; it is
           found again by its name (``cluster_name``)
local      stops: the scheduler and workers are processes of the command
slurm, pbs the driver is submitted as a batch job (:mod:`daskcluster.deploy.batch`) whose
           ``daskcluster run`` starts the dask-jobqueue cluster on the compute node; the
           job records the batch system and job id
kubernetes not offered for submission
========== ======================================================================

What "shut down" means is the backend's (:func:`daskcluster.deploy.deploy`): a cluster
daskcluster started is stopped; an existing scheduler, or a dask-gateway cluster kept with
``shutdown_on_close: false``, is only disconnected from.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, nullcontext
from types import TracebackType
from typing import Any, TypeVar

from . import Deployment, deploy
from .files import ConfigError
from .interrupts import quiet_teardown

__all__ = ["ClusterLifetime", "outlives_command", "reconnect", "reconnection", "starts_before_validation"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ClusterLifetime:
    """The cluster of one command, from its start to its shutdown.

    Parameters
    ----------
    config : path, mapping, config object or None
        As for :func:`daskcluster.deploy.deploy` (None: ``scheduler`` or the local default).
    scheduler : str, optional
        Address of an existing scheduler.
    on_up : callable, optional
        Called with the :class:`Deployment` as soon as the scheduler answers, before the
        workers are waited for.
    """

    def __init__(self, config: str | os.PathLike[str] | Mapping[str, Any] | Any | None = None, *,
                 scheduler: str | None = None, on_up: Callable[[Deployment], None] | None = None) -> None:
        self.config = config
        self.scheduler = scheduler
        self.on_up = on_up
        self.deployment: Deployment | None = None
        self._stack = ExitStack()
        self._closing: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self, prepare: Callable[[], T]) -> tuple[Deployment, T]:
        """Start the cluster here while ``prepare()`` runs in a thread; return both results.

        Raises what :func:`~daskcluster.deploy.deploy` raises, or what ``prepare`` raised; a
        :class:`ConfigError` of ``prepare`` (an invalid job) wins over a cluster that failed too.
        """
        with ThreadPoolExecutor(1, thread_name_prefix="daskcluster-prepare") as pool:
            preparing = pool.submit(prepare)
            try:
                self.deployment = self._stack.enter_context(
                    deploy(self.config, scheduler=self.scheduler, on_up=self.on_up, local_process=True))
            except KeyboardInterrupt:
                preparing.cancel()
                raise
            except Exception:
                # a job found invalid meanwhile is the first thing to fix: its report comes first
                problem = None if preparing.cancel() else preparing.exception()
                if isinstance(problem, ConfigError):
                    raise problem from None
                raise
            return self.deployment, preparing.result()

    def release(self) -> None:
        """Shut the cluster down in the background (once); the caller goes on with local work."""
        with self._lock:
            if self._closing is None:
                self._closing = threading.Thread(target=self._stack.close, name="daskcluster-shutdown")
                self._closing.start()

    def __enter__(self) -> ClusterLifetime:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        interrupted = kind is not None and issubclass(kind, KeyboardInterrupt)
        with quiet_teardown() if interrupted else nullcontext():  # Ctrl-C: the shutdown's noise is not news
            with self._lock:
                closing = self._closing
            if closing is not None:
                closing.join()
            else:
                self._stack.close()


def starts_before_validation(config: str | os.PathLike[str] | None, scheduler: str | None) -> bool:
    """Whether a command may start (or connect to) this cluster while it still validates its job.

    True for the clusters that nothing outside the command's own processes makes up: the local
    default or a valid config of kind ``local``, and an existing scheduler (only connected to).
    If the job then proves invalid, the command stops them again having read no data and written
    nothing. Every other kind (batch jobs, a gateway or Kubernetes cluster) costs or shows
    somewhere else, and starts only once everything is valid; so does a config that is itself
    invalid (its problems join the job's in one report).
    """
    if scheduler is not None or config is None:
        return True
    from . import load_config
    from .files import ConfigError

    try:
        return load_config(config).kind in ("local", "address")
    except ConfigError:
        return False


def outlives_command(config: Any) -> str | None:
    """None when the cluster of ``config`` stays up after daskcluster exits; else why not, and the fix."""
    kind = config.kind
    if kind == "address":
        return None
    if kind == "gateway":
        if config.shutdown_on_close and config.cluster_name is None:
            return ("it has 'shutdown_on_close: true', so the gateway shuts the cluster down when daskcluster "
                    "exits. Set 'shutdown_on_close: false' (the cluster then stays up until it is stopped or "
                    "idle past the gateway's idle timeout).")
        return None
    if kind == "local":
        return ("a local cluster's scheduler and workers are processes of the daskcluster command and stop "
                "with it. Start a scheduler that stays up ('dask scheduler' and 'dask worker') and use "
                "--scheduler ADDRESS or a config of kind 'address'.")
    if kind in ("slurm", "pbs"):
        return None  # the driver itself is submitted as a batch job
    return (f"submitting to a cluster of kind '{kind}' is not offered: daskcluster cannot find it again "
            "after it exits. Use a config of kind 'address' or 'gateway'.")


def reconnection(d: Deployment) -> dict[str, Any]:
    """What a submitted job records to find its cluster again (JSON-able; secrets stay in the
    environment variables the config names).

    ``scheduler``: the scheduler's address; ``dashboard``: its link; ``config``: the cluster
    config to connect with (an address config with the resolved address, or a gateway config
    naming the cluster, with ``shutdown_on_close: false``).
    """
    config = d.config.model_dump(mode="json", exclude_none=True)
    if d.config.kind == "address":
        config = {k: v for k, v in config.items() if k not in ("address_env", "scheduler_file")}
        config["address"] = d.scheduler_address
    elif d.config.kind == "gateway":
        config.update(cluster_name=str(d.cluster.name), shutdown_on_close=False)
    return {"scheduler": d.scheduler_address, "dashboard": d.dashboard_link, "config": config}


def reconnect(record: Mapping[str, Any]) -> AbstractContextManager[Deployment]:
    """Connect again (from any process) to the cluster a :func:`reconnection` record names.

    A dask-gateway cluster is found through the gateway by its name and is never shut down
    on leaving; an address is connected to. No worker is waited for.
    """
    config = record.get("config")
    if config:
        return deploy(dict(config), wait_for_workers=False)
    return deploy(scheduler=str(record["scheduler"]), wait_for_workers=False)
