"""Declared parameter constraints, checked at ``fit`` with scikit-learn's messages.

Each estimator declares, once, what each of its parameters accepts (scikit-learn's
``_parameter_constraints``)::

    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "init": [StrOptions(["k-means||", "k-means++", "random"]), callable, "array-like"],
        "cache": CACHE,
    }

and, for the parameters whose validity depends on the data's shape (an ``init`` array, the
number of clusters against the number of samples) or on what the estimator supports,
:class:`DataCheck` entries in ``_data_checks``. :func:`parameter_errors` collects every problem of an estimator's parameters
at once; :func:`check_parameters` raises the first. Each problem is an
:class:`~daskcluster.errors.InvalidParameterError` whose ``param`` names the parameter::

    The 'tol' parameter of KMeans must be a float in the range [0.0, inf). Got -1 instead.

Constraints are the objects below or these shorthands, as in scikit-learn: ``"boolean"``,
``"verbose"``, ``"random_state"``, ``"array-like"``, ``"sparse matrix"``, ``callable``,
``None``, or a type (any instance of it). Checking reads no data. Options are shown in the
order declared (scikit-learn keeps them in a set, whose order varies).
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Protocol

import numpy as np

from .errors import InvalidDataError, InvalidParameterError

__all__ = [
    "CACHE",
    "Constraint",
    "DataCheck",
    "HasMethods",
    "Hidden",
    "Interval",
    "Options",
    "StrOptions",
    "check_float",
    "check_int",
    "check_int_grid",
    "check_options",
    "check_parameters",
    "check_random_state",
    "check_value_list",
    "parameter_errors",
    "validate_params",
]


def _type_name(t: type) -> str:
    """A type as scikit-learn's messages name it: ``'bool'``, ``'numpy.bool'``, ``int``, ``float``."""
    if t.__module__ == "builtins":
        return t.__qualname__
    if t is Real:
        return "float"
    if t is Integral:
        return "int"
    return f"{t.__module__}.{t.__qualname__}"


class Constraint(ABC):
    """What a parameter may be; ``str(constraint)`` completes "must be ..."."""

    hidden = False

    @abstractmethod
    def is_satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` meets the constraint."""

    @abstractmethod
    def __str__(self) -> str: ...


class _InstancesOf(Constraint):
    def __init__(self, type_: type) -> None:
        self.type = type_

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.type)

    def __str__(self) -> str:
        return f"an instance of {_type_name(self.type)!r}"


class _NoneConstraint(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


class _Callables(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return callable(value)

    def __str__(self) -> str:
        return "a callable"


class _ArrayLikes(Constraint):
    """Anything with a length, a shape or ``__array__`` that is not a scalar (not a str)."""

    def is_satisfied_by(self, value: Any) -> bool:
        return (hasattr(value, "__len__") or hasattr(value, "shape") or hasattr(value, "__array__")) and not (
            np.isscalar(value)
        )

    def __str__(self) -> str:
        return "an array-like"


class HasMethods(Constraint):
    """Objects with all of ``methods`` (a protocol, e.g. ``cache`` of a joblib ``Memory``)."""

    def __init__(self, methods: str | list[str]) -> None:
        self.methods = [methods] if isinstance(methods, str) else list(methods)

    def is_satisfied_by(self, value: Any) -> bool:
        return all(callable(getattr(value, m, None)) for m in self.methods)

    def __str__(self) -> str:
        shown = [repr(m) for m in self.methods]
        names = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"
        return f"an object implementing {names}"


class _SparseMatrices(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        from scipy import sparse

        return bool(sparse.issparse(value))

    def __str__(self) -> str:
        return "a sparse array or matrix"


class Interval(Constraint):
    """Numbers of ``type_`` (``Integral`` or ``Real``) between ``left`` and ``right`` (None: unbounded).

    ``closed`` is ``'left'``, ``'right'``, ``'both'`` or ``'neither'``. ``bool`` is not a
    number here, and NaN is in no interval.
    """

    def __init__(self, type_: type, left: float | None, right: float | None, *, closed: str) -> None:
        if type_ not in (Integral, Real):
            raise TypeError(f"type_ must be numbers.Integral or numbers.Real, got {type_!r}.")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"closed must be 'left', 'right', 'both' or 'neither', got {closed!r}.")
        self.type, self.left, self.right, self.closed = type_, left, right, closed

    def __contains__(self, value: float) -> bool:
        if math.isnan(value):
            return False
        left = -math.inf if self.left is None else self.left
        right = math.inf if self.right is None else self.right
        above = value >= left if self.closed in ("left", "both") else value > left
        below = value <= right if self.closed in ("right", "both") else value < right
        return above and below

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, self.type):
            return False
        return float(value) in self

    def __str__(self) -> str:
        type_str = "an int" if self.type is Integral else "a float"
        left: Any = "-inf" if self.left is None else self.left
        right: Any = "inf" if self.right is None else self.right
        if self.type is not Integral:  # scikit-learn shows a float interval's bounds as floats
            left = left if self.left is None else float(left)
            right = right if self.right is None else float(right)
        left_bracket = "[" if self.closed in ("left", "both") else "("
        right_bracket = "]" if self.closed in ("right", "both") else ")"
        return f"{type_str} in the range {left_bracket}{left}, {right}{right_bracket}"


class Options(Constraint):
    """One of ``options``, each an instance of ``type_`` (shown in the order given)."""

    def __init__(self, type_: type, options: Iterable[Any]) -> None:
        self.type = type_
        self.options = tuple(options)

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.type) and value in self.options

    def __str__(self) -> str:
        shown = ", ".join(repr(o) for o in self.options)
        return f"a {_type_name(self.type)} among {{{shown}}}"


class StrOptions(Options):
    """One of the strings ``options``."""

    def __init__(self, options: Iterable[str]) -> None:
        super().__init__(str, options)


class Hidden(Constraint):
    """A constraint that is accepted but not shown in messages (an alias, a deprecated type)."""

    hidden = True

    def __init__(self, constraint: Any) -> None:
        self.constraint = make_constraint(constraint)

    def is_satisfied_by(self, value: Any) -> bool:
        return self.constraint.is_satisfied_by(value)

    def __str__(self) -> str:
        return str(self.constraint)


class _AnyOf(Constraint):
    """One of several constraints, shown as one (scikit-learn's ``"boolean"``, ``"verbose"``,
    ``"random_state"``): ``"a, b or c"``."""

    def __init__(self, *constraints: Any) -> None:
        self.constraints = [make_constraint(c) for c in constraints]

    def is_satisfied_by(self, value: Any) -> bool:
        return any(c.is_satisfied_by(value) for c in self.constraints)

    def __str__(self) -> str:
        return _joined([str(c) for c in self.constraints if not c.hidden])


def _joined(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"


def make_constraint(shorthand: Any) -> Constraint:
    """The constraint object of a constraint or a shorthand."""
    if isinstance(shorthand, Constraint):
        return shorthand
    if shorthand is None:
        return _NoneConstraint()
    if shorthand is callable:
        return _Callables()
    if isinstance(shorthand, type):
        return _InstancesOf(shorthand)
    if shorthand == "boolean":
        return _AnyOf(bool, np.bool_)
    if shorthand == "verbose":
        return _AnyOf(Interval(Integral, 0, None, closed="left"), bool, np.bool_)
    if shorthand == "random_state":
        # a Generator is also taken (a RandomState is seeded from it); messages name scikit-learn's kinds
        return _AnyOf(Interval(Integral, 0, 2**32 - 1, closed="both"), np.random.RandomState,
                      Hidden(np.random.Generator), None)
    if shorthand == "array-like":
        return _ArrayLikes()
    if shorthand == "sparse matrix":
        return _SparseMatrices()
    raise ValueError(f"Unknown constraint {shorthand!r}.")


#: The ``cache`` parameter of every estimator that streams its data: ``'auto'``, True or False.
CACHE: list[Any] = [StrOptions({"auto"}), "boolean"]


def _error(param: str, owner: str, constraints: list[Any], value: Any) -> InvalidParameterError | None:
    """The problem of one value, or None when it meets one of ``constraints``."""
    made = [make_constraint(c) for c in constraints]
    if any(c.is_satisfied_by(value) for c in made):
        return None
    text = _joined([str(c) for c in made if not c.hidden])
    return InvalidParameterError(f"The {param!r} parameter of {owner} must be {text}. Got {value!r} instead.",
                                 param=param)


def validate_params(constraints: Mapping[str, list[Any]], values: Mapping[str, Any], owner: str,
                    *, collect: bool = False) -> list[InvalidParameterError]:
    """Check ``values`` against ``constraints`` (parameter name -> list of accepted kinds).

    Parameters
    ----------
    constraints : mapping of str to list
        For each parameter, the constraints of which one at least must hold. Parameters
        without an entry are not checked.
    values : mapping of str to object
    owner : str
        Who takes the parameters (an estimator's or a function's name), for the message.
    collect : bool, default=False
        Return every problem instead of raising the first.

    Returns
    -------
    list of InvalidParameterError
        With ``collect``; otherwise empty (the first problem is raised).
    """
    errors = []
    for name, value in values.items():
        if name in constraints:
            error = _error(name, owner, constraints[name], value)
            if error is not None:
                if not collect:
                    raise error
                errors.append(error)
    return errors


class DataShape(Protocol):
    """What checks against the data read: the data's shape (e.g. a :class:`~daskcluster.data.RowData`)."""

    @property
    def n_samples(self) -> int: ...

    @property
    def n_features(self) -> int: ...


@dataclass(frozen=True)
class DataCheck:
    """A check of ``param`` against the data's shape, run when ``param`` and the parameters in
    ``needs`` meet their constraints.

    ``check(estimator, data)`` raises :class:`~daskcluster.errors.InvalidParameterError` or, for
    a parameter that does not fit the data's size, :class:`~daskcluster.errors.InvalidDataError`
    (its ``param`` is set to ``param`` when the check did not set it), and reads no data.
    """

    param: str
    check: Callable[[Any, DataShape], None]
    needs: tuple[str, ...] = ()
    #: False for a check of what is supported whatever the data (run without ``data`` too;
    #: ``check`` then gets ``data=None``).
    needs_data: bool = True


def parameter_errors(estimator: Any, data: DataShape | None = None) -> list[InvalidParameterError | InvalidDataError]:
    """Every problem of an estimator's parameters, found at once, without reading data.

    First each parameter against the estimator's declared ``_parameter_constraints``; then
    each of the estimator's ``_data_checks`` whose parameters passed: what the estimator
    supports (e.g. ``NMF(solver='cd')``) always, the checks against the data's shape (the shape
    of an ``init`` array, ``n_samples >= n_clusters``) when ``data`` is given.

    Parameters
    ----------
    estimator : estimator
        Any daskcluster estimator (its class declares ``_parameter_constraints`` and
        optionally ``_data_checks``).
    data : object with ``n_samples`` and ``n_features``, default=None
        The data's shape, e.g. a :class:`~daskcluster.data.RowData` built from metadata.

    Returns
    -------
    list of InvalidParameterError or InvalidDataError
        In the order of the estimator's parameters, then of its data checks; ``exc.param`` is
        the parameter's name (what a job file's key ``model.params.<param>`` points at).
        A parameter that does not fit the data's size (``n_samples=2 should be >=
        n_clusters=3.``) is an :class:`~daskcluster.errors.InvalidDataError`, as the same
        problem is when ``fit`` finds it; every other one an ``InvalidParameterError``.
        Empty when every parameter is valid.

    Examples
    --------
    >>> from daskcluster import KMeans
    >>> from daskcluster.params import parameter_errors
    >>> for error in parameter_errors(KMeans(tol=-1, max_iter=0)):
    ...     print(f"{error.param}: {error}")
    max_iter: The 'max_iter' parameter of KMeans must be an int in the range [1, inf). Got 0 instead.
    tol: The 'tol' parameter of KMeans must be a float in the range [0.0, inf). Got -1 instead.
    """
    owner = type(estimator).__name__
    errors: list[InvalidParameterError | InvalidDataError] = list(validate_params(
        type(estimator)._parameter_constraints, estimator.get_params(deep=False), owner, collect=True))
    bad = {getattr(e, "param", None) for e in errors}
    for check in getattr(type(estimator), "_data_checks", ()):
        if check.param in bad or bad.intersection(check.needs) or (data is None and check.needs_data):
            continue
        try:
            check.check(estimator, data)
        except (InvalidParameterError, InvalidDataError) as exc:
            if getattr(exc, "param", None) is None:
                exc.param = check.param  # type: ignore[union-attr]
            errors.append(exc)
            bad.add(check.param)
    return errors


def check_parameters(estimator: Any, data: DataShape | None = None) -> None:
    """Raise the first problem :func:`parameter_errors` finds (what ``fit`` calls first)."""
    errors = parameter_errors(estimator, data)
    if errors:
        raise errors[0]


# ---------------------------------------------------------------------- one parameter at a time


def check_int(
    owner: str, name: str, value: Any, low: int | None = None, high: int | None = None, *, allow_none: bool = False
) -> int | None:
    """Check an integer parameter within ``[low, high]``; returns it as ``int``."""
    closed = {(True, True): "both", (True, False): "left", (False, True): "right"}.get(
        (low is not None, high is not None), "neither")
    accepted: list[Any] = [Interval(Integral, low, high, closed=closed)] + ([None] if allow_none else [])
    validate_params({name: accepted}, {name: value}, owner)
    return None if value is None else int(value)


def check_float(
    owner: str,
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    closed: str = "both",
) -> float:
    """Check a real parameter within the interval; returns it as ``float``."""
    if low is None and closed in ("both", "left"):
        closed = "right" if closed == "both" else "neither"
    if high is None and closed in ("both", "right"):
        closed = "left" if closed == "both" else "neither"
    validate_params({name: [Interval(Real, low, high, closed=closed)]}, {name: value}, owner)
    return float(value)


def check_options(owner: str, name: str, value: Any, options: Iterable[Any]) -> Any:
    """Check that a parameter is one of ``options`` (strings, None, booleans)."""
    options = tuple(options)
    accepted: list[Any] = []
    strings = [o for o in options if isinstance(o, str)]
    if strings:
        accepted.append(StrOptions(strings))
    if True in options and False in options and all(isinstance(o, bool) for o in options if o is not None
                                                     and not isinstance(o, str)):
        accepted.append("boolean")
    else:
        accepted += [Options(bool, [o]) for o in options if isinstance(o, bool)]
    if None in options:
        accepted.append(None)
    validate_params({name: accepted}, {name: value}, owner)
    return value


def check_random_state(owner: str, value: Any) -> np.random.RandomState:
    """``None``, an int or a ``numpy.random.RandomState``/``Generator``, as scikit-learn takes it."""
    validate_params({"random_state": ["random_state"]}, {"random_state": value}, owner)
    if value is None:
        return np.random.RandomState()
    if isinstance(value, np.random.RandomState):
        return value
    if isinstance(value, np.random.Generator):
        return np.random.RandomState(value.integers(2**32 - 1))
    return np.random.RandomState(int(value))


def check_value_list(owner: str, name: str, value: Any) -> list[Any]:
    """A value or an iterable of values as a non-empty list (a str counts as one value)."""
    if isinstance(value, (str, numbers.Integral)):
        return [value]
    if not isinstance(value, Iterable):
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be a value or a list of values. Got {value!r} instead.",
            param=name)
    out = list(value)
    if not out:
        raise InvalidParameterError(f"The {name!r} parameter of {owner} must not be empty.", param=name)
    return out


def check_int_grid(owner: str, name: str, value: Any, low: int = 1) -> list[int]:
    """An int or an iterable of ints, each at least ``low``, as a list without duplicates (first
    occurrence kept, then sorted increasing)."""
    values = [int(check_int(owner, name, v, low) or 0) for v in check_value_list(owner, name, value)]
    return sorted(dict.fromkeys(values))
