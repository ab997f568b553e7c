"""Clustering estimators: :class:`KMeans` and :class:`MiniBatchKMeans`."""

from ._kmeans import KMeans
from ._minibatch import MiniBatchKMeans
from ._representatives import propagate_labels, representatives

__all__ = ["KMeans", "MiniBatchKMeans", "propagate_labels", "representatives"]
