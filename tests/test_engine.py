"""The engine: one pass, a fixed-order tree, deterministic keys, lazy maps, row gathers."""

from __future__ import annotations

from functools import partial

import dask
import dask.array as da
import numpy as np
import pytest

from daskcluster.data import as_row_data, cached, scaled
from daskcluster.engine import count_passes, map_rows, take_rows, tree_reduce
from daskcluster.kernels.blocks import ChunkInfo


def _rows_seen(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, params: int) -> list[tuple[int, int, int]]:
    return [(chunk.index, chunk.start, block.shape[0] * params)]


def _concat(parts: list[list[tuple[int, int, int]]]) -> list[tuple[int, int, int]]:
    return [x for p in parts for x in p]


def _sum_rows(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, params: None) -> np.ndarray:
    w = np.ones(len(block)) if weights is None else weights
    return (block.astype(np.float64) * w[:, None]).sum(0)


def _double(block: np.ndarray, factor: float, chunk: ChunkInfo) -> np.ndarray:
    return block[:, 0] * factor


def test_chunks_combined_in_order_with_their_offsets() -> None:
    X = da.zeros((100, 3), chunks=((10, 0, 30, 25, 35), (3,)))
    data = as_row_data(X, owner="test")
    got = tree_reduce(data, _rows_seen, 2, _concat, split_every=2)
    assert got == [(0, 0, 20), (1, 10, 0), (2, 10, 60), (3, 40, 50), (4, 65, 70)]


@pytest.mark.parametrize("n_chunks, split_every, depth", [(1, 8, 0), (8, 8, 1), (9, 8, 2), (64, 4, 3), (65, 4, 4)])
def test_tree_depth_is_logarithmic(n_chunks: int, split_every: int, depth: int) -> None:
    X = da.ones((n_chunks * 2, 2), chunks=(2, 2))
    data = as_row_data(X, owner="test")
    seen = {}

    def spy(parts: list) -> list:  # records the graph through the combine calls
        seen.setdefault("calls", 0)
        seen["calls"] += 1
        return _concat(parts)

    got = tree_reduce(data, _rows_seen, 1, spy, split_every=split_every)
    assert [g[0] for g in got] == list(range(n_chunks))
    expected_calls = 0
    width = n_chunks
    for _ in range(depth):
        width = -(-width // split_every)
        expected_calls += width
    assert seen.get("calls", 0) == expected_calls


def test_weights_follow_rows_and_passes_are_counted() -> None:
    X = np.arange(40, dtype=np.float64).reshape(20, 2)
    w = np.linspace(0, 1, 20)
    data = as_row_data(da.from_array(X, chunks=(7, 2)), owner="test")
    wd = da.from_array(w, chunks=(data.array.chunks[0],))
    with count_passes() as c:
        got = tree_reduce(data, _sum_rows, None, lambda p: np.sum(p, axis=0), weights=wd)
        tree_reduce(data, _sum_rows, None, lambda p: np.sum(p, axis=0))
    np.testing.assert_allclose(got, (X * w[:, None]).sum(0))
    assert c.passes == 2 and c.rows == 40


def test_graph_keys_are_deterministic() -> None:
    X = da.from_array(np.ones((10, 2)), chunks=5)
    data = as_row_data(X, owner="test")
    a = map_rows(data, _double, (2.0,), dtype=np.float64)
    b = map_rows(data, _double, (2.0,), dtype=np.float64)
    c = map_rows(data, _double, (3.0,), dtype=np.float64)
    assert a.name == b.name != c.name
    np.testing.assert_array_equal(c.compute(), np.full(10, 3.0))
    assert a.chunks == ((5, 5),)


def test_take_rows_in_given_order_with_scaling() -> None:
    X = np.arange(60, dtype=np.uint8).reshape(20, 3)
    data = as_row_data(scaled(da.from_array(X, chunks=(6, 3)), 0.5, 1.0), owner="test")
    idx = np.array([19, 0, 7, 6, 12])
    np.testing.assert_allclose(take_rows(data, idx), X[idx] * 0.5 + 1.0)
    assert take_rows(data, idx).dtype == np.float32


def test_cache_policy_persists_or_streams() -> None:
    X = da.from_array(np.ones((100, 4)), chunks=25)
    data = as_row_data(X, owner="test")
    with cached(data, True) as work:
        assert len(work.array.__dask_graph__()) == 4  # persisted: one key per chunk, no source tasks
    with cached(data, False) as work:
        assert work.array is data.array


@pytest.mark.slow
def test_tree_reduce_on_process_cluster_equals_threads(process_client: object) -> None:
    X = np.random.default_rng(0).normal(size=(1000, 5))
    data = as_row_data(da.from_array(X, chunks=(90, 5)), owner="test")
    combine = partial(np.sum, axis=0)
    on_cluster = tree_reduce(data, _sum_rows, None, combine)
    with dask.config.set(scheduler="threads"):
        on_threads = tree_reduce(data, _sum_rows, None, combine)
    np.testing.assert_array_equal(on_cluster, on_threads)
