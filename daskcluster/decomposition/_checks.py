"""Checks shared by the non-negative factorizations."""

from __future__ import annotations

from ..errors import InvalidDataError
from ..kernels.nonnegative import MinEntry

#: The initializations of the non-negative factorizations named by a string (scikit-learn's).
NMF_INITS = ("random", "nndsvd", "nndsvda", "nndsvdar", "custom")


def raise_if_negative(entry: MinEntry, owner: str) -> None:
    """Raise :class:`~daskcluster.errors.InvalidDataError` if the data's smallest entry
    (found during a pass, see :mod:`daskcluster.kernels.nonnegative`) is negative."""
    if entry.value < 0:
        raise InvalidDataError(
            f"Negative values in data passed to {owner}: X has the value {entry.value!r} at row "
            f"{entry.row}, feature {entry.col} (its smallest). Shift or clip the data to be "
            "non-negative (e.g. subtract the minimum, or use daskcluster.scaled(X, 1, offset))."
        )
