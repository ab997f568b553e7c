"""Validation of estimator parameters, with scikit-learn's message shape.

``The 'tol' parameter of KMeans must be a float in the range [0, inf). Got -1 instead.``
"""

from __future__ import annotations

import numbers
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

from .errors import InvalidParameterError


def _fail(owner: str, name: str, expected: str, value: Any) -> InvalidParameterError:
    return InvalidParameterError(f"The '{name}' parameter of {owner} must be {expected}. Got {value!r} instead.")


def _range(low: float | None, high: float | None, closed: str) -> str:
    left = "[" if closed in ("both", "left") and low is not None else "("
    right = "]" if closed in ("both", "right") and high is not None else ")"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def _in_range(value: float, low: float | None, high: float | None, closed: str) -> bool:
    if low is not None and (value < low or (value == low and closed not in ("both", "left"))):
        return False
    if high is not None and (value > high or (value == high and closed not in ("both", "right"))):
        return False
    return True


def check_int(
    owner: str, name: str, value: Any, low: int | None = None, high: int | None = None, *, allow_none: bool = False
) -> int | None:
    """Check an integer parameter within ``[low, high]``; returns it as ``int``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or not _in_range(
        int(value), low, high, "both"
    ):
        expected = f"an int in the range {_range(low, high, 'both')}" + (" or None" if allow_none else "")
        raise _fail(owner, name, expected, value)
    return int(value)


def check_float(
    owner: str,
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    closed: str = "both",
) -> float:
    """Check a real parameter within the interval; returns it as ``float``."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Real)
        or not np.isfinite(value) and not (high is None and value == np.inf)
        or not _in_range(float(value), low, high, closed)
    ):
        raise _fail(owner, name, f"a float in the range {_range(low, high, closed)}", value)
    return float(value)


def check_options(owner: str, name: str, value: Any, options: Collection[Any]) -> Any:
    """Check that a parameter is one of ``options``."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        if value in options:
            return value
    shown = ", ".join(repr(o) for o in options)
    raise _fail(owner, name, f"one of {{{shown}}}", value)


def check_random_state(owner: str, value: Any) -> np.random.RandomState:
    """``None``, an int or a ``numpy.random.RandomState``/``Generator``, as scikit-learn takes it."""
    if value is None:
        return np.random.RandomState()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if not 0 <= int(value) < 2**32:
            raise _fail(owner, "random_state", "an int in the range [0, 2**32 - 1], a RandomState or None", value)
        return np.random.RandomState(int(value))
    if isinstance(value, np.random.RandomState):
        return value
    if isinstance(value, np.random.Generator):
        return np.random.RandomState(value.integers(2**32 - 1))
    raise _fail(owner, "random_state", "an int, a numpy RandomState, a Generator or None", value)


def check_value_list(owner: str, name: str, value: Any) -> list[Any]:
    """A value or an iterable of values as a non-empty list (a str counts as one value)."""
    if isinstance(value, (str, numbers.Integral)):
        return [value]
    if not isinstance(value, Iterable):
        raise _fail(owner, name, "a value or a list of values", value)
    out = list(value)
    if not out:
        raise InvalidParameterError(f"The '{name}' parameter of {owner} must not be empty.")
    return out


def check_int_grid(owner: str, name: str, value: Any, low: int = 1) -> list[int]:
    """An int or an iterable of ints, each at least ``low``, as a list without duplicates (first
    occurrence kept, then sorted increasing)."""
    values = [int(check_int(owner, name, v, low) or 0) for v in check_value_list(owner, name, value)]
    return sorted(dict.fromkeys(values))
