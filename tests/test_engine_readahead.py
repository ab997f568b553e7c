"""Read-ahead of streamed passes: same results with it and without, nothing left behind."""

from __future__ import annotations

import os
import signal
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import psutil
import pytest

from daskcluster import GaussianMixture, KMeans, scaled
from daskcluster.data import as_row_data
from daskcluster.engine import readahead, tree_reduce
from daskcluster.errors import InvalidParameterError
from daskcluster.io import open_array, write_zarr
from daskcluster.kernels.blocks import ChunkInfo

N, D, ROWS = 24_000, 32, 2_000


def _store(tmp_path: Path) -> tuple[np.ndarray, str]:
    """A uint8 Zarr store of 12 chunks of ``ROWS`` rows, and its content."""
    rng = np.random.default_rng(0)
    centers = rng.integers(30, 220, size=(6, D))
    X = np.clip(centers[rng.integers(0, 6, N)] + rng.normal(0, 12, (N, D)), 0, 255).astype(np.uint8)
    path = str(tmp_path / "x.zarr")
    write_zarr(da.from_array(X, chunks=(ROWS, D)), path, chunk_bytes=ROWS * D)
    return X, path


def _opened(path: str) -> da.Array:
    stored = open_array(path, chunk_bytes=ROWS * D)
    assert stored.numblocks[0] == N // ROWS
    return stored


def _taken(client: Any) -> dict[str, int]:
    totals = {"ahead": 0, "own": 0}
    for counts in client.run(readahead.counts).values():
        for how, c in counts.items():
            totals[how] += c
    return totals


def _nothing_held(client: Any) -> bool:
    return not any(client.run(readahead.held).values())


def _slow_sums(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, params: float) -> np.ndarray:
    time.sleep(params)
    x = block.astype(np.float64) * 10.0 ** (np.arange(block.shape[0]) % 13 - 6)[:, None]  # order-sensitive sums
    return x.sum(axis=0)


def _failing(block: np.ndarray, weights: np.ndarray | None, chunk: ChunkInfo, params: int) -> np.ndarray:
    time.sleep(0.02)
    if chunk.index == params:
        raise ValueError(f"chunk {chunk.index} refused")
    return block.sum(axis=0)


def test_read_ahead_depth_is_checked() -> None:
    data = as_row_data(np.ones((10, 2)), owner="test")
    for bad in (-1, "2", 1.5, True, "none"):
        with dask.config.set({readahead.READ_AHEAD_CONFIG: bad}), \
                pytest.raises(InvalidParameterError, match=r"'daskcluster.read-ahead' parameter of Dask's configuration must be an int in the range \[0, inf\) or a str among \{'auto'\}"):
            tree_reduce(data, _failing, -1, partial(np.sum, axis=0))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Best performing initialization did not converge")
def test_streamed_fits_with_read_ahead_equal_in_memory_fits(process_client: Any, tmp_path: Path) -> None:
    X, path = _store(tmp_path)
    init = X[:: N // 6][:6].astype(np.float32) / 255
    fits = {
        "lloyd": partial(KMeans, 6, init=init, max_iter=3, tol=0, cache=False),
        "elkan": partial(KMeans, 6, init=init, max_iter=3, tol=0, cache=False, algorithm="elkan"),
        "gmm": partial(GaussianMixture, 3, covariance_type="diag", max_iter=2, tol=0, random_state=0,
                       init_params="random_from_data", cache=False),
    }
    results = {}
    ahead_with = ahead_without = own_without = 0
    for label, make in fits.items():
        before = _taken(process_client)
        with dask.config.set({readahead.READ_AHEAD_CONFIG: 1}):
            streamed = make().fit(scaled(_opened(path), 1 / 255))
        middle = _taken(process_client)
        with dask.config.set({readahead.READ_AHEAD_CONFIG: 0}):
            without = make().fit(scaled(_opened(path), 1 / 255))
        after = _taken(process_client)
        ahead_with += middle["ahead"] - before["ahead"]
        ahead_without += after["ahead"] - middle["ahead"]
        own_without += after["own"] - middle["own"]
        with dask.config.set(scheduler="synchronous"):
            in_memory = make().fit(scaled(da.from_array(X, chunks=(ROWS, D)), 1 / 255))
        results[label] = streamed, without, in_memory
    # chunks are taken from a read-ahead only when it is on (how many depends on how often the
    # scheduler moves a task to the other worker: timing, not a property to assert); with it
    # off every chunk of every pass is read by its own task
    assert ahead_with > 0
    assert ahead_without == 0 and own_without >= N // ROWS * 3
    assert _nothing_held(process_client)
    # the same bytes through the same kernels and the same tree: equal to the last bit
    for label, (streamed, without, in_memory) in results.items():
        for other in (without, in_memory):
            attribute = "means_" if label == "gmm" else "cluster_centers_"
            np.testing.assert_array_equal(getattr(streamed, attribute), getattr(other, attribute), err_msg=label)
            assert streamed.n_iter_ == other.n_iter_


@pytest.mark.slow
def test_a_worker_killed_mid_pass_changes_no_result(process_client: Any, tmp_path: Path) -> None:
    _, path = _store(tmp_path)
    data = as_row_data(_opened(path), owner="test")
    with dask.config.set(scheduler="synchronous"):
        expected = tree_reduce(data, _slow_sums, 0.0, partial(np.sum, axis=0))
    pids = list(process_client.run(os.getpid).values())
    out: dict[str, Any] = {}

    def reduce() -> None:
        with dask.config.set({readahead.READ_AHEAD_CONFIG: 1}):
            out["sums"] = tree_reduce(data, _slow_sums, 0.1, partial(np.sum, axis=0))

    run = threading.Thread(target=reduce)
    run.start()
    time.sleep(0.4)  # each worker is in its run of 6 chunks, its next one read ahead
    assert run.is_alive()
    os.kill(pids[0], signal.SIGKILL)
    run.join(timeout=120)
    assert not run.is_alive()
    np.testing.assert_array_equal(out["sums"], expected)
    process_client.wait_for_workers(2, timeout=60)
    assert _nothing_held(process_client)
    assert pids[0] not in process_client.run(os.getpid).values() and not psutil.pid_exists(pids[0])


@pytest.mark.slow
def test_a_failed_pass_leaves_nothing_read_ahead(process_client: Any, tmp_path: Path) -> None:
    _, path = _store(tmp_path)
    data = as_row_data(_opened(path), owner="test")
    with pytest.raises(ValueError, match="chunk 3 refused"):
        tree_reduce(data, _failing, 3, partial(np.sum, axis=0))
    assert _nothing_held(process_client)
    time.sleep(0.3)  # the other worker's task of the failed pass, still running, reads nothing more ahead
    assert _nothing_held(process_client)


def _chunk_reads(n: int) -> list[readahead.ChunkRead]:
    return [readahead.ChunkRead(i, {("x", i): np.full(3, i)}, [("x", i)]) for i in range(n)]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_a_run_reads_at_most_depth_chunks_ahead(depth: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """While chunk i is computed, no read past chunk i + depth has started: depth + 1 chunks of a
    run in memory at most; nothing registered once the run ends."""
    started: list[int] = []
    plain = readahead.read

    def recording(chunk: readahead.ChunkRead) -> list:
        started.append(chunk.index)
        time.sleep(0.002)
        return plain(chunk)

    monkeypatch.setattr(readahead, "read", recording)
    name = f"bounded-{depth}"
    before = readahead.counts()
    with readahead.RunReader(name, _chunk_reads(12), depth) as reader:
        for i in range(12):
            (block,) = reader.next()
            assert block[0] == i
            assert max(started) <= i + depth
            time.sleep(0.005)  # the kernel; reads ahead finish meanwhile
    after = readahead.counts()
    assert sorted(started) == list(range(12))  # each chunk read once
    assert after["ahead"] - before["ahead"] == (11 if depth else 0)
    assert after["own"] - before["own"] == (1 if depth else 12)
    assert name not in readahead.held()


def _waiting(seconds: float) -> int:
    time.sleep(seconds)  # storage that makes the read wait
    return 0


def _computing(seconds: float) -> int:
    end = time.thread_time() + seconds  # a read decoded in the reading thread
    while time.thread_time() < end:
        pass
    return 0


@pytest.mark.parametrize("reads, ahead", [(_waiting, 5), (_computing, 0)])
def test_auto_reads_ahead_where_reads_wait_and_not_where_they_compute(reads: Any, ahead: int) -> None:
    """``'auto'``: a run whose first read made its thread wait reads one chunk ahead; one whose
    first read kept its thread on the CPU reads each chunk when it is asked for."""
    chunks = [readahead.ChunkRead(i, {("w", i): (reads, 0.03)}, [("w", i)]) for i in range(6)]
    before = readahead.counts()
    with readahead.RunReader(f"auto-{reads.__name__}", chunks, "auto") as reader:
        for _ in range(6):
            assert reader.next() == [0]
            time.sleep(0.04)  # the kernel: longer than a read, so a read ahead is done when asked for
    after = readahead.counts()
    assert after["ahead"] - before["ahead"] == ahead
    assert after["own"] - before["own"] == 6 - ahead


def test_a_failed_read_ahead_is_read_again_in_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = readahead.read

    def flaky(chunk: readahead.ChunkRead) -> list:
        if chunk.index == 2 and threading.current_thread().name.startswith("daskcluster-read-ahead"):
            raise OSError("transient")
        return plain(chunk)

    monkeypatch.setattr(readahead, "read", flaky)
    with readahead.RunReader("flaky", _chunk_reads(4), 1) as reader:
        assert [int(reader.next()[0][0]) for _ in range(4)] == [0, 1, 2, 3]


def test_a_closed_pass_stops_its_runs_and_drops_their_reads() -> None:
    reader = readahead.RunReader("to-close", _chunk_reads(6), 2)
    with pytest.raises(readahead.PassClosedError, match="to-close was closed"), reader:
        reader.next()
        assert readahead.held().get("to-close") == 2  # chunks 1 and 2 read ahead
        assert readahead.close("to-close") == 2
        reader.next()
    assert "to-close" not in readahead.held()


@pytest.mark.slow
def test_every_chunk_but_each_runs_first_is_read_ahead(process_client: Any, tmp_path: Path) -> None:
    """A streamed pass is one task per worker thread over its run of chunks: whatever the scheduler
    does with those tasks, each run reads its first chunk itself and takes every other one from
    its read-ahead."""
    from distributed import get_task_stream

    _, path = _store(tmp_path)
    data = as_row_data(_opened(path), owner="test")
    with dask.config.set(scheduler="synchronous"):
        expected = tree_reduce(data, _slow_sums, 0.0, partial(np.sum, axis=0))
    runs = sum(process_client.nthreads().values())
    before = _taken(process_client)
    with get_task_stream(client=process_client) as ts, dask.config.set({readahead.READ_AHEAD_CONFIG: 1}):
        for _ in range(3):
            np.testing.assert_array_equal(tree_reduce(data, _slow_sums, 0.0, partial(np.sum, axis=0)), expected)
    after = _taken(process_client)
    assert sum("'group'" in str(t["key"]) for t in ts.data) == 3 * runs  # no task per chunk
    assert after["own"] - before["own"] == 3 * runs
    assert after["ahead"] - before["ahead"] == 3 * (N // ROWS - runs)
    assert _nothing_held(process_client)


@pytest.mark.slow
def test_an_interrupted_pass_stops_its_runs(process_client: Any, tmp_path: Path) -> None:
    """Ctrl-C while a streamed pass runs: the client closes the pass on the workers, whose runs
    stop at their next chunk instead of reading and computing the rest, and nothing is left
    read ahead."""
    _, path = _store(tmp_path)
    data = as_row_data(_opened(path), owner="test")
    tree_reduce(data, _slow_sums, 0.0, partial(np.sum, axis=0))  # workers warmed up
    before = _taken(process_client)
    # Python's own Ctrl-C handler, whatever an imported library installed in this process
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt = threading.Timer(0.6, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    interrupt.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            tree_reduce(data, _slow_sums, 0.3, partial(np.sum, axis=0))  # 2 runs of 6 chunks: 1.8 s each
    finally:
        signal.signal(signal.SIGINT, previous)
    time.sleep(2.5)  # long enough for the runs to have finished, had they not stopped
    taken = _taken(process_client)
    assert sum(taken.values()) - sum(before.values()) < N // ROWS
    assert _nothing_held(process_client)
