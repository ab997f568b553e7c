"""Hierarchical clustering of weighted points (micro-clusters): the phase 2 of the two-phase
:class:`~daskcluster.AgglomerativeClustering`.

Point ``i`` stands for ``counts[i]`` rows at the same place (its micro-cluster's mean). The tree
is built by the nearest-neighbour chain on the dense (n_points, n_points) matrix of cluster
distances, updated by the Lance–Williams formula of each linkage with the clusters' sizes
counted in rows, not in points:

* ``ward``: ``D(i, j) = 2 n_i n_j / (n_i + n_j) ‖m_i − m_j‖²`` (twice the increase of the
  within-cluster sum of squares when the two merge); a merge is reported at ``sqrt(D)``, the
  distance scikit-learn reports. It depends only on the sizes and means, so the tree is exactly
  scikit-learn's Ward tree of the rows in which every micro-cluster's rows merge first.
* ``average``: the count-weighted mean of the distances between points (UPGMA).
* ``complete`` / ``single``: the largest / smallest distance between points (sizes do not
  matter).

So the tree equals scikit-learn's tree of the data with every row moved to its micro-cluster's
mean, above the merges at distance zero. The merges are then sorted by distance (stably, as
SciPy does) and numbered as scikit-learn numbers them. Cost: O(n_points²) memory and time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.metrics import pairwise_distances

LINKAGES = ("ward", "complete", "average", "single")


@dataclass(frozen=True)
class WeightedTree:
    """``children`` (n_points − 1, 2): scikit-learn's ``children_`` (node ``n_points + i`` is made
    by merge ``i``); ``distances`` (n_points − 1,): the distance of each merge, non-decreasing."""

    children: np.ndarray
    distances: np.ndarray

    @property
    def n_leaves(self) -> int:
        return int(self.children.shape[0] + 1)

    def cut(self, n_clusters: int) -> np.ndarray:
        """Cluster of each leaf (n_points,) after the first ``n_points − n_clusters`` merges;
        clusters numbered by their first leaf."""
        n = self.n_leaves
        root = np.arange(2 * n - 1)
        for i, (a, b) in enumerate(self.children[: n - n_clusters]):
            root[a] = root[b] = n + i
        for node in range(2 * n - 2, -1, -1):  # parents have larger ids: resolve top-down
            root[node] = root[root[node]]
        _, labels = np.unique(root[:n], return_inverse=True)
        first = np.full(n_clusters, n)
        np.minimum.at(first, labels, np.arange(n))
        rank: np.ndarray = np.argsort(np.argsort(first))
        return rank[labels]


def _lance_williams(linkage: str) -> Callable[..., np.ndarray]:
    def single(da: np.ndarray, db: np.ndarray, dab: float, na: float, nb: float, nc: np.ndarray) -> np.ndarray:
        return np.asarray(np.minimum(da, db))

    def complete(da: np.ndarray, db: np.ndarray, dab: float, na: float, nb: float, nc: np.ndarray) -> np.ndarray:
        return np.asarray(np.maximum(da, db))

    def average(da: np.ndarray, db: np.ndarray, dab: float, na: float, nb: float, nc: np.ndarray) -> np.ndarray:
        return np.asarray((na * da + nb * db) / (na + nb))

    def ward(da: np.ndarray, db: np.ndarray, dab: float, na: float, nb: float, nc: np.ndarray) -> np.ndarray:
        return np.asarray(((na + nc) * da + (nb + nc) * db - nc * dab) / (na + nb + nc))

    return {"single": single, "complete": complete, "average": average, "ward": ward}[linkage]


def initial_distances(points: np.ndarray, counts: np.ndarray, linkage: str, metric: Any) -> np.ndarray:
    """The (n_points, n_points) matrix the chain starts from (Ward: ``D`` above; others: ``metric``)."""
    if linkage == "ward":
        n = counts.astype(np.float64)
        return np.asarray(2 * np.outer(n, n) / np.add.outer(n, n) * cdist(points, points, "sqeuclidean"))
    return np.asarray(pairwise_distances(points, metric=metric), dtype=np.float64)


def _nn_chain(D: np.ndarray, counts: np.ndarray, linkage: str) -> np.ndarray:
    """Merges ``(a, b, distance)`` in the order the chain finds them; ``D`` is overwritten."""
    k = D.shape[0]
    update = _lance_williams(linkage)
    size = counts.astype(np.float64).copy()
    retired = np.zeros(k, dtype=bool)
    np.fill_diagonal(D, np.inf)
    merges = np.empty((k - 1, 3))
    chain: list[int] = []
    first_active = 0
    for m in range(k - 1):
        if not chain:
            while retired[first_active]:
                first_active += 1
            chain.append(first_active)
        while True:
            a = chain[-1]
            row = D[a]
            b = int(np.argmin(row))
            if len(chain) > 1 and row[chain[-2]] <= row[b]:
                break  # mutual nearest neighbours (ties go to the chain, which avoids cycles)
            chain.append(b)
        a, b = chain.pop(), chain.pop()
        a, b = min(a, b), max(a, b)
        dab = float(D[a, b])
        merges[m] = a, b, dab
        new = update(D[a], D[b], dab, size[a], size[b], size)
        retired[a] = True
        new[retired] = np.inf
        new[b] = np.inf
        D[b], D[:, b] = new, new  # the union takes b's place; a is retired
        D[a], D[:, a] = np.inf, np.inf
        size[b] += size[a]
    return merges


def weighted_tree(points: np.ndarray, counts: np.ndarray, linkage: str, metric: Any = "euclidean") -> WeightedTree:
    """The hierarchical tree of ``points`` (n_points, n_features) weighted by ``counts`` (n_points,).

    Returns the merges sorted by distance, numbered as scikit-learn's ``children_``.
    """
    D = initial_distances(points, counts, linkage, metric)
    merges = _nn_chain(D, counts, linkage)
    merges = merges[np.argsort(merges[:, 2], kind="stable")]
    k = points.shape[0]
    # union-find over the leaves; node[r] is the tree node of the cluster whose root leaf is r
    parent = np.arange(k)
    node = np.arange(k)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    children = np.empty((k - 1, 2), dtype=np.int64)
    for i, (a, b, _) in enumerate(merges):
        ra, rb = find(int(a)), find(int(b))
        children[i] = sorted((node[ra], node[rb]))
        parent[ra] = rb
        node[rb] = k + i
    distances = np.sqrt(merges[:, 2]) if linkage == "ward" else merges[:, 2]
    return WeightedTree(children, distances)
