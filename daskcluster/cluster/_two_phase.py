"""What the two-phase estimators share: the exact route for data that fit the client, and the
summary of larger data by micro-clusters on the cluster, with the pass that labels every row.

Two-phase clustering (as BIRCH): phase 1 summarises the rows on the cluster by many k-means
centers — every row goes to its nearest center, and each part keeps its count and mean; phase 2
clusters the small weighted summary on the client; each row then takes the cluster of its part
(one lazy map over the rows).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..blas import blas_for_tasks
from ..data import RowData, as_row_data
from ..engine import tree_reduce
from ..errors import InvalidDataError, InvalidParameterError, NonFiniteDataError
from ..kernels import microclusters as M
from ..params import DataCheck, Interval, check_random_state
from ._kmeans import KMeans

logger = logging.getLogger(__name__)

#: Lloyd iterations of phase 1 at most, and its k-means|| rounds: the micro-clusters only need
#: to be small and compact, not a converged k-means model (each iteration or round is a pass).
SUMMARY_MAX_ITER = 10
SUMMARY_SEEDING_ROUNDS = 2


@dataclass(frozen=True)
class MicroClusters:
    """Phase 1's summary of the rows.

    centers : (n_micro, n_features) float64, the mean of each non-empty part.
    counts : (n_micro,) float64, its number of rows.
    row_parts : (n_samples,) int, each row's part (an index into ``centers``); NumPy for NumPy
        input, a lazy Dask array otherwise.
    """

    centers: np.ndarray
    counts: np.ndarray
    row_parts: np.ndarray | da.Array


def check_finite(X: np.ndarray) -> None:
    """Raise :class:`NonFiniteDataError` naming the first row and feature holding NaN or infinity."""
    finite = np.isfinite(X)
    if finite.all():
        return
    row, col = np.argwhere(~finite)[0]
    raise NonFiniteDataError(
        f"Input X contains NaN or infinity: {float(X[row, col])!r} at row {int(row)}, feature {int(col)}. "
        "Remove or impute NaN and infinity before fitting."
    )


def summarize(X: Any, data: RowData, n_micro: int, random_state: Any, owner: str) -> MicroClusters:
    """Phase 1: ``n_micro`` k-means centers, then one pass for the count and mean of each part.

    ``X`` is the estimator's input and ``data`` the same input as :class:`RowData`.

    Data passes: those of :class:`~daskcluster.KMeans` with ``init='k-means||'`` (3 for the
    seeding, at most :data:`SUMMARY_MAX_ITER` Lloyd iterations and 1 for the inertia), plus 1
    for the summary; the labels are a lazy map (1 more pass when computed).
    """
    if data.n_samples < n_micro:
        raise InvalidDataError(
            f"n_samples={data.n_samples} should be >= n_micro_clusters={n_micro}: lower n_micro_clusters, "
            f"or raise max_samples to {data.n_samples} to cluster these rows exactly."
        )
    seed = int(check_random_state(owner, random_state).randint(np.iinfo(np.int32).max))
    km = KMeans(n_clusters=n_micro, max_iter=SUMMARY_MAX_ITER, init_max_iter=SUMMARY_SEEDING_ROUNDS,
                random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        # fewer distinct rows than micro-clusters only leaves some parts empty: they are dropped
        warnings.simplefilter("always", ConvergenceWarning)
        km.fit(X)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            logger.info("%s phase 1: %s", owner, w.message)
        else:
            warnings.warn(w.message, w.category, stacklevel=3)
    centers = km.cluster_centers_.astype(data.dtype)
    summary = tree_reduce(data, M.summary_kernel, M.SummaryParams(centers, data.affine), M.combine_summaries,
                          label="micro-summary")
    keep = summary.counts > 0
    index = np.cumsum(keep) - 1  # part of each center among the non-empty ones
    parts = km.labels_
    if not keep.all():
        parts = _map_labels(parts, index.astype(np.int64))
    logger.info("%s phase 1: %d micro-clusters of %d rows (%d empty dropped)", owner, int(keep.sum()),
                data.n_samples, int((~keep).sum()))
    return MicroClusters(summary.means(data.affine), summary.counts[keep], parts)


def _check_micro_clusters(estimator: Any, data: Any) -> None:
    n_clusters = estimator.n_clusters
    if n_clusters is not None and estimator.n_micro_clusters < n_clusters:
        raise InvalidParameterError(
            f"n_micro_clusters={estimator.n_micro_clusters} should be >= n_clusters={n_clusters}: the clusters "
            "are made of micro-clusters.", param="n_micro_clusters"
        )


#: The parameters of the two-phase route (see :class:`TwoPhaseMixin`).
TWO_PHASE_CONSTRAINTS: dict[str, list[Any]] = {
    "max_samples": [Interval(Integral, 2, None, closed="left")],
    "n_micro_clusters": [Interval(Integral, 2, None, closed="left")],
    "random_state": ["random_state"],
}

#: The check of ``n_micro_clusters`` against ``n_clusters``.
TWO_PHASE_CHECKS = (DataCheck("n_micro_clusters", _check_micro_clusters, needs=("n_clusters",), needs_data=False),)


def _map_labels(parts: np.ndarray | da.Array, table: np.ndarray) -> np.ndarray | da.Array:
    if isinstance(parts, da.Array):
        return parts.map_blocks(M.lookup_labels, table, dtype=table.dtype)
    return M.lookup_labels(parts, table)


class TwoPhaseMixin:
    """Routing between the exact route and the two-phase route, for estimators with
    ``max_samples``, ``n_micro_clusters`` and ``random_state``."""

    max_samples: int
    n_features_in_: int
    n_micro_clusters: int
    random_state: Any

    def _row_data(self, X: Any) -> RowData:
        return as_row_data(X, owner=type(self).__name__, min_samples=2)

    def _begin_fit(self, X: Any) -> tuple[RowData, bool]:
        """Check the parameters and X's metadata (no data read), clear a previous fit's attributes
        and pick the route: returns the data and whether the exact route runs."""
        self._check_params()  # type: ignore[attr-defined]
        data = self._row_data(X)
        exact = self._exact(data)
        self.n_features_in_ = data.n_features
        self._labeled(X, reset=True)  # type: ignore[attr-defined]  # feature_names_in_, after _exact
        return data, exact

    def _exact(self, data: RowData) -> bool:
        """Whether the data are small enough for the exact route (``n_samples <= max_samples``)."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)  # a previous fit's attributes, some of which this route may not set
        exact = data.n_samples <= self.max_samples
        self.fit_path_ = "exact" if exact else "two-phase"
        logger.info("%s: %d rows, max_samples=%d: %s route", type(self).__name__, data.n_samples,
                    self.max_samples, self.fit_path_)
        return exact

    def _refuse_above(self, data: RowData, name: str, value: Any, why: str) -> None:
        """Refuse an option the two-phase route cannot honour, before any data are read."""
        raise InvalidParameterError(
            f"{name}={value!r} needs the exact route: {why}. X has n_samples={data.n_samples} > "
            f"max_samples={self.max_samples}; set max_samples >= {data.n_samples} (the data must then fit "
            "in this process's memory) or use a supported option."
        )

    @staticmethod
    def _client_array(data: RowData) -> np.ndarray:
        """All rows on the client in the compute dtype, scaled, checked finite (exact route)."""
        X = data.to_compute(data.array.compute())
        check_finite(X)
        return X

    @staticmethod
    def _output_labels(data: RowData, labels: np.ndarray) -> np.ndarray | da.Array:
        """Labels of the exact route: a Dask array chunked like the rows for lazy input."""
        labels = np.asarray(labels)
        return da.from_array(labels, chunks=(data.array.chunks[0],)) if data.lazy else labels

    def _row_labels(self, data: RowData, micro: MicroClusters, part_labels: np.ndarray) -> np.ndarray | da.Array:
        """Each row's cluster, from its part's: lazy for lazy input, else computed (one pass)."""
        labels = _map_labels(micro.row_parts, np.asarray(part_labels, dtype=np.int64))
        if isinstance(labels, da.Array) and not data.lazy:
            with blas_for_tasks(data.n_chunks):
                return labels.compute()
        return labels
