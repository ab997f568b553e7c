"""Where NMF keeps ``W`` when it does not stay in memory: a temporary Zarr store.

When the data stream from their source on every pass (``cache=False``, or data larger than
memory), the per-row factor ``W`` (n_samples x n_components) does not stay in cluster memory
either. Each iteration's pass writes the new ``W`` into a Zarr group of its own, one array per
row chunk (so that chunks of any sizes are written by their own tasks, never two tasks into one
Zarr chunk), and the next pass reads it back beside the data. Only the two latest generations
exist at a time; the whole folder is removed when the fit ends, whatever happens.

The folder must be reachable by every worker (a shared file system on a multi-machine
cluster); it defaults to Dask's ``temporary-directory`` setting, else the system's temporary
folder.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass

import dask.array as da
import numpy as np
import zarr

from .. import atomic
from ..data import RowData
from ..engine import generated_rows
from ..kernels.blocks import ChunkInfo
from ..kernels.nmf import StepParams, StepStats, mu_step_kernel

logger = logging.getLogger(__name__)


def write_block(path: str, index: int, rows: np.ndarray) -> None:
    """Write one chunk's rows as the array ``index`` of the Zarr group at ``path``."""
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
class StoredStep:
    """Parameters of an iteration whose new ``W`` goes to the Zarr group at ``path``."""

    step: StepParams
    path: str


def mu_step_to_store(
    block: np.ndarray, aligned: tuple[np.ndarray, ...], chunk: ChunkInfo, params: StoredStep
) -> tuple[np.ndarray, StepStats]:
    """:func:`~daskcluster.kernels.nmf.mu_step_kernel`, writing the new rows to the store and
    returning none of them (zero columns), only the statistics."""
    rows, stats = mu_step_kernel(block, aligned, chunk, params.step)
    write_block(params.path, chunk.index, rows)
    return rows[:, :0], stats


class RowStore:
    """A temporary folder of Zarr groups, one per generation of ``W``.

    Parameters
    ----------
    data : RowData
        The rows of every generation are chunked like ``data``.
    n_columns : int
    dtype : numpy dtype
    folder : str or path-like, optional
        Parent folder of the temporary folder (default: Dask's ``temporary-directory``, else
        the system's).
    """

    def __init__(self, data: RowData, n_columns: int, dtype: np.dtype, folder: str | os.PathLike[str] | None = None) -> None:
        self.path = atomic.scratch_dir("daskcluster-nmf-W", folder)
        self.chunks = data.array.chunks[0]
        self.n_columns = n_columns
        self.dtype = np.dtype(dtype)
        logger.info("W is kept in the temporary Zarr store %s", self.path)

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
                              label="nmf-stored-W")

    def remove(self, t: int) -> None:
        """Delete generation ``t`` (no error if it does not exist)."""
        shutil.rmtree(os.path.join(self.path, f"W{t}.zarr"), ignore_errors=True)

    def close(self) -> None:
        """Delete the whole temporary folder."""
        shutil.rmtree(self.path, ignore_errors=True)
