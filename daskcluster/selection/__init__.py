"""Model selection over row-chunked data: many models fitted in shared passes.

:func:`kmeans_sweep` fits k-means for many numbers of clusters and :func:`gmm_sweep` Gaussian
mixtures over a grid of components and covariance types; every pass over the data serves
all the models still iterating, so a sweep costs about as many passes as its longest fit.
Both return a pandas DataFrame of scores with the fitted models.
"""

from ._elbow import find_elbow
from ._gmm_sweep import gmm_sweep
from ._kmeans_sweep import kmeans_sweep

__all__ = ["find_elbow", "gmm_sweep", "kmeans_sweep"]
