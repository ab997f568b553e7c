"""The exception hierarchy of daskcluster.

Every error raised on purpose by daskcluster derives from :class:`DaskClusterError`
and also from the built-in exception that matches its kind, so callers may catch
either ``DaskClusterError`` or, say, ``ValueError``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DaskClusterError",
    "InvalidParameterError",
    "InvalidDataError",
    "NonFiniteDataError",
    "DataTypeError",
    "SourceError",
    "SourceNotFoundError",
    "LockedError",
    "StoreIntegrityError",
    "NotFittedError",
    "ConvergenceError",
]


class DaskClusterError(Exception):
    """Root of every error that daskcluster raises on purpose."""


class InvalidParameterError(DaskClusterError, ValueError):
    """An estimator or function parameter has a value outside what it accepts.

    The message follows scikit-learn's: ``The 'tol' parameter of KMeans must be a float
    in the range [0.0, inf). Got -1 instead.``

    Parameters
    ----------
    message : str
    param : str or None, default=None
        The parameter at fault (``exc.param``), e.g. ``'tol'``; None when no single
        parameter is.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class InvalidDataError(DaskClusterError, ValueError):
    """The data has the wrong shape, is empty, or does not fit the model."""


class NonFiniteDataError(InvalidDataError):
    """The data holds NaN or infinity; the message names the chunk and the row."""


class DataTypeError(DaskClusterError, TypeError, ValueError):
    """The data, or a parameter, has a type that cannot be used (e.g. strings, complex numbers).

    Also a ``ValueError``, as scikit-learn raises for data of the wrong kind.
    """


class SourceError(DaskClusterError, OSError):
    """A data source cannot be read or written: corrupt file, wrong size, bad URL."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A data source path or URL does not exist."""


class LockedError(SourceError, BlockingIOError):
    """Another process is writing the same output (its lock file names it)."""


class StoreIntegrityError(SourceError):
    """A Zarr store written by daskcluster is incomplete or damaged: a chunk missing or corrupt,
    its shape not the one recorded when it was written."""


def _not_fitted_error() -> type:
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(DaskClusterError, SklearnNotFittedError):
        """A method that needs a fitted estimator was called before ``fit``.

        Also scikit-learn's ``NotFittedError`` (a ``ValueError`` and an ``AttributeError``).
        """

    NotFittedError.__module__ = __name__
    NotFittedError.__qualname__ = "NotFittedError"
    return NotFittedError


def __getattr__(name: str) -> Any:
    # NotFittedError derives from scikit-learn's, whose import is heavy (~160 MB): it is built on
    # first use, so that workers importing the kernels never load scikit-learn.
    if name == "NotFittedError":
        cls = _not_fitted_error()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ConvergenceError(DaskClusterError, ArithmeticError):
    """A numerical procedure failed in a way the user can act on (the message says how)."""
