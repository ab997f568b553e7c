"""Feature names in, named outputs out, as scikit-learn's estimators keep them.

A pandas or Dask DataFrame gives ``feature_names_in_`` (its column names, when all are
strings); an ``xarray.DataArray`` gives them from the coordinate of its second dimension.
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

from .errors import DataTypeError, InvalidDataError, InvalidParameterError

__all__ = ["FeatureNamesMixin", "Labeled", "OutputMixin", "split_labels"]

_OUTPUTS = ("default", "pandas", "polars")


@dataclass(frozen=True)
class Labeled:
    """An input's values (what :func:`~daskcluster.data.as_row_data` takes) and its labels.

    Attributes
    ----------
    values : object
        NumPy array, Dask array or the input itself when it has no labels.
    names : ndarray of str objects or None
        The feature names, when every column name is a string.
    index : object or None
        The row index of a pandas or Dask DataFrame (kept on DataFrame outputs).
    """

    values: Any
    names: np.ndarray | None
    index: Any = None


def _module(X: Any) -> str:
    return type(X).__module__.split(".")[0]


def _string_names(columns: Any) -> np.ndarray | None:
    """The names as an object array when all are strings; None when none are (as scikit-learn)."""
    names = np.asarray(list(columns), dtype=object)
    kinds = sorted({type(n).__name__ for n in names})
    if len(kinds) > 1 and "str" in kinds:
        raise DataTypeError(
            "Feature names are only supported if all input features have string names, but your input has "
            f"{kinds} as feature name / column name types. If you want feature names to be stored and validated, "
            "you must convert them all to strings, by using X.columns = X.columns.astype(str) for example. "
            "Otherwise you can remove feature / column names from your input data, or convert them all to a "
            "non-string data type."
        )
    return names if kinds == ["str"] else None


def split_labels(X: Any) -> Labeled:
    """``X``'s values and labels; reads no data.

    A pandas DataFrame becomes a NumPy array (``to_numpy``); a Dask DataFrame a row-chunked
    Dask array with one chunk per partition (partition lengths computed once, one cheap pass
    over the index); an ``xarray.DataArray`` its ``.data`` (a Dask array stays lazy), its
    names from the coordinate of its second dimension. Anything else is returned as it is.
    """
    kind = _module(X)
    if kind == "pandas" and hasattr(X, "columns"):
        bad = [c for c, t in X.dtypes.items() if t.kind not in "biuf"]
        if bad:
            raise DataTypeError(
                f"X has non-numeric columns {bad[:5]}: only numeric columns can be clustered. Select the numeric "
                "ones (X.select_dtypes('number')) or encode the others first."
            )
        return Labeled(X.to_numpy(), _string_names(X.columns), X.index)
    if kind == "dask" and hasattr(X, "columns") and hasattr(X, "to_dask_array"):
        bad = [c for c, t in X.dtypes.items() if t.kind not in "biuf"]
        if bad:
            raise DataTypeError(
                f"X has non-numeric columns {bad[:5]}: only numeric columns can be clustered. Select the numeric "
                "ones (X.select_dtypes('number')) or encode the others first."
            )
        return Labeled(X.to_dask_array(lengths=True), _string_names(X.columns), X.index)
    if kind == "xarray" and hasattr(X, "dims") and hasattr(X, "coords"):
        if len(X.dims) != 2:
            raise InvalidDataError(
                f"Expected a 2-D DataArray (samples, features), got dims {X.dims}. Stack the sample dimensions "
                "first (e.g. X.stack(sample=[...]).transpose('sample', ...))."
            )
        dim = X.dims[1]
        names = _string_names(X.coords[dim].values.tolist()) if dim in X.coords else None
        return Labeled(X.data, names)
    return Labeled(X, None)


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
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is None and names is None:
            return labeled
        if names is not None and fitted is None:
            warnings.warn(f"X has feature names, but {owner} was fitted without feature names", UserWarning,
                          stacklevel=3)
        elif names is None:
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
