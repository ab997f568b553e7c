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


# ----------------------------------------------------------------------------- job security (issue 17, item 6)


def _files(tmp_path: Path, job: dict[str, Any], config: dict[str, Any]) -> tuple[Path, Path]:
    import yaml

    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "job.yaml", tmp_path / "cluster.yaml"


def test_jobs_cannot_read_or_write_outside_the_allowed_roots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daskcluster.cli import main

    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    np.save(outside / "x.npy", np.zeros((50, 2)))
    (allowed / "escape").symlink_to(outside)  # a link inside an allowed root leads outside it
    config = {"kind": "local", "n_workers": 1, "allowed_paths": {"read": [str(allowed)], "write": [str(allowed)]}}
    cases = [
        ({"outputs": {"dir": str(outside / "out")}}, "key 'outputs.dir'", "may write"),
        ({"outputs": {"dir": str(allowed / "escape" / "out")}}, "key 'outputs.dir'", "may write"),
        ({"outputs": {"dir": str(allowed / ".." / "outside" / "out")}}, "key 'outputs.dir'", "may write"),
        ({"data": {"kind": "npy", "path": str(outside / "x.npy")}}, "key 'data.path'", "may read"),
        ({"data": {"kind": "npy", "path": f"file://{allowed}/escape/x.npy"}}, "key 'data.path'", "may read"),
    ]
    for change, key, what in cases:
        job = {**_job(allowed), "evaluate": {"labels": "none", "metrics": ["sizes"]}, **change}
        job_file, config_file = _files(tmp_path, job, config)
        for command in (["validate", str(config_file), str(job_file)], ["run", str(job_file), "--cluster",
                                                                         str(config_file), "--no-progress"]):
            assert main(command) == 2, (change, command)
            err = capsys.readouterr().err
            assert key in err and f"outside the folders jobs {what}" in err, err
    assert sorted(p.name for p in outside.iterdir()) == ["x.npy"]  # nothing was written there
    assert not (allowed / "out").exists()
    # inside the roots (or given by the operator with --out) is fine
    job_file, config_file = _files(tmp_path, {**_job(allowed), "outputs": {"dir": str(allowed / "out")}}, config)
    assert main(["validate", str(config_file), str(job_file)]) == 0
    from daskcluster.jobs.validation import validate_command

    checked, _ = validate_command(job_file, cluster=config_file, out_dir=outside / "given")
    assert checked.job.output_dir() == outside / "given"


def test_job_ids_and_names_are_plain_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daskcluster.cli import main
    from daskcluster.deploy.files import ConfigError
    from daskcluster.jobs import load_job, status
    from daskcluster.jobs.remote import recall, remember

    (tmp_path / "secret.json").write_text("{}")
    for bad in ("../secret", "a/b", "..", "/etc/passwd", "x/../../y"):
        for command in (["status", bad], ["logs", bad], ["cancel", bad]):
            assert main(command) == 2
            assert "must be a plain name" in capsys.readouterr().err
        with pytest.raises(ConfigError, match="must be a plain name"):
            recall(bad)
        with pytest.raises(ConfigError, match="must be a plain name"):
            remember(bad, {})
        with pytest.raises(ConfigError, match="must be a plain name"):
            status(bad, client=None)  # refused before the scheduler is asked
    for name in ("../x", "a/b", "a..b"):
        with pytest.raises(ConfigError, match="key 'name'"):
            load_job({**_job(tmp_path), "name": name})


def test_a_secret_never_appears_in_outputs_or_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    import logging

    from daskcluster.cli import main
    from daskcluster.deploy.files import ConfigError
    from daskcluster.jobs import load_job

    secret = "s3cr3t-7f3a9b-do-not-leak"
    monkeypatch.setenv("DASKCLUSTER_TEST_SECRET", secret)
    write_zarr(np.random.default_rng(0).normal(size=(400, 3)), tmp_path / "x.zarr")
    job = _job(tmp_path, {"kind": "zarr", "path": f"file://{tmp_path}/x.zarr",
                          "storage_options": {"secret_env": "DASKCLUSTER_TEST_SECRET", "auto_mkdir": False}})
    job["evaluate"] = {"labels": "none", "metrics": ["sizes", "score"]}
    job["outputs"]["log"] = True
    logging.getLogger("daskcluster").setLevel(logging.INFO)
    try:
        result = run_job(job)  # the option reaches the storage: the job runs with it
        assert sum(result.metrics["sizes"]) == 400
        # the command's own messages, with -v
        assert main(["-v", "validate", str(_files(tmp_path, job, {"kind": "local"})[0])]) == 0
        # a failed run (a NaN in the data, found during the fit), into the same folder
        bad = np.random.default_rng(0).normal(size=(400, 3))
        bad[300, 1] = np.nan
        write_zarr(bad, tmp_path / "x.zarr", overwrite=True)
        with pytest.raises(ValueError, match="NaN"):
            run_job(job)
    finally:
        logging.getLogger("daskcluster").setLevel(logging.NOTSET)
    # a literal secret in a job is refused, and the refusal does not repeat it
    literal = {**job, "data": {**job["data"], "storage_options": {"secret": secret}}}
    with pytest.raises(ConfigError, match="'secret' looks like a credential") as info:
        load_job(literal)
    assert secret not in str(info.value)
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert "secret_env: DASKCLUSTER_TEST_SECRET" in (tmp_path / "out" / "job.yaml").read_text()
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["status"] == "failed"


def test_scrub_and_redact_use_the_one_list() -> None:
    from daskcluster.jobs.secrets import MASK, redact, resolve_storage_options, scrub

    os.environ["DASKCLUSTER_TEST_TOKEN"] = "tok-123456789"
    try:
        options = resolve_storage_options({"token_env": "DASKCLUSTER_TEST_TOKEN", "anon": False})
    finally:
        del os.environ["DASKCLUSTER_TEST_TOKEN"]
    assert options == {"token": "tok-123456789", "anon": False}
    assert scrub("failed with {'token': 'tok-123456789'}") == f"failed with {{'token': '{MASK}'}}"
    assert redact({"key": "AKIA", "account_key": "x", "key_env": "V", "key_file": "k.pem", "n": [1, "tok-123456789"]}) == \
        {"key": MASK, "account_key": MASK, "key_env": "V", "key_file": "k.pem", "n": [1, MASK]}
