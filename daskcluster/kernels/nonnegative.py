"""The smallest entry of the data, carried along a pass that needs non-negative input.

Non-negative factorizations (NMF, OPNMF) must refuse negative data before any heavy work.
Their first pass computes statistics anyway; each chunk also returns its smallest entry and
where it is, and the combined minimum names the first negative value of the whole array.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .blocks import ChunkInfo


class MinEntry(NamedTuple):
    """The smallest value seen and its global position (row, feature)."""

    value: float
    row: int
    col: int


#: The minimum of no rows: larger than any value, so it never wins a comparison.
EMPTY = MinEntry(float("inf"), -1, -1)


def min_entry(x: np.ndarray, chunk: ChunkInfo, start: int) -> MinEntry:
    """The smallest entry of the slice ``x`` (rows ``start:`` of the chunk). O(rows x features)."""
    if x.size == 0:
        return EMPTY
    flat = int(np.argmin(x))
    row, col = divmod(flat, x.shape[1])
    return MinEntry(float(x[row, col]), chunk.start + start + row, col)


def combine_min(parts: list[MinEntry]) -> MinEntry:
    """The smallest of several minima; ties go to the first (lowest) row, so the result does
    not depend on how the rows were split."""
    best = EMPTY
    for p in parts:
        if p.value < best.value or (p.value == best.value and 0 <= p.row < best.row):
            best = p
    return best
