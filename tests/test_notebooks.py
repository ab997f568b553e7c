"""Every notebook of ``notebooks/`` runs top to bottom at its small size, and is committed without outputs.

Each notebook is executed by ``nbclient`` in a ``python3`` kernel started in ``notebooks/``
with ``DASKCLUSTER_NOTEBOOK_SIZE=small`` (a few thousand rows, a few iterations); the kernel
inherits the environment, with the repository root put first on ``PYTHONPATH`` so that it
imports this checkout's ``daskcluster``. Each starts its own ``LocalCluster`` of two worker
processes from ``cluster_configs/local.yaml``.

The test owns the kernel and its client: the client opens no heartbeat channel (the kernel
manager knows from the process whether the kernel lives), and its channels are closed while
the kernel still runs, before the kernel is shut down. (Left to nbclient, the kernel was shut
down first, and a run once hung in the cleanup that followed, joining the heartbeat thread.)
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import nbformat
import pytest
from jupyter_client.channels import HBChannel
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

#: Seconds a cell may run before the execution fails.
CELL_TIMEOUT = 300

#: Seconds the kernel may take to start and answer.
STARTUP_TIMEOUT = 120


async def execute(nb: nbformat.NotebookNode, cwd: Path) -> None:
    """Run every cell of ``nb`` in a fresh ``python3`` kernel started in ``cwd``; then close the
    client's channels and shut the kernel down, in that order."""
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel(cwd=str(cwd), extra_arguments=["--HistoryManager.hist_file=:memory:"])
    try:
        kc = km.client()
        kc.start_channels(hb=False)
        try:
            await kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
            kc.allow_stdin = False
            client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT)
            client.kc = kc  # given a started client, nbclient neither starts nor stops one
            await client.async_execute()
        finally:
            kc.stop_channels()
    finally:
        await km.shutdown_kernel()


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_kmeans_digits_mnist.ipynb",
        "02_choosing_k.ipynb",
        "03_color_quantization_segmentation.ipynb",
        "04_semi_supervised.ipynb",
        "05_gaussian_mixtures.ipynb",
        "06_nmf_opnmf_faces.ipynb",
        "07_dbscan_spectral_agglomerative.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} hold outputs; strip them (jupyter nbconvert --clear-output)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_cells_are_parameters_and_cluster(path: Path) -> None:
    code = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert 'os.environ.get("DASKCLUSTER_NOTEBOOK_SIZE", "full")' in code[0].source
    assert "deploy(config)" in code[1].source and "dashboard_link" in code[1].source
    assert code[-1].source.strip() == "session.close()"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_runs_at_small_size(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKCLUSTER_NOTEBOOK_SIZE", "small")
    monkeypatch.delenv("DASKCLUSTER_CLUSTER_CONFIG", raising=False)
    monkeypatch.delenv("DASKCLUSTER_DATA_DIR", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    nb = nbformat.read(path, as_version=4)
    try:
        asyncio.run(execute(nb, path.parent))
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed at its small size:\n{exc}")
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [out for out in outputs if out.output_type == "error"]
    assert errors == []
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert images, f"{path.name} drew no inline figure"
    assert not [t for t in threading.enumerate() if isinstance(t, HBChannel)], "a heartbeat thread outlived the run"
