"""A job's ``outputs`` block: everything it writes into its output folder.

=================== ==========================================================================
``model.zip``       the fitted estimator (:mod:`daskcluster.persistence`; lazy ``labels_`` not saved)
``labels.zarr``     predicted labels, int32, shape (n_samples,), written chunk by chunk by the workers
``metrics.json``    job, data, parameters, fitted scalars, metrics, timings, every iteration
``*.png``           ``convergence.png``, ``sizes.png``, ``centers.png`` or ``components.png`` (square
                    images only), when matplotlib is installed
``sweep.csv``       the table of a sweep (``kmeans_sweep``, ``gmm_sweep``), one row per model
``job.log``         the log of the run: one line per stage and per iteration
``job.yaml``        the job as it ran (after ``--set`` and ``--out``)
=================== ==========================================================================

Each file appears complete or not at all (:mod:`daskcluster.atomic`: temporary name, fsync,
rename, fsync of the folder; mode 0644). ``job.log`` is appended to, one run after another,
each run opened by a separator line. Under a distributed cluster the labels are written by the
workers: the folder must be on storage they share. Everything written and logged goes through
:mod:`daskcluster.jobs.secrets` (secret values scrubbed, secret-named keys blanked).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .. import atomic, io, persistence
from ..locations import is_url
from .secrets import RedactingFilter, redact, scrub

__all__ = ["convergence_figure", "image_figures", "job_log", "read_labels", "sizes_figure", "write_json", "write_labels",
           "write_model", "write_plots", "write_table", "write_text"]

logger = logging.getLogger(__name__)


def _atomic_bytes(path: Path, data: bytes) -> Path:
    return atomic.write_bytes(path, data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    """Write JSON atomically (NaN and infinities as strings; secrets redacted)."""
    return write_text(path, json.dumps(redact(_jsonable(doc)), indent=2) + "\n")


def write_text(path: Path, text: str) -> Path:
    """Write text atomically, secret values scrubbed."""
    return _atomic_bytes(path, scrub(text).encode())


def write_job(path: Path, doc: dict[str, Any]) -> Path:
    return write_text(path, yaml.safe_dump(redact(doc), sort_keys=False))


def write_table(path: Path, table: Any) -> Path:
    """A pandas DataFrame as CSV, atomically."""
    return write_text(path, table.to_csv(index=False))


def write_model(path: Path, estimator: Any, metadata: dict[str, Any]) -> Path:
    return persistence.save(estimator, path, metadata=_jsonable(metadata))


def write_labels(path: Path, labels: Any) -> Path:
    """Labels as an int32 Zarr array of shape (n_samples,), atomically (:func:`daskcluster.atomic.atomic_dir`).
    Data passes: 1 (computes lazy labels).

    Lazy labels are computed and written by the workers, one Zarr chunk per task (the folder
    must be on storage they share); labels already in memory here are written from here
    (threads), not shipped to the cluster and back. Under the threaded scheduler the label
    kernels get one BLAS thread each (:func:`daskcluster.blas.blas_for_tasks`), as a fit's passes.

    Raises
    ------
    SourceError
        ``path`` is a URL: labels are written to a folder path.
    """
    import dask
    import dask.array as da
    import zarr

    from ..blas import blas_for_tasks

    if is_url(path):
        from ..errors import SourceError

        raise SourceError(f"labels are written to a folder path; got the URL {str(path)!r}. Give a local or shared "
                          "folder path.")
    local = not isinstance(labels, da.Array)
    arr = da.from_array(np.asarray(labels, dtype=np.int32)) if local else labels.astype(np.int32)
    if arr.ndim != 1:
        raise ValueError(f"labels must have shape (n_samples,); got {arr.shape}.")
    rows = io.chunk_rows(int(arr.shape[0]), 1, 4, io.DEFAULT_CHUNK_BYTES, min_chunks=1)
    arr = arr.rechunk(max(rows, 1))
    n_tasks = 1 if local else labels.numblocks[0]  # the label kernels that may run at once
    with atomic.atomic_dir(path, overwrite=True) as tmp:
        z = zarr.create_array(str(tmp), shape=arr.shape, chunks=(max(rows, 1),), dtype=np.int32, zarr_format=3)
        with dask.config.set(scheduler="threads") if local else blas_for_tasks(n_tasks):
            # each block into its rows, one task per block (dask.array.store is not on Dask's
            # query-planning backend)
            da.map_blocks(_write_labels, arr, z, chunks=((1,) * arr.numblocks[0],), dtype=bool,
                          meta=np.empty((0,), dtype=bool)).compute()
    return Path(path)


def _write_labels(block: np.ndarray, z: Any, block_info: Any = None) -> np.ndarray:
    (start, stop), = block_info[0]["array-location"]
    z[start:stop] = block
    return np.ones(1, dtype=bool)


#: Up to this many clusters, sizes.png labels every one.
MAX_TICKS = 60


def _figure(width: float, height: float) -> Any:
    """A Figure on the Agg canvas, never ``pyplot``: the caller's backend and figures are left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def convergence_figure(estimator: Any, iterations: list[dict[str, Any]]) -> Any | None:
    """The first metric of the model's own fit iterations against the iteration, or None."""
    own = type(estimator).__name__  # a GaussianMixture's KMeans initialisation reports too
    fit = [it for it in iterations if it["stage"] == "fit" and it["metrics"] and it.get("estimator", own) == own]
    if not fit:
        return None
    key = next(iter(fit[0]["metrics"]))
    fig = _figure(5, 3.2)
    ax = fig.add_axes((0.17, 0.15, 0.78, 0.75))
    ax.plot([it["iteration"] for it in fit], [it["metrics"][key] for it in fit], marker=".")
    ax.set_xlabel("iteration")
    ax.set_ylabel(key)
    ax.set_title(f"{own}: {key} per iteration")
    return fig


def sizes_figure(sizes: list[int], majority: list[Any] | None = None) -> Any:
    """Rows per cluster, a tick for every cluster up to :data:`MAX_TICKS` (its majority true
    label under its number when given)."""
    k = len(sizes)
    labelled = majority is not None and len(majority) == k and k <= MAX_TICKS
    fig = _figure(max(5.0, 0.32 * k) if k <= MAX_TICKS else 5.0, 3.4)
    ax = fig.add_axes((0.17, 0.2, 0.78, 0.7))
    ax.bar(range(k), sizes)
    if k <= MAX_TICKS:  # every cluster's tick; beyond, matplotlib's spacing
        ax.set_xticks(range(k))
        ax.set_xticklabels([f"{j}\n{majority[j]}" for j in range(k)] if labelled else [str(j) for j in range(k)],
                           fontsize=8 if k > 20 else 10)
    ax.set_xlabel("cluster (most frequent true label below)" if labelled else "cluster")
    ax.set_ylabel("rows")
    ax.set_title("cluster sizes")
    return fig


def image_figures(estimator: Any, majority: list[Any] | None = None) -> dict[str, Any]:
    """``centers.png`` (cluster centers or means) and ``components.png`` as image grids, when the
    features make a square image. With ``majority`` the centers are titled by the most frequent
    true label of their cluster and ordered by it, as the quick start draws them."""
    from ..plotting import plot_image_grid

    out: dict[str, Any] = {}
    for attribute, name, what in (("cluster_centers_", "centers.png", "centers"), ("means_", "centers.png", "means"),
                                  ("components_", "components.png", "components")):
        images = getattr(estimator, attribute, None)
        if not isinstance(images, np.ndarray) or images.ndim != 2 or name in out:
            continue
        side = round(math.sqrt(images.shape[1]))
        if side < 4 or side * side != images.shape[1]:
            continue
        order = list(range(len(images)))
        titles = [str(j) for j in order]
        suptitle = f"{type(estimator).__name__}: {what}"
        if what != "components" and majority is not None and len(majority) == len(images):
            order = sorted(order, key=lambda j: (majority[j], j))
            titles = [str(majority[j]) for j in order]
            suptitle += ", titled by the most frequent true label of their cluster"
        out[name] = plot_image_grid(images[order], (side, side), titles=titles, suptitle=suptitle)
    return out


def read_labels(path: Path) -> Any:
    """The labels :func:`write_labels` wrote, as a lazy Dask array (one task per Zarr chunk)."""
    import dask.array as da
    import zarr

    z = zarr.open_array(str(path), mode="r")
    return da.from_array(z, chunks=z.chunks)


#: What :func:`write_plots` imports: the command imports them while the fit runs.
PLOT_MODULES = ("matplotlib.figure", "matplotlib.backends.backend_agg")


def write_plots(folder: Path, estimator: Any, iterations: list[dict[str, Any]], sizes: list[int] | None,
                majority: list[Any] | None = None) -> list[Path]:
    """PNG figures when matplotlib is installed; [] otherwise: ``convergence.png``, ``sizes.png``,
    ``centers.png``/``components.png`` (see :func:`image_figures`).

    ``majority``: the most frequent true label of each cluster, when the job has true labels.
    """
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        logger.info("matplotlib is not installed: no plots")
        return []
    from ..plotting import save_figure

    figures: dict[str, Any] = {}
    if (fig := convergence_figure(estimator, iterations)) is not None:
        figures["convergence.png"] = fig
    if sizes:
        figures["sizes.png"] = sizes_figure(sizes, majority)
    figures.update(image_figures(estimator, majority))
    return [save_figure(fig, folder / name) for name, fig in figures.items()]


class _Forward(logging.Handler):
    """Pass records on to the root logger, which applies its own level (as propagation would)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


@contextmanager
def job_log(path: Path | None, extra: logging.Handler | None = None) -> Iterator[None]:
    """Send daskcluster's log records (INFO and up) to ``path`` and ``extra`` while the job runs.

    The caller's own logging is unchanged: records below the level the ``daskcluster``
    logger had still do not reach the root logger's handlers.
    """
    log = logging.getLogger("daskcluster")
    handlers: list[logging.Handler] = []
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(path, mode="a", encoding="utf-8")  # earlier runs are kept
        if fh.stream.tell() > 0:
            fh.stream.write("\n")
        fh.stream.write(f"===== run started {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')} "
                        f"(pid {os.getpid()} on {socket.gethostname()}) =====\n")
        fh.stream.flush()
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(fh)
    if extra is not None:
        handlers.append(extra)
    old_level, old_propagate = log.level, log.propagate
    effective = log.getEffectiveLevel()
    for h in handlers:
        h.setLevel(logging.INFO)
        h.addFilter(RedactingFilter())
        log.addHandler(h)
    if handlers and effective > logging.INFO:
        log.setLevel(logging.INFO)
        if old_propagate:  # keep the caller's threshold for what reaches the root handlers
            log.propagate = False
            handlers.append(_Forward(level=effective))
            log.addHandler(handlers[-1])
    try:
        yield
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        log.setLevel(old_level)
        log.propagate = old_propagate
