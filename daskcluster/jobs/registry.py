"""Estimators a job can name, and how to check their parameters before any data is read.

An entry says where the class lives (imported only when used) and which of its own
validation methods to call. Checks run against a :class:`~daskcluster.data.RowData` built
from the data's metadata (a lazy array of the right shape and dtype that is never
computed), so ``n_samples >= n_clusters`` or the shape of an ``init`` array are checked
with the estimator's own messages, before a byte of data is read.

Adding an estimator is one :func:`register` call (or one line in :data:`ESTIMATORS`)::

    register(EstimatorEntry("GaussianMixture", "daskcluster.mixture:GaussianMixture",
                            checks=("_check_params", "_check_inits")))
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DaskClusterError

if TYPE_CHECKING:
    from ..data import RowData

__all__ = ["ESTIMATORS", "EstimatorEntry", "ParamError", "register"]


class ParamError(DaskClusterError, ValueError):
    """A model parameter of a job is not valid; ``key`` is its place in the file."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"key '{key}': {message}")
        self.key = key


@dataclass(frozen=True)
class EstimatorEntry:
    """An estimator jobs can use.

    Attributes
    ----------
    name : str
        The name jobs give as ``model.name``.
    target : str
        ``"module:Class"``.
    checks : tuple of str
        Validation methods of the estimator to call, in order. Each takes no argument or a
        ``RowData`` (the data's metadata); they must read no data.
    min_samples : int
        The fewest rows the estimator accepts.
    """

    name: str
    target: str
    checks: tuple[str, ...] = ("_check_params",)
    min_samples: int = 1

    def load_class(self) -> type:
        module, _, attr = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        except (ImportError, AttributeError) as exc:
            raise ParamError("model.name", f"the estimator {self.name!r} is not available in this installation "
                                           f"({exc}).") from None

    def build(self, params: dict[str, Any]) -> Any:
        """The estimator with ``params``; unknown parameter names are errors naming the key."""
        cls = self.load_class()
        accepted = list(inspect.signature(cls).parameters)
        for key in params:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                fix = f"Did you mean '{close[0]}'?" if close else f"{self.name} takes: {', '.join(accepted)}."
                raise ParamError(f"model.params.{key}", f"{self.name} has no parameter '{key}'. {fix}")
        return cls(**{k: _as_param(v) for k, v in params.items()})

    def check(self, estimator: Any, data: RowData) -> None:
        """Run the estimator's own parameter checks against the data's metadata."""
        for method_name in self.checks:
            method = getattr(estimator, method_name, None)
            if method is None:
                continue
            takes_data = len(inspect.signature(method).parameters) > 0
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    method(data) if takes_data else method()
            except DaskClusterError as exc:
                if not isinstance(exc, ValueError):
                    raise
                raise ParamError(_key_of(str(exc)), str(exc)) from None


def _as_param(value: Any) -> Any:
    """YAML lists of numbers (e.g. an ``init`` array) become NumPy arrays."""
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        import numpy as np

        return np.asarray(value, dtype=np.float64)
    return value


def _key_of(message: str) -> str:
    """``model.params.<name>`` from a message "The 'tol' parameter of KMeans ..."."""
    m = re.search(r"The '(\w+)' parameter", message)
    if m:
        return f"model.params.{m.group(1)}"
    m = re.search(r"n_samples=\d+ should be >= (\w+)=", message)
    if m:
        return f"model.params.{m.group(1)}"
    if "initial centers" in message:
        return "model.params.init"
    return "model.params"


#: name -> entry; each class is imported from its module when a job uses it.
ESTIMATORS: dict[str, EstimatorEntry] = {}


def register(entry: EstimatorEntry) -> EstimatorEntry:
    """Make an estimator available to jobs under ``entry.name``."""
    ESTIMATORS[entry.name] = entry
    return entry


register(EstimatorEntry("KMeans", "daskcluster.cluster._kmeans:KMeans"))
register(EstimatorEntry("MiniBatchKMeans", "daskcluster.cluster._minibatch:MiniBatchKMeans"))
register(EstimatorEntry("GaussianMixture", "daskcluster.mixture._gaussian_mixture:GaussianMixture",
                        checks=("_check_params", "_check_inits"), min_samples=2))
