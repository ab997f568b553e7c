"""What every daskcluster estimator does before its work: check its declared parameters and,
after ``fit``, that it is fitted."""

from __future__ import annotations

from typing import Any, ClassVar

from ._features import FeatureNamesMixin
from .errors import NotFittedError
from .params import DataCheck, DataShape, check_parameters

__all__ = ["EstimatorMixin"]


class EstimatorMixin(FeatureNamesMixin):
    """Parameter checks from the class's declarations, the fitted check and feature names.

    Subclasses declare ``_parameter_constraints`` (every parameter of ``__init__``),
    optionally ``_data_checks`` (see :mod:`daskcluster.params`) and ``_fitted_attribute``,
    an attribute that exists once fitted.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}
    _data_checks: ClassVar[tuple[DataCheck, ...]] = ()
    _fitted_attribute: ClassVar[str]

    def _check_params(self, data: DataShape | None = None) -> None:
        """Raise the first problem of the parameters (against ``data``'s shape when given).
        Reads no data."""
        check_parameters(self, data)

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attribute):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with appropriate arguments "
                "before using this estimator."
            )
