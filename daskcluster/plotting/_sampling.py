"""Seeded samples of rows (and of their labels) brought to the client for drawing.

Only the sampled rows are read: :func:`daskcluster.engine.take_rows` runs one small task per
chunk holding some of them, never a pass over the whole array. With an int ``random_state`` the
sample is the one :func:`daskcluster.metrics.silhouette_score` draws with the same seed.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import dask.array as da
import numpy as np

from ..data import RowData, as_row_data
from ..engine import take_rows
from ..errors import DataTypeError, InvalidDataError
from ..kernels.blocks import Affine
from ..params import check_random_state

logger = logging.getLogger(__name__)


def generator(owner: str, random_state: Any) -> np.random.Generator:
    """A NumPy Generator from ``None``, an int, a ``RandomState`` or a ``Generator``."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(2**31 - 1)))
    check_random_state(owner, random_state)  # None or an int in range, else the usual message
    return np.random.default_rng(None if random_state is None else int(random_state))


def sample_index(n: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    """``size`` distinct row indices out of ``n`` in increasing order (all rows when ``size >= n``)."""
    if size is None or size >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, size=int(size), replace=False)).astype(np.int64)


def sample_rows(data: RowData, size: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The sorted sampled indices and those rows of ``data`` (compute dtype, scaling applied).

    Reads only the chunks holding sampled rows.
    """
    index = sample_index(data.n_samples, size, rng)
    return index, take_rows(data, index)


class Labels:
    """Labels of shape (n_samples,) or (n_samples, 1), checked against X's rows (metadata only).

    A NumPy array or a list is indexed in place; any lazy source
    :func:`~daskcluster.data.as_row_data` takes (Dask, Zarr, a path) is read by
    :func:`~daskcluster.engine.take_rows`, only the chunks holding the indices asked for.
    """

    def __init__(self, labels: Any, n_samples: int, *, owner: str) -> None:
        self.values: np.ndarray | None = None
        self.data: RowData | None = None
        if isinstance(labels, (list, tuple, np.ndarray)):
            values = np.asarray(labels)
            if values.ndim == 2 and values.shape[1] == 1:
                values = values[:, 0]
            shape = values.shape
            self.values = values
        else:
            source = labels
            if getattr(source, "ndim", None) == 1:
                try:
                    source = da.asarray(source)[:, None]  # type: ignore[no-untyped-call]
                except (TypeError, ValueError) as exc:
                    raise DataTypeError(f"{owner} cannot read labels of type {type(labels).__name__}: {exc}") from exc
            data = as_row_data(source, owner=owner)
            shape = tuple(data.array.shape)
            if data.n_features == 1:
                shape = shape[:1]
            # the stored values: no cast to a float compute dtype, no scaling
            self.data = replace(data, dtype=data.array.dtype, affine=Affine())
        if shape != (n_samples,):
            raise InvalidDataError(f"{owner}: labels must have shape ({n_samples},) or ({n_samples}, 1) like X's "
                                   f"rows; got {shape}. Pass one label per row of X.")

    def take(self, index: np.ndarray) -> np.ndarray:
        """The labels at ``index``, shape (len(index),)."""
        if self.values is not None:
            return np.asarray(self.values[index])
        assert self.data is not None
        return take_rows(self.data, index)[:, 0]
