"""A job's ``evaluate`` block: metrics of the fitted model, from :mod:`daskcluster.metrics`.

The label metrics (sizes, majority accuracy, adjusted Rand index, normalized mutual
information, the contingency table) are those of :mod:`daskcluster.metrics`, each a pass over
the labels summed chunk by chunk: nothing N-sized reaches the client. Lazy predicted labels
(a map over the data) are computed once, into cluster memory, before those passes, so the
data are not read again for each metric. The metrics of ``X`` (``score``, ``bic``, ``aic``,
``silhouette``, ``calinski_harabasz``, ``davies_bouldin``) read the data.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import dask
import dask.array as da
import numpy as np

from .. import metrics as M
from ..engine import unique_values

__all__ = ["cluster_majority", "evaluate"]

#: The label of noise rows (DBSCAN's), counted apart from the clusters.
NOISE = -1

#: Rows of the seeded sample the silhouette is exact on (its error: ``metrics.silhouette_error_bound``).
SILHOUETTE_SAMPLE = 10_000


def _as_int_labels(y: Any) -> Any:
    return y.astype(np.int64) if hasattr(y, "astype") else np.asarray(y, dtype=np.int64)


def _values(y: Any, n: int) -> list[Any]:
    """What the ``n`` rows (or columns) of a contingency table stand for: the label values, in
    the order :func:`daskcluster.metrics.contingency_matrix` gives them (small non-negative
    integers index the table directly; other labels are sorted)."""
    lo = int(y.min().compute() if isinstance(y, da.Array) else np.min(y))
    if lo >= 0:
        return list(range(n))
    values = unique_values(y) if isinstance(y, da.Array) else np.unique(y)
    return [v.item() for v in np.asarray(values)]


def _sizes(counts: np.ndarray, noise: bool) -> dict[str, Any]:
    """``sizes``: rows per cluster 0, 1, ...; with noise (label -1, as DBSCAN's), its rows as ``noise``."""
    out: dict[str, Any] = {"sizes": [int(c) for c in counts[int(noise):]]}
    if noise:
        out["noise"] = int(counts[0])
    return out


def cluster_majority(table: np.ndarray, true_values: list[Any]) -> list[Any]:
    """The most frequent true label of each cluster (each column of the table)."""
    return [true_values[int(i)] for i in np.asarray(table).argmax(axis=0)]


def evaluate(estimator: Any, X: Any, labels_pred: Any, labels_true: Any, metrics: list[str]) -> dict[str, Any]:
    """The requested metrics as JSON-able values.

    With true labels, ``cluster_majority`` (the most frequent true label of each cluster) is
    added: the plots title the centers with it.

    Data passes: ``score``, ``bic``, ``aic`` one over ``X`` each, ``calinski_harabasz`` and
    ``davies_bouldin`` two each, ``silhouette`` a read of its sampled rows; lazy labels one
    (computed once, kept in cluster memory); each label metric two over the labels.
    """
    out: dict[str, Any] = {}
    wanted = set(metrics)
    truth_metrics = {"majority_accuracy", "adjusted_rand", "normalized_mutual_info", "contingency"}
    needs_labels = wanted & (truth_metrics | {"sizes", "silhouette", "calinski_harabasz", "davies_bouldin"})
    pred = None
    if labels_pred is not None and needs_labels:
        if isinstance(labels_pred, da.Array):
            labels_pred = labels_pred.persist()  # one pass over X; every metric below reads these
        pred = _as_int_labels(labels_pred)
    truth = _as_int_labels(labels_true) if labels_true is not None else None
    in_memory = isinstance(pred, np.ndarray) and (truth is None or isinstance(truth, np.ndarray))
    # labels already here are counted here, not shipped to the cluster and back
    with dask.config.set(scheduler="sync") if in_memory else nullcontext():
        if pred is not None and truth is not None and wanted & (truth_metrics | {"sizes"}):
            table = M.contingency_matrix(truth, pred)
            true_values = _values(truth, table.shape[0])
            clusters = _values(pred, table.shape[1])
            noise = clusters[:1] == [NOISE]
            out["cluster_majority"] = cluster_majority(table[:, int(noise):], true_values)
            if "sizes" in wanted:
                out.update(_sizes(table.sum(axis=0), noise))
            if "majority_accuracy" in wanted:
                out["majority_accuracy"] = M.majority_label_accuracy(truth, pred)
            if "adjusted_rand" in wanted:
                out["adjusted_rand"] = M.adjusted_rand_score(truth, pred)
            if "normalized_mutual_info" in wanted:
                out["normalized_mutual_info"] = M.normalized_mutual_info_score(truth, pred)
            if "contingency" in wanted:
                out["contingency"] = {"rows": "true label", "columns": "cluster", "true_labels": true_values,
                                      "clusters": clusters, "counts": table.astype(int).tolist()}
        elif pred is not None and "sizes" in wanted:
            counts = M.contingency_matrix(pred * 0, pred)[0]  # one row: every label is 0
            out.update(_sizes(counts, _values(pred, len(counts))[:1] == [NOISE]))
    if pred is not None:
        if "silhouette" in wanted:
            out["silhouette"] = M.silhouette_score(X, pred, sample_size=SILHOUETTE_SAMPLE, random_state=0)
        if "calinski_harabasz" in wanted:
            out["calinski_harabasz"] = M.calinski_harabasz_score(X, pred)
        if "davies_bouldin" in wanted:
            out["davies_bouldin"] = M.davies_bouldin_score(X, pred)
    for name in ("score", "bic", "aic"):
        if name in wanted:
            value = float(getattr(estimator, name)(X))
            out[name] = value if math.isfinite(value) else repr(value)
    return out
