"""A file of ``cluster_configs/`` (or a dict) -> a running cluster and a ``Client`` (:func:`deploy`).

>>> from daskcluster.deploy import deploy
>>> with deploy("cluster_configs/local.yaml") as d:          # doctest: +SKIP
...     d.client.submit(sum, [1, 2]).result()
3

The file is validated entirely (:mod:`daskcluster.deploy.schema`) before anything starts;
an unknown key, a wrong type or a missing value raises :class:`ConfigError` naming the file,
the key and the fix. ``kind`` says how to get the cluster:

========== ============================================ ===========================
kind       what starts                                  extra
========== ============================================ ===========================
local      a ``LocalCluster`` on this machine           (none)
address    nothing: connects to an existing scheduler   (none)
slurm      ``dask_jobqueue.SLURMCluster``                ``daskcluster[slurm]``
pbs        ``dask_jobqueue.PBSCluster``                  ``daskcluster[pbs]``
kubernetes ``dask_kubernetes.operator.KubeCluster``     ``daskcluster[kubernetes]``
gateway    a cluster from a dask-gateway server          ``daskcluster[gateway]``
========== ============================================ ===========================

:func:`deploy` is a context manager: on exit it closes the client and shuts down what it
started (nothing else: an ``address`` scheduler keeps running). Secrets are never in the
files; keys ending in ``_env`` name the environment variables that hold them, read when
the cluster starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dask.utils import parse_timedelta

from ..errors import DaskClusterError
from .backends import (
    EXTRAS,
    STARTERS,
    MissingExtraError,
    jobqueue_cluster,
    kubernetes_spec,
    require,
    start_local_process,
)
from .files import ConfigError, apply_overrides, load_yaml, parse_model
from .schema import (
    CONFIG_KINDS,
    AddressConfig,
    ClusterConfig,
    GatewayConfig,
    KubernetesConfig,
    LocalConfig,
    PBSConfig,
    SLURMConfig,
    describe,
)

__all__ = [
    "AddressConfig",
    "ClusterConfig",
    "ClusterStartError",
    "ConfigError",
    "Deployment",
    "EXTRAS",
    "GatewayConfig",
    "KubernetesConfig",
    "LocalConfig",
    "MissingExtraError",
    "PBSConfig",
    "SLURMConfig",
    "default_config",
    "deploy",
    "describe",
    "is_cluster_config",
    "jobqueue_cluster",
    "kubernetes_spec",
    "load_config",
    "require",
]

logger = logging.getLogger(__name__)


class ClusterStartError(DaskClusterError, OSError):
    """The cluster could not be started or reached, or no worker joined in time."""


def is_cluster_config(doc: Mapping[str, Any]) -> bool:
    """Whether a parsed YAML document is a cluster config (it has a ``kind``) rather than a job."""
    return "kind" in doc


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | ClusterConfig,
    *,
    overrides: list[str] | tuple[str, ...] = (),
) -> ClusterConfig:
    """Read and validate a cluster config from a YAML file, a dict, or a config object.

    Parameters
    ----------
    source : path, mapping or config
    overrides : list of str
        ``key=value`` strings applied before validation (values are parsed as YAML).

    Raises
    ------
    ConfigError
        Naming the file, the key and the fix, one problem per line.
    """
    if isinstance(source, tuple(CONFIG_KINDS.values())):
        return source  # type: ignore[return-value]
    if isinstance(source, Mapping):
        name, doc = "<cluster config>", dict(source)
    else:
        name = str(source)
        doc = load_yaml(source)  # type: ignore[arg-type]  # a path: the other cases returned above
    doc = apply_overrides(doc, list(overrides), name)
    kind = doc.get("kind")
    if kind is None:
        raise ConfigError(f"{name}: missing required key 'kind'. Add one of: {', '.join(CONFIG_KINDS)}.")
    if kind not in CONFIG_KINDS:
        raise ConfigError(f"{name}: key 'kind': unknown kind {kind!r}; use one of: {', '.join(CONFIG_KINDS)}.")
    return parse_model(CONFIG_KINDS[kind], doc, name)  # type: ignore[return-value]


def default_config() -> LocalConfig:
    """The cluster used when none is given: a ``LocalCluster`` of worker processes, sized by Dask."""
    return LocalConfig(kind="local")


@dataclass
class Deployment:
    """A running cluster (or a connection to one).

    Attributes
    ----------
    config : ClusterConfig
    client : distributed.Client
    cluster : object or None
        The cluster object when daskcluster started it (a :class:`~.local_process.LocalProcess`
        for a local cluster hosted in a child process); None for an existing scheduler.
    source : str
        The file the config came from, or a short description.
    """

    config: Any
    client: Any
    cluster: Any
    source: str

    @property
    def dashboard_link(self) -> str | None:
        try:
            return str(self.client.dashboard_link)
        except Exception:  # no dashboard (e.g. bokeh missing)
            return None

    @property
    def scheduler_address(self) -> str:
        return str(self.client.scheduler.address)

    def describe(self) -> str:
        return describe(self.config)

    def workers_text(self) -> str:
        """``"2 workers, 2 threads, 7.8 GiB"``: what the scheduler has now."""
        from dask.utils import format_bytes

        workers = self.client.scheduler_info().get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        memory = sum(w.get("memory_limit") or 0 for w in workers.values())
        return f"{len(workers)} worker(s), {threads} thread(s), {format_bytes(memory)}"


def _workers_to_wait_for(config: Any) -> int:
    wanted = int(config.wait_for_workers)
    if isinstance(config, LocalConfig) and config.n_workers is not None:
        return min(wanted, config.n_workers)
    if isinstance(config, (SLURMConfig, PBSConfig)):
        if config.scale is not None:
            return min(wanted, config.scale.jobs * config.processes)
        return min(wanted, config.adapt.minimum_jobs * config.processes) if config.adapt else 0
    if isinstance(config, KubernetesConfig):
        return min(wanted, config.adapt.minimum if config.adapt is not None else config.n_workers)
    if isinstance(config, GatewayConfig):
        if config.scale is not None:
            return min(wanted, config.scale)
        return min(wanted, config.adapt.minimum) if config.adapt is not None else 0
    return wanted


@contextmanager
def deploy(
    config: str | os.PathLike[str] | Mapping[str, Any] | ClusterConfig | None = None,
    *,
    scheduler: str | None = None,
    wait_for_workers: bool = True,
    on_up: Callable[[Deployment], None] | None = None,
    local_process: bool = False,
) -> Iterator[Deployment]:
    """Start (or connect to) the cluster a config describes; yield a :class:`Deployment`.

    Parameters
    ----------
    config : path, mapping, config object or None
        None with ``scheduler=None``: :func:`default_config` (a local cluster).
    scheduler : str, optional
        Address of an existing scheduler (``tcp://host:8786``); the same as a config of
        ``kind: address``. Give ``config`` or ``scheduler``, not both.
    wait_for_workers : bool, default=True
        Wait for the config's ``wait_for_workers`` workers (False: return once connected).
    on_up : callable, optional
        Called with the :class:`Deployment` as soon as the scheduler answers, before the
        workers are waited for (the command prints the dashboard link then).
    local_process : bool, default=False
        Host a cluster of kind ``local`` in a child process (:mod:`.local_process`; the
        ``Deployment``'s ``cluster`` is then that process) rather than in this one: what the
        command does, so that the cluster starts on another core while it imports.

    Raises
    ------
    ConfigError
        The config is not valid, or names an environment variable that is not set.
    MissingExtraError
        The backend's package is not installed (the message names the extra).
    ClusterStartError
        The scheduler cannot be reached, or no worker joined within ``wait_timeout``.
    """
    if config is not None and scheduler is not None:
        raise ConfigError("give a cluster config or a scheduler address, not both.")
    if scheduler is not None:
        cfg: Any = AddressConfig(kind="address", address=scheduler)
        source = scheduler
    elif config is None:
        cfg, source = default_config(), "the local default"
    else:
        cfg = load_config(config)
        source = str(config) if isinstance(config, (str, os.PathLike)) else f"a {cfg.kind} config"
    if cfg.kind in EXTRAS:
        require(cfg.kind)
    logger.info("Starting %s (%s)", describe(cfg), source)
    try:
        starter = start_local_process if local_process and cfg.kind == "local" else STARTERS[cfg.kind]
        started = starter(cfg, source)
    except (DaskClusterError, KeyboardInterrupt):
        raise
    except (OSError, TimeoutError) as exc:
        raise ClusterStartError(f"{source}: cannot start or reach the cluster ({describe(cfg)}): {exc}") from exc
    try:
        deployment = Deployment(cfg, started.client, started.cluster, source)
        if on_up is not None:
            on_up(deployment)
        n = _workers_to_wait_for(cfg) if wait_for_workers else 0
        if n > 0:
            timeout = parse_timedelta(cfg.wait_timeout)
            try:
                started.client.wait_for_workers(n, timeout=timeout)
            except TimeoutError:
                raise ClusterStartError(
                    f"{source}: fewer than {n} worker(s) joined the scheduler within {timeout:g}s. Check that "
                    "workers can start and reach it, or raise 'wait_timeout' (0 workers: 'wait_for_workers: 0')."
                ) from None
        yield deployment
    finally:
        for stop in started.stop:
            try:
                stop()
            except Exception as exc:  # shutting down must not hide the job's own error
                logger.warning("while shutting down %s: %s", source, exc)


def config_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The YAML files of a folder, sorted."""
    return sorted([*Path(folder).glob("*.yaml"), *Path(folder).glob("*.yml")])
