"""Clustering metrics computed as passes over (possibly lazy) labels.

Nothing N-sized comes to the client: a contingency table is summed chunk by chunk.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np

from .errors import InvalidDataError


def _contingency_block(true: np.ndarray, pred: np.ndarray, n_true: int, n_pred: int) -> np.ndarray:
    idx = true.astype(np.int64) * n_pred + pred.astype(np.int64)
    return np.bincount(idx, minlength=n_true * n_pred).reshape(1, n_true, n_pred)


def contingency_matrix(labels_true: Any, labels_pred: Any) -> np.ndarray:
    """Counts of samples per (true class, predicted cluster), shape (n_classes, n_clusters).

    Labels must be non-negative integers; rows and columns are indexed by the label values
    (``0 .. max``). NumPy or Dask arrays of shape (n_samples,). Data passes: 2 over the labels
    (their maxima, then the counts), none over ``X``.
    """
    t = da.asarray(labels_true)
    p = da.asarray(labels_pred)
    if t.ndim != 1 or p.ndim != 1 or t.shape[0] != p.shape[0]:
        raise InvalidDataError(
            f"labels_true and labels_pred must be 1-D of the same length; got shapes {t.shape} and {p.shape}."
        )
    p = p.rechunk((t.chunks[0],))
    t_min, p_min, t_max, p_max = dask.compute(t.min(), p.min(), t.max(), p.max())
    if t_min < 0 or p_min < 0:
        raise InvalidDataError(f"Labels must be non-negative integers; found {min(t_min, p_min)}.")
    n_true, n_pred = int(t_max) + 1, int(p_max) + 1
    blocks = da.map_blocks(
        _contingency_block, t, p, n_true, n_pred, dtype=np.int64, new_axis=[1, 2], chunks=((1,) * t.numblocks[0], (n_true,), (n_pred,))
    )
    return np.asarray(blocks.sum(axis=0, split_every=8).compute())


def majority_label_accuracy(labels_true: Any, labels_pred: Any) -> float:
    """Fraction of samples whose cluster's most frequent true label is their own.

    Each cluster is labelled with the class most of its members have (several clusters may
    take the same class). Data passes: those of :func:`contingency_matrix`.
    """
    table = contingency_matrix(labels_true, labels_pred)
    return float(table.max(axis=0).sum() / table.sum())
