"""daskcluster: distributed, out-of-core clustering with scikit-learn's API on Dask."""

from .cluster import KMeans
from .data import Scaled, scaled
from .errors import DaskClusterError

__version__ = "0.1.0"

__all__ = ["KMeans", "Scaled", "scaled", "DaskClusterError", "__version__"]
