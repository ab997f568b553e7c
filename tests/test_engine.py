"""The engine: one pass, a fixed-order tree, deterministic keys, lazy maps, row gathers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from typing import Any

import dask
import dask.array as da
import dask.threaded
import numpy as np
import pytest
from dask.base import tokenize
from distributed import futures_of

from daskcluster.blas import blas_for_tasks
from daskcluster.data import as_row_data, cached, scaled
from daskcluster.engine import (
    count_passes,
    held_rows,
    map_rows,
    schedule,
    take_rows,
    tree_reduce,
)
from daskcluster.engine.passes import _Broadcast
from daskcluster.engine.schedule import unique_name
from daskcluster.engine.passes import runs_of
from daskcluster.engine.tree import PartialTree, combine_complete, evaluate, tree_widths
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


def _index(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, params: object) -> int:
    return chunk.index


def _nest(parts: list) -> tuple:
    """Records the shape of the reduction: which parts were combined together, in which order."""
    return tuple(parts)


def _reference_tree(n: int, split_every: int) -> object:
    """The fixed tree, built the plain way: levels of ``split_every`` consecutive nodes."""
    level: list = list(range(n))
    while len(level) > 1:
        level = [tuple(level[j : j + split_every]) for j in range(0, len(level), split_every)]
    return level[0]


@pytest.mark.parametrize("n, split_every", [(1, 8), (5, 8), (8, 8), (9, 8), (64, 4), (65, 4), (100, 3)])
def test_subtrees_combined_anywhere_give_the_fixed_tree(n: int, split_every: int) -> None:
    owner = np.random.default_rng(n).integers(0, 4, n)
    assert tree_widths(n, split_every)[-1] == 1
    # chunks split among workers contiguously, at random, or all on one: same tree every time
    partitions = [
        np.array_split(np.arange(n), 3),
        [np.flatnonzero(owner == w) for w in range(4)],
        [np.arange(n)],
    ]
    for groups in partitions:
        values: dict = {}
        for g in groups:
            part = combine_complete({int(i): int(i) for i in g}, n, split_every, _nest)
            assert not values.keys() & part.keys()
            values.update(part)
        assert evaluate(values, n, split_every, _nest) == _reference_tree(n, split_every)
        assert not values  # every node used once


@pytest.mark.parametrize("n, split_every", [(1, 8), (9, 8), (64, 4), (65, 4), (100, 3), (1000, 8)])
def test_runs_combined_as_they_complete_give_the_fixed_tree(n: int, split_every: int) -> None:
    """A streamed run's task combines its chunks' subtrees as soon as they are complete: the same
    nodes as ``combine_complete``, in any arrival order, never more than ``split_every - 1``
    values waiting per level, and the runs together give the fixed tree."""
    depth = len(tree_widths(n, split_every)) - 1
    values: dict = {}
    for r, (a, b) in enumerate(runs_of(n, 3)):
        tree = PartialTree(n, split_every, _nest)
        order = np.random.default_rng(r).permutation(np.arange(a, b)) if r == 1 else range(a, b)
        for i in order:
            tree.add(int(i), int(i))
            if r != 1:  # in chunk order, what waits is a few values per level
                assert len(tree.values) <= (split_every - 1) * (depth + 1)
        assert tree.values == combine_complete({i: i for i in range(a, b)}, n, split_every, _nest)
        values.update(tree.values)
    assert evaluate(values, n, split_every, _nest) == _reference_tree(n, split_every)


def test_runs_are_consecutive_chunks_one_per_worker_thread() -> None:
    for n, slots in [(1, 4), (3, 4), (4, 4), (10, 4), (10_000, 32), (7, 1)]:
        runs = runs_of(n, slots)
        assert len(runs) == min(n, slots)
        assert [a for a, _ in runs] == [0] + [b for _, b in runs[:-1]] and runs[-1][1] == n
        sizes = [b - a for a, b in runs]
        assert max(sizes) - min(sizes) <= 1


def test_one_worker_holding_everything_combines_the_whole_tree() -> None:
    got = combine_complete({i: i for i in range(20)}, 20, 4, _nest)
    assert list(got) == [(3, 0)] and got[(3, 0)] == _reference_tree(20, 4)
    # a worker missing one chunk of a subtree leaves that subtree's other leaves to the client
    got = combine_complete({i: i for i in range(20) if i != 5}, 20, 4, _nest)
    assert sorted(got) == [(0, 4), (0, 6), (0, 7), (1, 0), (1, 2), (1, 3), (2, 1)]  # (2, 1) is chunks 16-19


def test_each_pass_has_its_own_keys_and_params_are_not_hashed() -> None:
    assert len({unique_name("lloyd") for _ in range(100)}) == 100
    assert unique_name("lloyd").startswith("lloyd-")
    # Dask names the wrapped parameters by the pass's name, without pickling megabytes of centers
    big, other = np.zeros((1000, 784), np.float32), np.ones(3)
    assert tokenize(_Broadcast(big, "pass-1")) == tokenize(_Broadcast(other, "pass-1"))
    assert tokenize(_Broadcast(big, "pass-1")) != tokenize(_Broadcast(big, "pass-2"))
    # so two passes with the same parameters both compute
    X = da.ones((20, 2), chunks=(5, 2))
    data = as_row_data(X, owner="test")
    assert tree_reduce(data, _rows_seen, 1, _concat) == tree_reduce(data, _rows_seen, 1, _concat)


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_same_tree_on_local_schedulers(scheduler: str) -> None:
    X = da.zeros((70, 2), chunks=(1, 2))
    data = as_row_data(X, owner="test")
    with dask.config.set(scheduler=scheduler):
        got = tree_reduce(data, _index, None, _nest, split_every=4)
    assert got == _reference_tree(70, 4)


def test_blas_limited_only_under_the_threaded_scheduler() -> None:
    assert isinstance(blas_for_tasks(8, dask.get), nullcontext)
    assert isinstance(blas_for_tasks(1, dask.threaded.get), nullcontext)
    assert not isinstance(blas_for_tasks(8, dask.threaded.get), nullcontext)
    with dask.config.set(scheduler="threads"):
        assert not isinstance(blas_for_tasks(8), nullcontext)


def _placed(client: Any, X: np.ndarray, rows: int, worker_of: Callable[[int], int]) -> da.Array:
    """``X`` as a Dask array whose chunk ``i`` sits on worker ``worker_of(i)``."""
    workers = sorted(client.scheduler_info()["workers"])
    name = f"placed-{tokenize(X, rows, [worker_of(i) for i in range(-(-len(X) // rows))])}"
    futures = []
    for i, start in enumerate(range(0, len(X), rows)):
        [future] = client.scatter([X[start : start + rows]], workers=[workers[worker_of(i) % len(workers)]])
        futures.append(future)
    lengths = tuple(len(X[s : s + rows]) for s in range(0, len(X), rows))
    return held_rows(futures, lengths, X.shape[1], X.dtype, name)


@pytest.mark.slow
@pytest.mark.parametrize("placement", ["contiguous", "alternating", "streamed"])
def test_same_tree_and_bits_on_a_process_cluster(process_client: Any, placement: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(700, 3)) * 10.0 ** rng.integers(-8, 8, size=(700, 1))  # order-sensitive sums
    if placement == "streamed":
        array = da.from_array(X, chunks=(10, 3))
    else:
        array = _placed(process_client, X, 10, (lambda i: i // 35) if placement == "contiguous" else (lambda i: i))
    data = as_row_data(array, owner="test")
    with caplog.at_level(logging.DEBUG, logger="daskcluster.engine.passes"):
        tree = tree_reduce(data, _index, None, _nest, split_every=4)
        sums = tree_reduce(data, _sum_rows, None, partial(np.sum, axis=0), split_every=4)
    # contiguous chunks: one task per worker; alternating ones would send 70 parts to the client
    grouped = "one task per worker" in caplog.text
    assert grouped == (placement == "contiguous")
    assert tree == _reference_tree(70, 4)
    local = as_row_data(da.from_array(X, chunks=(10, 3)), owner="test")
    with dask.config.set(scheduler="synchronous"):
        expected = tree_reduce(local, _sum_rows, None, partial(np.sum, axis=0), split_every=4)
    np.testing.assert_array_equal(sums, expected)


@pytest.mark.slow
def test_pass_recomputes_chunks_of_a_restarted_worker(process_client: Any) -> None:
    X = np.random.default_rng(4).normal(size=(400, 3))
    array = da.from_array(X, chunks=(50, 3)).persist()
    data = as_row_data(array, owner="test")
    before = tree_reduce(data, _sum_rows, None, partial(np.sum, axis=0))
    holders = process_client.who_has(futures_of(array))  # type: ignore[attr-defined]
    victim = next(iter(holders.values()))[0]
    process_client.restart_workers([victim])  # type: ignore[attr-defined]
    after = tree_reduce(data, _sum_rows, None, partial(np.sum, axis=0))
    np.testing.assert_array_equal(before, after)


class _FakeClient:
    """Answers ``who_has`` from a fixed table and counts the questions."""

    def __init__(self, holders: dict) -> None:
        self.id = f"fake-{id(self)}"
        self.holders = holders
        self.asked = 0

    def who_has(self, futures: list) -> dict:
        self.asked += 1
        return self.holders


class _FakeFuture:
    def __init__(self, key: tuple) -> None:
        self.key = key


def test_chunks_grouped_by_holder_in_runs_and_placement_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    futures = [_FakeFuture(("x", i, 0)) for i in range(6)]
    # chunk 2 has two holders: it stays with its predecessor's worker; chunk 3 goes where it is
    holders = {("x", 0, 0): ("a",), ("x", 1, 0): ("a",), ("x", 2, 0): ("b", "a"), ("x", 3, 0): ("b",),
               ("x", 4, 0): ("b",), ("x", 5, 0): ("a",)}
    client = _FakeClient(holders)
    assert schedule.chunks_by_worker(client, futures) == [[0, 1, 2, 5], [3, 4]]
    assert schedule.placement(client, "x", futures) == [[0, 1, 2, 5], [3, 4]]
    assert schedule.placement(client, "x", futures) == [[0, 1, 2, 5], [3, 4]]
    assert client.asked == 2  # the second placement came from the cache
    monkeypatch.setattr(schedule, "PLACEMENT_TTL", 0.0)
    schedule.placement(client, "x", futures)
    assert client.asked == 3
    # a chunk in no worker's memory (still computing, or lost): no grouping, and nothing cached
    client.holders = {**holders, ("x", 4, 0): ()}
    assert schedule.placement(client, "y", futures) is None
