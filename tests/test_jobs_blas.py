"""Labels written under Dask's threaded scheduler run their kernels with one BLAS thread each (as a
fit's passes do): two tasks each starting a full BLAS team oversubscribe the cores."""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from threadpoolctl import threadpool_info

from daskcluster.jobs.outputs import write_labels


def _blas_threads(block: np.ndarray) -> np.ndarray:
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return np.full(block.shape, max(counts), dtype=np.int32)


def test_lazy_labels_are_computed_with_one_blas_thread_per_task(tmp_path: Path) -> None:
    if not any(i.get("user_api") == "blas" for i in threadpool_info()):
        pytest.skip("no BLAS library is loaded here")
    labels = da.map_blocks(_blas_threads, da.zeros(1000, chunks=250, dtype=np.int32), dtype=np.int32)
    with dask.config.set(scheduler="threads"):
        write_labels(tmp_path / "labels.zarr", labels)
    seen = zarr.open_array(str(tmp_path / "labels.zarr"), mode="r")[:]
    assert seen.shape == (1000,) and set(seen.tolist()) == {1}
