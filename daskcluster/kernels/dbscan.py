"""DBSCAN on one spatial partition, and the routing of rows to partitions.

The space is cut by a k-d tree into boxes (:class:`KdPlan`). Partition ``p`` holds the rows of
its box (*owned*) and every row within ``2 eps`` of it (per coordinate): the *halo*. For the
owned rows and the rows within ``eps`` of the box (the *ring*), every neighbour within ``eps``
is then present, so their neighbour counts and core flags are exact; the core rows of box and
ring are joined into local components (union-find), and each owned non-core row learns the
components of the core rows within ``eps`` of it. The client merges the components of
different partitions through the ring's core rows (each is owned by exactly one partition).

Neighbours are found in a grid of cells whose diagonal is ``eps`` (a hair less): the rows of
one cell are all within ``eps`` of each other, so a cell of total weight ``min_samples`` is
all core rows without a distance computed, the core rows of a cell are one component, and two
cells are joined by the first pair of their core rows found within ``eps``. A row's
neighbours lie in the cells at most ``floor(sqrt(d)) + 1`` cells away
(25 in 2-D; a count stops at ``min_samples``). Those cells are found by binary search on
their linear keys. With more than 3 features (or coordinates too large for the cells'
rounding) each row is its own cell and the pairs of rows within ``eps`` (a hair more) come from
:meth:`scipy.spatial.cKDTree.query_pairs`: memory then grows with the number of such pairs, as
scikit-learn's neighbourhoods do. Distances are ``sum((x_k - y_k)**2) <= eps**2`` in float64, feature by
feature, as scikit-learn's trees compute them. The loops are compiled (Numba, ``nogil``,
cached on disk). Functions of NumPy arrays only: no Dask here.

A fit's partitions are staged on disk and run by :mod:`daskcluster.engine.partitions`, which
is given this module's functions with their parameters: :func:`route_to_boxes` stages the
rows, :func:`cluster_box` clusters a partition, :func:`core_rows` picks the core rows of its
results, :func:`chunk_labels` makes an input chunk's labels from them and
:func:`labeled_cores` gives a partition's core rows their clusters; :func:`predict_block`
(with :class:`PredictParams`) labels new rows by the nearest core row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numba
import numpy as np

from ..errors import InvalidDataError
from .blocks import Affine, ChunkInfo, check_finite_rows

#: The cells' diagonal is ``eps`` less this (relative), so two rows of a cell are surely within
#: ``eps`` despite the rounding of ``(x - origin) / side`` (about 1e-16 |x| / side cells).
CELL_SLACK = 1e-6

#: Up to this many features, rows are put in cells of diagonal eps; beyond, each row is its own
#: cell and its neighbours come from a k-d tree.
PROBE_MAX_FEATURES = 3


@dataclass(frozen=True)
class KdPlan:
    """A k-d tree cutting the space into ``n_partitions`` boxes.

    Node ``0`` is the root. An inner node ``i`` splits on ``dim[i]`` at ``value[i]``: rows with
    ``x[dim] < value`` go to ``left[i]``, the others to ``right[i]``. A leaf has ``dim == -1``
    and ``left`` = its partition. ``lo``/``hi`` (n_partitions, n_features) are the boxes
    (``-inf``/``inf`` on the outside); partition ``p`` owns ``lo[p] <= x < hi[p]``.
    """

    dim: np.ndarray
    value: np.ndarray
    left: np.ndarray
    right: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def __post_init__(self) -> None:
        """Refuse a tree the compiled routing could not walk safely (it does not check
        indices): a plan read back from a damaged or crafted model file."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self)}
        if not all(isinstance(a, np.ndarray) and a.ndim == (2 if k in ("lo", "hi") else 1) for k, a in arrays.items()):
            raise InvalidDataError("A DBSCAN partition plan holds something other than its arrays: the model was "
                                   "damaged or crafted. Fit the model again.")
        n_nodes = self.dim.shape[0]
        n_parts, d = self.lo.shape
        inner = self.dim >= 0
        nodes = np.arange(n_nodes)
        ok = (
            n_parts >= 1 and self.hi.shape == self.lo.shape
            and all(a.shape == (n_nodes,) for a in (self.value, self.left, self.right))
            and all(a.dtype == np.int64 for a in (self.dim, self.left, self.right))
            and all(a.dtype == np.float64 for a in (self.value, self.lo, self.hi))
            and bool(np.all((self.dim >= -1) & (self.dim < d)))
            # children come after their parent: no cycle, and the walk's stack is bounded
            and bool(np.all(~inner | ((self.left > nodes) & (self.right > nodes)
                                      & (self.left < n_nodes) & (self.right < n_nodes))))
            and bool(np.all(inner | ((self.left >= 0) & (self.left < n_parts))))
        )
        if not ok:
            raise InvalidDataError(
                f"A DBSCAN partition plan is not a valid k-d tree ({n_nodes} nodes, boxes of shape "
                f"{self.lo.shape}): the model was damaged or crafted. Fit the model again.")

    @property
    def n_partitions(self) -> int:
        return int(self.lo.shape[0])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The tree as a dict of its arrays (what a model file holds); :meth:`from_arrays` rebuilds it."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> KdPlan:
        """The tree from :meth:`to_arrays`'s dict, checked (it may come from a model file)."""
        names = [f.name for f in fields(cls)]
        if not isinstance(arrays, dict) or sorted(arrays) != sorted(names):
            keys = sorted(arrays) if isinstance(arrays, dict) else type(arrays).__name__
            raise InvalidDataError(f"A DBSCAN partition plan must hold the arrays {names}; got {keys}: the model "
                                   "was damaged or crafted. Fit the model again.")
        return cls(**arrays)


@numba.njit(nogil=True, cache=True)
def _route(x: np.ndarray, dim: np.ndarray, value: np.ndarray, left: np.ndarray, right: np.ndarray,
           halo: float, rows: np.ndarray, parts: np.ndarray, owned: np.ndarray,
           fill: bool) -> int:  # pragma: no cover - compiled
    """Every (row, partition) pair with the row within ``halo`` of the partition's box, and
    whether the partition owns the row; returns the number of pairs (written when ``fill``)."""
    n = x.shape[0]
    stack = np.empty(2 * dim.shape[0] + 2, dtype=np.int64)
    flags = np.empty(2 * dim.shape[0] + 2, dtype=np.bool_)
    count = 0
    for i in range(n):
        top = 0
        stack[0] = 0
        flags[0] = True
        top = 1
        while top > 0:
            top -= 1
            node = stack[top]
            own = flags[top]
            k = dim[node]
            if k < 0:
                if fill:
                    rows[count] = i
                    parts[count] = left[node]
                    owned[count] = own
                count += 1
                continue
            v = x[i, k]
            s = value[node]
            if v >= s - halo:
                stack[top] = right[node]
                flags[top] = own and v >= s
                top += 1
            if v <= s + halo:
                stack[top] = left[node]
                flags[top] = own and v < s
                top += 1
    return count


def route_rows(x: np.ndarray, plan: KdPlan, halo: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (row, partition, owned) triples of ``x`` (n, d): each row goes to every partition
    whose box is within ``halo`` of it (per coordinate) and is owned by exactly one; sorted by
    partition, rows ascending within one."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    empty = np.empty(0, dtype=np.int64)
    n_pairs = _route(x, plan.dim, plan.value, plan.left, plan.right, halo, empty, empty,
                     np.empty(0, dtype=np.bool_), False)
    rows = np.empty(n_pairs, dtype=np.int64)
    parts = np.empty(n_pairs, dtype=np.int64)
    owned = np.empty(n_pairs, dtype=np.bool_)
    _route(x, plan.dim, plan.value, plan.left, plan.right, halo, rows, parts, owned, True)
    order = np.lexsort((rows, parts))
    return rows[order], parts[order], owned[order]


def owner_of(x: np.ndarray, plan: KdPlan) -> np.ndarray:
    """The partition owning each row of ``x`` (n,), int64."""
    rows, parts, owned = route_rows(x, plan, 0.0)
    out = np.empty(x.shape[0], dtype=np.int64)
    out[rows[owned]] = parts[owned]
    return out


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cells:
    """Rows sorted by grid cell: ``order`` (m,) sorts them, ``start`` (n_cells + 1,) bounds
    each cell's rows in sorted order, and ``adj_ptr``/``adj`` list the cells that may hold a
    row within ``eps`` of a row of each cell (itself first), CSR. ``exact_cells``: whether two
    rows of one cell are surely within ``eps`` (False when the coordinates are too large
    against ``eps`` for the cells' rounding to be trusted)."""

    order: np.ndarray
    start: np.ndarray
    adj_ptr: np.ndarray
    adj: np.ndarray
    exact_cells: bool


def cell_side(eps: float, n_features: int) -> float:
    """Side of a cell: its diagonal is ``eps`` less a relative :data:`CELL_SLACK`."""
    return eps / math.sqrt(n_features) * (1 - CELL_SLACK)


def cell_offsets(eps: float, side: float, n_features: int, exact_cells: bool = True) -> np.ndarray:
    """The offsets (n_off, d) from a cell to the cells that may hold a row within ``eps`` of
    one of its rows. Without ``exact_cells`` (rounding
    may put a row in the cell next to its own), one cell more each way and no pruning."""
    reach = math.floor(eps / side + CELL_SLACK) + 1 + (0 if exact_cells else 1)
    grid = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * n_features, indexing="ij"), -1)
    grid = grid.reshape(-1, n_features)
    if exact_cells:
        gap = np.maximum(np.abs(grid) - 1, 0) * side
        grid = grid[(gap**2).sum(axis=1) <= eps * eps * (1 + CELL_SLACK)]
    return grid.astype(np.int64)


def offset_rows(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``offsets`` (n_off, d) as rows along the last feature: the distinct offsets of the other
    features (n_rows, d - 1) and, for each, the reach along the last one (n_rows,)."""
    prefix, inverse = np.unique(offsets[:, :-1], axis=0, return_inverse=True)
    reach = np.zeros(len(prefix), dtype=np.int64)
    np.maximum.at(reach, inverse.ravel(), np.abs(offsets[:, -1]))
    return prefix.astype(np.int64).reshape(len(prefix), offsets.shape[1] - 1), reach


@numba.njit(nogil=True, cache=True)
def _push(buf: np.ndarray, count: int, value: int) -> np.ndarray:  # pragma: no cover - compiled
    """``buf`` with ``value`` at ``count``: the same array, or one twice as long when full."""
    if count == buf.shape[0]:
        grown = np.empty(2 * buf.shape[0] + 1, dtype=buf.dtype)
        grown[:count] = buf[:count]
        buf = grown
    buf[count] = value
    return buf


@numba.njit(nogil=True, cache=True)
def _probe_adjacency(keys: np.ndarray, coords: np.ndarray, extent: np.ndarray, strides: np.ndarray,
                     prefix: np.ndarray, reach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """The cells around each cell (itself first), CSR. Keys are row-major with the last
    feature's stride 1, so the cells of one row of offsets are one range of keys, whose start
    never decreases from one cell to the next: one pointer per row walks forward."""
    n_cells, d = coords.shape
    n_rows = prefix.shape[0]
    adj = np.empty(n_cells * 4 + 16, dtype=np.int64)
    ptr = np.zeros(n_cells + 1, dtype=np.int64)
    count = 0
    last = d - 1
    pos = np.zeros(n_rows, dtype=np.int64)
    for a in range(n_cells):
        adj = _push(adj, count, a)
        count += 1
        for r in range(n_rows):
            base = 0
            inside = True
            for k in range(last):
                c = coords[a, k] + prefix[r, k]
                if c < 0 or c >= extent[k]:
                    inside = False
                    break
                base += c * strides[k]
            if not inside:
                continue
            low = max(coords[a, last] - reach[r], 0)
            high = min(coords[a, last] + reach[r], extent[last] - 1)
            b = pos[r]
            while b < n_cells and keys[b] < base + low:
                b += 1
            pos[r] = b
            while b < n_cells and keys[b] <= base + high:
                if b != a:
                    adj = _push(adj, count, b)
                    count += 1
                b += 1
        ptr[a + 1] = count
    return ptr, adj[:count]


def grid_cells(y: np.ndarray, eps: float) -> Cells:
    """Sort the rows of ``y`` (m, d), float64, into cells of diagonal ``eps`` (a hair less) and
    list the cells around each cell."""
    m, d = y.shape
    if m == 0:
        z = np.zeros(1, dtype=np.int64)
        return Cells(np.empty(0, dtype=np.int64), z, z, np.empty(0, dtype=np.int64), True)
    side = cell_side(eps, d)
    origin = y.min(axis=0)
    scaled = np.floor((y - origin) / side)
    extent = scaled.max(axis=0) + 1
    coords = scaled.astype(np.int64)
    # (x - origin) / side is off by about 1e-16 |x| / side cells: far below the slack unless
    # the coordinates dwarf the cells
    exact_cells = bool(float(np.max(np.abs(y))) / side < 0.01 * CELL_SLACK / float(np.finfo(np.float64).eps))
    if d <= PROBE_MAX_FEATURES and float(np.prod(extent)) < 2.0**62:
        offsets = cell_offsets(eps, side, d, exact_cells)
        ext = extent.astype(np.int64)
        strides = np.ones(d, dtype=np.int64)
        for k in range(d - 2, -1, -1):
            strides[k] = strides[k + 1] * ext[k + 1]
        keys = coords @ strides
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        first = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        prefix, reach = offset_rows(offsets)
        ptr, adj = _probe_adjacency(sorted_keys[first], coords[order[first]], ext, strides, prefix, reach)
    else:
        # one cell per row (sorted along the first feature), its neighbours from a k-d tree
        # with a radius a hair over eps: a superset, which the compiled loops check exactly
        from scipy.spatial import cKDTree

        order = np.argsort(y[:, 0], kind="stable")
        first = np.arange(m)
        pairs = cKDTree(y[order]).query_pairs(eps * (1 + CELL_SLACK), output_type="ndarray")
        own = np.arange(m)
        src = np.concatenate([own, pairs[:, 0], pairs[:, 1]])
        dst = np.concatenate([own, pairs[:, 1], pairs[:, 0]])
        by = np.argsort(src, kind="stable")  # each cell's own entry first
        adj = dst[by].astype(np.int64)
        ptr = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=m), out=ptr[1:])
        exact_cells = True
    start = np.append(first, m).astype(np.int64)
    return Cells(order.astype(np.int64), start, ptr.astype(np.int64), adj, exact_cells)


# --------------------------------------------------------------------------- DBSCAN in a partition


@numba.njit(nogil=True, cache=True, inline="always")
def _within(y: np.ndarray, i: int, j: int, eps2: float) -> bool:  # pragma: no cover - compiled
    s = 0.0
    for k in range(y.shape[1]):
        t = y[i, k] - y[j, k]
        s += t * t
    return s <= eps2


@numba.njit(nogil=True, cache=True)
def _core_flags(y: np.ndarray, w: np.ndarray, need: np.ndarray, start: np.ndarray, adj_ptr: np.ndarray,
                adj: np.ndarray, eps2: float, min_samples: float, monotone: bool, exact_cells: bool,
                core: np.ndarray) -> None:  # pragma: no cover - compiled
    """``core[i]``: the weights of the rows within ``eps`` of row ``i`` (itself included) sum
    to at least ``min_samples``; for the rows with ``need[i]`` only (others False).

    With non-negative weights (``monotone``) a count stops once it reaches ``min_samples``,
    and a cell whose own weight reaches it makes all its rows core (they are within ``eps``
    of each other) without a distance."""
    for a in range(start.shape[0] - 1):
        dense = False
        if monotone and exact_cells:
            cell_weight = 0.0
            for i in range(start[a], start[a + 1]):
                cell_weight += w[i]
            dense = cell_weight >= min_samples
        for i in range(start[a], start[a + 1]):
            core[i] = False
            if not need[i]:
                continue
            if dense:
                core[i] = True
                continue
            s = 0.0
            for t in range(adj_ptr[a], adj_ptr[a + 1]):
                b = adj[t]
                for j in range(start[b], start[b + 1]):
                    if _within(y, i, j, eps2):
                        s += w[j]
                if monotone and s >= min_samples:
                    break
            core[i] = s >= min_samples


@numba.njit(nogil=True, cache=True, inline="always")
def _find(parent: np.ndarray, i: int) -> int:  # pragma: no cover - compiled
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(nogil=True, cache=True)
def _link(y: np.ndarray, core: np.ndarray, start: np.ndarray, a: int, b: int, eps2: float) -> bool:  # pragma: no cover
    """Whether a core row of cell ``a`` is within ``eps`` of a core row of cell ``b``."""
    for i in range(start[a], start[a + 1]):
        if not core[i]:
            continue
        for j in range(start[b], start[b + 1]):
            if core[j] and _within(y, i, j, eps2):
                return True
    return False


@numba.njit(nogil=True, cache=True)
def _components(y: np.ndarray, core: np.ndarray, start: np.ndarray, adj_ptr: np.ndarray, adj: np.ndarray,
                eps2: float, exact_cells: bool, comp: np.ndarray) -> int:  # pragma: no cover - compiled
    """Union-find of the core rows joined by distances within ``eps``; ``comp[i]`` the
    component (numbered from 0 in row order) of each core row, -1 elsewhere. Returns the
    number of components.

    The core rows of one cell are within ``eps`` of each other: one node per cell, and two
    cells are joined as soon as one pair of their core rows is within ``eps``."""
    m = y.shape[0]
    n_cells = start.shape[0] - 1
    if not exact_cells:  # one node per row, every pair of core rows tried
        parent = np.arange(m)
        for a in range(n_cells):
            for i in range(start[a], start[a + 1]):
                if not core[i]:
                    continue
                for t in range(adj_ptr[a], adj_ptr[a + 1]):
                    b = adj[t]
                    if b < a:
                        continue
                    for j in range(max(start[b], i + 1), start[b + 1]):
                        if core[j] and _within(y, i, j, eps2):
                            ri = _find(parent, i)
                            rj = _find(parent, j)
                            if ri != rj:
                                parent[max(ri, rj)] = min(ri, rj)
        node = np.arange(m)
    else:
        has_core = np.zeros(n_cells, dtype=np.bool_)
        for a in range(n_cells):
            for i in range(start[a], start[a + 1]):
                if core[i]:
                    has_core[a] = True
                    break
        parent = np.arange(n_cells)
        for a in range(n_cells):
            if not has_core[a]:
                continue
            for t in range(adj_ptr[a], adj_ptr[a + 1]):
                b = adj[t]
                if b <= a or not has_core[b]:
                    continue
                ra = _find(parent, a)
                rb = _find(parent, b)
                if ra != rb and _link(y, core, start, a, b, eps2):
                    parent[max(ra, rb)] = min(ra, rb)
        node = np.empty(m, dtype=np.int64)
        for a in range(n_cells):
            for i in range(start[a], start[a + 1]):
                node[i] = a
    n_comps = 0
    ids = np.full(parent.shape[0], -1, dtype=np.int64)
    for i in range(m):
        comp[i] = -1
        if core[i]:
            r = _find(parent, node[i])
            if ids[r] < 0:
                ids[r] = n_comps
                n_comps += 1
            comp[i] = ids[r]
    return n_comps


@numba.njit(nogil=True, cache=True)
def _border(y: np.ndarray, core: np.ndarray, owned: np.ndarray, start: np.ndarray, adj_ptr: np.ndarray,
            adj: np.ndarray, eps2: float, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """For each owned non-core row: ``comp[i]`` = the component of a core row within ``eps``
    (-1 if none); the other components within ``eps`` come back as (row, component) pairs
    (possibly repeated)."""
    extra_rows = np.empty(64, dtype=np.int64)
    extra_comps = np.empty(64, dtype=np.int64)
    n_extra = 0
    for a in range(start.shape[0] - 1):
        for i in range(start[a], start[a + 1]):
            if core[i] or not owned[i]:
                continue
            first = -1
            for t in range(adj_ptr[a], adj_ptr[a + 1]):
                b = adj[t]
                last = -1
                for j in range(start[b], start[b + 1]):
                    if not core[j]:
                        continue
                    c = comp[j]
                    if c == first or c == last or not _within(y, i, j, eps2):
                        continue
                    last = c
                    if first < 0:
                        first = c
                        continue
                    extra_rows = _push(extra_rows, n_extra, i)
                    extra_comps = _push(extra_comps, n_extra, c)
                    n_extra += 1
            comp[i] = first
    return extra_rows[:n_extra], extra_comps[:n_extra]


@numba.njit(nogil=True, cache=True)
def _comp_min(gidx: np.ndarray, comp: np.ndarray, core: np.ndarray, n_comps: int) -> np.ndarray:  # pragma: no cover
    out = np.full(n_comps, np.iinfo(np.int64).max, dtype=np.int64)
    for i in range(gidx.shape[0]):
        if core[i] and gidx[i] < out[comp[i]]:
            out[comp[i]] = gidx[i]
    return out


@dataclass(frozen=True)
class PartitionResult:
    """DBSCAN of one partition, in terms of its local components ``0 .. n_comps - 1``.

    owned : (m_owned, 3) int64, sorted by global row: global row, component (-1: none; for a
        non-core row, the component of one core row within ``eps``), core flag.
    ring : (r, 2) int64: global row and component of each core row of the ring (owned elsewhere).
    inner : (q, 2) int64: the same for the owned core rows within ``eps`` (and a margin) of the
        box's faces, which other partitions may see in their rings.
    comp_min : (n_comps,) int64, the smallest global row of each component's core rows.
    extra : (e, 2) int64, distinct (global row, component) pairs of owned non-core rows near
        more than one component (the components other than the one in ``owned``).
    cores : (c, d + 1) float64: coordinates and component of the core rows of box and ring
        (what a new point within ``eps`` of the box may be nearest to).
    """

    owned: np.ndarray
    ring: np.ndarray
    inner: np.ndarray
    comp_min: np.ndarray
    extra: np.ndarray
    cores: np.ndarray


def cluster_partition(y: np.ndarray, w: np.ndarray, gidx: np.ndarray, owned: np.ndarray, lo: np.ndarray,
                      hi: np.ndarray, eps: float, min_samples: float, margin: float) -> PartitionResult:
    """DBSCAN of one partition.

    Parameters
    ----------
    y : ndarray of shape (m, n_features), float64
        The partition's rows: its box and the rows within ``2 eps + margin`` of it.
    w : ndarray of shape (m,), float64
        Sample weights (ones when unweighted).
    gidx : ndarray of shape (m,), int64
        Global row of each row.
    owned : ndarray of shape (m,), bool
        Whether the row lies in the box (the partition owns it).
    lo, hi : ndarray of shape (n_features,)
        The box.
    eps, min_samples, margin : float
        DBSCAN's parameters; ``margin`` covers rounding at the box's faces.
    """
    m = y.shape[0]
    y = np.ascontiguousarray(y, dtype=np.float64)
    cells = grid_cells(y, eps)
    order = cells.order
    ys = np.ascontiguousarray(y[order])
    ws = np.ascontiguousarray(w[order], dtype=np.float64)
    gs = gidx[order]
    own = owned[order]
    # the ring: rows within eps of the box, whose neighbourhoods are all here
    need = np.all((ys >= lo - eps) & (ys <= hi + eps), axis=1) | own
    eps2 = eps * eps
    core = np.empty(m, dtype=np.bool_)
    monotone = bool(m == 0 or ws.min() >= 0)
    _core_flags(ys, ws, need, cells.start, cells.adj_ptr, cells.adj, eps2, float(min_samples), monotone,
                cells.exact_cells, core)
    comp = np.empty(m, dtype=np.int64)
    n_comps = _components(ys, core, cells.start, cells.adj_ptr, cells.adj, eps2, cells.exact_cells, comp)
    comp_min = _comp_min(gs, comp, core, n_comps)
    extra_rows, extra_comps = _border(ys, core, own, cells.start, cells.adj_ptr, cells.adj, eps2, comp)
    extra = np.unique(np.column_stack([gs[extra_rows], extra_comps]).reshape(-1, 2), axis=0)
    ring_rows = core & ~own
    finite_lo, finite_hi = np.isfinite(lo), np.isfinite(hi)
    near_face = np.any(finite_lo & (ys - lo <= eps + margin), axis=1) | np.any(finite_hi & (hi - ys <= eps + margin),
                                                                              axis=1)
    inner_rows = core & own & near_face
    owned_out = np.column_stack([gs[own], comp[own], core[own]]).astype(np.int64).reshape(-1, 3)
    owned_out = owned_out[np.argsort(owned_out[:, 0], kind="stable")]
    return PartitionResult(
        owned=owned_out,
        ring=np.column_stack([gs[ring_rows], comp[ring_rows]]).reshape(-1, 2),
        inner=np.column_stack([gs[inner_rows], comp[inner_rows]]).reshape(-1, 2),
        comp_min=comp_min,
        extra=extra.astype(np.int64),
        cores=np.column_stack([ys[core], comp[core].astype(np.float64)]).reshape(-1, y.shape[1] + 1),
    )


# --------------------------------------------------------------------------- the partitions' tasks


@dataclass(frozen=True)
class BoxParams:
    """What DBSCAN of one partition needs besides its rows: the partitions (``plan``), ``eps``,
    ``min_samples``, and ``margin``, which covers rounding at the boxes' faces; a partition
    holds the rows within ``halo = 2 eps + margin`` of its box."""

    plan: KdPlan
    eps: float
    min_samples: float
    margin: float

    @property
    def halo(self) -> float:
        return 2 * self.eps + self.margin


def route_to_boxes(x: np.ndarray, params: BoxParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (row, partition, owned) triples of ``x`` (n, d) for its box and every box within the
    halo (:func:`route_rows`)."""
    return route_rows(x, params.plan, params.halo)


@dataclass(frozen=True)
class BorderGraph:
    """What the client's merge needs of a partition: ``ring``, ``inner``, ``comp_min`` and
    ``extra`` of its :class:`PartitionResult`."""

    ring: np.ndarray
    inner: np.ndarray
    comp_min: np.ndarray
    extra: np.ndarray


def cluster_box(p: int, y: np.ndarray, w: np.ndarray, gidx: np.ndarray, owned: np.ndarray,
                params: BoxParams) -> tuple[np.ndarray, dict[str, np.ndarray], BorderGraph]:
    """DBSCAN of partition ``p`` (:func:`cluster_partition` in box ``p``): its owned rows'
    results (``PartitionResult.owned``), its core rows to keep (``"cores"``) and its border graph."""
    result = cluster_partition(y, w, gidx, owned, params.plan.lo[p], params.plan.hi[p], params.eps,
                               params.min_samples, params.margin)
    return result.owned, {"cores": result.cores}, BorderGraph(result.ring, result.inner, result.comp_min,
                                                              result.extra)


def core_rows(owned: np.ndarray) -> np.ndarray:
    """The global rows of the core rows among rows of a ``PartitionResult.owned``."""
    return owned[owned[:, 2] > 0, 0]


@dataclass(frozen=True)
class Labeling:
    """The clusters of the partitions' components (the client's merge): ``node_start``
    (n_partitions,) the first global node of each partition's components and ``node_label``
    (n_nodes,) their cluster; ``extra`` (e, 2) (global row, cluster) of border rows near several
    clusters, sorted by row."""

    node_start: np.ndarray
    node_label: np.ndarray
    extra: np.ndarray


def chunk_labels(n_rows: int, start: int, owned: list[tuple[int, np.ndarray]], labeling: Labeling) -> np.ndarray:
    """``labels_`` of the input chunk of ``n_rows`` rows from global row ``start`` (n_rows,),
    int64, from ``(p, rows)`` of the partitions owning them (rows of ``PartitionResult.owned``):
    the cluster of a core row's component; for a border row the smallest cluster among the core
    rows within ``eps`` (the cluster scikit-learn's breadth-first search reaches first); -1 for
    noise."""
    labels = np.full(n_rows, -1, dtype=np.int64)
    for p, rows in owned:
        has = rows[:, 1] >= 0
        labels[rows[has, 0] - start] = labeling.node_label[labeling.node_start[p] + rows[has, 1]]
    extra = labeling.extra
    a, b = np.searchsorted(extra[:, 0], [start, start + n_rows])
    if b > a:
        np.minimum.at(labels, extra[a:b, 0] - start, extra[a:b, 1])
    return labels


def labeled_cores(p: int, cores: np.ndarray, labeling: Labeling) -> np.ndarray:
    """Partition ``p``'s core rows (``PartitionResult.cores``) with their cluster in the last
    column instead of their component (in place)."""
    cores[:, -1] = labeling.node_label[labeling.node_start[p] + cores[:, -1].astype(np.int64)]
    return cores


def check_cores(cores: object, plan: KdPlan) -> None:
    """Refuse core samples that do not match the plan (read back from a damaged model file)."""
    width = plan.lo.shape[1] + 1
    if not isinstance(cores, (list, tuple)) or len(cores) != plan.n_partitions or not all(
            isinstance(c, np.ndarray) and c.dtype == np.float64 and c.ndim == 2 and c.shape[1] == width
            for c in cores):
        raise InvalidDataError(
            f"DBSCAN's core samples do not match its {plan.n_partitions} partitions of "
            f"{width - 1} features: the model was damaged or crafted. Fit the model again.")


@dataclass(frozen=True)
class PredictParams:
    """``cores``: each partition's core rows (box and ring) with their cluster last, (c, d + 1)
    float64, as a list (checked by :func:`check_cores`) or a sequence reading them when indexed."""

    plan: KdPlan
    cores: Sequence[np.ndarray]
    eps: float
    affine: Affine


def predict_block(block: np.ndarray, params: PredictParams, chunk: ChunkInfo) -> np.ndarray:
    """The cluster of each row's nearest core sample within ``eps``, else -1 (n_rows,), int64:
    a row is looked up among the core rows of the box owning it."""
    from scipy.spatial import cKDTree

    x = params.affine.apply(np.array(block, dtype=np.float64))
    labels = np.full(len(x), -1, dtype=np.int64)
    if not len(x):
        return labels
    owner = owner_of(x, params.plan)
    for p in np.unique(owner):
        cores = params.cores[int(p)]
        if not len(cores):
            continue
        sel = np.flatnonzero(owner == p)
        dist, nearest = cKDTree(cores[:, :-1]).query(x[sel], k=1)
        hit = dist <= params.eps
        labels[sel[hit]] = cores[nearest[hit], -1].astype(np.int64)
    return labels


# --------------------------------------------------------------------------- the first pass


@dataclass(frozen=True)
class ScanParams:
    """``affine``: the scaling of the data; ``n_samples`` and ``sample_rows``: about
    ``sample_rows`` rows are drawn over all chunks, in proportion to their lengths."""

    affine: Affine
    n_samples: int
    sample_rows: int


@dataclass(frozen=True)
class Scan:
    """Bounds (d,) of the rows, a sample (s, d) of them, float64, and whether a weight is not 0."""

    lo: np.ndarray
    hi: np.ndarray
    sample: np.ndarray
    nonzero_weight: bool


def scan_kernel(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, params: ScanParams) -> Scan:
    """Check that the chunk's rows and weights are finite (naming the first bad row), and
    return their bounds and a sample drawn with the chunk's own seed."""
    x = params.affine.apply(np.array(block, dtype=np.float64))
    sq = np.einsum("ij,ij->i", x, x)
    check_finite_rows(x, sq, chunk, 0)
    if weights is not None and not np.isfinite(weights).all():
        row = int(np.flatnonzero(~np.isfinite(weights))[0])
        raise InvalidDataError(
            f"sample_weight contains a non-finite value ({float(weights[row])!r}) at row {chunk.start + row}; "
            "give finite weights.")
    n = x.shape[0]
    if n == 0:
        d = x.shape[1]
        return Scan(np.full(d, np.inf), np.full(d, -np.inf), np.zeros((0, d)), False)
    rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(chunk.index,)))
    take = min(n, -(-params.sample_rows * n // max(params.n_samples, 1)))
    sample = x[np.sort(rng.choice(n, size=take, replace=False))]
    return Scan(x.min(axis=0), x.max(axis=0), sample, weights is None or bool(np.any(weights != 0)))


def combine_scans(parts: list[Scan]) -> Scan:
    return Scan(np.min([p.lo for p in parts], axis=0), np.max([p.hi for p in parts], axis=0),
                np.concatenate([p.sample for p in parts]), any(p.nonzero_weight for p in parts))
