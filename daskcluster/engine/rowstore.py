"""Rows kept beside the data on disk: a temporary Zarr store of one block per chunk, by generation.

An iterative factorization keeps a per-row factor (NMF's ``W``, n_samples x n_components)
beside the data. When the data stream from their source on every pass (``cache=False``, or
data larger than memory), that factor does not stay in cluster memory either: each pass writes
its new rows to a Zarr group of its own, one array per row chunk (so that chunks of any sizes
are written by their own tasks, never two tasks into one Zarr chunk), and the next pass reads
them back beside the data (:func:`~daskcluster.engine.tree_reduce_rows` with ``n_columns=0``).
The caller keeps only the generations it still reads and removes the whole folder at the end.

The folder must be reachable by every worker (a shared file system on a multi-machine
cluster); it defaults to Dask's ``temporary-directory`` setting, else the system's temporary
folder (:func:`daskcluster.atomic.scratch_dir`, which also removes the folders of dead runs).

The functions run on the workers: :func:`store_rows` (a pass's kernel that writes its rows)
and the reads of :meth:`RowStore.array`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import zarr

from .. import atomic
from ..data import RowData
from ..kernels.blocks import ChunkInfo
from .arrays import generated_rows


def write_block(path: str, index: int, rows: np.ndarray) -> None:
    """Write one chunk's rows, shape (n_rows, n_columns), as the array ``index`` of the Zarr
    group at ``path`` (uncompressed, one Zarr chunk)."""
    n, k = rows.shape
    array = zarr.create_array(
        store=os.path.join(path, str(index)),
        shape=(n, k),
        chunks=(max(n, 1), max(k, 1)),
        dtype=rows.dtype,
        compressors=None,
        overwrite=True,
    )
    if n:
        array[...] = rows


def read_block(path: str, index: int) -> np.ndarray:
    """The rows written by :func:`write_block` for chunk ``index``."""
    return np.asarray(zarr.open_array(os.path.join(path, str(index)), mode="r")[...])


def _read_rows(n: int, path: str, chunk: ChunkInfo) -> np.ndarray:
    return read_block(path, chunk.index)


@dataclass(frozen=True)
class StoredRows:
    """Parameters of a pass whose rows go to the store: the rows kernel, its parameters, and
    the generation's path (:meth:`RowStore.generation`).

    Attributes
    ----------
    kernel : callable
        ``kernel(block, aligned, chunk, params) -> (rows, stats)``, a
        :func:`~daskcluster.engine.tree_reduce_rows` kernel (module-level: sent to the workers).
    params : object
    path : str
    """

    kernel: Callable[..., tuple[np.ndarray, Any]]
    params: Any
    path: str


def store_rows(block: Any, aligned: tuple[np.ndarray, ...], chunk: ChunkInfo, params: StoredRows) -> tuple[np.ndarray, Any]:
    """``params.kernel`` on one chunk, its new rows written to the store and none returned.

    The :func:`~daskcluster.engine.tree_reduce_rows` kernel of a pass with ``n_columns=0``:
    returns the rows' zero columns (shape (n_rows, 0)) and the kernel's statistics.
    """
    rows, stats = params.kernel(block, aligned, chunk, params.params)
    write_block(params.path, chunk.index, rows)
    return rows[:, :0], stats


class RowStore:
    """A temporary folder of Zarr groups, one per generation of rows chunked like the data.

    Parameters
    ----------
    data : RowData
        The rows of every generation are chunked like ``data``.
    n_columns : int
    dtype : numpy dtype
    folder : str or path-like, optional
        Parent folder of the temporary folder (default: Dask's ``temporary-directory``, else
        the system's).
    prefix : str, default='daskcluster-rows'
        Name of the temporary folder (``.<prefix>.tmp-<host>.<pid>.<random>``).
    label : str, default='stored-rows'
        Graph label of the arrays read back.
    """

    def __init__(self, data: RowData, n_columns: int, dtype: np.dtype, folder: str | os.PathLike[str] | None = None,
                 *, prefix: str = "daskcluster-rows", label: str = "stored-rows") -> None:
        self.path = atomic.scratch_dir(prefix, folder)
        self.chunks = data.array.chunks[0]
        self.n_columns = n_columns
        self.dtype = np.dtype(dtype)
        self.label = label

    def generation(self, t: int) -> str:
        """Create the (empty) Zarr group of generation ``t`` and return its path."""
        path = os.path.join(self.path, f"W{t}.zarr")
        zarr.open_group(path, mode="w")
        return path

    def array(self, t: int) -> da.Array:
        """Generation ``t`` as a Dask array (n_samples, n_columns) chunked like the data; each
        chunk is read by its own task."""
        path = os.path.join(self.path, f"W{t}.zarr")
        return generated_rows(self.chunks, _read_rows, (path,), dtype=self.dtype, n_columns=self.n_columns,
                              label=self.label)

    def remove(self, t: int) -> None:
        """Delete generation ``t`` (no error if it does not exist)."""
        shutil.rmtree(os.path.join(self.path, f"W{t}.zarr"), ignore_errors=True)

    def close(self) -> None:
        """Delete the whole temporary folder."""
        shutil.rmtree(self.path, ignore_errors=True)
