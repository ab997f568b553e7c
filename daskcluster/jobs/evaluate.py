"""A job's ``evaluate`` block: metrics of the fitted model, as passes over (lazy) labels.

Every label metric comes from one contingency table (rows per true label x cluster),
summed chunk by chunk by :func:`daskcluster.metrics.contingency_matrix`: nothing N-sized
reaches the client. The adjusted Rand index and the normalized mutual information are
computed from that table with scikit-learn's definitions.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import dask
import numpy as np
from sklearn.metrics import mutual_info_score

from ..metrics import contingency_matrix

__all__ = ["adjusted_rand_from_table", "evaluate", "nmi_from_table"]


def _comb2(x: np.ndarray | float) -> Any:
    return x * (x - 1) / 2.0


def adjusted_rand_from_table(table: np.ndarray) -> float:
    """Adjusted Rand index (Hubert and Arabie) from a contingency table."""
    table = np.asarray(table, dtype=np.float64)
    n = table.sum()
    sum_comb = _comb2(table).sum()
    a = _comb2(table.sum(axis=1)).sum()
    b = _comb2(table.sum(axis=0)).sum()
    total = _comb2(n)
    if total == 0:
        return 1.0
    expected = a * b / total
    maximum = (a + b) / 2.0
    if maximum == expected:  # a single cluster and a single class, or every row its own
        return 1.0
    return float((sum_comb - expected) / (maximum - expected))


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi_from_table(table: np.ndarray) -> float:
    """Normalized mutual information, arithmetic mean of the entropies (scikit-learn's default)."""
    table = np.asarray(table)
    h_true, h_pred = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    if h_true == 0 and h_pred == 0 or table.shape[0] == 1 and table.shape[1] == 1:
        return 1.0
    mi = float(mutual_info_score(None, None, contingency=table))
    denominator = (h_true + h_pred) / 2.0
    return float(mi / denominator) if denominator > 0 else 1.0


def _as_int_labels(y: Any) -> Any:
    return y.astype(np.int64) if hasattr(y, "astype") else np.asarray(y, dtype=np.int64)


def evaluate(estimator: Any, X: Any, labels_pred: Any, labels_true: Any, metrics: list[str]) -> dict[str, Any]:
    """The requested metrics as JSON-able values.

    Data passes: ``score``, ``bic``, ``aic`` one over ``X`` each; ``sizes`` and the label
    metrics two over the labels together (their maxima, then the counts).
    """
    out: dict[str, Any] = {}
    label_metrics = {"majority_accuracy", "adjusted_rand", "normalized_mutual_info", "contingency"}
    if labels_pred is not None and (set(metrics) & label_metrics or "sizes" in metrics):
        pred = _as_int_labels(labels_pred)
        in_memory = isinstance(pred, np.ndarray) and (labels_true is None or isinstance(labels_true, np.ndarray))
        # labels already here are counted here, not shipped to the cluster and back
        with dask.config.set(scheduler="sync") if in_memory else nullcontext():
            if labels_true is not None and set(metrics) & label_metrics:
                table = contingency_matrix(_as_int_labels(labels_true), pred)
                sizes = table.sum(axis=0)
            else:
                table = None
                sizes = contingency_matrix(pred * 0, pred)[0]  # one row: every label is 0
        if "sizes" in metrics:
            out["sizes"] = [int(s) for s in sizes]
        if table is not None:
            if "majority_accuracy" in metrics:
                out["majority_accuracy"] = float(table.max(axis=0).sum() / max(table.sum(), 1))
            if "adjusted_rand" in metrics:
                out["adjusted_rand"] = adjusted_rand_from_table(table)
            if "normalized_mutual_info" in metrics:
                out["normalized_mutual_info"] = nmi_from_table(table)
            if "contingency" in metrics:
                out["contingency"] = table.astype(int).tolist()
    for name in ("score", "bic", "aic"):
        if name in metrics:
            value = float(getattr(estimator, name)(X))
            out[name] = value if math.isfinite(value) else repr(value)
    return out
