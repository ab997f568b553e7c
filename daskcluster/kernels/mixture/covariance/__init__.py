"""The four covariance types of a Gaussian mixture, one object each (see :mod:`.base`).

``covariance_of(name)`` is the only place a covariance type is looked up by its name.
"""

from __future__ import annotations

from .base import (
    COLLAPSED_MESSAGE,
    CollapsedComponentError,
    CovarianceType,
    WishartPrior,
    log_wishart_norm,
)
from .diag import DiagCovariance
from .full import FullCovariance
from .spherical import SphericalCovariance
from .tied import TiedCovariance

#: One instance of each type, by scikit-learn's name.
COVARIANCES: dict[str, CovarianceType] = {
    c.name: c for c in (FullCovariance(), TiedCovariance(), DiagCovariance(), SphericalCovariance())
}
#: scikit-learn's ``covariance_type`` values.
COVARIANCE_TYPES = tuple(COVARIANCES)


def covariance_of(name: str) -> CovarianceType:
    """The covariance type called ``name`` (``'full'``, ``'tied'``, ``'diag'``, ``'spherical'``)."""
    return COVARIANCES[name]


__all__ = [
    "COLLAPSED_MESSAGE",
    "COVARIANCES",
    "COVARIANCE_TYPES",
    "CollapsedComponentError",
    "CovarianceType",
    "DiagCovariance",
    "FullCovariance",
    "SphericalCovariance",
    "TiedCovariance",
    "WishartPrior",
    "covariance_of",
    "log_wishart_norm",
]
