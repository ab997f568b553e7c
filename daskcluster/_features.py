"""Feature names in, named outputs out, as scikit-learn's estimators keep them.

A pandas or Dask DataFrame gives ``feature_names_in_`` (its column names, when all are
strings); an ``xarray.DataArray`` gives them from the coordinate of its second dimension. The
values themselves are read by :func:`~daskcluster.data.as_row_data`.
``predict``/``transform`` check that the names match the fit's (scikit-learn's messages and
warnings), and ``set_output(transform="pandas")`` makes ``transform`` return a pandas
DataFrame, or a Dask DataFrame for lazy input.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn

from .data import Scaled, feature_names
from .errors import InvalidDataError, InvalidParameterError

__all__ = ["FeatureNamesMixin", "Labeled", "OutputMixin", "split_labels"]

_OUTPUTS = ("default", "pandas", "polars")


@dataclass(frozen=True)
class Labeled:
    """An input and its labels.

    Attributes
    ----------
    values : object
        The input, for :func:`~daskcluster.data.as_row_data` (which takes DataFrames and
        DataArrays' values).
    names : ndarray of str objects or None
        The feature names, when every one is a string.
    index : object or None
        The row index of a pandas or Dask DataFrame (kept on DataFrame outputs).
    """

    values: Any
    names: np.ndarray | None
    index: Any = None


def _module(X: Any) -> str:
    return type(X).__module__.split(".")[0]


def split_labels(X: Any) -> Labeled:
    """``X`` with its feature names and row index; reads no data.

    The names of a pandas or Dask DataFrame's columns (:func:`daskcluster.data.feature_names`),
    or of an ``xarray.DataArray``'s second dimension's coordinate, when all are strings.
    """
    names = feature_names(X)
    source = X.source if isinstance(X, Scaled) else X
    index = None
    if _module(source) in ("pandas", "dask") and hasattr(source, "columns"):
        index = source.index
    elif names is None and _module(source) == "xarray" and getattr(source, "ndim", 0) == 2:
        dim = source.dims[1]
        if dim in source.coords:
            coordinate = source.coords[dim].values.tolist()
            if coordinate and all(isinstance(n, str) for n in coordinate):
                names = np.asarray(coordinate, dtype=object)
    return Labeled(X, names, index)


class FeatureNamesMixin:
    """``feature_names_in_`` set at fit and checked at predict, as scikit-learn does."""

    def _labeled(self, X: Any, *, reset: bool) -> Labeled:
        """``X`` split from its labels; at fit (``reset``) records ``feature_names_in_``,
        otherwise checks the names against the fit's (scikit-learn's messages)."""
        labeled = split_labels(X)
        names = labeled.names
        owner = type(self).__name__
        if reset:
            if names is not None:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return labeled
        fitted: np.ndarray | None = getattr(self, "feature_names_in_", None)
        if fitted is None and names is None:
            return labeled
        if names is not None and fitted is None:
            warnings.warn(f"X has feature names, but {owner} was fitted without feature names", UserWarning,
                          stacklevel=3)
        elif names is None or fitted is None:
            warnings.warn(f"X does not have valid feature names, but {owner} was fitted with feature names",
                          UserWarning, stacklevel=3)
        elif len(fitted) != len(names) or np.any(fitted != names):
            message = "The feature names should match those that were passed during fit.\n"
            unexpected = sorted(set(names) - set(fitted))
            missing = sorted(set(fitted) - set(names))

            def listed(header: str, items: list[str]) -> str:
                shown = "".join(f"- {n}\n" for n in items[:5]) + ("- ...\n" if len(items) > 5 else "")
                return f"{header}\n{shown}"

            if unexpected:
                message += listed("Feature names unseen at fit time:", unexpected)
            if missing:
                message += listed("Feature names seen at fit time, yet now missing:", missing)
            if not missing and not unexpected:
                message += "Feature names must be in the same order as they were in fit.\n"
            raise InvalidDataError(message)
        return labeled


class OutputMixin(FeatureNamesMixin):
    """``set_output`` for transformers: ``transform`` and ``fit_transform`` return a pandas
    DataFrame (Dask DataFrame for lazy output) or a polars DataFrame, columns named by
    ``get_feature_names_out()``. The global ``sklearn.set_config(transform_output=...)``
    applies when ``set_output`` was not called."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if hasattr(cls, "_sklearn_auto_wrap_output_keys"):
            kwargs["auto_wrap_output_keys"] = None  # outputs are wrapped here, lazy ones too
        super().__init_subclass__(**kwargs)

    def set_output(self, *, transform: str | None = None) -> Any:
        """Set the container of ``transform`` and ``fit_transform``'s output.

        Parameters
        ----------
        transform : {'default', 'pandas', 'polars'} or None, default=None
            ``'pandas'``: a pandas DataFrame (a Dask DataFrame when the output is lazy).
            ``'polars'``: a polars DataFrame (in-memory output only). None: unchanged.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        if transform not in _OUTPUTS:
            raise InvalidParameterError(
                f"output config must be in {list(_OUTPUTS)}, got {transform!r}", param="transform")
        self._sklearn_output_config = {**getattr(self, "_sklearn_output_config", {}), "transform": transform}
        return self

    def _output(self, out: Any, labeled: Labeled) -> Any:
        """``out`` in the container ``set_output`` (or the global configuration) chose."""
        config = getattr(self, "_sklearn_output_config", {}).get("transform", "default")
        if config == "default":
            config = sklearn.get_config()["transform_output"]
        if config == "default":
            return out
        columns = list(self.get_feature_names_out())  # type: ignore[attr-defined]
        lazy = _module(out) == "dask"
        if config == "polars":
            if lazy:
                raise InvalidParameterError(
                    "set_output(transform='polars') needs in-memory output; this output is a Dask array. Use "
                    "transform='pandas' (a Dask DataFrame) or compute the input first.", param="transform")
            import polars as pl

            return pl.DataFrame(np.asarray(out), schema=columns, orient="row")
        if lazy:
            import dask.dataframe as dd

            index = labeled.index if _module(labeled.index) == "dask" else None
            try:
                return dd.from_dask_array(out, columns=columns, index=index)
            except ValueError:  # partitions of the index not aligned with the output's chunks
                return dd.from_dask_array(out, columns=columns)
        import pandas as pd

        index = labeled.index if _module(labeled.index) == "pandas" else None
        return pd.DataFrame(out, columns=columns, index=index)
