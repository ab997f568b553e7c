"""The schema of ``cluster_configs/*.yaml``: one pydantic model per way to get a cluster.

Every model forbids unknown keys and checks types strictly, so a typo or a wrong type is
reported with the key's name before anything starts. ``kind`` picks the model
(:data:`CONFIG_KINDS`). Secrets are never values in these files: a key ending in ``_env``
names the environment variable that holds the value, read only when the cluster starts.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from dask.utils import parse_bytes, parse_timedelta
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

__all__ = [
    "AddressConfig",
    "ClusterConfig",
    "CONFIG_KINDS",
    "GatewayConfig",
    "KubernetesConfig",
    "LocalConfig",
    "PBSConfig",
    "SLURMConfig",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WALLTIME = re.compile(r"^(\d+-)?\d+:\d{2}(:\d{2})?$")
_K8S_QUANTITY = re.compile(r"^[0-9.]+(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


class Strict(BaseModel):
    """Unknown keys are errors; YAML types are taken as they are (no '4' -> 4)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def check_env_name(value: str | None) -> str | None:
    """An environment variable's name (letters, digits, underscores, not starting with a digit)."""
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError("must be the name of an environment variable, like 'DASK_GATEWAY_PASSWORD'")
    return value


def check_bytes(value: str | int | None) -> str | int | None:
    """A size: bytes as an int, or a string such as '4GiB'."""
    if value is None or isinstance(value, int) or value == "auto":
        return value
    try:
        parse_bytes(value)
    except (ValueError, TypeError):
        raise ValueError("must be a size such as '4GiB' or '500MB'") from None
    return value


def check_duration(value: str | int | float) -> str | int | float:
    """A duration: seconds as a number, or a string such as '30s' or '10 minutes'."""
    try:
        parse_timedelta(value)
    except (ValueError, TypeError, KeyError):
        raise ValueError("must be a duration such as '30s' or '10 minutes'") from None
    return value


EnvName = Annotated[str, AfterValidator(check_env_name)]
"""The name of an environment variable."""
Size = Annotated[str | int, AfterValidator(check_bytes)]
"""Bytes as an int, or a string such as '4GiB'."""
SizeText = Annotated[str, AfterValidator(check_bytes)]
"""A size as a string such as '16GiB'."""
Duration = Annotated[str | int | float, AfterValidator(check_duration)]
"""Seconds, or a string such as '30s'."""


class AllowedPaths(Strict):
    """The folders jobs run on this cluster may read under and write under (see
    :mod:`daskcluster.jobs.policy`); relative roots are taken from the working directory."""

    read: list[str] = Field(default_factory=lambda: ["."], description="Roots of data, labels and models.")
    write: list[str] = Field(default_factory=lambda: ["."], description="Roots of output folders.")


class _Base(Strict):
    """Keys common to every kind."""

    wait_for_workers: int = Field(1, ge=0, description="Workers to wait for before running (0: do not wait).")
    wait_timeout: Duration = Field("600s", description="How long to wait for them.")
    allowed_paths: AllowedPaths | None = Field(None, description="Where jobs may read and write (default: the "
                                                                 "working directory).")


class LocalConfig(_Base):
    """A :class:`distributed.LocalCluster` on this machine."""

    kind: Literal["local"]
    n_workers: int | None = Field(None, ge=1, description="Worker processes (None: Dask's choice from the CPUs).")
    threads_per_worker: int | None = Field(None, ge=1, description="Threads per worker.")
    memory_limit: Size | None = Field("auto", description="Per worker: 'auto', bytes or '4GiB'.")
    processes: bool = True
    dashboard_address: str | None = Field("127.0.0.1:8787", description="Where the dashboard listens; this "
                                          "machine only by default (':8787' listens on every interface).")


class TLSConfig(Strict):
    """Files for TLS (Dask's :class:`distributed.Security`); files, not secrets, sit here."""

    ca_file: str
    cert_file: str
    key_file: str
    require_encryption: bool = True


class AddressConfig(_Base):
    """An existing scheduler, reached by address, by an environment variable, or by a scheduler file."""

    kind: Literal["address"]
    address: str | None = None
    address_env: EnvName | None = None
    scheduler_file: str | None = None
    tls: TLSConfig | None = None
    timeout: Duration = "30s"

    @model_validator(mode="after")
    def _one_address(self) -> AddressConfig:
        given = [k for k in ("address", "address_env", "scheduler_file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'address', 'address_env' or 'scheduler_file'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.address is not None and self.address.startswith("tls://") and self.tls is None:
            raise ValueError(
                f"the address {self.address!r} is a TLS address, and there is no 'tls' block. Add "
                "tls: {ca_file: ..., cert_file: ..., key_file: ...} (the files distributed.Security needs)"
            )
        return self


class JobqueueScale(Strict):
    """A fixed size: ``jobs`` batch jobs, each running ``processes`` workers."""

    jobs: int = Field(ge=0)


class JobqueueAdapt(Strict):
    """Adaptive size between ``minimum_jobs`` and ``maximum_jobs`` batch jobs."""

    minimum_jobs: int = Field(0, ge=0)
    maximum_jobs: int = Field(ge=1)

    @model_validator(mode="after")
    def _order(self) -> JobqueueAdapt:
        if self.minimum_jobs > self.maximum_jobs:
            raise ValueError(f"minimum_jobs={self.minimum_jobs} must be <= maximum_jobs={self.maximum_jobs}")
        return self


class _JobqueueConfig(_Base):
    """Keys shared by the dask-jobqueue batch systems."""

    kind: Literal["slurm", "pbs"]
    cores: int = Field(ge=1, description="Cores per batch job.")
    memory: SizeText = Field(description="Memory per batch job, e.g. '16GiB'.")
    processes: int = Field(1, ge=1, description="Worker processes per job (cores are split among them).")
    walltime: str = Field(description="Time limit per job, e.g. '01:00:00'.")
    queue: str | None = None
    account: str | None = None
    job_name: str = "dask-worker"
    interface: str | None = None
    local_directory: str | None = None
    log_directory: str | None = None
    python: str | None = None
    job_extra_directives: list[str] = Field(default_factory=list)
    job_script_prologue: list[str] = Field(default_factory=list)
    worker_extra_args: list[str] = Field(default_factory=list)
    scheduler_host: str | None = None
    dashboard_address: str | None = ":8787"
    scale: JobqueueScale | None = None
    adapt: JobqueueAdapt | None = None

    @field_validator("walltime")
    @classmethod
    def _check_walltime(cls, value: str) -> str:
        if not _WALLTIME.match(value):
            raise ValueError("must be a time limit like '01:30:00' (hours:minutes:seconds) or '1-00:00:00'")
        return value

    @model_validator(mode="after")
    def _one_size(self) -> _JobqueueConfig:
        if (self.scale is None) == (self.adapt is None):
            raise ValueError("give exactly one of 'scale' (a fixed number of jobs) or 'adapt' (minimum/maximum jobs)")
        return self


class SLURMConfig(_JobqueueConfig):
    """A SLURM allocation through ``dask_jobqueue.SLURMCluster``."""

    kind: Literal["slurm"]


class PBSConfig(_JobqueueConfig):
    """A PBS allocation through ``dask_jobqueue.PBSCluster``."""

    kind: Literal["pbs"]
    resource_spec: str | None = None


class K8sResources(Strict):
    """Kubernetes quantities for ``cpu`` and ``memory``, e.g. ``cpu: "2"``, ``memory: 8Gi``."""

    cpu: str | None = None
    memory: str | None = None

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and not _K8S_QUANTITY.match(value):
            raise ValueError("must be a Kubernetes quantity such as '2', '500m' or '8Gi'")
        return value


class K8sResourceSpec(Strict):
    requests: K8sResources | None = None
    limits: K8sResources | None = None


class SecretEnv(Strict):
    """An environment variable of the pods read from a Kubernetes Secret (never a value here)."""

    name: EnvName
    secret: str
    key: str


class Adapt(Strict):
    minimum: int = Field(0, ge=0)
    maximum: int = Field(ge=1)

    @model_validator(mode="after")
    def _order(self) -> Adapt:
        if self.minimum > self.maximum:
            raise ValueError(f"minimum={self.minimum} must be <= maximum={self.maximum}")
        return self


class KubernetesConfig(_Base):
    """A ``DaskCluster`` resource through the dask-kubernetes operator's ``KubeCluster``."""

    kind: Literal["kubernetes"]
    name: str = "daskcluster"
    namespace: str | None = None
    image: str
    n_workers: int = Field(2, ge=0)
    resources: K8sResourceSpec | None = None
    scheduler_resources: K8sResourceSpec | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: list[SecretEnv] = Field(default_factory=list)
    adapt: Adapt | None = None
    idle_timeout: int = Field(0, ge=0)
    shutdown_on_close: bool = True
    port_forward_cluster_ip: bool | None = None

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", value) or len(value) > 63:
            raise ValueError("must be a DNS label: lower-case letters, digits and '-', at most 63 characters")
        return value

    @field_validator("env")
    @classmethod
    def _no_secret_values(cls, value: dict[str, str]) -> dict[str, str]:
        from .files import SECRET_WORDS

        for key in value:
            check_env_name(key)
            if SECRET_WORDS.search(key):
                raise ValueError(
                    f"'{key}' looks like a secret: secrets never sit in these files. Store it in a Kubernetes "
                    "Secret and list it under 'secret_env' (name, secret, key)"
                )
        return value


class GatewayAuth(Strict):
    """How to authenticate to dask-gateway. ``basic``: a user name and a password read from
    ``password_env``; ``jupyterhub``: a token read from ``api_token_env`` (default
    ``JUPYTERHUB_API_TOKEN``); ``kerberos``: the current ticket."""

    type: Literal["basic", "jupyterhub", "kerberos"] = "basic"
    username: str | None = None
    password_env: EnvName | None = None
    api_token_env: EnvName | None = None

    @model_validator(mode="after")
    def _fields_of_type(self) -> GatewayAuth:
        if self.type != "basic" and (self.username is not None or self.password_env is not None):
            raise ValueError(f"'username' and 'password_env' apply to type 'basic' only, not {self.type!r}")
        if self.type != "jupyterhub" and self.api_token_env is not None:
            raise ValueError(f"'api_token_env' applies to type 'jupyterhub' only, not {self.type!r}")
        return self


class GatewayConfig(_Base):
    """A cluster from a dask-gateway server."""

    kind: Literal["gateway"]
    address: str | None = None
    address_env: EnvName | None = None
    proxy_address: str | None = None
    proxy_address_env: EnvName | None = None
    public_address: str | None = None
    auth: GatewayAuth = Field(default_factory=GatewayAuth)
    cluster_options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    scale: int | None = Field(None, ge=0)
    adapt: Adapt | None = None
    shutdown_on_close: bool = True
    cluster_name: str | None = Field(
        None, min_length=1,
        description="Connect to this running cluster of the gateway (its name, e.g. 'dask-gateway.1a2b...') "
                    "instead of creating one; 'scale'/'adapt' then apply only to a cluster created here.")

    @model_validator(mode="after")
    def _choices(self) -> GatewayConfig:
        if (self.address is None) == (self.address_env is None):
            raise ValueError("give exactly one of 'address' or 'address_env'")
        if self.proxy_address is not None and self.proxy_address_env is not None:
            raise ValueError("give at most one of 'proxy_address' or 'proxy_address_env'")
        if self.scale is not None and self.adapt is not None:
            raise ValueError("give at most one of 'scale' (a number of workers) or 'adapt' (minimum/maximum)")
        from .files import SECRET_WORDS

        for key in self.cluster_options:
            if SECRET_WORDS.search(key):
                raise ValueError(f"cluster option '{key}' looks like a secret: secrets never sit in these files")
        return self


ClusterConfig = LocalConfig | AddressConfig | SLURMConfig | PBSConfig | KubernetesConfig | GatewayConfig

#: ``kind`` -> model.
CONFIG_KINDS: dict[str, type[_Base]] = {
    "local": LocalConfig,
    "address": AddressConfig,
    "slurm": SLURMConfig,
    "pbs": PBSConfig,
    "kubernetes": KubernetesConfig,
    "gateway": GatewayConfig,
}


def describe(config: Any) -> str:
    """A short human description of a config, for ``daskcluster info``."""
    kind = config.kind
    if kind == "local":
        return (f"LocalCluster: {config.n_workers or 'auto'} worker(s) x {config.threads_per_worker or 'auto'} "
                f"thread(s), memory_limit={config.memory_limit}, processes={config.processes}")
    if kind == "address":
        where = config.address or (f"${config.address_env}" if config.address_env else config.scheduler_file)
        tls = config.tls is not None and (config.address or "").startswith("tls://")
        return f"existing scheduler at {where}" + (" (TLS)" if tls else "")
    if kind in ("slurm", "pbs"):
        size = f"{config.scale.jobs} job(s)" if config.scale else \
            f"adaptive {config.adapt.minimum_jobs}..{config.adapt.maximum_jobs} job(s)"
        return (f"{kind.upper()} via dask-jobqueue: {size} of {config.cores} cores, {config.memory}, "
                f"walltime {config.walltime}, queue {config.queue or '(default)'}")
    if kind == "kubernetes":
        return f"Kubernetes DaskCluster '{config.name}': {config.n_workers} worker(s) of {config.image}"
    where = config.address or f"${config.address_env}"
    size = f"{config.scale} worker(s)" if config.scale is not None else (
        f"adaptive {config.adapt.minimum}..{config.adapt.maximum}" if config.adapt else "no workers requested")
    return f"dask-gateway at {where}: {size}"
