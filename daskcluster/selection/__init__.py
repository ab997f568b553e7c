"""Model selection over row-chunked data: many models fitted in shared passes.

:func:`kmeans_sweep` fits k-means for many numbers of clusters and :func:`gmm_sweep` Gaussian
mixtures over a grid of components and covariance types; every pass over the data serves
all the models still iterating, so a sweep costs about as many passes as its longest fit.
Both return a pandas DataFrame of scores with the fitted models. Imported on first use
(:mod:`daskcluster._lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__, {"find_elbow": "._elbow", "gmm_sweep": "._gmm_sweep", "kmeans_sweep": "._kmeans_sweep"}
)

if TYPE_CHECKING:
    from ._elbow import find_elbow
    from ._gmm_sweep import gmm_sweep
    from ._kmeans_sweep import kmeans_sweep
