"""daskcluster: distributed, out-of-core clustering with scikit-learn's API on Dask.

The estimators are imported on first use (:mod:`daskcluster._lazy`), so that Dask workers,
which only run daskcluster's kernels, engine tasks and data readers, never import
scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import attach
from .errors import DaskClusterError

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "KMeans": ".cluster",
        "MiniBatchKMeans": ".cluster",
        "DBSCAN": ".cluster",
        "AgglomerativeClustering": ".cluster",
        "SpectralClustering": ".cluster",
        "GaussianMixture": ".mixture",
        "BayesianGaussianMixture": ".mixture",
        "NMF": ".decomposition",
        "OPNMF": ".decomposition",
        "PCA": ".decomposition",
        "Scaled": ".data",
        "scaled": ".data",
    },
    eager=["DaskClusterError", "__version__"],
)

if TYPE_CHECKING:
    from .cluster import (
        DBSCAN,
        AgglomerativeClustering,
        KMeans,
        MiniBatchKMeans,
        SpectralClustering,
    )
    from .data import Scaled, scaled
    from .decomposition import NMF, OPNMF, PCA
    from .mixture import BayesianGaussianMixture, GaussianMixture
