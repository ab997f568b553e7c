"""The exception hierarchy of daskcluster.

Every error raised on purpose by daskcluster derives from :class:`DaskClusterError`
and also from the built-in exception that matches its kind, so callers may catch
either ``DaskClusterError`` or, say, ``ValueError``.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

__all__ = [
    "DaskClusterError",
    "InvalidParameterError",
    "InvalidDataError",
    "NonFiniteDataError",
    "DataTypeError",
    "SourceError",
    "SourceNotFoundError",
    "NotFittedError",
    "ConvergenceError",
]


class DaskClusterError(Exception):
    """Root of every error that daskcluster raises on purpose."""


class InvalidParameterError(DaskClusterError, ValueError):
    """An estimator or function parameter has a value outside what it accepts.

    The message follows one shape: ``The 'tol' parameter of KMeans must be a float
    in the range [0, inf). Got -1 instead.``
    """


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


class NotFittedError(DaskClusterError, _SklearnNotFittedError):
    """A method that needs a fitted estimator was called before ``fit``.

    Also scikit-learn's ``NotFittedError`` (a ``ValueError`` and an ``AttributeError``).
    """


class ConvergenceError(DaskClusterError, ArithmeticError):
    """A numerical procedure failed in a way the user can act on (the message says how)."""
