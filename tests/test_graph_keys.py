"""Graph keys: the objects held in task graphs are named by what they hold, and a lazy row-wise
map's keys denote the same task in every graph that uses them.

The distributed scheduler compares a key it still holds with the same key in the next graph it
is given; other dependencies make it keep the old task and warn ("Detected different
`run_spec`") that this can fail or deadlock a computation. ``km.labels_`` of a lazy fit is
computed that way by the metrics: two reductions (its range), then the contingency table.
"""

from __future__ import annotations

import logging
import operator
import uuid
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from dask.base import collections_to_expr, tokenize

from daskcluster import KMeans, scaled
from daskcluster.data import as_row_data
from daskcluster.datasets.store import open_labeled_zarr, write_mnist_zarr
from daskcluster.engine import map_rows
from daskcluster.engine.passes import _Broadcast
from daskcluster.io import CheckedReads, write_zarr
from daskcluster.kernels import kmeans as K
from daskcluster.kernels.blocks import Affine
from daskcluster.metrics import majority_label_accuracy

COLLISION = "Detected different `run_spec`"


@pytest.fixture(scope="module")
def labeled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled Zarr store of 2,000 uint8 rows of 64 features in 20 chunks."""
    rng = np.random.default_rng(0)
    centers = rng.integers(0, 256, size=(10, 64))
    y = rng.integers(0, 10, size=2000).astype(np.uint8)
    X = np.clip(centers[y] + rng.normal(0, 20, size=(2000, 64)), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("graph-keys") / "store.zarr"
    write_mnist_zarr(X, y, path, source="test", chunk_bytes=100 * 64)
    return path


def _open(path: Path) -> tuple[da.Array, da.Array]:
    X, y, _ = open_labeled_zarr(path, chunk_bytes=100 * 64)
    assert X.numblocks[0] == 20
    return X, y


# ------------------------------------------------------------------ tokens of graph objects


def test_affine_tokens() -> None:
    a = Affine(1 / 255, 0.5)
    assert tokenize(a) == tokenize(a) == tokenize(Affine(1 / 255, 0.5))
    assert tokenize(a) != tokenize(Affine(1 / 254, 0.5))
    assert tokenize(a) != tokenize(Affine(1 / 255, 0.0))


def test_assign_params_tokens() -> None:
    centers = np.arange(12, dtype=np.float32).reshape(4, 3)
    p = K.AssignParams(centers, Affine(2.0))
    assert tokenize(p) == tokenize(p) == tokenize(K.AssignParams(centers.copy(), Affine(2.0)))
    moved = centers.copy()
    moved[3, 2] += 1
    assert tokenize(p) != tokenize(K.AssignParams(moved, Affine(2.0)))
    assert tokenize(p) != tokenize(K.AssignParams(centers, Affine(3.0)))


def test_broadcast_named_by_its_token() -> None:
    value = (np.ones((2, 3)), Affine())
    b = _Broadcast(value, "labels-abc")
    assert tokenize(b) == tokenize(b) == tokenize(_Broadcast((np.ones((2, 3)), Affine()), "labels-abc"))
    assert tokenize(b) != tokenize(_Broadcast(value, "labels-abd"))


def test_checked_reads_tokens(labeled_store: Path) -> None:
    """A reader is named by its store, component and metadata: the same in two openings (and
    deterministically: no random fallback), another for another component or store."""
    group, again = zarr.open_group(labeled_store, mode="r"), zarr.open_group(labeled_store, mode="r")
    reads = CheckedReads(group["X"], "X")
    with dask.config.set({"tokenize.ensure-deterministic": True}):
        assert tokenize(reads) == tokenize(reads) == tokenize(CheckedReads(again["X"], "X"))
    assert tokenize(reads) != tokenize(CheckedReads(group["y"], "X"))
    other = labeled_store.parent / "other.zarr"
    write_zarr(np.asarray(group["X"]), other, chunk_bytes=100 * 64)
    assert tokenize(reads) != tokenize(CheckedReads(zarr.open_array(other, mode="r"), "X"))


def test_map_rows_names(labeled_store: Path) -> None:
    """A row-wise map is named by its data, parameters and label: the same for equal inputs,
    another when any of them differs (so one key never names two computations)."""
    X, _ = _open(labeled_store)
    data, again = as_row_data(X, owner="test"), as_row_data(_open(labeled_store)[0], owner="test")
    centers = np.linspace(0, 255, 3 * 64, dtype=np.float32).reshape(3, 64)

    def name(d: Any, c: np.ndarray, affine: Affine, label: str = "labels") -> str:
        return map_rows(d, K.labels_kernel, (c, affine), dtype=np.int32, label=label).name

    base = name(data, centers, Affine(1 / 255))
    assert base == name(again, centers.copy(), Affine(1 / 255))
    assert base != name(data, centers + 1, Affine(1 / 255))
    assert base != name(data, centers, Affine(1 / 254))
    assert base != name(data, centers, Affine(1 / 255), label="other")
    assert base != name(as_row_data(X[:1000], owner="test"), centers, Affine(1 / 255))


# ------------------------------------------------------------------ one task per key


def _graph(*collections: Any) -> dict[Any, Any]:
    """The optimized graph the distributed Client submits for ``collections``, computed together."""
    return dict(collections_to_expr(list(collections)).optimize().__dask_graph__())


def test_map_rows_task_the_same_in_every_graph(labeled_store: Path) -> None:
    """A chunk's labels have the same dependencies whether one task or two use them: Dask's
    optimization fuses a chunk's read into a task with one dependency only when the graph gives
    the task a single user."""
    X, y = _open(labeled_store)
    centers = np.linspace(0, 1, 10 * 64, dtype=np.float32).reshape(10, 64)
    data = as_row_data(scaled(X, 1 / 255), owner="test")
    labels = map_rows(data, K.labels_kernel, (centers, data.affine), dtype=np.int32, label="labels")
    graphs = [_graph(labels.min(), labels.max()), _graph(labels), _graph(labels, y)]
    for i in range(labels.numblocks[0]):
        key = (labels.name, i)
        assert all(key in g for g in graphs)
        assert len({frozenset(g[key].dependencies) for g in graphs}) == 1, key


# ------------------------------------------------------------------ on a process cluster


@pytest.mark.slow
def test_scheduler_warnings_captured(process_client: Any, log_messages: Any) -> None:
    """The capture sees a collision: a key the scheduler holds (its result is held, so it is in
    memory whatever the timing of the client's releases) given other dependencies in the next
    graph."""
    x, y, z, a, b = (f"graph-keys-{n}-{uuid.uuid4().hex}" for n in "xyzab")
    with log_messages("distributed.scheduler", logging.WARNING) as messages:
        held = process_client.get({a: 1, x: (operator.add, a, 1), y: (operator.add, x, 1)}, [x, y], sync=False)
        assert [f.result() for f in held] == [2, 3]
        process_client.get({b: 5, x: (operator.add, b, 1), z: (operator.add, x, 10)}, z)
        del held
    assert any(COLLISION in m and x in m for m in messages)


@pytest.mark.slow
def test_lazy_labels_no_key_collision(process_client: Any, labeled_store: Path, log_messages: Any) -> None:
    """A lazy fit's labels, then the metrics over them, ``labels_`` computed twice, ``predict``
    and ``transform``: no graph reuses a key for another task. The range of the labels is held
    while the contingency table is computed, so that its tasks are still on the scheduler
    (as they may be after any computation: the client releases its keys asynchronously)."""
    X, y = _open(labeled_store)
    Xs = scaled(X, 1 / 255)
    with log_messages("distributed.scheduler", logging.WARNING) as messages:
        km = KMeans(10, random_state=0, cache=False, max_iter=5).fit(Xs)
        labels = km.labels_
        assert isinstance(labels, da.Array)
        accuracy = majority_label_accuracy(y, labels)
        held = process_client.compute([labels.min(), labels.max()])
        process_client.gather(held)
        assert majority_label_accuracy(y, labels) == accuracy
        computed = labels.compute()
        np.testing.assert_array_equal(labels.compute(), computed)
        np.testing.assert_array_equal(km.predict(Xs).compute(), computed)
        np.testing.assert_array_equal(km.transform(Xs).compute().argmin(axis=1), computed)
        del held
    assert not [m for m in messages if COLLISION in m]
    truth = y.compute()
    table = np.zeros((10, 10), dtype=np.int64)
    np.add.at(table, (truth, computed), 1)
    assert accuracy == pytest.approx(table.max(axis=0).sum() / len(truth))
