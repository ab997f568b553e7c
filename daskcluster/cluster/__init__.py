"""Clustering estimators: :class:`KMeans`, :class:`MiniBatchKMeans`, :class:`DBSCAN`, and the two-phase
:class:`AgglomerativeClustering` and :class:`SpectralClustering`.

Imported on first use (:mod:`daskcluster._lazy`): a worker running a task of this package
(DBSCAN's partitions) does not import the estimators, nor scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "AgglomerativeClustering": "._agglomerative",
        "DBSCAN": ".dbscan",
        "KMeans": "._kmeans",
        "MiniBatchKMeans": "._minibatch",
        "SpectralClustering": "._spectral",
        "propagate_labels": "._representatives",
        "representatives": "._representatives",
    },
)

if TYPE_CHECKING:
    from ._agglomerative import AgglomerativeClustering
    from ._kmeans import KMeans
    from ._minibatch import MiniBatchKMeans
    from ._representatives import propagate_labels, representatives
    from ._spectral import SpectralClustering
    from .dbscan import DBSCAN
