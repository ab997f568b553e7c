"""daskcluster: distributed, out-of-core clustering with scikit-learn's API on Dask.

The estimators are imported on first use, so that Dask workers which only run daskcluster's
NumPy kernels never import scikit-learn.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import DaskClusterError

__version__ = "0.1.0"

_LAZY = {
    "KMeans": "daskcluster.cluster",
    "MiniBatchKMeans": "daskcluster.cluster",
    "DBSCAN": "daskcluster.cluster",
    "AgglomerativeClustering": "daskcluster.cluster",
    "SpectralClustering": "daskcluster.cluster",
    "GaussianMixture": "daskcluster.mixture",
    "BayesianGaussianMixture": "daskcluster.mixture",
    "NMF": "daskcluster.decomposition",
    "OPNMF": "daskcluster.decomposition",
    "Scaled": "daskcluster.data",
    "scaled": "daskcluster.data",
}

__all__ = ["DaskClusterError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'daskcluster' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
