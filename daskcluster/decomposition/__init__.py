"""Factorizations as passes over row-chunked data: NMF, OPNMF and an exact PCA.

The estimators are imported on first use (:mod:`daskcluster._lazy`), so that workers running
the kernels never import scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"NMF": "._nmf", "OPNMF": "._opnmf", "PCA": "._pca"})

if TYPE_CHECKING:
    from ._nmf import NMF
    from ._opnmf import OPNMF
    from ._pca import PCA
