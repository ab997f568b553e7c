"""Clustering estimators: :class:`KMeans`, :class:`MiniBatchKMeans`, :class:`DBSCAN`, and the two-phase
:class:`AgglomerativeClustering` and :class:`SpectralClustering`."""

from ._agglomerative import AgglomerativeClustering
from ._kmeans import KMeans
from .dbscan import DBSCAN
from ._minibatch import MiniBatchKMeans
from ._representatives import propagate_labels, representatives
from ._spectral import SpectralClustering

__all__ = ["AgglomerativeClustering", "DBSCAN", "KMeans", "MiniBatchKMeans", "SpectralClustering", "propagate_labels",
           "representatives"]
