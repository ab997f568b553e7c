"""A job's ``outputs`` block: everything it writes into its output folder.

=================== ==========================================================================
``model.zip``       the fitted estimator (:mod:`daskcluster.persistence`; lazy ``labels_`` not saved)
``labels.zarr``     predicted labels, int32, shape (n_samples, 1), written chunk by chunk
``metrics.json``    job, data, parameters, fitted scalars, metrics, timings, every iteration
``*.png``           ``convergence.png``, ``sizes.png``, ``centers.png`` (square images only),
                    when matplotlib is installed
``job.log``         the log of the run: one line per stage and per iteration
``job.yaml``        the job as it ran (after ``--set`` and ``--out``)
=================== ==========================================================================

Each file appears complete or not at all (:mod:`daskcluster.atomic`: temporary name, fsync,
rename, fsync of the folder; mode 0644). ``job.log`` is appended to, one run after another,
each run opened by a separator line. Under a distributed cluster the labels are written by the
workers: the folder must be on storage they share.
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

__all__ = ["job_log", "write_json", "write_labels", "write_model", "write_plots", "write_text"]

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
    """Write JSON atomically (NaN and infinities as strings)."""
    return _atomic_bytes(path, (json.dumps(_jsonable(doc), indent=2) + "\n").encode())


def write_text(path: Path, text: str) -> Path:
    return _atomic_bytes(path, text.encode())


def write_job(path: Path, doc: dict[str, Any]) -> Path:
    return write_text(path, yaml.safe_dump(doc, sort_keys=False))


def write_model(path: Path, estimator: Any, metadata: dict[str, Any]) -> Path:
    return persistence.save(estimator, path, metadata=_jsonable(metadata))


def write_labels(path: Path, labels: Any) -> Path:
    """Labels as an int32 Zarr array of shape (n_samples, 1). Data passes: 1 (computes lazy labels).

    Lazy labels are computed and written by the workers; labels already in memory here are
    written from here (threads), not shipped to the cluster and back.
    """
    import dask
    import dask.array as da

    if isinstance(labels, da.Array):
        io.write_zarr(labels.astype(np.int32)[:, None], path, overwrite=True)
    else:
        with dask.config.set(scheduler="threads"):
            io.write_zarr(np.asarray(labels, dtype=np.int32)[:, None], path, overwrite=True)
    return path


def write_plots(folder: Path, estimator: Any, iterations: list[dict[str, Any]], sizes: list[int] | None) -> list[Path]:
    """PNG figures when matplotlib is installed; [] otherwise.

    Uses matplotlib's object API (``Figure`` and the Agg canvas), never ``pyplot``: the
    caller's backend and figures are left alone.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.info("matplotlib is not installed: no plots")
        return []
    from ..plotting import plot_image_grid, save_figure

    def figure(width: float, height: float) -> Any:
        fig = Figure(figsize=(width, height))
        FigureCanvasAgg(fig)
        return fig

    written: list[Path] = []
    # the model's own iterations (a GaussianMixture's KMeans initialisation reports too)
    own = type(estimator).__name__
    fit = [it for it in iterations if it["stage"] == "fit" and it["metrics"] and it.get("estimator", own) == own]
    if fit:
        key = next(iter(fit[0]["metrics"]))
        fig = figure(5, 3.2)
        ax = fig.add_axes((0.17, 0.15, 0.78, 0.75))
        ax.plot([it["iteration"] for it in fit], [it["metrics"][key] for it in fit], marker=".")
        ax.set_xlabel("iteration")
        ax.set_ylabel(key)
        ax.set_title(f"{type(estimator).__name__}: {key} per iteration")
        written.append(save_figure(fig, folder / "convergence.png"))
    if sizes:
        fig = figure(5, 3.2)
        ax = fig.add_axes((0.17, 0.15, 0.78, 0.75))
        ax.bar(range(len(sizes)), sizes)
        ax.set_xlabel("cluster")
        ax.set_ylabel("rows")
        ax.set_title("cluster sizes")
        written.append(save_figure(fig, folder / "sizes.png"))
    centers = getattr(estimator, "cluster_centers_", getattr(estimator, "means_", None))
    if isinstance(centers, np.ndarray) and centers.ndim == 2:
        side = int(round(math.sqrt(centers.shape[1])))
        if side >= 4 and side * side == centers.shape[1]:
            grid = plot_image_grid(centers, (side, side), titles=[str(j) for j in range(len(centers))],
                                   suptitle=f"{type(estimator).__name__}: centers")
            written.append(save_figure(grid, folder / "centers.png"))
    return written


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
