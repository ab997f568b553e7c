"""What a job's ``model`` can name, and how its parameters are checked before any data is read.

Three kinds of entries:

- :class:`EstimatorEntry`: an estimator class (imported only when used). Its parameters are
  checked by the estimator's own declarations (:func:`daskcluster.params.parameter_errors`)
  against a :class:`~daskcluster.data.RowData` built from the data's metadata (a lazy array
  of the right shape and dtype that is never computed), so ``n_samples >= n_clusters`` or the
  shape of an ``init`` array are checked with the estimator's own messages, before a byte of
  data is read; every problem at once, each at its key (``exc.param``).
- :class:`SweepEntry`: a model-selection function (``kmeans_sweep``, ``gmm_sweep``); its
  parameters are checked by the estimator it sweeps, value by value; the job's model is the
  sweep's best, and its table is written as ``sweep.csv``.
- :class:`ApplyEntry`: ``apply``, a saved model (``model.zip``) applied to the job's data:
  its labels, scores and metrics, without fitting.

Adding an estimator is one :func:`register` call::

    register(EstimatorEntry("GaussianMixture", "daskcluster.mixture:GaussianMixture", min_samples=2))
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DaskClusterError

if TYPE_CHECKING:
    from ..data import RowData

__all__ = ["ESTIMATORS", "ApplyEntry", "EstimatorEntry", "Fitted", "ParamError", "SweepEntry", "register"]


class ParamError(DaskClusterError, ValueError):
    """A model parameter of a job is not valid; ``key`` is its place in the file."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"key '{key}': {message}")
        self.key = key
        self.message = message


@dataclass
class Fitted:
    """What a job's model step produced: the model the rest of the job uses, and tables to
    write beside it (name -> pandas DataFrame, written as ``<name>.csv``)."""

    model: Any
    tables: dict[str, Any] = field(default_factory=dict)


def _as_param(value: Any) -> Any:
    """YAML lists of numbers (e.g. an ``init`` array) become NumPy arrays."""
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        import numpy as np

        return np.asarray(value, dtype=np.float64)
    return value


def _key(param: str | None) -> str:
    return f"model.params.{param}" if param else "model.params"


@dataclass(frozen=True)
class EstimatorEntry:
    """An estimator jobs can use.

    Attributes
    ----------
    name : str
        The name jobs give as ``model.name``.
    target : str
        ``"module:Class"``; a daskcluster estimator declares its parameters (an estimator that
        does not is only checked for unknown parameter names).
    min_samples : int
        The fewest rows the estimator accepts.
    """

    name: str
    target: str
    min_samples: int = 1

    def load_class(self) -> Any:
        module, _, attr = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ParamError("model.name", f"the estimator {self.name!r} is not available in this installation "
                                           f"({exc}).") from None

    def accepted(self) -> list[str]:
        """The parameter names ``model.params`` may hold."""
        return list(inspect.signature(self.load_class()).parameters)

    def gives_labels(self) -> bool:
        """Whether the fitted model labels rows (``labels_`` or ``predict``)."""
        cls = self.load_class()
        return hasattr(cls, "predict") or hasattr(cls, "fit_predict")

    def metric_problems(self, evaluate: Any) -> list[str]:
        """Problems of ``evaluate.metrics`` with this model: a method it lacks (``bic``...), cluster
        labels it does not give (left out silently only when the metrics are the default)."""
        from .schema import METRICS

        try:
            cls = self.model_class()
        except ParamError:
            return []
        out = []
        for m in evaluate.metrics:
            method = METRICS[m].method
            if cls is not None and method is not None and not hasattr(cls, method):
                out.append(f"key 'evaluate.metrics': '{m}' needs an estimator with a {method}() method; "
                           f"{self.name} has none.")
        if "metrics" in evaluate.model_fields_set and not self.gives_labels():
            needs = [m for m in evaluate.metrics if METRICS[m].needs_labels]
            if needs:
                out.append(f"key 'evaluate.metrics': {', '.join(needs)} need cluster labels, and {self.name} gives "
                           "none (it has no predict()). Drop those metrics.")
        return out

    def model_class(self) -> Any:
        """The class of the model the job ends with (None when known only from a file)."""
        return self.load_class()

    def build(self, params: dict[str, Any]) -> Any:
        """The estimator with ``params``; an unknown parameter name is an error naming the key."""
        unknown = self._unknown(params)
        if unknown:
            raise ParamError(*unknown[0])
        return self.load_class()(**{k: _as_param(v) for k, v in params.items()})

    def _unknown(self, params: dict[str, Any]) -> list[tuple[str, str]]:
        accepted = self.accepted()
        out = []
        for key in params:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                fix = f"Did you mean '{close[0]}'?" if close else f"{self.name} takes: {', '.join(accepted)}."
                out.append((f"model.params.{key}", f"{self.name} has no parameter '{key}'. {fix}"))
        return out

    @staticmethod
    def _errors(estimator: Any, data: RowData) -> list[BaseException]:
        if not hasattr(type(estimator), "_parameter_constraints"):
            return []
        from ..params import parameter_errors

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(parameter_errors(estimator, data))

    def check(self, estimator: Any, data: RowData) -> None:
        """The estimator's own parameter checks against the data's metadata; the first problem
        raises :class:`ParamError` naming its key."""
        errors = self._errors(estimator, data)
        if errors:
            raise ParamError(_key(getattr(errors[0], "param", None)), str(errors[0])) from None

    def problems(self, params: dict[str, Any], data: RowData) -> list[tuple[str, str]]:
        """Every problem of ``params`` against the data's metadata, as (key, message) pairs:
        unknown names, then what :func:`daskcluster.params.parameter_errors` finds."""
        out = self._unknown(params)
        known = {k: _as_param(v) for k, v in params.items() if f"model.params.{k}" not in dict(out)}
        try:
            estimator = self.load_class()(**known)
        except (TypeError, ValueError) as exc:  # the constructor itself refused them
            return [*out, ("model.params", str(exc))]
        return out + [(_key(getattr(e, "param", None)), str(e)) for e in self._errors(estimator, data)]

    def fit(self, estimator: Any, X: Any) -> Fitted:
        """Fit ``estimator`` on ``X``. Data passes: those of its ``fit``."""
        estimator.fit(X)
        return Fitted(estimator)


@dataclass(frozen=True)
class SweepEntry(EstimatorEntry):
    """A model-selection function whose result is a table of fitted models.

    Attributes
    ----------
    estimator : str
        The registry name of the estimator the sweep fits (its checks serve the sweep's).
    grids : tuple of str
        Parameters that take a list of values (each value is checked as that estimator's).
    """

    estimator: str = "KMeans"
    grids: tuple[str, ...] = ()

    def accepted(self) -> list[str]:
        fn = self.load_class()
        return [p for p in inspect.signature(fn).parameters if p != "X"]

    def model_class(self) -> Any:
        return ESTIMATORS[self.estimator].load_class()

    def gives_labels(self) -> bool:
        return True

    def build(self, params: dict[str, Any]) -> Any:
        unknown = self._unknown(params)
        if unknown:
            raise ParamError(*unknown[0])
        return {k: _as_param(v) for k, v in params.items()}

    def problems(self, params: dict[str, Any], data: RowData) -> list[tuple[str, str]]:
        from ..errors import InvalidParameterError
        from ..params import check_int, check_int_grid, check_value_list

        out = self._unknown(params)
        template = ESTIMATORS[self.estimator]
        shared = set(template.accepted())
        singles: list[dict[str, Any]] = []
        for key, value in params.items():
            if f"model.params.{key}" in dict(out):
                continue
            try:
                if key in self.grids:
                    values = (check_int_grid(self.name, key, value) if key in ("n_clusters", "n_components")
                              else check_value_list(self.name, key, value))
                    singles += [{key: v} for v in values]
                elif key == "silhouette_sample_size":
                    check_int(self.name, key, value, 2, allow_none=True)
                elif key == "scores" and not isinstance(value, bool):
                    raise InvalidParameterError(f"The 'scores' parameter of {self.name} must be a bool. "
                                                f"Got {value!r} instead.", param="scores")
                elif key in shared:
                    singles.append({key: value})
            except InvalidParameterError as exc:
                out.append((f"model.params.{key}", str(exc)))
        for one in singles:
            (key,) = one
            found = [m for _, m in template.problems(one, data)]
            out += [(f"model.params.{key}", m.replace(f"of {self.estimator}", f"of {self.name}")) for m in found[:1]]
        return list(dict.fromkeys(out))

    def check(self, estimator: Any, data: RowData) -> None:
        found = self.problems(estimator, data)
        if found:
            raise ParamError(*found[0])

    def fit(self, estimator: Any, X: Any) -> Fitted:
        """Run the sweep; the model is its best (``table.attrs['best_model']``). Data passes:
        those of the sweep (about its longest fit, plus the scores)."""
        table = self.load_class()(X, **estimator)
        return Fitted(table.attrs["best_model"], {"sweep": table.drop(columns=["model"])})


@dataclass(frozen=True)
class ApplyEntry(EstimatorEntry):
    """``apply``: the model saved in ``model.params.model`` (a ``model.zip``), applied to the
    job's data without fitting: its labels (``predict``), and the metrics of ``evaluate``."""

    def accepted(self) -> list[str]:
        return ["model"]

    def model_class(self) -> Any:
        return None

    def gives_labels(self) -> bool:
        return True

    def build(self, params: dict[str, Any]) -> Any:
        found = self._load(params)
        if isinstance(found, tuple):
            raise ParamError(*found)
        return found

    def _load(self, params: dict[str, Any]) -> Any:
        from .. import persistence

        unknown = self._unknown(params)
        if unknown:
            return unknown[0]
        path = params.get("model")
        if not isinstance(path, str):
            return ("model.params.model", ("the model file to apply (a model.zip written by a job or by "
                                           f"daskcluster.persistence.save); got {path!r}."))
        if not os.path.isfile(path):
            return ("model.params.model", f"no model file at {path!r}.")
        try:
            model = persistence.load(path)
        except DaskClusterError as exc:
            return ("model.params.model", str(exc))
        if not hasattr(model, "predict"):
            return ("model.params.model", f"{type(model).__name__} has no predict(): it cannot label new rows.")
        return model

    def problems(self, params: dict[str, Any], data: RowData) -> list[tuple[str, str]]:
        found = self._load(params)
        if isinstance(found, tuple):
            return [found]
        expected = getattr(found, "n_features_in_", None)
        if expected is not None and data.n_features not in (expected, None) and data.n_features != UNKNOWN_FEATURES:
            return [("data", (f"the data have {data.n_features} features after preprocessing; the model in "
                              f"{params['model']} was fitted on {expected}."))]
        return []

    def check(self, estimator: Any, data: RowData) -> None:
        expected = getattr(estimator, "n_features_in_", None)
        if expected is not None and data.n_features not in (expected, UNKNOWN_FEATURES):
            raise ParamError("data", f"the data have {data.n_features} features after preprocessing; the model "
                                     f"was fitted on {expected}.")

    def fit(self, estimator: Any, X: Any) -> Fitted:
        """No fit: the saved model, whose labels are then its ``predict`` on ``X`` (the training
        labels it may carry are dropped). Data passes: none here."""
        if hasattr(estimator, "labels_"):
            del estimator.labels_
        return Fitted(estimator)


#: The number of features a placeholder takes when the data's cannot be known here.
UNKNOWN_FEATURES = 2**16

#: name -> entry; each class is imported from its module when a job uses it.
ESTIMATORS: dict[str, EstimatorEntry] = {}


def register(entry: EstimatorEntry) -> EstimatorEntry:
    """Make an estimator available to jobs under ``entry.name``."""
    ESTIMATORS[entry.name] = entry
    return entry


register(EstimatorEntry("KMeans", "daskcluster.cluster._kmeans:KMeans"))
register(EstimatorEntry("MiniBatchKMeans", "daskcluster.cluster._minibatch:MiniBatchKMeans"))
register(EstimatorEntry("GaussianMixture", "daskcluster.mixture._gaussian_mixture:GaussianMixture", min_samples=2))
register(EstimatorEntry("BayesianGaussianMixture", "daskcluster.mixture._bayesian_mixture:BayesianGaussianMixture",
                        min_samples=2))
register(EstimatorEntry("DBSCAN", "daskcluster.cluster:DBSCAN"))
register(EstimatorEntry("AgglomerativeClustering", "daskcluster.cluster:AgglomerativeClustering", min_samples=2))
register(EstimatorEntry("SpectralClustering", "daskcluster.cluster:SpectralClustering", min_samples=2))
register(EstimatorEntry("NMF", "daskcluster.decomposition:NMF"))
register(EstimatorEntry("OPNMF", "daskcluster.decomposition:OPNMF"))
register(SweepEntry("kmeans_sweep", "daskcluster.selection:kmeans_sweep", min_samples=2, estimator="KMeans",
                    grids=("n_clusters",)))
register(SweepEntry("gmm_sweep", "daskcluster.selection:gmm_sweep", min_samples=2, estimator="GaussianMixture",
                    grids=("n_components", "covariance_type")))
register(ApplyEntry("apply", "daskcluster.persistence:load"))
