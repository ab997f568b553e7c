"""Per-row outputs of a fitted mixture: ``log p(x)``, responsibilities, labels, low-density mask."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..blocks import Affine, ChunkInfo
from .estep import (
    Estep,
    needs_squares,
    reference,
    tiles,
    width_of,
)
from .params import GaussianParams
from ...blas import single_threaded_blas


def _map_tiles(block: np.ndarray, affine: Affine, gp: GaussianParams, chunk: ChunkInfo, out: np.ndarray,
               fill: Callable[[np.ndarray, np.ndarray, np.ndarray, slice], None]) -> np.ndarray:
    """Run ``fill(log_norm, resp_or_labels, out, rows)`` on the E-step of each tile of the block."""
    if block.shape[0] == 0:
        return out
    ref = reference(block, affine)
    est = Estep(gp, ref)
    with single_threaded_blas():
        for start, x, a in tiles(block, affine, ref, width_of([gp]), needs_squares([gp])):
            t = est.run(a)
            est.check(t, x, chunk, start)
            fill(t.log_norm, t.resp if out.ndim == 2 else t.labels, out, slice(start, start + x.shape[0]))
    return out


def _fill(log_norm: np.ndarray, other: np.ndarray, out: np.ndarray, rows: slice) -> None:
    out[rows] = log_norm


def _fill_other(log_norm: np.ndarray, other: np.ndarray, out: np.ndarray, rows: slice) -> None:
    out[rows] = other


def score_samples_block(block: np.ndarray, affine: Affine, gp: GaussianParams, chunk: ChunkInfo) -> np.ndarray:
    """``log p(x)`` of each row, shape (n_rows,)."""
    return _map_tiles(block, affine, gp, chunk, np.empty(block.shape[0]), _fill)


def predict_proba_block(block: np.ndarray, affine: Affine, gp: GaussianParams, chunk: ChunkInfo) -> np.ndarray:
    """Responsibilities of each row, shape (n_rows, n_components)."""
    return _map_tiles(block, affine, gp, chunk, np.empty((block.shape[0], gp.n_components)), _fill_other)


def predict_block(block: np.ndarray, affine: Affine, gp: GaussianParams, chunk: ChunkInfo) -> np.ndarray:
    """Most probable component of each row, shape (n_rows,), int64."""
    return _map_tiles(block, affine, gp, chunk, np.empty(block.shape[0], dtype=np.int64), _fill_other)


def below_block(
    block: np.ndarray, affine: Affine, gp: GaussianParams, threshold: float, chunk: ChunkInfo
) -> np.ndarray:
    """Whether each row's ``log p(x)`` is below ``threshold``, shape (n_rows,), bool."""
    return score_samples_block(block, affine, gp, chunk) < threshold
