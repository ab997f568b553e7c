"""Checkpoints are bound to their data and to one writer (issue 14, items 1, 5 and 6)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from daskcluster import KMeans
from daskcluster.checkpoint import FitCheckpoint, data_fingerprint, load_checkpoint
from daskcluster.errors import InvalidDataError, LockedError, SourceError

FP = {"estimator": "KMeans", "n_clusters": 3}


def _data(seed: int, chunks: int = 100) -> da.Array:
    return da.from_array(np.random.default_rng(seed).normal(size=(1000, 4)), chunks=(chunks, 4))


def test_checkpoint_of_other_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fit.npz"
    FitCheckpoint(path, FP, data=_data(0)).save({"run": 0}, {"centers": np.zeros((3, 4))})
    with pytest.raises(InvalidDataError, match=r"'.*fit.npz' was written for other data: rows 0:100 differ "
                                               r"\(SHA-256 \w+\.\.\. there, \w+\.\.\. here\).*delete it"):
        FitCheckpoint(path, FP, data=_data(1)).load()


def test_same_data_resumes_whatever_its_chunks(tmp_path: Path) -> None:
    path = tmp_path / "fit.npz"
    FitCheckpoint(path, FP, data=_data(0)).save({"run": 1}, {"centers": np.ones((3, 4))})
    state, arrays = FitCheckpoint(path, FP, data=_data(0, chunks=70)).load()  # type: ignore[misc]
    assert state == {"run": 1} and arrays["centers"].sum() == 12


def test_one_changed_sampled_block_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fit.npz"
    X = np.random.default_rng(0).normal(size=(1000, 4))
    FitCheckpoint(path, FP, data=da.from_array(X, chunks=(100, 4))).save({}, {})
    Y = X.copy()
    Y[999, 0] += 1e-9  # the last chunk is always sampled
    with pytest.raises(InvalidDataError, match=r"rows 900:1000 differ"):
        FitCheckpoint(path, FP, data=da.from_array(Y, chunks=(100, 4))).load()


def test_other_weights_or_shape_refused(tmp_path: Path) -> None:
    path = tmp_path / "fit.npz"
    X = _data(0)
    FitCheckpoint(path, FP, data=X, weights=da.ones(1000, chunks=100)).save({}, {})
    with pytest.raises(InvalidDataError, match=r"sample_weight of rows 0:100 differ"):
        FitCheckpoint(path, FP, data=X, weights=da.full(1000, 2.0, chunks=100)).load()
    with pytest.raises(InvalidDataError, match=r"sample_weight not given here, given there"):
        FitCheckpoint(path, FP, data=X).load()
    with pytest.raises(InvalidDataError, match=r"shape is \[999, 4\] here, \[1000, 4\] there"):
        FitCheckpoint(path, FP, data=X[:999]).load()


def test_fingerprint_reads_few_blocks() -> None:
    reads = []

    def count(block: np.ndarray) -> np.ndarray:
        reads.append(len(block))
        return block

    X = _data(0).map_blocks(count, meta=np.empty((0, 0)))
    doc = data_fingerprint(X, seed=3)
    assert len(doc["sha256"]) == 4 and len(reads) == 4  # 4 of 10 chunks, never a full pass
    assert data_fingerprint(_data(0), seed=3) == data_fingerprint(_data(0), seed=3)


def test_checkpoint_without_data_fingerprint_is_not_resumed_silently(tmp_path: Path) -> None:
    path = tmp_path / "old.npz"
    FitCheckpoint(path, FP).save({}, {})  # no data given: as an older daskcluster wrote
    with pytest.raises(InvalidDataError, match=r"holds no fingerprint of its data .*Delete it"):
        FitCheckpoint(path, FP, data=_data(0)).load()


def test_checkpoint_path_at_a_npy_file_is_refused(tmp_path: Path) -> None:
    npy = tmp_path / "X.npy"
    np.save(npy, np.arange(3))
    with pytest.raises(SourceError, match=r"X.npy' is a .npy array of shape \(3,\), not a daskcluster checkpoint"):
        FitCheckpoint(npy, FP).load()
    with pytest.raises(SourceError, match=r"X.npy' is a .npy array"):
        KMeans(2, checkpoint=str(npy)).fit(np.random.default_rng(0).normal(size=(20, 2)))
    assert np.load(npy).tolist() == [0, 1, 2]  # never overwritten


def test_checkpoint_mode_is_0644(tmp_path: Path) -> None:
    path = tmp_path / "fit.npz"
    old = os.umask(0o077)
    try:
        FitCheckpoint(path, FP).save({}, {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from daskcluster.checkpoint import FitCheckpoint
    from daskcluster.errors import LockedError
    path, ready, go = sys.argv[1:4]
    ckpt = FitCheckpoint(path, {"estimator": "KMeans"})
    ckpt.load()
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.01)
    try:
        for i in range(20):
            ckpt.save({"i": i, "pid": os.getpid()}, {"x": np.arange(i)})
            time.sleep(0.02)
    except LockedError as exc:
        print("LOCKED", exc)
        sys.exit(3)
""")


def test_two_concurrent_writers_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "fit.npz"
    go = tmp_path / "go"
    procs = []
    for name in ("a", "b"):
        ready = tmp_path / f"ready-{name}"
        procs.append((subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(ready), str(go)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), ready))
    deadline = time.monotonic() + 120
    while not all(r.exists() for _, r in procs):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    go.touch()
    outs = [(p.wait(timeout=120), p.communicate()) for p, _ in procs]
    codes = sorted(code for code, _ in outs)
    assert codes == [0, 3], outs
    loser = next(out for code, (out, _) in outs if code == 3)
    assert "written by another fit (process" in loser and "Give each fit its own checkpoint" in loser
    winner = next(p.pid for (p, _), (code, _) in zip(procs, outs) if code == 0)
    meta, _ = load_checkpoint(path)  # type: ignore[misc]
    assert meta["state"] == {"i": 19, "pid": winner}
    assert not (tmp_path / ".fit.npz.lock").exists()


def test_checkpoint_of_a_running_fit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fit.npz"
    ready = tmp_path / "ready"
    code = textwrap.dedent(f"""
        import time
        from daskcluster.checkpoint import FitCheckpoint
        FitCheckpoint({str(path)!r}, {{"estimator": "KMeans"}}).save({{}}, {{}})
        open({str(ready)!r}, "w").close()
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        while not ready.exists():
            assert proc.poll() is None
            time.sleep(0.05)
        with pytest.raises(LockedError, match=rf"being written by a running fit \(process {proc.pid} on host"):
            FitCheckpoint(path, {"estimator": "KMeans"}).load()
    finally:
        proc.kill()
        proc.wait()
    assert FitCheckpoint(path, {"estimator": "KMeans"}).load() == ({}, {})  # its writer died: resumable


def test_kmeans_refuses_checkpoint_of_other_data(tmp_path: Path) -> None:
    """The audit's case: data B fitted with data A's checkpoint returned A's centers."""
    ckpt = str(tmp_path / "fit.npz")
    rng = np.random.default_rng(0)
    A = rng.normal(size=(2000, 3))
    B = rng.normal(loc=50, scale=10, size=(2000, 3))
    KMeans(4, n_init=1, random_state=0, checkpoint=ckpt).fit(A)
    with pytest.raises(InvalidDataError, match=r"fit.npz' was written for other data: rows 0:\d+ differ"):
        KMeans(4, n_init=1, random_state=0, checkpoint=ckpt).fit(B)
