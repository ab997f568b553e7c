"""Crashes leave nothing half-done; two writers never both win (issue 14, items 4 and 5).

Killed writers are real processes killed with SIGKILL while they write.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from daskcluster.atomic import (
    atomic_dir,
    atomic_file,
    clean_stale,
    temp_name,
    write_bytes,
)
from daskcluster.errors import LockedError, SourceError
from daskcluster.locks import FileLock


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _start(code: str, ready: Path) -> subprocess.Popen[bytes]:
    """Start ``code`` in a new interpreter and wait until it touches ``ready``."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)])
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the writer exited early with code {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the writer did not start")
        time.sleep(0.05)
    return proc


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_killed_file_write_leaves_previous_file_and_next_write_cleans(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_bytes(target, b'{"old": true}')
    ready = tmp_path / "ready"
    proc = _start(f"""
        import time
        from daskcluster.atomic import atomic_file
        with atomic_file({str(target)!r}) as f:
            f.write(b'{{"new": tr')
            open({str(ready)!r}, "w").close()
            time.sleep(120)
    """, ready)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b'{"old": true}'
    assert len(_hidden(tmp_path)) == 1  # the dead writer's temporary
    write_bytes(target, b'{"new": true}')
    assert target.read_bytes() == b'{"new": true}'
    assert _hidden(tmp_path) == []


def test_killed_store_write_leaves_previous_store_and_next_write_cleans(tmp_path: Path) -> None:
    from daskcluster.io import open_array, write_zarr

    target = tmp_path / "labels.zarr"
    write_zarr(np.ones((20, 2), dtype=np.int32), target)
    ready = tmp_path / "ready"
    proc = _start(f"""
        import time
        import dask, dask.array as da, numpy as np
        from daskcluster.io import write_zarr

        def slow(block):
            open({str(ready)!r}, "w").close()
            time.sleep(120)
            return block

        x = da.zeros((20, 2), dtype=np.int32, chunks=(10, 2)).map_blocks(slow, meta=np.empty((0, 0), np.int32))
        with dask.config.set(scheduler="synchronous"):
            write_zarr(x, {str(target)!r}, overwrite=True)
    """, ready)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    np.testing.assert_array_equal(open_array(target).compute(), np.ones((20, 2)))
    assert any(".tmp-" in name for name in _hidden(tmp_path))
    write_zarr(np.full((20, 2), 2, dtype=np.int32), target, overwrite=True)
    np.testing.assert_array_equal(open_array(target).compute(), np.full((20, 2), 2))
    assert _hidden(tmp_path) == []


def test_crash_between_renames_restores_old_copy(tmp_path: Path) -> None:
    """Where no atomic swap exists: old moved aside, then a crash: the next write puts it back."""
    target = tmp_path / "out.zarr"
    aside = temp_name(target, "old")
    dead = _dead_pid()
    aside = aside.with_name(aside.name.replace(f".{os.getpid()}.", f".{dead}."))
    aside.mkdir()
    (aside / "zarr.json").write_text("{}")
    assert clean_stale(target) == [aside]
    assert (target / "zarr.json").read_text() == "{}"


def test_temporaries_of_live_writers_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "model.zip"
    mine = temp_name(target)
    mine.write_bytes(b"partial")
    other_host = tmp_path / f".model.zip.tmp-ffffffff.{_dead_pid()}.abc"
    other_host.write_bytes(b"x")
    assert clean_stale(target) == []
    assert mine.exists() and other_host.exists()


def test_failed_write_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    write_bytes(target, b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_file(target) as f:
            f.write(b"new")
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(tmp_path / "d") as tmp:
            tmp.mkdir()
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert _hidden(tmp_path) == []


def test_files_written_with_mode_0644_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = write_bytes(tmp_path / "f.json", b"{}")
        with atomic_dir(tmp_path / "s") as tmp:
            tmp.mkdir()
            (tmp / "c").write_bytes(b"1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "s" / "c").stat().st_mode) == 0o644


def test_overwrite_false_is_checked_by_the_rename(tmp_path: Path) -> None:
    target = tmp_path / "model.zip"
    with pytest.raises(SourceError, match="model.zip' already exists"):
        with atomic_file(target, overwrite=False) as f:
            f.write(b"first")
            target.write_bytes(b"someone else")  # appears while we write
    assert target.read_bytes() == b"someone else"
    assert _hidden(tmp_path) == []


def test_overwrite_false_two_processes_one_wins(tmp_path: Path) -> None:
    target = tmp_path / "model.zip"
    go = tmp_path / "go"
    code = f"""
        import os, sys, time
        from daskcluster.atomic import atomic_file
        from daskcluster.errors import SourceError
        with atomic_file({str(target)!r}, overwrite=False) as f:
            f.write(str(os.getpid()).encode())
            while not os.path.exists({str(go)!r}):
                time.sleep(0.01)
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stderr=subprocess.PIPE)
             for _ in range(2)]
    time.sleep(3)
    go.touch()
    results = [(p.wait(timeout=60), p.stderr.read().decode()) for p in procs if p.stderr]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code)
    assert "already exists" in loser
    assert int(target.read_text()) in {p.pid for p in procs}


# ------------------------------------------------------------------------------ locks


def test_lock_second_process_gets_clear_error(tmp_path: Path) -> None:
    lock = tmp_path / "out" / ".daskcluster.lock"
    ready = tmp_path / "ready"
    proc = _start(f"""
        import time
        from daskcluster.locks import FileLock
        with FileLock({str(lock)!r}, "the output folder"):
            open({str(ready)!r}, "w").close()
            time.sleep(120)
    """, ready)
    try:
        with pytest.raises(LockedError, match=rf"being written by process {proc.pid} on host .*Wait for it"):
            FileLock(lock, "the output folder").acquire()
    finally:
        proc.kill()
        proc.wait()
    # killed: the lock is stale now, and taken over
    with FileLock(lock, "the output folder") as taken:
        assert taken.held
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_stale_lock_of_dead_process_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started": "then"}))
    with FileLock(lock, "x"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_lock_of_other_host_is_not_taken(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"}))
    with pytest.raises(LockedError, match=r"process 1 on host elsewhere .*delete '.*x.lock'"):
        FileLock(lock, "the checkpoint").acquire()


def test_two_processes_saving_a_model_without_overwrite_one_wins(tmp_path: Path) -> None:
    """``persistence.save(overwrite=False)`` checked, then wrote: both processes could "win"."""
    target = tmp_path / "model.zip"
    go = tmp_path / "go"
    code = textwrap.dedent(f"""
        import os, time
        import numpy as np
        from daskcluster import KMeans, persistence
        from daskcluster.errors import SourceError
        km = KMeans(2, n_init=1, random_state=os.getpid() % 100).fit(np.random.default_rng(0).normal(size=(50, 2)))
        open({str(tmp_path)!r} + f"/ready-{{os.getpid()}}", "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        try:
            persistence.save(km, {str(target)!r}, overwrite=False, metadata={{"pid": os.getpid()}})
        except SourceError as exc:
            print("REFUSED", exc)
            raise SystemExit(3)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 2:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    go.touch()
    outs = [(p.wait(timeout=120), p.communicate()[0]) for p in procs]
    assert sorted(code for code, _ in outs) == [0, 3], outs
    assert "model.zip' already exists" in next(out for code, out in outs if code == 3)
    from daskcluster import persistence

    winner = next(p.pid for p, (code, _) in zip(procs, outs) if code == 0)
    assert persistence.read_header(target)["metadata"]["pid"] == winner


def test_directory_overwrite_is_one_atomic_swap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old store is never moved aside first (a crash between two renames left nothing at the
    path): on Linux the new one is swapped in by one renameat2(RENAME_EXCHANGE)."""
    import daskcluster.atomic as atomic_module

    if not sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux-only; elsewhere the old copy is restored by clean_stale")
    target = tmp_path / "s.zarr"
    with atomic_dir(target) as tmp:
        tmp.mkdir()
        (tmp / "v").write_text("old")

    def no_two_step(*args: object) -> None:
        raise AssertionError("os.replace used: the path would be empty between two renames")

    monkeypatch.setattr(atomic_module.os, "replace", no_two_step)
    with atomic_dir(target, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "v").write_text("new")
    assert (target / "v").read_text() == "new"
    assert _hidden(tmp_path) == []
