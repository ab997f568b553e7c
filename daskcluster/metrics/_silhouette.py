"""Silhouette coefficients on a seeded sample of rows, for one or many labelings at once.

The exact silhouette costs O(n²) distances, so it is computed, as scikit-learn's
``silhouette_score(sample_size=...)`` does, on a sample of rows drawn without replacement. A
model-selection sweep scores many labelings of the *same* sample: the sample's pairwise
distances are computed once, a block of rows at a time, and every labeling reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidDataError, InvalidParameterError

logger = logging.getLogger(__name__)

#: Rows of the distance matrix computed at a time (a block is BLOCK x sample_size float64).
BLOCK = 1024


def sample_index(n_samples: int, sample_size: int | None, random_state: Any) -> np.ndarray:
    """Sorted positions of ``sample_size`` distinct rows drawn with ``random_state`` (all rows when
    ``sample_size`` is None or at least ``n_samples``). Shape (min(sample_size, n_samples),)."""
    if sample_size is not None and (not isinstance(sample_size, (int, np.integer)) or sample_size < 2):
        raise InvalidParameterError(
            f"The 'sample_size' parameter of silhouette_score must be an int >= 2 or None. Got {sample_size!r} instead."
        )
    if sample_size is None or sample_size >= n_samples:
        return np.arange(n_samples)
    seed = random_state if isinstance(random_state, (int, np.integer)) else None
    if isinstance(random_state, np.random.RandomState):
        seed = int(random_state.randint(2**31 - 1))
    return np.sort(np.random.default_rng(seed).choice(n_samples, size=int(sample_size), replace=False))


def _codes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    values, codes = np.unique(labels, return_inverse=True)
    return codes.ravel(), len(values)


def silhouette_scores_of_sample(rows: np.ndarray, label_sets: Sequence[np.ndarray]) -> list[float]:
    """Mean silhouette coefficient of ``rows`` under each labeling, from one distance matrix.

    Parameters
    ----------
    rows : ndarray of shape (m, n_features)
        The sampled rows (on the client).
    label_sets : sequence of ndarray of shape (m,)
        One labeling per model.

    Returns
    -------
    list of float, one per labeling: what :func:`sklearn.metrics.silhouette_score` gives for
    ``(rows, labels)`` (a row alone in its cluster scores 0), to rounding: float64 rows are
    computed in float64, float32 rows in float32 (distances to about 1e-6 relative). No data
    pass; O(m² d) work once plus O(m² k) per labeling, O(BLOCK m + m * sum of k) memory.
    """
    rows = np.asarray(rows)
    dtype = np.float32 if rows.dtype == np.float32 else np.float64
    x = np.asarray(rows, dtype=dtype)
    m = x.shape[0]
    coded = [_codes(np.asarray(lab)) for lab in label_sets]
    for codes, k in coded:
        if codes.shape[0] != m:
            raise InvalidDataError(f"labels must have shape ({m},) like the sampled rows; got {codes.shape}.")
        if not 1 < k < m:
            raise InvalidDataError(f"Number of labels is {k}. Valid values are 2 to n_samples - 1 (inclusive)")
    # every labeling's one-hot membership side by side: one GEMM gives every row's summed
    # distance to every cluster of every labeling
    offsets = np.cumsum([0] + [k for _, k in coded])
    onehot = np.zeros((m, offsets[-1]), dtype=dtype)
    for (codes, _), off in zip(coded, offsets):
        onehot[np.arange(m), off + codes] = 1
    freq = onehot.sum(axis=0, dtype=np.float64)
    x_sq = np.einsum("ij,ij->i", x, x)
    totals = [0.0] * len(coded)
    for start in range(0, m, BLOCK):
        stop = min(m, start + BLOCK)
        d = x[start:stop] @ x.T
        d *= -2
        d += x_sq[start:stop, None]
        d += x_sq[None, :]
        np.maximum(d, 0, out=d)
        local = np.arange(stop - start)
        d[local, np.arange(start, stop)] = 0.0
        np.sqrt(d, out=d)
        sums_all = (d @ onehot).astype(np.float64)
        for j, (codes, _) in enumerate(coded):
            seg = slice(offsets[j], offsets[j + 1])
            sums, f = sums_all[:, seg], freq[seg]
            own = codes[start:stop]
            denom = f[own] - 1
            with np.errstate(divide="ignore", invalid="ignore"):
                a = sums[local, own] / denom
                mean_other = sums / f
            mean_other[local, own] = np.inf
            b = mean_other.min(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                s = (b - a) / np.maximum(a, b)
            s = np.nan_to_num(np.where(denom > 0, s, 0.0))
            totals[j] += float(s.sum())
    return [t / m for t in totals]
