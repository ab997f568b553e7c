"""Factorizations as passes over row-chunked data: NMF, OPNMF and an exact PCA.

The estimators are imported on first use, so that workers running the kernels never import
scikit-learn.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "NMF": "daskcluster.decomposition._nmf",
    "OPNMF": "daskcluster.decomposition._opnmf",
    "PCA": "daskcluster.decomposition._pca",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'daskcluster.decomposition' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
