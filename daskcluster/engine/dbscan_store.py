"""DBSCAN's partitions on disk: the folder a fit works in, and the tasks that read and write it.

A fit (:class:`daskcluster.cluster.DBSCAN`) routes every row of every chunk to the partitions
whose boxes (widened by the halo) hold it, and writes them as one file per chunk, rows grouped
by partition (``stage-<chunk>.npy``); each partition's task then reads its slice of every
chunk's file, so memory holds the partitions in flight, never the data. The partition tasks
write their owned rows' results (``part-<p>.npy``: global row, component, core flag; sorted by
row) and their core rows (``cores-<p>.npy``); labels, core sample indices and components are
then made per input chunk from those files. Files are written atomically
(:mod:`daskcluster.atomic`) and read with ``allow_pickle=False``. The numerical parts (routing
a row to its boxes, clustering one box, finding a row's box) are the kernels of
:mod:`daskcluster.kernels.dbscan`; the client's side (the plan, the merge of the partitions'
border graphs) stays with the estimator.

The folder must be reachable by every worker (a shared file system on a multi-machine
cluster); it defaults to Dask's ``temporary-directory`` setting, else the system's temporary
folder (:func:`daskcluster.atomic.scratch_dir`). A fit on in-memory data removes it at the end;
a fit on lazy data keeps it as long as something reads it -- the lazy ``labels_``,
``core_sample_indices_``, ``components_``, a lazy ``predict``, or the estimator -- and removes
it when the last of them is garbage-collected (or the process exits).

The functions run on the workers: :func:`stage_kernel` (a pass's kernel), :func:`partition_task`
(one per partition, run by :func:`run_partitions`), the per-chunk outputs :func:`label_block`,
:func:`core_block` and :func:`components_block`, and :func:`predict_block`.
"""

from __future__ import annotations

import logging
import os
import shutil
import weakref
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np

from .. import atomic
from ..errors import InvalidDataError
from ..kernels.blocks import Affine, ChunkInfo
from ..kernels.dbscan import (
    KdPlan,
    PartitionResult,
    cluster_partition,
    owner_of,
    route_rows,
)

logger = logging.getLogger(__name__)

def save(path: str, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` at ``path``, atomically."""
    with atomic.atomic_file(path) as handle:
        np.save(handle, array, allow_pickle=False)


def load(path: str, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of the ``.npy`` file at ``path`` (only those are read)."""
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    return np.array(mapped[start:stop])


class Store:
    """A new folder for one fit, under ``folder`` (default: Dask's ``temporary-directory``,
    else the system's)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.path = atomic.scratch_dir("daskcluster-dbscan", folder)
        logger.info("DBSCAN works in the temporary folder %s", self.path)

    def remove_staged(self) -> None:
        """Delete the rows routed to the partitions (their results stay)."""
        for name in os.listdir(self.path):
            if name.startswith("stage-"):
                os.remove(os.path.join(self.path, name))

    def close(self) -> None:
        """Delete the folder."""
        shutil.rmtree(self.path, ignore_errors=True)

    def keep_with(self, owner: object) -> None:
        """Delete the folder when ``owner`` is garbage-collected (or the process exits)."""
        weakref.finalize(owner, shutil.rmtree, self.path, True)


# --------------------------------------------------------------------------- staging (one pass)


@dataclass(frozen=True)
class StageParams:
    plan: KdPlan
    halo: float
    affine: Affine
    path: str


def as_float64(block: np.ndarray, affine: Affine) -> np.ndarray:
    """The block in float64 with the scaling applied (a copy)."""
    return affine.apply(np.array(block, dtype=np.float64))


def stage_kernel(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo,
                 params: StageParams) -> list[tuple[int, np.ndarray]]:
    """Route the chunk's rows to the partitions and write them as ``stage-<chunk>.npy``:
    columns ``x (d), global row, owned, weight``, grouped by partition. Returns
    ``[(chunk index, offsets)]``, ``offsets`` (n_partitions + 1,) bounding each partition's rows."""
    x = as_float64(block, params.affine)
    rows, parts, owned = route_rows(x, params.plan, params.halo)
    w = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=np.float64)[rows]
    table = np.column_stack([x[rows], (rows + chunk.start).astype(np.float64), owned.astype(np.float64), w])
    save(os.path.join(params.path, f"stage-{chunk.index}.npy"), table)
    offsets = np.searchsorted(parts, np.arange(params.plan.n_partitions + 1))
    return [(chunk.index, offsets)]


def concat_lists(parts: list[list[Any]]) -> list[Any]:
    return [item for part in parts for item in part]


# --------------------------------------------------------------------------- partitions


@dataclass(frozen=True)
class PartitionParams:
    plan: KdPlan
    offsets: np.ndarray  # (n_chunks, n_partitions + 1): each partition's rows in each staged chunk
    bounds: np.ndarray  # (n_chunks + 1,): global row bounds of the input chunks
    eps: float
    min_samples: float
    margin: float
    path: str


@dataclass(frozen=True)
class PartitionSummary:
    """What the client needs of a partition: the border graph and numbering (see
    :class:`~daskcluster.kernels.dbscan.PartitionResult`), and where its owned rows fall in
    the input chunks: ``chunk_offsets`` (n_chunks + 1,) into ``part-<p>.npy``, ``n_core``
    (n_chunks,) core rows per input chunk."""

    ring: np.ndarray
    inner: np.ndarray
    comp_min: np.ndarray
    extra: np.ndarray
    chunk_offsets: np.ndarray
    n_core: np.ndarray


def partition_task(p: int, params: PartitionParams) -> PartitionSummary:
    """Read partition ``p``'s rows from every staged chunk, cluster them, write the results."""
    pieces = [load(os.path.join(params.path, f"stage-{c}.npy"), int(a), int(b))
              for c, (a, b) in enumerate(zip(params.offsets[:, p], params.offsets[:, p + 1])) if b > a]
    d = params.plan.lo.shape[1]
    table = np.concatenate(pieces) if pieces else np.zeros((0, d + 3))
    result: PartitionResult = cluster_partition(
        table[:, :d], table[:, d + 2], table[:, d].astype(np.int64), table[:, d + 1] > 0,
        params.plan.lo[p], params.plan.hi[p], params.eps, params.min_samples, params.margin)
    save(os.path.join(params.path, f"part-{p}.npy"), result.owned)
    save(os.path.join(params.path, f"cores-{p}.npy"), result.cores)
    chunk_offsets = np.searchsorted(result.owned[:, 0], params.bounds)
    core_cum = np.concatenate([[0], np.cumsum(result.owned[:, 2])])
    return PartitionSummary(result.ring, result.inner, result.comp_min, result.extra, chunk_offsets,
                            np.diff(core_cum[chunk_offsets]))


def run_partitions(params: PartitionParams) -> list[PartitionSummary]:
    """Every partition's task, on the scheduler in use; the summaries in partition order."""
    tasks = [dask.delayed(partition_task, pure=True)(p, params, dask_key_name=f"dbscan-partition-{p}-{params.path}")
             for p in range(params.plan.n_partitions)]
    return list(dask.compute(*tasks))


# --------------------------------------------------------------------------- outputs per input chunk


@dataclass(frozen=True)
class Outputs:
    """Where the fitted results are: ``chunk_offsets`` (n_partitions, n_chunks + 1) into each
    ``part-<p>.npy``; ``node_start`` (n_partitions,) the first global node of each partition's
    components and ``node_label`` their cluster; ``extra`` (e, 2) (global row, cluster) of
    border rows near several clusters, sorted by row."""

    path: str
    chunk_offsets: np.ndarray
    node_start: np.ndarray
    node_label: np.ndarray
    extra: np.ndarray


def _owned_rows(out: Outputs, chunk: ChunkInfo) -> list[tuple[int, np.ndarray]]:
    j = chunk.index
    return [(p, load(os.path.join(out.path, f"part-{p}.npy"), int(a), int(b)))
            for p, (a, b) in enumerate(zip(out.chunk_offsets[:, j], out.chunk_offsets[:, j + 1])) if b > a]


def label_block(n_rows: int, out: Outputs, chunk: ChunkInfo) -> np.ndarray:
    """``labels_`` of one input chunk (n_rows,), int64: the cluster of a core row's component;
    for a border row the smallest cluster among the core rows within ``eps`` (the cluster
    scikit-learn's breadth-first search reaches first); -1 for noise."""
    labels = np.full(n_rows, -1, dtype=np.int64)
    for p, rows in _owned_rows(out, chunk):
        has = rows[:, 1] >= 0
        labels[rows[has, 0] - chunk.start] = out.node_label[out.node_start[p] + rows[has, 1]]
    a, b = np.searchsorted(out.extra[:, 0], [chunk.start, chunk.start + n_rows])
    if b > a:
        np.minimum.at(labels, out.extra[a:b, 0] - chunk.start, out.extra[a:b, 1])
    return labels


def core_block(n_rows: int, out: Outputs, chunk: ChunkInfo) -> np.ndarray:
    """The global rows of one input chunk's core samples, ascending (n_rows,), int64."""
    cores = _core_rows(out, chunk)
    if len(cores) != n_rows:
        raise RuntimeError(f"DBSCAN's results for chunk {chunk.index} hold {len(cores)} core rows; expected {n_rows}.")
    return cores.astype(np.int64)


def components_block(block: np.ndarray, out: Outputs, affine: Affine, dtype: np.dtype,
                     block_info: dict[Any, Any] | None = None) -> np.ndarray:
    """The core rows of one input chunk (its ``components_``), in ``dtype`` with the scaling."""
    assert block_info is not None
    where = block_info[0]
    chunk = ChunkInfo(where["chunk-location"][0], where["array-location"][0][0])
    rows = _core_rows(out, chunk)
    return affine.apply(np.array(block[rows - chunk.start], dtype=dtype))


def _core_rows(out: Outputs, chunk: ChunkInfo) -> np.ndarray:
    found = [rows[rows[:, 2] > 0, 0] for _, rows in _owned_rows(out, chunk)]
    return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def read_cores(path: str, plan: KdPlan, node_start: np.ndarray, node_label: np.ndarray) -> list[np.ndarray]:
    """Each partition's core rows (box and ring) with their cluster: (c, d + 1) float64."""
    out = []
    for p in range(plan.n_partitions):
        cores = load(os.path.join(path, f"cores-{p}.npy"))
        cores[:, -1] = node_label[node_start[p] + cores[:, -1].astype(np.int64)]
        out.append(cores)
    return out


# --------------------------------------------------------------------------- predict (one pass)


@dataclass(frozen=True)
class PredictParams:
    """``cores`` is the list of :func:`read_cores`, or the fit's :class:`Outputs` to read it from."""

    plan: KdPlan
    cores: list[np.ndarray] | Outputs
    eps: float
    affine: Affine

    def __post_init__(self) -> None:
        """Refuse core samples that do not match the plan (read back from a damaged model file)."""
        if isinstance(self.cores, Outputs):
            return
        width = self.plan.lo.shape[1] + 1
        if len(self.cores) != self.plan.n_partitions or not all(
                isinstance(c, np.ndarray) and c.dtype == np.float64 and c.ndim == 2 and c.shape[1] == width
                for c in self.cores):
            raise InvalidDataError(
                f"DBSCAN's core samples do not match its {self.plan.n_partitions} partitions of "
                f"{width - 1} features: the model was damaged or crafted. Fit the model again.")


def predict_block(block: np.ndarray, params: PredictParams, chunk: ChunkInfo) -> np.ndarray:
    """The cluster of each row's nearest core sample within ``eps``, else -1 (n_rows,), int64."""
    from scipy.spatial import cKDTree

    x = as_float64(block, params.affine)
    labels = np.full(len(x), -1, dtype=np.int64)
    if not len(x):
        return labels
    owner = owner_of(x, params.plan)
    for p in np.unique(owner):
        if isinstance(params.cores, Outputs):
            out = params.cores
            cores = load(os.path.join(out.path, f"cores-{p}.npy"))
            cores[:, -1] = out.node_label[out.node_start[p] + cores[:, -1].astype(np.int64)]
        else:
            cores = params.cores[p]
        if not len(cores):
            continue
        sel = np.flatnonzero(owner == p)
        dist, nearest = cKDTree(cores[:, :-1]).query(x[sel], k=1)
        hit = dist <= params.eps
        labels[sel[hit]] = cores[nearest[hit], -1].astype(np.int64)
    return labels
