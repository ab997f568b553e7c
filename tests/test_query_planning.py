"""Dask's array query-planning backend (``array.query-planning``, announced to become the
default): the engine and KMeans use only public Dask API that works on both backends.

The core k-means tests run again in a fresh process with the backend switched on (it must be
chosen before ``dask.array`` is imported). Tests that build Dask arrays from hand-made graphs
themselves (the process-cluster tree test) are left out of that run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ["tests/test_kernels_kmeans.py", "tests/test_engine.py", "tests/test_kmeans_sklearn.py"]


def test_core_suite_passes_with_query_planning() -> None:
    env = {**os.environ, "DASK_ARRAY__QUERY_PLANNING": "True"}
    check = subprocess.run([sys.executable, "-c", "import dask, dask.array; print(dask.config.get('array.query-planning'))"],
                           env=env, capture_output=True, text=True, timeout=120, check=True)
    assert check.stdout.strip() == "True"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not process_cluster",
                           *CORE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
