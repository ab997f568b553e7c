"""What the cost model of docs/scaling.md relies on, counted (never timed): the tasks a pass
submits per chunk and per worker, the tree's depth, and what reaches the client whatever the
rows, the chunks and the workers."""

from __future__ import annotations

from functools import partial
from itertools import pairwise
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest

from daskcluster.data import as_row_data
from daskcluster.engine import SPLIT_EVERY, held_rows, passes, tree_reduce
from daskcluster.engine.schedule import unique_name
from daskcluster.engine.tree import above_groups, combine_complete, tree_widths
from daskcluster.kernels import sweep as S

D = 20

#: What ``_recording_combine`` combined in this (the client's) process; worker processes import
#: this module with ``_RECORD`` False and record nothing.
_RECORD = False
_client_combines: list[int] = []


def _recording_combine(parts: list[Any], members: tuple[tuple[str, float, int], ...]) -> Any:
    if _RECORD:
        _client_combines.append(len(parts))
    return S.combine_sweep(parts, members)


def _lloyd(data: Any, centers: np.ndarray, combine: Any = S.combine_sweep) -> S.SweepStats:
    """One Lloyd pass of the k-means driver (counts, sums, inertia, the k farthest rows)."""
    k = len(centers)
    members = (S.Member(S.LLOYD, centers, n_far=k),)
    combine = partial(combine, members=((S.LLOYD, 0.0, k),))
    return tree_reduce(data, S.sweep_kernel, S.SweepParams(members, data.affine), combine, label="lloyd")


def _nbytes(obj: Any) -> int:
    """Bytes of the NumPy arrays in nested statistics (dataclasses, lists)."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(_nbytes(getattr(obj, f)) for f in obj.__dataclass_fields__)
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(o) for o in obj)
    return 0


class _Recorder:
    """A local scheduler's ``get`` that records each graph it runs and what it returns."""

    def __init__(self) -> None:
        self.graphs: list[dict[Any, Any]] = []
        self.keys: list[list[Any]] = []
        self.values: list[Any] = []

    def __call__(self, dsk: dict[Any, Any], keys: Any, **kwargs: Any) -> Any:
        self.graphs.append(dict(dsk))
        self.keys.append(list(keys))
        out = dask.get(dsk, keys, **kwargs)
        self.values.append(out)
        return out


def _depth(n: int, split_every: int) -> int:
    """ceil(log_split_every(n)) in integers."""
    depth, reach = 0, 1
    while reach < n:
        depth, reach = depth + 1, reach * split_every
    return depth


@pytest.mark.parametrize("split_every", [2, 8])
def test_tree_depth_and_size(split_every: int) -> None:
    for n in [*range(1, 200), 1000, 10_000, 18_926]:
        widths = tree_widths(n, split_every)
        assert len(widths) - 1 == _depth(n, split_every)
        # every node but the root has one parent: combine nodes <= (n - 1) / (split_every - 1) + depth
        assert sum(widths[1:]) <= (n - 1) // (split_every - 1) + len(widths)


@pytest.mark.parametrize("n_chunks", [1, 7, 8, 9, 64, 65, 300])
def test_pass_submits_one_task_per_chunk_and_the_tree(n_chunks: int) -> None:
    X = da.from_array(np.random.default_rng(0).random((n_chunks * 3, D)), chunks=(3, D))
    rec = _Recorder()
    with dask.config.set(scheduler=rec):
        _lloyd(as_row_data(X, owner="test"), np.zeros((2, D)))
    (dsk,), (keys,) = rec.graphs, rec.keys
    name = keys[0][0]
    mine = [k for k in dsk if isinstance(k, tuple) and k[0] == name]
    widths = tree_widths(n_chunks, SPLIT_EVERY)
    kernels = [k for k in mine if k[1] == 0]
    combines = [k for k in mine if isinstance(k[1], int) and k[1] > 0]
    assert len(kernels) == n_chunks  # one kernel task per chunk
    assert len(combines) == sum(widths[1:-1])  # the tree below the root
    assert len(mine) == n_chunks + sum(widths[1:-1]) + 1  # and the parameters, once
    assert len(keys) == (widths[-2] if len(widths) > 1 else 1) <= SPLIT_EVERY  # the root's children


def test_client_receives_the_same_bytes_whatever_the_rows() -> None:
    """The parts the client gathers are k-sized statistics: 64 chunks of 16 rows and of 1,024 rows
    send the client the same number of parts and the same bytes."""
    k = 10
    received = []
    for rows in (16, 1024):
        X = da.from_array(np.random.default_rng(1).random((64 * rows, D)), chunks=(rows, D))
        rec = _Recorder()
        with dask.config.set(scheduler=rec):
            _lloyd(as_row_data(X, owner="test"), np.random.default_rng(2).random((k, D)))
        (values,) = rec.values
        received.append((len(values), sum(_nbytes(v) for v in values)))
    assert received[0] == received[1]
    assert received[0][0] <= SPLIT_EVERY
    # counts and sums (k, d) in float64, k farthest rows: O(k d) bytes, nothing per row
    assert received[0][1] <= SPLIT_EVERY * (k * D * 8 * 2 + k * 64)


def _leaves(node: tuple[int, int], group: int | None, combined: dict[Any, Any], n: int) -> list[int]:
    """The chunks under ``node``: all of its leaves when a group holds it, else its children's."""
    level, j = node
    if group is not None or level == 0:
        return list(range(j * SPLIT_EVERY**level, min((j + 1) * SPLIT_EVERY**level, n)))
    return [i for g, kid in combined[node] for i in _leaves(kid, g, combined, n)]


def test_above_groups_covers_the_tree_once() -> None:
    """Workers holding runs of chunks: every leaf reaches the root through exactly one path and
    the root is combined from at most ``split_every`` nodes."""
    for n, cuts in [(100, [50]), (248, [124]), (1000, [130, 260, 400, 401, 777]), (13, [])]:
        bounds = [0, *cuts, n]
        held = [combine_complete(dict.fromkeys(range(a, b)), n, SPLIT_EVERY, lambda p: None)
                for a, b in pairwise(bounds)]
        combined, top = above_groups(held, n, SPLIT_EVERY)
        assert len(top) <= SPLIT_EVERY
        widths = tree_widths(n, SPLIT_EVERY)

        covered = sorted(i for node, g in top.items() for i in _leaves(node, g, combined, n))
        assert covered == list(range(n))
        assert all(node[0] < len(widths) - 1 for node in combined)  # the root stays with the client


@pytest.mark.slow
def test_many_parts_send_the_client_the_roots_children_only(process_client: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Persisted chunks on the worker processes, each holding more than one subtree, statistics
    too large for the client to take every worker's nodes: one task per worker, the nodes above
    their subtrees combined on the workers, one combine of at most ``split_every`` parts on the
    client; the same statistics, to the bit, as on the synchronous scheduler."""
    global _RECORD
    monkeypatch.setattr(passes, "CLIENT_BYTES", 0)  # what larger statistics (k, d) would decide
    from distributed import get_task_stream

    n_chunks, rows = 96, 5  # 48 per worker: 6 subtrees of 8 chunks each, 12 parts above the workers
    X = np.random.default_rng(3).random((n_chunks * rows, D))
    centers = np.random.default_rng(4).random((4, D))
    with dask.config.set(scheduler="sync"):
        expected = _lloyd(as_row_data(da.from_array(X, chunks=(rows, D)), owner="test"), centers)
    # each worker holds a run of chunks, as when a store's chunks are read where they are used
    workers = sorted(process_client.scheduler_info()["workers"])
    blocks = [X[i * rows:(i + 1) * rows] for i in range(n_chunks)]
    half = n_chunks // len(workers)
    futures = [f for w, start in zip(workers, range(0, n_chunks, half))
               for f in process_client.scatter(blocks[start:start + half], workers=[w])]
    data = as_row_data(held_rows(futures, [rows] * n_chunks, D, X.dtype, unique_name("scattered")), owner="test")
    n_workers = len(workers)
    _client_combines.clear()
    _RECORD = True
    try:
        with get_task_stream(client=process_client) as ts:
            got = _lloyd(data, centers, _recording_combine)
    finally:
        _RECORD = False
    keys = [str(t["key"]) for t in ts.data]
    assert sum("'group'" in key for key in keys) == n_workers  # one kernel task per worker
    assert len(_client_combines) == 1 and _client_combines[0] <= SPLIT_EVERY  # the root, on the client
    a, b = expected.parts[0], got.parts[0]
    np.testing.assert_array_equal(a.sums, b.sums)
    np.testing.assert_array_equal(a.weight_in_clusters, b.weight_in_clusters)
    assert a.inertia == b.inertia
    np.testing.assert_array_equal(a.far.rows, b.far.rows)


def _alternating(client: Any, X: np.ndarray, rows: int) -> Any:
    """``X`` persisted on the workers in chunks of ``rows``, chunk ``i`` on worker ``i % n_workers``
    (no worker holds a whole subtree of the reduction), as row data."""
    workers = sorted(client.scheduler_info()["workers"])
    n_chunks = len(X) // rows
    futures = [client.scatter(X[i * rows:(i + 1) * rows], workers=[workers[i % len(workers)]])
               for i in range(n_chunks)]
    return as_row_data(held_rows(futures, [rows] * n_chunks, X.shape[1], X.dtype, unique_name("alternating")),
                       owner="test")


@pytest.mark.slow
@pytest.mark.parametrize(("n_chunks", "client_bytes", "expected_tasks"), [
    (16, passes.CLIENT_BYTES, {"group": 2}),
    (16, 0, {"group": 2, "combine": 2}),
    (64, passes.CLIENT_BYTES, {"group": 2}),
    (64, 0, {"kernel": 64, "combine": 8, "params": 1}),
])
def test_small_statistics_reach_the_client_without_combine_tasks(
        process_client: Any, monkeypatch: pytest.MonkeyPatch, n_chunks: int, client_bytes: int,
        expected_tasks: dict[str, int]) -> None:
    """Chunks alternating between the 2 workers (as ``persist`` may scatter them): no worker holds
    a whole subtree, so every leaf is a part for the client. With small statistics it takes them
    all from the workers' 2 tasks: no combine task between the workers, whatever the chunks
    (counted from the graph submitted). With the bound at 0 bytes, as before the bound existed,
    the nodes below the root are combine tasks on the workers (16 chunks), or the pass falls back
    to a task per chunk (64). The statistics are the synchronous scheduler's, to the bit, always."""
    from distributed import Client

    monkeypatch.setattr(passes, "CLIENT_BYTES", client_bytes)
    rows, k = 7, 4
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n_chunks * rows, D)) * 10.0 ** rng.integers(-6, 6, size=(n_chunks * rows, 1))
    centers = X[:k].copy()  # sums that depend on their order, above
    with dask.config.set(scheduler="sync"):
        expected = _lloyd(as_row_data(da.from_array(X, chunks=(rows, D)), owner="test"), centers)
    data = _alternating(process_client, X, rows)
    graphs: list[dict[Any, Any]] = []
    real_get = Client.get

    def get(self: Any, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        graphs.append(dict(dsk))
        return real_get(self, dsk, keys, **kwargs)

    monkeypatch.setattr(Client, "get", get)
    got = _lloyd(data, centers)
    (dsk,) = graphs
    kinds: dict[str, int] = {}
    for key in dsk:
        if isinstance(key, tuple) and isinstance(key[0], str) and key[0].startswith("lloyd-"):
            kind = {"group": "group", "params": "params", 0: "kernel"}.get(key[1], "combine")
            kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds == expected_tasks
    a, b = expected.parts[0], got.parts[0]
    np.testing.assert_array_equal(a.sums, b.sums)
    np.testing.assert_array_equal(a.weight_in_clusters, b.weight_in_clusters)
    assert a.inertia == b.inertia
    np.testing.assert_array_equal(a.far.rows, b.far.rows)


def test_client_takes_all_parts_only_when_few_and_small() -> None:
    small, large = np.zeros((10, 784), np.float32), np.zeros((1000, 784), np.float32)
    assert passes.client_combines_all(SPLIT_EVERY, large, SPLIT_EVERY)  # never more than split_every: as ever
    assert passes.client_combines_all(16, small, SPLIT_EVERY)  # 16 x 31 kB
    assert not passes.client_combines_all(16, large, SPLIT_EVERY)  # 16 x 3.1 MB
    assert not passes.client_combines_all(passes.CLIENT_PARTS + 1, np.zeros(1), SPLIT_EVERY)
    assert passes.payload_bytes(small) >= small.nbytes
    assert passes.payload_bytes((small, lambda x: x)) is None  # not for the standard pickle: size unknown,
    assert not passes.client_combines_all(16, (small, lambda x: x), SPLIT_EVERY)  # so the combine tasks
