"""Bad sizes on the command line and keys given twice in YAML are clear errors (issue 14, item 6).

The command runs as a real process: exit status 2 and the message on stderr, nothing written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daskcluster.deploy import load_config
from daskcluster.deploy.files import ConfigError
from daskcluster.jobs import load_job


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daskcluster", *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("args, match", [
    (["--n-samples", "-5", "--n-features", "3"], "argument --n-samples: must be an integer >= 1; got -5"),
    (["--n-samples", "10", "--n-features", "0"], "argument --n-features: must be an integer >= 1; got 0"),
    (["--n-samples", "10", "--n-features", "2", "--centers", "0"], "argument --centers: must be an integer >= 1; got 0"),
    (["--n-samples", "10", "--n-features", "2", "--chunk-rows", "-1"], "argument --chunk-rows: must be an integer >= 1; got -1"),
    (["--n-samples", "10", "--n-features", "2", "--cluster-std", "-1"], "argument --cluster-std: must be a finite number >= 0; got -1"),
    (["--n-samples", "10", "--n-features", "2", "--chunk-bytes", "0"], "argument --chunk-bytes: must be an integer >= 1; got 0"),
    (["--n-samples", "ten", "--n-features", "2"], "argument --n-samples: must be an integer >= 1; got 'ten'"),
])
def test_blobs_sizes_validated(tmp_path: Path, args: list[str], match: str) -> None:
    out = tmp_path / "x.zarr"
    proc = _cli("datasets", "blobs", str(out), *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert match in proc.stderr
    assert not out.exists() and os.listdir(tmp_path) == []


def test_quickstart_sizes_validated() -> None:
    proc = _cli("quickstart", "--workers", "0")
    assert proc.returncode == 2 and "argument --workers: must be an integer >= 1; got 0" in proc.stderr


JOB = """\
name: dup
data: {kind: blobs, n_samples: 100, n_features: 2}
model:
  name: KMeans
  params:
    n_clusters: 3
    n_clusters: 30
outputs: {dir: out}
"""


def test_duplicate_key_in_a_job_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(JOB)
    with pytest.raises(ConfigError, match=r"job.yaml: not valid YAML \(line 7, column 5\): the key 'n_clusters' is "
                                          r"given twice \(first on line 6\)"):
        load_job(path)
    proc = _cli("validate", str(path))
    assert proc.returncode == 2 and "the key 'n_clusters' is given twice" in proc.stdout + proc.stderr


def test_duplicate_key_in_a_cluster_config_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("kind: local\nn_workers: 2\nn_workers: 8\n")
    with pytest.raises(ConfigError, match=r"c.yaml: not valid YAML \(line 3, column 1\): the key 'n_workers' is given twice"):
        load_config(path)


def test_same_key_in_different_mappings_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(JOB.replace("    n_clusters: 30\n", "    random_state: 0\n"))
    assert load_job(path).doc.model.params["n_clusters"] == 3
