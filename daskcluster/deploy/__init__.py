"""Deployment: a file of ``cluster_configs/`` (or a dict) -> a running cluster and a ``Client``.

>>> from daskcluster.deploy import deploy
>>> with deploy("cluster_configs/local.yaml") as d:          # doctest: +SKIP
...     d.client.submit(sum, [1, 2]).result()
3

The names load on first use (:mod:`daskcluster._lazy`): a worker process that imports one
module of this package (the Ctrl-C preload, :mod:`daskcluster.deploy.interrupts`) and the
process that hosts the command's local cluster (:mod:`daskcluster.deploy.local_process`)
import neither Dask's configuration machinery nor pydantic for it.

============ ===================================================================================
module       holds
============ ===================================================================================
deployment   :func:`deploy`, :class:`Deployment`, :func:`load_config`, :func:`default_config`
schema       the configs' pydantic models, one per ``kind``
files        YAML reading, ``--set`` overrides, :class:`ConfigError`
backends     one starter per ``kind``; optional packages and the extra that installs each
lifetime     a command's cluster from its start to its shutdown; reconnection of submitted jobs
local_process  the command's local cluster hosted in a child process
batch        a command run as a SLURM/PBS batch job
interrupts   local workers that leave Ctrl-C to the command
============ ===================================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "AddressConfig": ".schema",
        "ClusterConfig": ".schema",
        "GatewayConfig": ".schema",
        "KubernetesConfig": ".schema",
        "LocalConfig": ".schema",
        "PBSConfig": ".schema",
        "SLURMConfig": ".schema",
        "describe": ".schema",
        "ConfigError": ".files",
        "EXTRAS": ".backends",
        "MissingExtraError": ".backends",
        "jobqueue_cluster": ".backends",
        "kubernetes_spec": ".backends",
        "require": ".backends",
        "ClusterStartError": ".deployment",
        "Deployment": ".deployment",
        "config_files": ".deployment",
        "default_config": ".deployment",
        "deploy": ".deployment",
        "is_cluster_config": ".deployment",
        "load_config": ".deployment",
    },
)

if TYPE_CHECKING:
    from .backends import EXTRAS, MissingExtraError, jobqueue_cluster, kubernetes_spec, require
    from .deployment import (
        ClusterStartError,
        Deployment,
        config_files,
        default_config,
        deploy,
        is_cluster_config,
        load_config,
    )
    from .files import ConfigError
    from .schema import (
        AddressConfig,
        ClusterConfig,
        GatewayConfig,
        KubernetesConfig,
        LocalConfig,
        PBSConfig,
        SLURMConfig,
        describe,
    )
