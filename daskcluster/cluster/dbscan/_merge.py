"""The client's step of DBSCAN: the partitions' local components merged into clusters.

Each partition numbers its components ``0 .. c_p - 1``; together they are the nodes
``node_start[p] + c`` of a small graph. A core row in partition ``p``'s ring is owned by
exactly one other partition ``q``, which lists it among its core rows near its faces: the
row's components in ``p`` and in ``q`` are one cluster, an edge of the graph. The connected
components of that graph (:func:`scipy.sparse.csgraph.connected_components`) are the clusters,
numbered as scikit-learn's DBSCAN numbers them: in the order of their smallest core row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ...kernels.dbscan import BorderGraph, Labeling


@dataclass(frozen=True)
class Merged:
    """``labeling``: the cluster of each partition's components, and of the border rows near
    more than one component; ``n_clusters``; ``n_edges`` of the border graph."""

    labeling: Labeling
    n_clusters: int
    n_edges: int


def _nodes(parts: Sequence[np.ndarray], node_start: np.ndarray) -> np.ndarray:
    """(row, node) pairs from each partition's (row, component) pairs."""
    pieces = [np.column_stack([a[:, 0], a[:, 1] + node_start[p]]) for p, a in enumerate(parts)]
    return np.concatenate(pieces).reshape(-1, 2) if pieces else np.zeros((0, 2), dtype=np.int64)


def merge(graphs: Sequence[BorderGraph]) -> Merged:
    """Clusters from the partitions' border graphs (in partition order)."""
    sizes = np.array([len(s.comp_min) for s in graphs], dtype=np.int64)
    node_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    n_nodes = int(sizes.sum())
    ring = _nodes([s.ring for s in graphs], node_start)
    inner = _nodes([s.inner for s in graphs], node_start)
    inner = inner[np.argsort(inner[:, 0], kind="stable")]
    at = np.searchsorted(inner[:, 0], ring[:, 0])
    found = at < len(inner)
    found[found] = inner[at[found], 0] == ring[found, 0]
    if not found.all():
        row = int(ring[~found][0, 0])
        raise RuntimeError(f"DBSCAN: core row {row} of a partition's ring is listed by no partition owning it.")
    edges = np.column_stack([ring[:, 1], inner[at, 1]])
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n_nodes, n_nodes))
    n_clusters, cluster = connected_components(graph, directed=False)
    smallest = np.full(n_clusters, np.iinfo(np.int64).max, dtype=np.int64)
    comp_min = np.concatenate([s.comp_min for s in graphs]) if n_nodes else np.zeros(0, dtype=np.int64)
    np.minimum.at(smallest, cluster, comp_min)
    rank = np.empty(n_clusters, dtype=np.int64)
    rank[np.argsort(smallest, kind="stable")] = np.arange(n_clusters)
    node_label = rank[cluster] if n_nodes else np.zeros(0, dtype=np.int64)
    extra = _nodes([s.extra for s in graphs], node_start)
    extra = np.column_stack([extra[:, 0], node_label[extra[:, 1]]]).reshape(-1, 2)
    extra = extra[np.argsort(extra[:, 0], kind="stable")]
    return Merged(Labeling(node_start, node_label.astype(np.int64), extra.astype(np.int64)), int(n_clusters),
                  len(edges))
