"""DBSCAN, exact, on spatial partitions of row-chunked data (see :class:`DBSCAN`)."""

from ._estimator import DBSCAN

__all__ = ["DBSCAN"]
