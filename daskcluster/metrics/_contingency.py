"""Metrics that compare two labelings, from a contingency table built as a pass over the labels.

Nothing N-sized comes to the client: the table (n_classes × n_clusters) is summed chunk by
chunk; every score below is a function of it, as in scikit-learn.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import comb

from ..engine import unique_values
from ..errors import InvalidDataError


def _contingency_block(true: np.ndarray, pred: np.ndarray, t_values: np.ndarray | None, p_values: np.ndarray | None,
                       n_true: int, n_pred: int) -> np.ndarray:
    t = true.astype(np.int64) if t_values is None else np.searchsorted(t_values, true)
    p = pred.astype(np.int64) if p_values is None else np.searchsorted(p_values, pred)
    return np.bincount(t * n_pred + p, minlength=n_true * n_pred).reshape(1, n_true, n_pred)


def _codes(labels: da.Array) -> tuple[np.ndarray | None, int]:
    """How to turn labels into 0..n-1: None (they are small non-negative ints) or their sorted values."""
    if labels.dtype.kind in "iub":
        lo, hi = dask.compute(labels.min(), labels.max())
        if lo >= 0 and hi < 4 * labels.shape[0] + 1024:
            return None, int(hi) + 1
    values = unique_values(labels)
    return values, len(values)


def contingency_matrix(labels_true: Any, labels_pred: Any) -> np.ndarray:
    """Counts of samples per (true class, predicted cluster), shape (n_classes, n_clusters).

    NumPy or Dask arrays of shape (n_samples,). Labels that are small non-negative integers index
    the table directly (so a value absent from the data gives an empty row or column, which
    changes none of the scores here); any other labels are ranked first, as scikit-learn does.
    Data passes over the labels: 2 (their range, then the counts), none over ``X``.
    """
    t = da.asarray(labels_true)
    p = da.asarray(labels_pred)
    if t.ndim != 1 or p.ndim != 1 or t.shape[0] != p.shape[0]:
        raise InvalidDataError(
            f"labels_true and labels_pred must be 1-D of the same length; got shapes {t.shape} and {p.shape}."
        )
    if t.shape[0] == 0:
        raise InvalidDataError("labels_true and labels_pred are empty; they need at least one sample.")
    p = p.rechunk((t.chunks[0],))
    t_values, n_true = _codes(t)
    p_values, n_pred = _codes(p)
    blocks = da.map_blocks(
        _contingency_block, t, p, t_values, p_values, n_true, n_pred, dtype=np.int64, new_axis=[1, 2],
        chunks=((1,) * t.numblocks[0], (n_true,), (n_pred,)),
    )
    return np.asarray(blocks.sum(axis=0, split_every=8).compute())


def majority_label_accuracy(labels_true: Any, labels_pred: Any) -> float:
    """Fraction of samples whose cluster's most frequent true label is their own.

    Each cluster is labelled with the class most of its members have (several clusters may take
    the same class). Data passes: those of :func:`contingency_matrix`.
    """
    table = contingency_matrix(labels_true, labels_pred)
    return float(table.max(axis=0).sum() / table.sum())


def matched_accuracy(labels_true: Any, labels_pred: Any) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes (Hungarian algorithm).

    Clusters left without a class (more clusters than classes) count as wrong.
    """
    table = contingency_matrix(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / table.sum())


def _comb2(x: np.ndarray) -> float:
    return float(comb(x, 2, exact=False).sum())


def adjusted_rand_score(labels_true: Any, labels_pred: Any) -> float:
    """Rand index adjusted for chance, as :func:`sklearn.metrics.adjusted_rand_score`."""
    table = contingency_matrix(labels_true, labels_pred).astype(np.float64)
    n = table.sum()
    sum_ij = _comb2(table)
    sum_a = _comb2(table.sum(axis=1))
    sum_b = _comb2(table.sum(axis=0))
    expected = sum_a * sum_b / comb(n, 2)
    maximum = (sum_a + sum_b) / 2
    if maximum == expected:  # one cluster and one class, or every sample alone
        return 1.0
    return float((sum_ij - expected) / (maximum - expected))


def _entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    total = counts.sum()
    if len(counts) <= 1:
        return 0.0
    return float(-np.sum((counts / total) * (np.log(counts) - np.log(total))))


def _mutual_info(table: np.ndarray) -> float:
    table = table.astype(np.float64)
    n = table.sum()
    nz = table > 0
    pi = table.sum(axis=1, keepdims=True)
    pj = table.sum(axis=0, keepdims=True)
    outer = (pi @ pj)[nz]
    vals = table[nz] / n * (np.log(table[nz]) - np.log(outer) + np.log(n))
    return float(max(vals.sum(), 0.0))


def homogeneity_completeness_v_measure(labels_true: Any, labels_pred: Any, *, beta: float = 1.0) -> tuple[float, float, float]:
    """Homogeneity, completeness and V-measure, as scikit-learn's function of that name."""
    table = contingency_matrix(labels_true, labels_pred)
    h_true = _entropy(table.sum(axis=1))
    h_pred = _entropy(table.sum(axis=0))
    mi = _mutual_info(table)
    homogeneity = mi / h_true if h_true else 1.0
    completeness = mi / h_pred if h_pred else 1.0
    if homogeneity + completeness == 0:
        return homogeneity, completeness, 0.0
    v = (1 + beta) * homogeneity * completeness / (beta * homogeneity + completeness)
    return homogeneity, completeness, float(v)


def normalized_mutual_info_score(labels_true: Any, labels_pred: Any, *, average_method: str = "arithmetic") -> float:
    """Normalized mutual information, as :func:`sklearn.metrics.normalized_mutual_info_score`."""
    table = contingency_matrix(labels_true, labels_pred)
    classes, clusters = (table.sum(axis=1) > 0).sum(), (table.sum(axis=0) > 0).sum()
    if classes == clusters == 1 or classes == clusters == table.sum():
        return 1.0
    mi = _mutual_info(table)
    if mi == 0:
        return 0.0
    h_true, h_pred = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    means = {
        "min": min(h_true, h_pred),
        "max": max(h_true, h_pred),
        "geometric": float(np.sqrt(h_true * h_pred)),
        "arithmetic": (h_true + h_pred) / 2,
    }
    if average_method not in means:
        from ..errors import InvalidParameterError

        raise InvalidParameterError(
            f"The 'average_method' parameter of normalized_mutual_info_score must be one of "
            f"{{'min', 'max', 'geometric', 'arithmetic'}}. Got {average_method!r} instead."
        )
    return float(mi / max(means[average_method], np.finfo(np.float64).eps))
