"""Casting a block of rows to the compute dtype, a slice at a time.

A block keeps its storage dtype (``uint8`` for MNIST) until a kernel works on it: the kernel
casts a slice of a few thousand rows to the compute dtype, applies the affine scaling
``x * scale + offset`` in place and throws the temporary away. Memory per kernel call is
therefore bounded by the slice, not by the block.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidDataError, NonFiniteDataError

logger = logging.getLogger(__name__)

#: Elements (rows x (features + clusters)) in one compute slice: 2**21 float32 = 8 MiB.
SLICE_ELEMENTS = 2**21


@dataclass(frozen=True)
class Affine:
    """An elementwise map ``x -> x * scale + offset`` applied inside kernels.

    Parameters
    ----------
    scale : float, default=1.0
        Multiplier; must be finite and non-zero.
    offset : float, default=0.0
        Added after scaling.
    """

    scale: float = 1.0
    offset: float = 0.0

    @property
    def is_identity(self) -> bool:
        """Whether the map leaves values unchanged."""
        return self.scale == 1.0 and self.offset == 0.0

    def to_storage_space(self, points: np.ndarray) -> np.ndarray:
        """The points ``p`` mapped back through the inverse map ``(p - offset) / scale``.

        Distances between mapped rows and points are ``scale**2`` times the distances between
        raw rows and the points mapped back, so a kernel can compute on the merely cast rows
        and never scale a slice.
        """
        if self.is_identity:
            return points
        return ((points.astype(np.float64) - self.offset) / self.scale).astype(points.dtype)

    @property
    def sq_scale(self) -> float:
        """Factor between squared distances in the mapped space and in the storage space."""
        return self.scale * self.scale

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply the map to a compute-dtype array in place and return it."""
        if self.scale != 1.0:
            np.multiply(x, x.dtype.type(self.scale), out=x)
        if self.offset != 0.0:
            np.add(x, x.dtype.type(self.offset), out=x)
        return x


@dataclass(frozen=True)
class ChunkInfo:
    """Where a block sits in the whole array.

    Parameters
    ----------
    index : int
        Position of the chunk along the rows.
    start : int
        Global row index of the block's first row.
    """

    index: int
    start: int


def compute_dtype_for(storage_dtype: np.dtype) -> np.dtype:
    """The dtype kernels compute in: float64 for float64 storage, float32 otherwise."""
    return np.dtype(np.float64) if np.dtype(storage_dtype) == np.float64 else np.dtype(np.float32)


def slice_rows(n_features: int, n_columns: int = 0) -> int:
    """Rows per compute slice, so that ``rows * (n_features + n_columns)`` stays near
    :data:`SLICE_ELEMENTS` (``n_columns`` is the width of the per-row work, e.g. clusters)."""
    return int(min(16384, max(64, SLICE_ELEMENTS // max(1, n_features + n_columns))))


def iter_compute_slices(
    block: np.ndarray, dtype: np.dtype, affine: Affine, rows: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, x)`` with ``x`` the rows ``start:stop`` of ``block`` in ``dtype``.

    Every slice is copied (cast) into one reused buffer of ``rows`` rows, even when the block
    already has the compute dtype: the kernels then read the slice several times (norms, GEMM,
    sums) from cache instead of from memory, which costs less than the copy. The yielded array
    is a view of the buffer and is overwritten by the next slice.
    """
    n = block.shape[0]
    if n == 0:
        return
    rows = max(1, min(rows, n))
    buf = np.empty((rows, block.shape[1]), dtype=dtype)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        x = buf[: stop - start]
        np.copyto(x, block[start:stop], casting="unsafe")
        if not affine.is_identity:
            affine.apply(x)
        yield start, stop, x


def check_finite_rows(x: np.ndarray, x_sq: np.ndarray, chunk: ChunkInfo, start: int) -> None:
    """Raise if ``x`` holds NaN or infinity, naming the chunk and the global row.

    ``x_sq`` are the rows' squared norms, which every distance kernel computes anyway: a
    non-finite value in a row makes its norm non-finite, so the check costs O(rows) unless
    something is wrong.
    """
    if np.isfinite(x_sq).all():
        return
    bad = ~np.isfinite(x)
    if not bad.any():
        raise InvalidDataError(
            f"The squared norm of a row in chunk {chunk.index} overflows {x.dtype}: its values "
            "are too large. Scale the data, or store it as float64."
        )
    row, col = np.argwhere(bad)[0]
    raise NonFiniteDataError(
        f"X contains a non-finite value ({float(x[row, col])}) in chunk {chunk.index} at row "
        f"{chunk.start + start + int(row)}, feature {int(col)}. Remove or impute NaN and "
        "infinity before fitting."
    )


def row_sq_norms(x: np.ndarray) -> np.ndarray:
    """Squared Euclidean norm of each row of ``x``, shape (n_rows,), in ``x``'s dtype."""
    return np.einsum("ij,ij->i", x, x)
