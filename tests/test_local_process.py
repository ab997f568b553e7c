"""The command's local cluster in a child process, and what the command's own process imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from daskcluster.deploy.local_process import LocalProcess

ROOT = Path(__file__).resolve().parents[1]


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_child_hosts_a_cluster_and_stops_when_its_pipe_closes() -> None:
    from distributed import Client

    host = LocalProcess({"n_workers": 1, "threads_per_worker": 1, "processes": False,
                         "dashboard_address": "127.0.0.1:0"}).start()
    pid = host.pid
    assert pid is not None
    try:
        address = host.wait(timeout=120)
        with Client(address, timeout=60) as client:
            assert client.submit(sum, [1, 2]).result() == 3
            assert client.dashboard_link.startswith("http://127.0.0.1:")
    finally:
        host.close()
    assert _gone(pid) and host.process is None
    host.close()  # twice is harmless


def test_a_cluster_that_cannot_start_is_an_error_naming_why() -> None:
    host = LocalProcess({"n_workers": 1, "processes": False, "no_such_option": 1}).start()
    with pytest.raises(OSError, match="the local cluster did not start: TypeError: .*no_such_option"):
        host.wait(timeout=120)
    assert host.process is None


#: Runs ``daskcluster run`` in a fresh process on a local cluster of one worker process, then
#: prints the modules that process loaded.
_DRIVER = """
import sys
from daskcluster.cli import main
status = main(sys.argv[1:])
print("\\n".join(sorted(sys.modules)))
sys.exit(status)
"""


@pytest.mark.slow
def test_the_command_process_imports_neither_the_dashboard_nor_what_jobs_never_have(tmp_path: Path) -> None:
    """The scheduler and its dashboard (bokeh) run in the child; Dask's arrays come without xarray
    and pydata sparse; without plots, no matplotlib; the kernels' compiled loops (Numba) only on
    the workers."""
    local = tmp_path / "local.yaml"
    local.write_text(yaml.safe_dump({"kind": "local", "n_workers": 1, "threads_per_worker": 1, "processes": True,
                                     "dashboard_address": "127.0.0.1:0"}))
    job = tmp_path / "job.yaml"
    job.write_text(textwrap.dedent("""
        name: light
        data: {kind: blobs, n_samples: 2000, n_features: 4, centers: 3, chunk_rows: 500, random_state: 0}
        model: {name: KMeans, params: {n_clusters: 3, random_state: 0, max_iter: 20}}
        evaluate: {labels: data, metrics: [sizes, adjusted_rand]}
        outputs: {dir: out, plots: false}
        """))
    proc = subprocess.run([sys.executable, "-c", _DRIVER, "run", str(job), "--cluster", str(local), "--out",
                           str(tmp_path / "out"), "--no-progress"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert {"sklearn", "dask.array", "distributed"} <= loaded  # the fit ran here
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["status"] == "done"
    tops = {m.split(".")[0] for m in loaded}
    assert not tops & {"bokeh", "xarray", "sparse", "matplotlib", "pandas", "pyarrow", "numba"}
    assert "distributed.dashboard" not in loaded


@pytest.mark.slow
def test_the_command_process_on_an_existing_scheduler_reads_only_its_rows_and_imports_no_pandas(
        tmp_path: Path, process_cluster: object) -> None:
    """On an existing scheduler the command imports scikit-learn without pandas (and pyarrow), Dask's
    arrays without xarray and pydata sparse, no progress bar's library with ``--no-progress``, no
    Numba nor a module of compiled kernels (the workers run them; ``kernels/compiled.py``), and
    reads only ``max_rows`` rows of MNIST: the rows past them are damaged here, so a whole read would
    fail. The fit is k-means|| seeded and runs Elkan's passes, so the sweep pass, the seeding
    rounds and the bounds' state all run."""
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), "y_train": rng.integers(0, 10, 300, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), "y_test": rng.integers(0, 10, 50, dtype=np.uint8)}
    npz = tmp_path / "mnist.npz"
    np.savez(npz, **arrays)  # stored: x_test's pixels are where its bytes are
    raw = bytearray(npz.read_bytes())
    at = raw.find(arrays["x_test"].tobytes())
    assert at > 0
    raw[at + 100 : at + 200] = bytes(100)  # x_test's CRC no longer matches: reading it raises
    npz.write_bytes(bytes(raw))
    job = tmp_path / "job.yaml"
    job.write_text(textwrap.dedent(f"""
        name: light-mnist
        data: {{kind: mnist, path: {npz}, split: all, scale: 1/255, max_rows: 200}}
        model: {{name: KMeans, params: {{n_clusters: 3, random_state: 0, max_iter: 20, init: k-means||,
                                        algorithm: elkan}}}}
        evaluate: {{labels: data, metrics: [sizes, adjusted_rand]}}
        outputs: {{dir: out, plots: false}}
        """))
    address = process_cluster.scheduler_address  # type: ignore[attr-defined]
    proc = subprocess.run([sys.executable, "-c", _DRIVER, "run", str(job), "--scheduler", address, "--out",
                           str(tmp_path / "out"), "--no-progress"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert {"sklearn.base", "sklearn.cluster", "dask.array", "distributed"} <= loaded  # the fit ran here
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["status"] == "done" and doc["data"]["n_samples"] == 200 and sum(doc["metrics"]["sizes"]) == 200
    tops = {m.split(".")[0] for m in loaded}
    assert not tops & {"pandas", "pyarrow", "xarray", "sparse", "bokeh", "tqdm"}  # tqdm: --no-progress draws no bar
    # the statistics, parameters and combines were used here; their compiled loops were not
    assert {"daskcluster.kernels.kmeans", "daskcluster.kernels.sweep", "daskcluster.kernels.bounds"} <= loaded
    assert "numba" not in tops
    compiled = {"assign", "rowproducts", "sparse", "elkan", "mixture", "blas_nogil"}
    assert not {m for m in loaded if m.startswith("daskcluster.kernels.") and m.split(".")[2] in compiled}
