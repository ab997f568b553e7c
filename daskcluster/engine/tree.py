"""The fixed reduction tree of a pass, whichever process computes its nodes.

The statistics of ``n_parts`` chunks are combined ``split_every`` at a time, in chunk order:
node ``(level, j)`` combines the nodes ``(level - 1, j * split_every)`` up to
``(level - 1, (j + 1) * split_every - 1)`` (fewer at the end of a level), and the leaves
``(0, i)`` are the chunks' statistics. The tree depends only on ``n_parts`` and
``split_every``; a node may be combined by a task on a worker, inside the task that computed
all of its leaves, or on the client, and gives the same value in every case.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

#: A node of the tree: ``(level, index)``; the leaves are ``(0, chunk_index)``.
Node = tuple[int, int]


def tree_widths(n_parts: int, split_every: int) -> list[int]:
    """Number of nodes at each level, leaves first; the last level holds the root alone.

    Examples
    --------
    >>> tree_widths(9, 8)
    [9, 2, 1]
    >>> tree_widths(1, 8)
    [1]
    """
    widths = [n_parts]
    while widths[-1] > 1:
        widths.append(-(-widths[-1] // split_every))
    return widths


def children(node: Node, widths: list[int], split_every: int) -> list[Node]:
    """The nodes that ``node`` (of level >= 1) combines, in chunk order."""
    level, j = node
    stop = min((j + 1) * split_every, widths[level - 1])
    return [(level - 1, c) for c in range(j * split_every, stop)]


def combine_complete(parts: Mapping[int, Any], n_parts: int, split_every: int,
                     combine: Callable[[list[Any]], Any]) -> dict[Node, Any]:
    """Combine every node of the tree whose leaves are all in ``parts``.

    Parameters
    ----------
    parts : mapping of int to statistics
        Some of the chunks' statistics, by chunk index.
    n_parts : int
        Number of chunks of the whole pass.
    split_every : int
        Fan-in of the tree.
    combine : callable
        ``combine(list_of_statistics) -> statistics``.

    Returns
    -------
    dict
        The highest nodes that ``parts`` cover entirely, each combined, with the leaves that
        no such node covers: together they cover ``parts`` exactly once.
    """
    widths = tree_widths(n_parts, split_every)
    values: dict[Node, Any] = {(0, i): p for i, p in parts.items()}
    current = sorted(parts)
    for level in range(1, len(widths)):
        done = []
        for j in sorted({i // split_every for i in current}):
            kids = children((level, j), widths, split_every)
            if all(k in values for k in kids):
                values[(level, j)] = combine([values.pop(k) for k in kids])
                done.append(j)
        if not done:
            break
        current = done
    return values


class PartialTree:
    """The nodes of the tree over some chunks, combined as soon as all their children are in.

    Parts are added one chunk at a time (in any order); a node is combined the moment its last
    child arrives, so at most ``split_every - 1`` values wait per level, whatever the number of
    chunks. :attr:`values` then holds exactly what :func:`combine_complete` gives for the same
    chunks, each node combined from the same children in the same order: the same values, to
    the bit.

    Examples
    --------
    >>> t = PartialTree(10, 4, sum)
    >>> for i in range(2, 10):
    ...     t.add(i, i)
    >>> t.values
    {(0, 2): 2, (0, 3): 3, (1, 1): 22, (1, 2): 17}
    """

    def __init__(self, n_parts: int, split_every: int, combine: Callable[[list[Any]], Any]) -> None:
        self.widths = tree_widths(n_parts, split_every)
        self.split_every = split_every
        self.combine = combine
        self.values: dict[Node, Any] = {}

    def add(self, index: int, part: Any) -> None:
        """Chunk ``index``'s statistics; combines every node they complete."""
        node: Node = (0, index)
        self.values[node] = part
        while node[0] < len(self.widths) - 1:
            parent = (node[0] + 1, node[1] // self.split_every)
            kids = children(parent, self.widths, self.split_every)
            if not all(k in self.values for k in kids):
                return
            self.values[parent] = self.combine([self.values.pop(k) for k in kids])
            node = parent


def evaluate(values: dict[Node, Any], n_parts: int, split_every: int, combine: Callable[[list[Any]], Any]) -> Any:
    """The root of the tree, combining on the spot every node that ``values`` lacks.

    ``values`` must cover every leaf once (e.g. the union of :func:`combine_complete`'s
    results over a partition of the chunks); it is emptied as nodes are used.
    """
    widths = tree_widths(n_parts, split_every)

    def node_value(node: Node) -> Any:
        if node in values:
            return values.pop(node)
        return combine([node_value(k) for k in children(node, widths, split_every)])

    return node_value((len(widths) - 1, 0))


def above_groups(held: Sequence[Collection[Node]], n_parts: int, split_every: int
                 ) -> tuple[dict[Node, list[tuple[int | None, Node]]], dict[Node, int | None]]:
    """How the nodes that groups of chunks hold reach the root through the nodes above them.

    Parameters
    ----------
    held : sequence of collections of nodes
        For each group (the chunks of one worker), the nodes :func:`combine_complete` gives for
        its chunks: together they cover every leaf once.
    n_parts, split_every : int
        The tree, as in :func:`tree_widths`.

    Returns
    -------
    combined : dict
        The nodes below the root that no group holds, each with its children as ``(group,
        child)`` (the child is among that group's nodes) or ``(None, child)`` (the child is
        itself in ``combined``); lower levels first, so a node comes after its children.
    top : dict
        What the root is combined from, each node with the group holding it or None (a node
        of ``combined``): the root's children, or the root alone when one group holds it.
        ``len(top) <= split_every``.
    """
    widths = tree_widths(n_parts, split_every)
    where = {node: g for g, nodes in enumerate(held) for node in nodes}
    combined: dict[Node, list[tuple[int | None, Node]]] = {}

    def source(node: Node) -> tuple[int | None, Node]:
        if node in where:
            return where[node], node
        combined[node] = [source(k) for k in children(node, widths, split_every)]
        return None, node

    root = (len(widths) - 1, 0)
    if root in where:
        return {}, {root: where[root]}
    top = dict(source(k)[::-1] for k in children(root, widths, split_every))
    return dict(sorted(combined.items())), top


def pick(values: Mapping[Node, Any], node: Node) -> Any:
    """One node of what a group's task returned (a task of its own, so that only that node
    travels on)."""
    return values[node]


def combine_sources(combine: Callable[[list[Any]], Any], wanted: list[Node | None], sources: list[Any]) -> Any:
    """A node from its children, in order: each one is ``sources[i][wanted[i]]`` (a node that a
    group's task returned among others) or ``sources[i]`` itself (``wanted[i]`` None)."""
    return combine([s if w is None else s[w] for w, s in zip(wanted, sources)])
