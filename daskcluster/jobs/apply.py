"""Apply a saved model to data: its labels, its transform, or its score.

The other half of fit -> save -> apply: a ``model.zip`` (written by a job or by
:func:`daskcluster.persistence.save`) and data given as a job's ``data`` block (any source
kind, with ``scale``, ``offset``, ``max_rows``). Labels and transforms are computed and
written by the workers, chunk by chunk, each store complete or not at all::

    from daskcluster.jobs.apply import apply_model
    from daskcluster.jobs.schema import ZarrData

    result = apply_model("outputs/mnist/model.zip", ZarrData(kind="zarr", path="new.zarr", scale="1/255"),
                         "predict", out="new-labels.zarr")

The same from the command line: ``daskcluster predict MODEL.zip DATA --out LABELS.zarr``
(and ``transform``, ``score``); as a job: ``model: {name: apply, params: {model: MODEL.zip}}``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import InvalidDataError, InvalidParameterError, SourceError
from ..locations import is_url

__all__ = ["METHODS", "ApplyResult", "apply_model", "load_model"]

logger = logging.getLogger(__name__)

Method = Literal["predict", "transform", "score"]

#: What each method gives.
METHODS: dict[str, str] = {
    "predict": "the label of each row: an int32 Zarr array of shape (n_samples,)",
    "transform": "the rows in the model's space (distances to the centers, NMF's activations...): a Zarr array "
                 "of shape (n_samples, n_components)",
    "score": "the model's score of the data (minus the inertia for k-means, mean log-likelihood for mixtures)",
}


@dataclass
class ApplyResult:
    """What :func:`apply_model` did."""

    model: Any
    method: str
    n_samples: int
    n_features: int
    description: str
    out: Path | None
    score: float | None
    seconds: float


def load_model(path: str | os.PathLike[str], method: str) -> Any:
    """The model saved at ``path``, checked to have ``method``.

    Raises
    ------
    SourceNotFoundError, ModelFileError
        No file, or not a model file.
    InvalidParameterError
        The model has no such method (the message lists those it has).
    """
    from .. import persistence

    model = persistence.load(path)
    if method not in METHODS:
        raise InvalidParameterError(f"The 'method' parameter of apply_model must be one of {sorted(METHODS)}. "
                                    f"Got {method!r} instead.", param="method")
    if not callable(getattr(model, method, None)):
        has = [m for m in METHODS if callable(getattr(model, m, None))]
        raise InvalidParameterError(f"{type(model).__name__} (in {os.fspath(path)}) has no {method}(); it has: "
                                    f"{', '.join(has) or 'none of ' + ', '.join(METHODS)}.", param="method")
    return model


def apply_model(model: str | os.PathLike[str] | Any, data: Any, method: Method = "predict", *,
                out: str | os.PathLike[str] | None = None, overwrite: bool = False) -> ApplyResult:
    """Apply a saved model to ``data`` on the current Dask scheduler.

    Parameters
    ----------
    model : path or fitted estimator
        A model file, or the estimator itself.
    data : a ``data`` block model of :mod:`daskcluster.jobs.schema` (``ZarrData``, ``NpyData``, ``RawData``,
        ``MnistData``, ``BlobsData``)
        The rows to apply it to, read as a job reads them (scale, offset, max_rows).
    method : {'predict', 'transform', 'score'}, default='predict'
    out : path, optional
        Where ``predict``/``transform`` write (a Zarr store); required for them.
    overwrite : bool, default=False
        Replace an existing store at ``out`` (the old one is removed once the new is complete).

    Returns
    -------
    ApplyResult
        Data passes: 1 (the model's method over the rows, written as it goes).

    Raises
    ------
    InvalidDataError
        The data's number of features is not the model's (checked from metadata, before
        any row is read).
    SourceError
        ``out`` exists and ``overwrite`` is False.
    """
    from . import outputs
    from .sources import load

    t0 = time.perf_counter()
    estimator = load_model(model, method) if isinstance(model, (str, os.PathLike)) else model
    if method != "score":
        if out is None:
            raise InvalidParameterError(f"{method} writes a Zarr store: give out=PATH (--out).", param="out")
        if not is_url(out) and os.path.exists(out) and not overwrite:
            raise SourceError(f"{os.fspath(out)} already exists; pass overwrite=True (--overwrite) to replace it "
                              "(atomically).")
    loaded = load(data)
    expected = getattr(estimator, "n_features_in_", None)
    if expected is not None and loaded.n_features != expected:
        raise InvalidDataError(f"the data ({loaded.description}) have {loaded.n_features} features; the model was "
                               f"fitted on {expected}. Apply it to data in the space it was fitted in.")
    logger.info("%s.%s on %s (%d x %d)", type(estimator).__name__, method, loaded.description, loaded.n_samples,
                loaded.n_features)
    score = None
    written = None
    if method == "score":
        score = float(estimator.score(loaded.X))
    elif method == "predict":
        written = outputs.write_labels(Path(out), estimator.predict(loaded.X))  # type: ignore[arg-type]
    else:
        from .. import io
        from ..blas import blas_for_tasks

        result = estimator.transform(loaded.X)
        # as for labels: one BLAS thread per kernel under the threaded scheduler
        with blas_for_tasks(result.numblocks[0] if hasattr(result, "numblocks") else 1):
            io.write_zarr(result, out, overwrite=overwrite)  # type: ignore[arg-type]
        written = Path(out)  # type: ignore[arg-type]
    return ApplyResult(estimator, method, loaded.n_samples, loaded.n_features, loaded.description, written, score,
                       time.perf_counter() - t0)
