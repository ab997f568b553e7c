"""``tree_reduce_rows``: new row-aligned arrays and statistics from one pass."""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from distributed import futures_of

from daskcluster.data import as_row_data
from daskcluster.engine import count_passes, tree_reduce_rows
from daskcluster.kernels.blocks import ChunkInfo


def _scale_rows(
    block: np.ndarray, aligned: tuple[np.ndarray, ...], chunk: ChunkInfo, params: dict
) -> tuple[np.ndarray, dict]:
    """New rows: the block times each row's factor plus the chunk's start; stats: sums and calls."""
    factor = aligned[0] if aligned else np.ones(block.shape[0])
    rows = block * factor[:, None] + chunk.start
    if params.get("log"):
        with open(os.path.join(params["log"], f"{chunk.index}-{os.getpid()}-{id(rows)}"), "w"):
            pass
    return rows, {"sum": rows.sum(0), "chunks": [(chunk.index, chunk.start, block.shape[0])]}


def _combine(parts: list[dict]) -> dict:
    return {"sum": np.sum([p["sum"] for p in parts], axis=0), "chunks": [c for p in parts for c in p["chunks"]]}


def _expected(X: np.ndarray, factor: np.ndarray, chunks: tuple[int, ...]) -> np.ndarray:
    starts = np.repeat(np.concatenate(([0], np.cumsum(chunks)[:-1])), chunks)
    return X * factor[:, None] + starts[:, None]


def _stats_only(block: np.ndarray, aligned: tuple, chunk: ChunkInfo, params: None) -> tuple[np.ndarray, float]:
    return block[:, :0], float(block.sum())


def _wrong_width(block: np.ndarray, aligned: tuple, chunk: ChunkInfo, params: None) -> tuple[np.ndarray, int]:
    return np.zeros((block.shape[0], 2)), 0


def test_rows_and_statistics_from_one_pass(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((50, 3))
    factor = rng.random(50)
    chunks = (10, 0, 17, 23)
    data = as_row_data(da.from_array(X, chunks=(chunks, 3)), owner="test")
    # the aligned array comes chunked otherwise: it is rechunked like the data
    aligned = da.from_array(factor, chunks=25)
    with count_passes() as counter:
        rows, stats = tree_reduce_rows(data, _scale_rows, {"log": str(tmp_path)}, _combine, aligned=[aligned],
                                       n_columns=3, dtype=np.float32)
    assert counter.passes == 1 and counter.rows == 50
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == ["0", "1", "2", "3"]
    assert rows.chunks == (chunks, (3,)) and rows.dtype == np.float32
    # already computed: the graph holds the chunks themselves (the empty one too), no kernel
    assert sum(isinstance(v, np.ndarray) for v in dict(rows.dask).values()) == len(chunks)
    expected = _expected(X, factor, chunks)
    np.testing.assert_allclose(rows.compute(), expected.astype(np.float32))
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == ["0", "1", "2", "3"]  # no kernel ran again
    np.testing.assert_allclose(stats["sum"], expected.astype(np.float32).sum(0), rtol=1e-6)
    assert stats["chunks"] == [(0, 0, 10), (1, 10, 0), (2, 10, 17), (3, 27, 23)]


def test_many_chunks_reduced_in_chunk_order_and_zero_width_rows() -> None:
    X = np.arange(200, dtype=np.float64).reshape(100, 2)
    data = as_row_data(da.from_array(X, chunks=(3, 2)), owner="test")  # 34 chunks: a tree of depth 2
    rows, stats = tree_reduce_rows(data, _scale_rows, {}, _combine, n_columns=2, dtype=np.float64)
    assert [c[0] for c in stats["chunks"]] == list(range(34))
    np.testing.assert_array_equal(rows.compute(), _expected(X, np.ones(100), data.array.chunks[0]))
    # a kernel that stores its rows itself returns none: only the statistics come back
    empty, total = tree_reduce_rows(data, _stats_only, None, sum, n_columns=0, dtype=np.float64)
    assert empty.shape == (100, 0) and total == X.sum()
    with pytest.raises(ValueError, match=r"returned rows of shape \(\d, 2\) for chunk \d+; expected \(\d, 1\)"):
        tree_reduce_rows(data, _wrong_width, None, sum, n_columns=1, dtype=np.float64)


def test_kernel_runs_once_per_chunk_on_a_process_cluster(process_client: object, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.random((40, 4))
    factor = rng.random(40)
    data = as_row_data(da.from_array(X, chunks=(10, 4)), owner="test")
    aligned = da.from_array(factor, chunks=10).persist()
    rows, stats = tree_reduce_rows(data, _scale_rows, {"log": str(tmp_path)}, _combine, aligned=[aligned],
                                   n_columns=4, dtype=np.float64)
    assert len(futures_of(rows)) == 4  # kept in cluster memory
    calls = sorted(p.name.split("-")[0] for p in tmp_path.iterdir())
    assert calls == ["0", "1", "2", "3"]
    expected = _expected(X, factor, (10, 10, 10, 10))
    np.testing.assert_allclose(rows.compute(), expected)
    np.testing.assert_allclose(stats["sum"], expected.sum(0))
    # the kept rows feed the next pass without running the first kernel again
    rows2, _ = tree_reduce_rows(data, _scale_rows, {"log": str(tmp_path)}, _combine, aligned=[rows[:, 0]],
                                n_columns=4, dtype=np.float64)
    np.testing.assert_allclose(rows2.compute(), _expected(X, expected[:, 0], (10, 10, 10, 10)))
    assert len(list(tmp_path.iterdir())) == 8
