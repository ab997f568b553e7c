"""Checkpoint and resume: a killed fit continues where it stopped and ends with the same model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from daskcluster import KMeans
from daskcluster.checkpoint import load_checkpoint, save_checkpoint
from daskcluster.datasets import make_blobs
from daskcluster.engine import count_passes
from daskcluster.errors import InvalidParameterError, SourceError

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import dask
    from daskcluster import KMeans
    from daskcluster.datasets import make_blobs
    from daskcluster.progress import progress_hook

    seen = []

    def kill_at(rep):  # the N-th Lloyd iteration of the whole fit (all runs of n_init)
        if rep.stage == "fit":
            seen.append(rep.iteration)
            if len(seen) == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    X, _, _ = make_blobs(20_000, 6, centers=12, cluster_std=4.0, chunk_rows=3_000, random_state=1)
    with dask.config.set(scheduler="threads"), progress_hook(kill_at):
        KMeans(12, random_state=0, tol=0, max_iter=40, n_init=2, checkpoint=sys.argv[1]).fit(X)
    print("not killed")
    """
)


def data() -> da.Array:
    return make_blobs(20_000, 6, centers=12, cluster_std=4.0, chunk_rows=3_000, random_state=1)[0]


@pytest.fixture(scope="module")
def uninterrupted() -> KMeans:
    return KMeans(12, random_state=0, tol=0, max_iter=40, n_init=2).fit(data())


@pytest.mark.parametrize("run, iteration", [(0, 3), (1, 2)])
def test_killed_fit_resumes_to_same_model(tmp_path: Path, uninterrupted: KMeans, run: int, iteration: int) -> None:
    ckpt = tmp_path / "fit.ckpt.npz"
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    first_run_iterations = KMeans(12, random_state=0, tol=0, max_iter=40, n_init=1).fit(data()).n_iter_
    kill_at = iteration + (first_run_iterations if run else 0)
    proc = subprocess.run([sys.executable, str(script), str(ckpt), str(kill_at)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    meta, _ = load_checkpoint(ckpt)  # type: ignore[misc]
    assert meta["state"]["run"] == run and meta["state"]["n_iter"] == iteration - 1
    with count_passes() as c:
        resumed = KMeans(12, random_state=0, tol=0, max_iter=40, n_init=2, checkpoint=str(ckpt)).fit(data())
    np.testing.assert_allclose(resumed.cluster_centers_, uninterrupted.cluster_centers_, rtol=1e-6, atol=1e-9)
    assert resumed.inertia_ == pytest.approx(uninterrupted.inertia_, rel=1e-9)
    assert resumed.n_iter_ == uninterrupted.n_iter_
    assert c.passes < 2 * 41 + 2 * 6  # fewer passes than a fit from scratch
    # a finished checkpoint gives the model back without a pass over the data
    with count_passes() as c:
        again = KMeans(12, random_state=0, tol=0, max_iter=40, n_init=2, checkpoint=str(ckpt)).fit(data())
    assert c.passes == 0
    np.testing.assert_array_equal(again.cluster_centers_, resumed.cluster_centers_)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"a": 1}, {"x": np.arange(3)})

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"a": 2}, {"x": np.arange(5)})
    monkeypatch.undo()
    meta, arrays = load_checkpoint(path)  # type: ignore[misc]
    assert meta["a"] == 1 and arrays["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind


def test_leftover_temporary_is_ignored(tmp_path: Path) -> None:
    ckpt = tmp_path / "fit.npz"
    (tmp_path / ".fit.npz.tmp-abc123").write_bytes(b"half a checkpoint")
    X = data()
    a = KMeans(4, random_state=0, max_iter=3, checkpoint=str(ckpt)).fit(X)
    b = KMeans(4, random_state=0, max_iter=3).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)


def test_corrupt_newer_or_foreign_checkpoint_errors(tmp_path: Path) -> None:
    X = data()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SourceError, match="bad.npz"):
        KMeans(4, checkpoint=str(bad)).fit(X)
    newer = tmp_path / "newer.npz"
    save_checkpoint(newer, {"format_version": 99}, {})
    with pytest.raises(SourceError, match="format version 99"):
        KMeans(4, checkpoint=str(newer)).fit(X)
    tampered = tmp_path / "tampered.npz"
    save_checkpoint(tampered, {}, {"x": np.arange(3)})
    meta, _ = load_checkpoint(tampered)  # type: ignore[misc]
    np.savez(tampered, __meta__=np.array(__import__("json").dumps(meta)), x=np.arange(4))
    with pytest.raises(SourceError, match="altered"):
        load_checkpoint(tampered)
    other = tmp_path / "other.npz"
    KMeans(4, random_state=0, max_iter=2, checkpoint=str(other)).fit(X)
    with pytest.raises(InvalidParameterError, match=r"different fit \(n_clusters: 4 there, 5 here"):
        KMeans(5, random_state=0, max_iter=2, checkpoint=str(other)).fit(X)
