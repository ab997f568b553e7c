"""DBSCAN, exact, on spatial partitions of row-chunked data (see :class:`DBSCAN`).

The estimator is imported on first use (:mod:`daskcluster._lazy`). The tasks the workers run
are the engine's (:mod:`daskcluster.engine.partitions`: rows staged on disk per partition),
running the kernels of :mod:`daskcluster.kernels.dbscan` that the estimator gives them, so the
workers never import it, nor scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"DBSCAN": "._estimator"})

if TYPE_CHECKING:
    from ._estimator import DBSCAN
