"""One small function per ``kind``: a validated config -> a running cluster and a Client.

Each starter returns a :class:`Started`: the client, the cluster object (None when
daskcluster connected to a scheduler it did not start) and the callbacks that shut down,
in order, what it started. Optional backends are imported only here, and only when used.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from dask.utils import parse_timedelta

from ..errors import DaskClusterError
from .files import ConfigError
from .schema import (
    AddressConfig,
    GatewayConfig,
    KubernetesConfig,
    LocalConfig,
    PBSConfig,
    _JobqueueConfig,
)

logger = logging.getLogger(__name__)

#: kind -> (importable module, pip extra of daskcluster, package name on PyPI)
EXTRAS: dict[str, tuple[str, str, str]] = {
    "slurm": ("dask_jobqueue", "slurm", "dask-jobqueue"),
    "pbs": ("dask_jobqueue", "pbs", "dask-jobqueue"),
    "kubernetes": ("dask_kubernetes.operator", "kubernetes", "dask-kubernetes"),
    "gateway": ("dask_gateway", "gateway", "dask-gateway"),
}


class MissingExtraError(DaskClusterError, ImportError):
    """A backend's optional package is not installed; the message says which extra to install."""


def require(kind: str) -> ModuleType:
    """Import the optional package of ``kind`` or say which extra installs it.

    The process's Ctrl-C handler is kept: importing dask-jobqueue replaces it with one that
    calls ``sys.exit()`` (for its own runner), which would turn Ctrl-C into a ``SystemExit``
    that bypasses the cancel path of a job and of a pass.
    """
    module, extra, package = EXTRAS[kind]
    handler = signal.getsignal(signal.SIGINT)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"kind '{kind}' needs the package {package}, which is not installed here ({exc}). "
            f"Install it with: pip install 'daskcluster[{extra}]'"
        ) from None
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is not handler:
            signal.signal(signal.SIGINT, handler)


def read_env(variable: str, key: str, source: str) -> str:
    """The value of an environment variable that a config names under ``key``."""
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(
            f"{source}: key '{key}' names the environment variable {variable}, which is not set. "
            f"Set it before starting (export {variable}=...)."
        )
    return value


@dataclass
class Started:
    """What a starter started: the client, the cluster (None if not ours) and how to stop them."""

    client: Any
    cluster: Any = None
    stop: list[Callable[[], Any]] = field(default_factory=list)


def start_local(config: LocalConfig, source: str) -> Started:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(**local_cluster_options(config))
    try:
        client = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    return Started(client, cluster, [client.close, cluster.close])


def local_cluster_options(config: LocalConfig) -> dict[str, Any]:
    """The keyword arguments of the config's ``LocalCluster`` (JSON-able)."""
    return dict(
        n_workers=config.n_workers,
        threads_per_worker=config.threads_per_worker,
        processes=config.processes,
        memory_limit=config.memory_limit,
        dashboard_address=config.dashboard_address,
        silence_logs=logging.ERROR,
        preload=["daskcluster.deploy.interrupts"],  # Ctrl-C stops the command, which stops the workers
    )


def start_local_process(config: LocalConfig, source: str) -> Started:
    """The config's ``LocalCluster`` in a child process (:mod:`.local_process`); the cluster object
    of the :class:`Started` is the :class:`~.local_process.LocalProcess`."""
    from .local_process import LocalProcess

    host = LocalProcess(local_cluster_options(config)).start()
    try:
        address = host.wait(timeout=parse_timedelta(config.wait_timeout))
        from distributed import Client

        client = Client(address)
    except BaseException:
        host.close()
        raise
    return Started(client, host, [client.close, host.close])


def security(config: AddressConfig) -> Any:
    """Dask's :class:`distributed.Security` from the ``tls`` files, or None."""
    if config.tls is None:
        return None
    from distributed import Security

    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(config.tls, key)
        if not os.path.isfile(path):
            raise ConfigError(f"key 'tls.{key}': no such file {path!r}.")
    return Security(
        tls_ca_file=config.tls.ca_file,
        tls_client_cert=config.tls.cert_file,
        tls_client_key=config.tls.key_file,
        require_encryption=config.tls.require_encryption,
    )


def start_address(config: AddressConfig, source: str) -> Started:
    from distributed import Client

    timeout = parse_timedelta(config.timeout)
    sec = security(config)
    kwargs: dict[str, Any] = {"timeout": timeout}
    if sec is not None:
        kwargs["security"] = sec
    if config.scheduler_file is not None:
        if not os.path.isfile(config.scheduler_file):
            raise ConfigError(f"{source}: key 'scheduler_file': no such file {config.scheduler_file!r}.")
        client = Client(scheduler_file=config.scheduler_file, **kwargs)
    else:
        address = config.address or read_env(str(config.address_env), "address_env", source)
        if address.startswith("tls://") and sec is None:
            raise ConfigError(f"{source}: key 'address_env': ${config.address_env} is the TLS address {address!r}, "
                              "and there is no 'tls' block. Add tls: {ca_file: ..., cert_file: ..., key_file: ...}.")
        client = Client(address, **kwargs)
    return Started(client, None, [client.close])


def jobqueue_job_options(config: _JobqueueConfig) -> dict[str, Any]:
    """The keyword arguments of the config's dask-jobqueue job: one batch job's resources,
    header directives, prologue and worker options (the same for a cluster's workers and for a
    driver run as a batch job, :mod:`daskcluster.deploy.batch`)."""
    kwargs: dict[str, Any] = dict(
        cores=config.cores,
        memory=config.memory,
        processes=config.processes,
        walltime=config.walltime,
        queue=config.queue,
        account=config.account,
        job_name=config.job_name,
        interface=config.interface,
        local_directory=config.local_directory,
        log_directory=config.log_directory,
        job_extra_directives=list(config.job_extra_directives),
        job_script_prologue=list(config.job_script_prologue),
        worker_extra_args=list(config.worker_extra_args),
    )
    if config.python is not None:
        kwargs["python"] = config.python
    if isinstance(config, PBSConfig):
        kwargs["resource_spec"] = config.resource_spec
    return kwargs


def jobqueue_cluster_class(kind: str) -> Any:
    """``dask_jobqueue.SLURMCluster`` (kind 'slurm') or ``PBSCluster`` ('pbs'), imported here
    (or the extra that installs it is named)."""
    jq = require(kind)
    return jq.PBSCluster if kind == "pbs" else jq.SLURMCluster


def jobqueue_cluster(config: _JobqueueConfig) -> Any:
    """The dask-jobqueue cluster object (its scheduler runs here); no job is submitted yet.

    ``cluster.job_script()`` shows the batch script each job will run.
    """
    kwargs = jobqueue_job_options(config)
    scheduler_options: dict[str, Any] = {}
    if config.scheduler_host is not None:
        scheduler_options["host"] = config.scheduler_host
    if config.dashboard_address is not None:
        scheduler_options["dashboard_address"] = config.dashboard_address
    if scheduler_options:
        kwargs["scheduler_options"] = scheduler_options
    return jobqueue_cluster_class(config.kind)(silence_logs="error", **kwargs)


def start_jobqueue(config: _JobqueueConfig, source: str) -> Started:
    from distributed import Client

    cluster = jobqueue_cluster(config)
    try:
        if config.scale is not None:
            cluster.scale(jobs=config.scale.jobs)
        else:
            assert config.adapt is not None
            cluster.adapt(minimum_jobs=config.adapt.minimum_jobs, maximum_jobs=config.adapt.maximum_jobs)
        client = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    return Started(client, cluster, [client.close, cluster.close])


def _resources(spec: Any) -> dict[str, dict[str, str]] | None:
    if spec is None:
        return None
    out: dict[str, dict[str, str]] = {}
    for part in ("requests", "limits"):
        values = getattr(spec, part)
        if values is not None:
            out[part] = {k: v for k, v in values.model_dump().items() if v is not None}
    return out


def kubernetes_spec(config: KubernetesConfig) -> dict[str, Any]:
    """The ``DaskCluster`` resource (a plain dict) that ``KubeCluster`` creates from the config.

    Built with ``dask_kubernetes.operator.make_cluster_spec``; the container commands are
    ``dask scheduler`` / ``dask worker`` (recent images no longer ship the old scripts).
    """
    k8s = require("kubernetes")
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in config.env.items()]
    env += [{"name": s.name, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}
            for s in config.secret_env]
    spec: dict[str, Any] = k8s.make_cluster_spec(
        name=config.name,
        image=config.image,
        n_workers=config.n_workers,
        resources=_resources(config.resources),
        env=env,
        worker_command="dask worker",
        idle_timeout=config.idle_timeout,
    )
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    args = scheduler.get("args", [])
    if args and args[0] == "dask-scheduler":
        scheduler["args"] = ["dask", "scheduler", *args[1:]]
    if config.scheduler_resources is not None:
        scheduler["resources"] = _resources(config.scheduler_resources)
    if config.namespace is not None:
        spec.setdefault("metadata", {})["namespace"] = config.namespace
    return spec


def start_kubernetes(config: KubernetesConfig, source: str) -> Started:
    k8s = require("kubernetes")
    kwargs: dict[str, Any] = {"custom_cluster_spec": kubernetes_spec(config),
                              "shutdown_on_close": config.shutdown_on_close, "quiet": True}
    if config.namespace is not None:
        kwargs["namespace"] = config.namespace
    if config.port_forward_cluster_ip is not None:
        kwargs["port_forward_cluster_ip"] = config.port_forward_cluster_ip
    cluster = k8s.KubeCluster(**kwargs)
    try:
        if config.adapt is not None:
            cluster.adapt(minimum=config.adapt.minimum, maximum=config.adapt.maximum)
        client = cluster.get_client()
    except BaseException:
        cluster.close()
        raise
    return Started(client, cluster, [client.close, cluster.close])


def gateway_connection(config: GatewayConfig, source: str) -> Any:
    """A ``dask_gateway.Gateway`` with the address and credentials the config names."""
    gw = require("gateway")
    address = config.address or read_env(str(config.address_env), "address_env", source)
    proxy = config.proxy_address
    if config.proxy_address_env is not None:
        proxy = read_env(config.proxy_address_env, "proxy_address_env", source)
    auth: Any
    if config.auth.type == "basic":
        password = None
        if config.auth.password_env is not None:
            password = read_env(config.auth.password_env, "auth.password_env", source)
        auth = gw.BasicAuth(username=config.auth.username, password=password)
    elif config.auth.type == "jupyterhub":
        variable = config.auth.api_token_env or "JUPYTERHUB_API_TOKEN"
        auth = gw.JupyterHubAuth(api_token=read_env(variable, "auth.api_token_env", source))
    else:
        auth = gw.KerberosAuth()
    return gw.Gateway(address=address, proxy_address=proxy, public_address=config.public_address, auth=auth)


def _closer(gateway: Any) -> Callable[[], None]:
    """Close a ``dask_gateway.Gateway`` once. Its ``__del__`` closes it again, which raises
    once its event loop has stopped ("Exception ignored in Gateway.__del__"); after the real
    close, the instance's ``close`` becomes a no-op."""

    def close() -> None:
        try:
            gateway.close()
        finally:
            gateway.close = lambda: None

    return close


def start_gateway(config: GatewayConfig, source: str) -> Started:
    gateway = gateway_connection(config, source)
    stop: list[Callable[[], Any]] = [_closer(gateway)]
    try:
        if config.cluster_name is not None:
            cluster = _connect_gateway_cluster(gateway, config, source)
        else:
            cluster = _new_gateway_cluster(gateway, config, source)

        def close_cluster() -> None:
            try:
                cluster.close(shutdown=config.shutdown_on_close)
            finally:
                _closer(cluster.gateway)()

        stop.insert(0, close_cluster)
        client = cluster.get_client()
    except BaseException:
        for fn in stop:
            _quietly(fn)
        raise
    return Started(client, cluster, [client.close, *stop])


def _connect_gateway_cluster(gateway: Any, config: GatewayConfig, source: str) -> Any:
    """The running cluster ``cluster_name`` of the gateway, as it is (not rescaled)."""
    running = {c.name for c in gateway.list_clusters()}
    if config.cluster_name not in running:
        raise ConfigError(
            f"{source}: key 'cluster_name': the gateway at {gateway.address} has no running cluster "
            f"{config.cluster_name!r} (it was stopped, or it shut down when idle). Running: "
            f"{', '.join(sorted(running)) or '(none)'}. Drop 'cluster_name' to create a new one."
        )
    return gateway.connect(config.cluster_name, shutdown_on_close=config.shutdown_on_close)


def _new_gateway_cluster(gateway: Any, config: GatewayConfig, source: str) -> Any:
    """A new cluster with the config's options and size (shut down again if it cannot be sized)."""
    options = gateway.cluster_options()
    for key, value in config.cluster_options.items():
        if key not in options:
            raise ConfigError(
                f"{source}: key 'cluster_options.{key}': the gateway at {gateway.address} offers no such "
                f"option. It offers: {', '.join(sorted(options)) or '(none)'}."
            )
        try:
            options[key] = value
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: key 'cluster_options.{key}': the gateway refused {value!r}: {exc}") from None
    cluster = gateway.new_cluster(options, shutdown_on_close=config.shutdown_on_close)
    try:
        if config.scale is not None:
            cluster.scale(config.scale)
        elif config.adapt is not None:
            cluster.adapt(minimum=config.adapt.minimum, maximum=config.adapt.maximum)
    except BaseException:
        _quietly(lambda: cluster.close(shutdown=True))
        raise
    return cluster


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception as exc:  # shutting down must not hide the error that brought us here
        logger.warning("while shutting down: %s", exc)


STARTERS: dict[str, Callable[[Any, str], Started]] = {
    "local": start_local,
    "address": start_address,
    "slurm": start_jobqueue,
    "pbs": start_jobqueue,
    "kubernetes": start_kubernetes,
    "gateway": start_gateway,
}
