"""The spatial partitions of a DBSCAN fit: a k-d tree built on the client from a sample.

Only speed depends on the partitions, never the result: every partition sees its box and a
``2 eps`` halo, so any cut gives the same clusters. The tree splits the box holding the most
sampled rows at their median along its widest side, until there are ``n_partitions`` boxes or
no box is wider than :data:`MIN_SIDE_EPS` ``* eps`` (a narrower box would be mostly halo).
"""

from __future__ import annotations

import math

import numpy as np

from ...kernels.dbscan import KdPlan

#: A box is split only along a side (of its sampled rows) at least this many ``eps`` wide.
MIN_SIDE_EPS = 8.0

#: Rows of a partition, box and halo, aimed at: a task holds a few hundred bytes a row (2-D moons,
#: 20 M rows in partitions of about a million: the largest worker peaked at 716 MiB).
PARTITION_ROWS = 1_000_000

#: Partitions per thread of the cluster when the data allow (for balance), each of at least
#: :data:`MIN_PARALLEL_ROWS` rows.
PARTITIONS_PER_THREAD = 4
MIN_PARALLEL_ROWS = 50_000


def n_partitions_for(n_samples: int, threads: int) -> int:
    """Partitions wanted for ``n_samples`` rows on ``threads`` threads."""
    by_memory = math.ceil(n_samples / PARTITION_ROWS)
    by_parallelism = min(PARTITIONS_PER_THREAD * threads, n_samples // MIN_PARALLEL_ROWS)
    return max(by_memory, by_parallelism, 1)


def plan_partitions(sample: np.ndarray, eps: float, n_partitions: int) -> KdPlan:
    """A k-d tree of at most ``n_partitions`` boxes from ``sample`` (s, d) of the rows."""
    d = sample.shape[1]
    dim, value, left, right = [-1], [0.0], [0], [0]
    # open leaves: (node, lo, hi, rows of the sample inside)
    leaves = [(0, np.full(d, -np.inf), np.full(d, np.inf), sample)]
    final: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    while leaves and len(leaves) + len(final) < n_partitions:
        leaves.sort(key=lambda leaf: len(leaf[3]))
        node, lo, hi, rows = leaves.pop()
        cut = _cut(rows, eps)
        if cut is None:
            final.append((node, lo, hi, rows))
            continue
        k, s = cut
        below = rows[:, k] < s
        left_hi, right_lo = hi.copy(), lo.copy()
        left_hi[k], right_lo[k] = s, s
        a, b = len(dim), len(dim) + 1
        dim[node], value[node], left[node], right[node] = k, s, a, b
        dim += [-1, -1]
        value += [0.0, 0.0]
        left += [0, 0]
        right += [0, 0]
        leaves += [(a, lo, left_hi, rows[below]), (b, right_lo, hi, rows[~below])]
    boxes = sorted(leaves + final, key=lambda leaf: leaf[0])
    for p, (node, _, _, _) in enumerate(boxes):
        left[node] = p
    return KdPlan(
        dim=np.asarray(dim, dtype=np.int64),
        value=np.asarray(value, dtype=np.float64),
        left=np.asarray(left, dtype=np.int64),
        right=np.asarray(right, dtype=np.int64),
        lo=np.array([leaf[1] for leaf in boxes]).reshape(len(boxes), d),
        hi=np.array([leaf[2] for leaf in boxes]).reshape(len(boxes), d),
    )


def _cut(rows: np.ndarray, eps: float) -> tuple[int, float] | None:
    """The widest side of ``rows`` and its median, if wide enough and the median splits them."""
    if len(rows) < 2:
        return None
    lo, hi = rows.min(axis=0), rows.max(axis=0)
    for k in np.argsort(lo - hi, kind="stable"):  # widest first
        if hi[k] - lo[k] < MIN_SIDE_EPS * eps:
            return None
        s = float(np.median(rows[:, k]))
        if lo[k] < s <= hi[k]:
            return int(k), s
    return None
