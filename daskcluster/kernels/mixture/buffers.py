"""The compute dtype of every mixture kernel, and temporaries reused from slice to slice."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Dtype of every mixture computation.
COMPUTE_DTYPE = np.dtype(np.float64)
LOG_2PI = math.log(2.0 * math.pi)


class Scratch:
    """Temporaries reused from slice to slice.

    A large temporary allocated anew for every slice costs page faults each time when the
    allocator returns freed memory to the system at once (as Dask's nanny configures workers
    with ``MALLOC_TRIM_THRESHOLD_``); the kernels allocate them once per block instead.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, rows: int, cols: int, dtype: Any = COMPUTE_DTYPE) -> np.ndarray:
        """A ``(rows, cols)`` buffer named ``name``, grown when too small (contents undefined)."""
        buf = self._bufs.get(name)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != cols or buf.dtype != dtype:
            buf = self._bufs[name] = np.empty((max(rows, 1), cols), dtype=dtype)
        return buf[:rows]
