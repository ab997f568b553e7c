"""Dask's array query-planning backend (``array.query-planning``, announced to become the
default): the whole package uses only public Dask API that works on both backends.

The test suite runs again in fresh processes with the backend switched on (it must be chosen
before ``dask.array`` is imported): every module but those in :data:`LEFT_OUT`, and every test
but those in :data:`DESELECTED` or named by :data:`KEYWORDS_LEFT_OUT`, each with its reason. New test modules are included by
default. The modules run in a few groups, one process each, so that a failure names its group.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Why Dask DataFrame sources are not rerun: outside this package.
_FRAMES = ("Dask DataFrame to array: dask 2026.8's DataFrame.to_dask_array sets the classic array's private "
           "'_chunks' on the query-planning Array (AttributeError) and DataFrame.values builds an array "
           "expression over a DataFrame expression that has no chunks (AttributeError: 'MapPartitions' object "
           "has no attribute 'chunks'); no public conversion works there")

#: Test modules not rerun with query planning, and why.
LEFT_OUT = {
    "test_query_planning.py": "this module",
    "test_notebooks.py": "executes the notebooks (minutes); every call they make is tested by the other modules",
    "test_cli.py": "starts command-line processes and clusters (minutes); the arrays they build come from io, "
                   "datasets and jobs, rerun here",
    "test_deploy.py": "starts schedulers, workers and a gateway server: no Dask array is involved",
    "test_trust_cli.py": "command-line processes and YAML checks: no Dask array is involved",
    "test_submit_batch.py": "batch-system processes (SLURM daemons, driver scripts): the job they run is "
                            "tested by test_jobs.py, rerun here",
    "test_worker_imports.py": "which modules fresh interpreters and workers import: the same on both backends",
    "test_streaming.py": "one fit on memory-limited worker processes (minutes); streamed fits from Zarr with "
                         "read-ahead on a process cluster are rerun here by test_engine_readahead.py",
}

#: Single tests not rerun with query planning, and why.
DESELECTED = {
    "tests/test_feature_names.py::test_dask_dataframe_stays_lazy": _FRAMES,
    "tests/test_parquet.py::test_dask_dataframe_lengths_computed_once_and_model_equal": _FRAMES,
}

#: Tests whose names hold a keyword below are not rerun with query planning (``-k``), and why.
KEYWORDS_LEFT_OUT: dict[str, str] = {}

#: Processes the modules are spread over (sorted names dealt round-robin).
N_GROUPS = 4


def _modules() -> list[str]:
    return sorted(p.name for p in (ROOT / "tests").glob("test_*.py") if p.name not in LEFT_OUT)


def _env() -> dict[str, str]:
    env = {**os.environ, "DASK_ARRAY__QUERY_PLANNING": "True"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_the_backend_is_switched_on_in_the_child_processes() -> None:
    script = "import dask, dask.array as da; print(dask.config.get('array.query-planning'), type(da.ones(1)).__module__)"
    check = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=120,
                           check=True)
    flag, module = check.stdout.split()
    assert flag == "True" and "_array_expr" in module


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("group", range(N_GROUPS))
def test_suite_passes_with_query_planning(group: int) -> None:
    modules = [f"tests/{m}" for m in _modules()[group::N_GROUPS]]
    deselect = [arg for test in DESELECTED for arg in ("--deselect", test) if test.split("::")[0] in modules]
    keywords = ["-k", " and ".join(f"not {k}" for k in KEYWORDS_LEFT_OUT)] if KEYWORDS_LEFT_OUT else []
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *keywords, *deselect,
                           *modules],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1700, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
