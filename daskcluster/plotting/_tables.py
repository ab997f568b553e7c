"""Checks of the tables the curve plots read (the sweeps' and the mixtures' ``pandas.DataFrame``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataTypeError, InvalidDataError

logger = logging.getLogger(__name__)


def check_table(table: Any, columns: Sequence[str], *, owner: str, producer: str) -> Any:
    """``table`` as a DataFrame holding ``columns`` and at least one row; ``producer`` names the
    function whose output it should be, for the messages."""
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise DataTypeError(f"{owner} expects a pandas DataFrame (the output of {producer}); "
                            f"got {type(table).__name__}. Build one with pandas.DataFrame({{...}}).")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InvalidDataError(f"{owner} needs the columns {list(columns)}; the table lacks {missing} "
                               f"(it has {list(map(str, table.columns))}). Pass the output of {producer}, or "
                               "rename the columns.")
    if len(table) == 0:
        raise InvalidDataError(f"{owner} got an empty table (no rows); run {producer} on at least one value.")
    return table


def numeric_column(table: Any, column: str, *, owner: str) -> np.ndarray:
    """A column as float64 (NaN kept); a column that holds something else than numbers is an error."""
    try:
        return np.asarray(table[column], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataTypeError(f"{owner} needs numbers in the column {column!r}; got dtype {table[column].dtype} "
                            f"({exc}).") from exc


def finite_curve(table: Any, x: str, y: str, *, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows of finite ``y`` as (x, y) sorted by x; NaN rows (failed fits) are left out."""
    xs = numeric_column(table, x, owner=owner)
    ys = numeric_column(table, y, owner=owner)
    keep = np.isfinite(xs) & np.isfinite(ys)
    if not keep.any():
        raise InvalidDataError(f"{owner}: the column {y!r} has no finite value ({len(ys)} rows, all NaN or "
                               "infinite); nothing to draw.")
    if not keep.all():
        logger.info("%s: %d row(s) of %r left out (NaN or infinite)", owner, int((~keep).sum()), y)
    order = np.argsort(xs[keep], kind="stable")
    return xs[keep][order], ys[keep][order]
