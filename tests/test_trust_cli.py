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


def test_yaml_aliases_that_expand_too_far_are_refused(tmp_path: Path) -> None:
    # eight levels of ten aliases: 10**8 values once expanded, from a 400-byte file
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    path = tmp_path / "bomb.yaml"
    path.write_text("kind: local\n" + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"aliases \(\*name\) expand to more than 100,000 values"):
        load_config(path)
    job = tmp_path / "job.yaml"
    job.write_text("name: x\n" + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="expand to more than"):
        load_job(job)
    # a few aliases, as people write them, are fine
    path.write_text("kind: local\nn_workers: &n 2\nwait_for_workers: *n\n")
    assert load_config(path).wait_for_workers == 2


def test_local_dashboard_listens_on_this_machine_only() -> None:
    from daskcluster.deploy import default_config

    assert default_config().dashboard_address == "127.0.0.1:8787"
    assert load_config(Path(__file__).parents[1] / "cluster_configs" / "local.yaml").dashboard_address == \
        "127.0.0.1:8787"


def test_tls_shown_only_for_a_tls_address_with_tls_set(tmp_path: Path) -> None:
    from daskcluster.deploy.schema import describe

    tls = {"ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k.pem"}
    assert describe(load_config({"kind": "address", "address": "tls://10.0.0.5:8786", "tls": tls})).endswith("(TLS)")
    assert "TLS" not in describe(load_config({"kind": "address", "address": "tcp://10.0.0.5:8786"}))
    assert "TLS" not in describe(load_config({"kind": "address", "address_env": "SOME_ADDRESS", "tls": tls}))
    with pytest.raises(ConfigError, match=r"'tls://10.0.0.5:8786' is a TLS address, and there is no 'tls' block"):
        load_config({"kind": "address", "address": "tls://10.0.0.5:8786"})


def test_validate_names_six_mistakes_in_one_run_and_set_changes_jobs_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daskcluster.cli import main

    job = tmp_path / "job.yaml"
    job.write_text(
        "name: six\n"
        "data: {kind: npy, path: missing.npy}\n"
        "model: {name: KMeans, params: {n_clusters: 0, tol: -1, max_iters: 5}}\n"
        "evaluate: {labels: none, metrics: [sizes, purity]}\n"
        "outputs: {plots: maybe}\n"
    )
    config = tmp_path / "local.yaml"
    config.write_text("kind: local\nn_workers: 1\n")
    assert main(["validate", str(config), str(job), "--set", "model.params.random_state=0"]) == 2
    out = capsys.readouterr()
    assert f"ok {config}: cluster config" in out.out  # --set did not reach the cluster config
    lines = out.err.strip().splitlines()
    for key in ("data.path", "model.params.n_clusters", "model.params.tol", "model.params.max_iters",
                "evaluate.metrics[1]", "outputs.plots"):
        assert sum(f"key '{key}'" in line for line in lines) == 1, (key, lines)
    assert len(lines) == 6 and all(line.startswith(f"{job}: ") for line in lines)
    assert "missing.npy' on this machine" in out.err  # a missing local input is not 'ok'
