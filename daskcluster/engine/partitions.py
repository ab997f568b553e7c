"""Rows staged on disk per partition: the folder a fit works in, and the tasks that read and write it.

An algorithm that works on partitions of the rows (DBSCAN's spatial boxes) gives this module
its functions, and this module runs them on the workers, so that memory holds the partitions
in flight, never the data:

1. **Stage** (one pass, :func:`stage_kernel`): a given function routes every row of a chunk to
   the partitions that need it (one of them owns it); the rows are written as one file per
   chunk, grouped by partition (``stage-<chunk>.npy``: columns ``x (d), global row, owned,
   weight``).
2. **Partitions** (one task each, :func:`run_partitions`): a task reads its slice of every
   chunk's file and hands the rows to a given function, which returns the results of the rows
   the partition owns (``rows-<p>.npy``: global row first, sorted by it), further arrays to keep
   (``<name>-<p>.npy``, read back whole by :class:`PartitionFiles`) and a small summary for the
   client.
3. **Outputs per input chunk**: each input chunk's slices of the partitions' ``rows-<p>.npy``
   are read back and made into a block by a given function (:func:`chunk_block`), or a given
   selection of them (:func:`selected_block`, :func:`selected_data_block`: the global rows
   selected, and those rows of the data).

Files are written atomically (:mod:`daskcluster.atomic`) and read with ``allow_pickle=False``.
The given functions are module-level functions of the kernels (picklable by reference), each
with its parameters, as :func:`~daskcluster.engine.tree_reduce` takes a kernel and its params.

The folder (:class:`Store`) must be reachable by every worker (a shared file system on a
multi-machine cluster); it defaults to Dask's ``temporary-directory`` setting, else the
system's temporary folder (:func:`daskcluster.atomic.scratch_dir`). It is removed by
:meth:`Store.close`, or kept as long as an object reads it (:meth:`Store.keep_with`: the
:class:`Outputs` that lazy arrays and :class:`PartitionFiles` hold) and removed when that
object is garbage-collected (or the process exits).
"""

from __future__ import annotations

import logging
import os
import shutil
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

import dask
import numpy as np

from .. import atomic
from ..kernels.blocks import Affine, ChunkInfo

logger = logging.getLogger(__name__)

#: ``route(x, params) -> (rows, parts, owned)``: the (row, partition, owned) triples of the
#: float64 rows ``x`` (n, d), sorted by partition; each row is owned by exactly one partition.
Route = Callable[[np.ndarray, Any], tuple[np.ndarray, np.ndarray, np.ndarray]]

#: ``work(p, x, w, rows, owned, params) -> (results, kept, summary)``: partition ``p``'s rows
#: ``x`` (m, d) float64, weights ``w`` (m,), global rows (m,) int64 and owned flags (m,) bool
#: give ``results`` (k, c) int64 of the owned rows (global row first, sorted by it), ``kept``
#: the arrays to write by name, and ``summary`` (anything small) for the client.
Work = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any],
                tuple[np.ndarray, dict[str, np.ndarray], Any]]

#: ``select(results) -> rows``: the selected global rows of some rows of a ``results`` array.
Select = Callable[[np.ndarray], np.ndarray]


def save(path: str, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` at ``path``, atomically."""
    with atomic.atomic_file(path) as handle:
        np.save(handle, array, allow_pickle=False)


def load(path: str, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of the ``.npy`` file at ``path`` (only those are read)."""
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    return np.array(mapped[start:stop])


class Store:
    """A new folder for one fit, named after ``name``, under ``folder`` (default: Dask's
    ``temporary-directory``, else the system's)."""

    def __init__(self, name: str, folder: str | os.PathLike[str] | None = None) -> None:
        self.path = atomic.scratch_dir(name, folder)
        logger.info("%s works in the temporary folder %s", name, self.path)

    def remove_staged(self) -> None:
        """Delete the rows staged per partition (the partitions' results stay)."""
        for name in os.listdir(self.path):
            if name.startswith("stage-"):
                os.remove(os.path.join(self.path, name))

    def close(self) -> None:
        """Delete the folder."""
        shutil.rmtree(self.path, ignore_errors=True)

    def keep_with(self, owner: object) -> None:
        """Delete the folder when ``owner`` is garbage-collected (or the process exits)."""
        weakref.finalize(owner, shutil.rmtree, self.path, True)


def as_float64(block: np.ndarray, affine: Affine) -> np.ndarray:
    """The block in float64 with the scaling applied (a copy)."""
    return affine.apply(np.array(block, dtype=np.float64))


# --------------------------------------------------------------------------- staging (one pass)


@dataclass(frozen=True)
class StageParams:
    """``route`` with its ``route_params`` (see :data:`Route`), into ``n_partitions``
    partitions; the data's scaling, and the store's folder."""

    route: Route
    route_params: Any
    n_partitions: int
    affine: Affine
    path: str


def stage_kernel(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo,
                 params: StageParams) -> list[tuple[int, np.ndarray]]:
    """Route the chunk's rows to the partitions and write them as ``stage-<chunk>.npy``:
    columns ``x (d), global row, owned, weight``, grouped by partition. Returns
    ``[(chunk index, offsets)]``, ``offsets`` (n_partitions + 1,) bounding each partition's rows."""
    x = as_float64(block, params.affine)
    rows, parts, owned = params.route(x, params.route_params)
    w = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=np.float64)[rows]
    table = np.column_stack([x[rows], (rows + chunk.start).astype(np.float64), owned.astype(np.float64), w])
    save(os.path.join(params.path, f"stage-{chunk.index}.npy"), table)
    offsets = np.searchsorted(parts, np.arange(params.n_partitions + 1))
    return [(chunk.index, offsets)]


def concat_lists(parts: list[list[Any]]) -> list[Any]:
    return [item for part in parts for item in part]


# --------------------------------------------------------------------------- partitions


@dataclass(frozen=True)
class PartitionParams:
    """``work`` with its ``work_params`` (see :data:`Work`) and ``select`` (see :data:`Select`);
    the staged chunks' ``offsets`` (n_chunks, n_partitions + 1), each partition's rows in each;
    ``bounds`` (n_chunks + 1,), the global row bounds of the input chunks; the rows'
    ``n_features``; the store's folder."""

    work: Work
    work_params: Any
    select: Select
    offsets: np.ndarray
    bounds: np.ndarray
    n_features: int
    path: str

    @property
    def n_partitions(self) -> int:
        return int(self.offsets.shape[1]) - 1


@dataclass(frozen=True)
class PartitionSummary:
    """What the client gets of a partition: the work's ``summary``, and where its owned rows
    fall in the input chunks: ``chunk_offsets`` (n_chunks + 1,) into ``rows-<p>.npy``,
    ``n_selected`` (n_chunks,) the rows ``select`` picks in each input chunk."""

    summary: Any
    chunk_offsets: np.ndarray
    n_selected: np.ndarray


def partition_task(p: int, params: PartitionParams) -> PartitionSummary:
    """Read partition ``p``'s rows from every staged chunk, run the work, write its results."""
    pieces = [load(os.path.join(params.path, f"stage-{c}.npy"), int(a), int(b))
              for c, (a, b) in enumerate(zip(params.offsets[:, p], params.offsets[:, p + 1])) if b > a]
    d = params.n_features
    table = np.concatenate(pieces) if pieces else np.zeros((0, d + 3))
    results, kept, summary = params.work(p, table[:, :d], table[:, d + 2], table[:, d].astype(np.int64),
                                         table[:, d + 1] > 0, params.work_params)
    save(os.path.join(params.path, f"rows-{p}.npy"), results)
    for name, array in kept.items():
        save(os.path.join(params.path, f"{name}-{p}.npy"), array)
    chunk_offsets = np.searchsorted(results[:, 0], params.bounds)
    n_selected = np.array([len(params.select(results[a:b])) for a, b in zip(chunk_offsets[:-1], chunk_offsets[1:])],
                          dtype=np.int64)
    return PartitionSummary(summary, chunk_offsets, n_selected)


def run_partitions(params: PartitionParams, label: str) -> list[PartitionSummary]:
    """Every partition's task (keys ``<label>-partition-<p>-<folder>``), on the scheduler in
    use; the summaries in partition order."""
    tasks = [dask.delayed(partition_task, pure=True)(p, params, dask_key_name=f"{label}-partition-{p}-{params.path}")
             for p in range(params.n_partitions)]
    return list(dask.compute(*tasks))


# --------------------------------------------------------------------------- outputs per input chunk


@dataclass(frozen=True)
class Outputs:
    """Where the partitions' results are: the store's folder; ``chunk_offsets`` (n_partitions,
    n_chunks + 1) into each ``rows-<p>.npy``; ``select`` (see :data:`Select`)."""

    path: str
    chunk_offsets: np.ndarray
    select: Select

    @classmethod
    def of(cls, params: PartitionParams, summaries: Sequence[PartitionSummary]) -> Outputs:
        """The outputs of :func:`run_partitions`'s summaries."""
        return cls(params.path, np.stack([s.chunk_offsets for s in summaries]), params.select)

    @property
    def n_partitions(self) -> int:
        return int(self.chunk_offsets.shape[0])


def owned_rows(out: Outputs, chunk: ChunkInfo) -> list[tuple[int, np.ndarray]]:
    """``(p, results)`` of each partition owning rows of the input chunk: its rows of ``rows-<p>.npy``."""
    j = chunk.index
    return [(p, load(os.path.join(out.path, f"rows-{p}.npy"), int(a), int(b)))
            for p, (a, b) in enumerate(zip(out.chunk_offsets[:, j], out.chunk_offsets[:, j + 1])) if b > a]


def chunk_block(n_rows: int, build: Callable[[int, int, list[tuple[int, np.ndarray]], Any], np.ndarray],
                build_params: Any, out: Outputs, chunk: ChunkInfo) -> np.ndarray:
    """One input chunk's block of an output: ``build(n_rows, chunk.start, owned_rows(out, chunk), build_params)``."""
    return build(n_rows, chunk.start, owned_rows(out, chunk), build_params)


def _selected_rows(out: Outputs, chunk: ChunkInfo) -> np.ndarray:
    found = [out.select(results) for _, results in owned_rows(out, chunk)]
    return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def selected_block(n_rows: int, out: Outputs, chunk: ChunkInfo) -> np.ndarray:
    """The global rows of one input chunk that ``out.select`` picks, ascending (n_rows,), int64."""
    rows = _selected_rows(out, chunk)
    if len(rows) != n_rows:
        raise RuntimeError(f"The partitions' results for chunk {chunk.index} select {len(rows)} rows; "
                           f"expected {n_rows}.")
    return rows.astype(np.int64)


def selected_data_block(block: np.ndarray, out: Outputs, affine: Affine, dtype: np.dtype,
                        block_info: dict[Any, Any] | None = None) -> np.ndarray:
    """The rows of one input chunk that ``out.select`` picks, in ``dtype`` with the scaling."""
    assert block_info is not None
    where = block_info[0]
    chunk = ChunkInfo(where["chunk-location"][0], where["array-location"][0][0])
    rows = _selected_rows(out, chunk)
    return affine.apply(np.array(block[rows - chunk.start], dtype=dtype))


class PartitionFiles(Sequence[np.ndarray]):
    """The arrays a partition's work kept under ``name`` (``<name>-<p>.npy``), one a partition,
    each read when indexed and passed through ``transform(p, array, transform_params)`` if
    given. It holds ``out``, so the folder stays while it is referenced."""

    def __init__(self, out: Outputs, name: str,
                 transform: Callable[[int, np.ndarray, Any], np.ndarray] | None = None,
                 transform_params: Any = None) -> None:
        self.out, self.name = out, name
        self.transform, self.transform_params = transform, transform_params

    @property
    def path(self) -> str:
        """The store's folder."""
        return self.out.path

    def __len__(self) -> int:
        return self.out.n_partitions

    @overload
    def __getitem__(self, p: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, p: slice) -> list[np.ndarray]: ...

    def __getitem__(self, p: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(p, slice):
            return [self[i] for i in range(*p.indices(len(self)))]
        if not 0 <= p < len(self):
            raise IndexError(p)
        array = load(os.path.join(self.out.path, f"{self.name}-{p}.npy"))
        return array if self.transform is None else self.transform(int(p), array, self.transform_params)
