"""Jobs: a failed or killed run says so, logs are kept, one run per output folder (issue 14,
items 4 and 5). The killed run is a real process killed with SIGKILL during its fit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daskcluster.errors import LockedError, StoreIntegrityError
from daskcluster.io import write_zarr
from daskcluster.jobs import run_job


def _job(tmp_path: Path, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": "tiny",
        "data": data or {"kind": "blobs", "n_samples": 3000, "n_features": 6, "centers": 4, "chunk_rows": 700,
                         "random_state": 1},
        "model": {"name": "KMeans", "params": {"n_clusters": 4, "random_state": 0, "n_init": 1}},
        "evaluate": {"metrics": ["sizes"]},
        "outputs": {"dir": str(tmp_path / "out"), "plots": False},
    }


def test_failed_job_writes_failed_metrics_with_the_error(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32)
    store = tmp_path / "x.zarr"
    write_zarr(X, store, chunk_bytes=100 * 3 * 4)
    chunk = store / "c" / "2" / "0"
    chunk.write_bytes(b"\x02\x01" + os.urandom(chunk.stat().st_size))  # opens fine, fails when read
    with pytest.raises(StoreIntegrityError, match=r"Zarr chunk 2 \(rows 200:300\)"):
        run_job(_job(tmp_path, {"kind": "zarr", "path": str(store)}))
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["status"] == "failed"
    assert doc["error"].startswith("StoreIntegrityError: ") and "rows 200:300" in doc["error"]


RUNNER = textwrap.dedent("""
    import sys, time
    from daskcluster.jobs import run_job
    job, ready = sys.argv[1], sys.argv[2]
    import json
    def wait(rep):
        if rep.stage == "fit":
            open(ready, "w").close()
            time.sleep(120)
    run_job(json.loads(job), on_progress=wait)
""")


def test_second_run_into_a_busy_folder_refused_then_killed_run_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "out"
    job = _job(tmp_path)
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(job), str(ready)])
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        doc = json.loads((out / "metrics.json").read_text())
        assert doc["status"] == "running" and doc["pid"] == proc.pid
        with pytest.raises(LockedError, match=rf"output folder '{out}' is being written by process {proc.pid}"):
            run_job(job)
        # a temporary the killed run would leave mid-write
        (out / f".labels.zarr.tmp-{__import__('daskcluster.atomic').atomic.host_tag()}.{proc.pid}.abc").mkdir()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert json.loads((out / "metrics.json").read_text())["status"] == "running"  # the kill is visible
    result = run_job(job)  # the dead run's lock is stale: taken over
    assert json.loads((out / "metrics.json").read_text())["status"] == "done"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    log = (out / "job.log").read_text()
    assert log.count("===== run started") == 2  # appended, not truncated
    assert f"pid {proc.pid}" in log and "died without finishing" in log
    assert result.n_samples == 3000
