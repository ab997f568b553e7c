"""One report of every problem of a job, before anything starts.

:func:`validate_job` reads a job file (or mapping) and lists, in one :class:`ConfigError`,
everything wrong with it, each line naming the file, the key and the fix:

1. the schema (unknown keys, wrong types, missing values, unknown estimator or metric);
2. the inputs: a local path that does not exist here, a path outside the folders the
   operator allows (:class:`~daskcluster.jobs.policy.PathPolicy`), an output folder outside
   the writable ones;
3. the data's metadata (Zarr metadata, ``.npy`` headers, MNIST's member headers; no data
   read) through the preprocessing steps;
4. every model parameter on its own, then all together, with the estimator's own checks
   against that metadata (:meth:`~daskcluster.jobs.registry.EstimatorEntry.problems`).

A step that cannot run because an earlier block is broken is skipped; the others still run,
so a job with six mistakes in different blocks shows all six at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..deploy.files import ConfigError, apply_overrides, load_yaml, validation_problems
from ..errors import DaskClusterError
from ..locations import is_url
from .policy import PathPolicy
from .registry import ESTIMATORS, UNKNOWN_FEATURES, ParamError
from .runner import CheckedJob, Job, load_job
from .schema import DATA_KINDS, MnistData, PreprocessStep

__all__ = ["input_problems", "validate_command", "validate_job"]


def _read(source: str | os.PathLike[str] | Mapping[str, Any], overrides: tuple[str, ...] | list[str],
          out_dir: str | os.PathLike[str] | None) -> tuple[str, dict[str, Any]]:
    if isinstance(source, Mapping):
        name, doc = "<job>", dict(source)
    else:
        name, doc = str(source), load_yaml(source)
    doc = apply_overrides(doc, list(overrides), name)
    if out_dir is not None and isinstance(doc.get("outputs", {}), dict):
        doc["outputs"] = {**doc.get("outputs", {}), "dir": os.fspath(out_dir)}
    return name, doc


def _missing(key: str, path: str) -> str:
    return (f"key '{key}': no such file or folder {path!r} on this machine (relative paths are read from "
            f"{os.getcwd()}). Fix the path; a path that exists only on the workers can be used with "
            "'daskcluster submit'.")


def input_problems(data: Any, doc: Mapping[str, Any], policy: PathPolicy | None, *, inputs_here: bool = True,
                   out_dir: str | None = None) -> tuple[list[str], list[str]]:
    """Problems (and notes) of the paths a job reads and writes: missing local inputs, and paths
    outside ``policy``'s roots. ``doc`` is the job as a mapping; ``out_dir`` its output folder."""
    problems: list[str] = []
    notes: list[str] = []
    reads: list[tuple[str, str]] = []
    if data is not None:
        if isinstance(data, MnistData):
            if data.path is not None:
                reads.append(("data.path", data.path))
        elif getattr(data, "path", None) is not None:
            reads.append(("data.path", data.path))
        labels = getattr(data, "labels", None)
        if labels is not None:
            reads.append(("data.labels.path", labels.path))
    evaluate = doc.get("evaluate")
    if isinstance(evaluate, Mapping) and isinstance(evaluate.get("labels"), Mapping):
        path = evaluate["labels"].get("path")
        if isinstance(path, str):
            reads.append(("evaluate.labels.path", path))
    model = doc.get("model")
    if isinstance(model, Mapping) and model.get("name") == "apply" and isinstance(model.get("params"), Mapping):
        path = model["params"].get("model")
        if isinstance(path, str):
            reads.append(("model.params.model", path))
    for key, path in reads:
        if policy is not None and (problem := policy.problem(key, path)) is not None:
            problems.append(problem)
        elif not is_url(path) and not os.path.exists(path):
            if inputs_here or key == "model.params.model":
                problems.append(_missing(key, path))
            else:
                notes.append(f"{path} is not reachable from here: it is checked when the job runs on the workers")
    if policy is not None and out_dir is not None and (problem := policy.problem("outputs.dir", out_dir,
                                                                                 write=True)) is not None:
        problems.append(problem)
    return problems, notes


def _placeholder(n_samples: int | None, n_features: int | None, dtype: Any, params: Mapping[str, Any]) -> Any:
    """RowData of the data's shape and dtype, never computed (for the estimator's checks)."""
    import dask.array as da

    from ..data import as_row_data

    n = n_samples if n_samples is not None else 2**31
    d = n_features
    if d is None:  # unknown here: from an array parameter if there is one
        arrays = [np.asarray(v) for v in params.values() if isinstance(v, list) and v and isinstance(v[0], list)]
        d = int(arrays[0].shape[1]) if arrays else UNKNOWN_FEATURES
    return as_row_data(da.empty((n, d), dtype=dtype, chunks=(n, d)), owner="job")


def validate_job(source: str | os.PathLike[str] | Mapping[str, Any], *, overrides: tuple[str, ...] | list[str] = (),
                 out_dir: str | os.PathLike[str] | None = None, policy: PathPolicy | None = None,
                 inputs_here: bool = True) -> CheckedJob:
    """Check everything about a job at once; reads metadata only, never data.

    Parameters
    ----------
    source : path or mapping
    overrides : list of str
        ``key.sub=value`` (``--set``), applied to the job before anything is checked.
    out_dir : path, optional
        Replaces ``outputs.dir`` (``--out``).
    policy : PathPolicy, optional
        Where the job may read and write (None: anywhere).
    inputs_here : bool, default=True
        Whether local inputs must exist on this machine (False for a job run on workers that
        see other files: a missing path is then a note).

    Returns
    -------
    CheckedJob
        With the built estimator and the data's metadata.

    Raises
    ------
    ConfigError
        Every problem, one line each: ``<file>: key '<key>': <problem>. <fix>``.
    """
    from .sources import peek

    name, doc = _read(source, overrides, out_dir)
    problems: list[str] = []
    job: Job | None = None
    try:
        job = load_job(doc)
    except ConfigError as exc:
        problems += [line.removeprefix("<job>: ") for line in str(exc).splitlines()]

    data = None
    data_doc = doc.get("data")
    if isinstance(data_doc, Mapping) and data_doc.get("kind") in DATA_KINDS:
        data, _ = validation_problems(DATA_KINDS[data_doc["kind"]], data_doc, ("data",))
    steps: list[PreprocessStep] | None = []
    for step in doc.get("preprocess") or []:
        parsed, _ = validation_problems(PreprocessStep, step) if isinstance(step, Mapping) else (None, [])
        if parsed is None or steps is None:
            steps = None
            continue
        steps.append(parsed)
    outputs = doc.get("outputs")
    folder = job.output_dir() if job is not None else None
    if folder is None and isinstance(outputs, Mapping) and isinstance(outputs.get("dir"), str):
        folder = os.path.abspath(outputs["dir"].replace("{name}", str(doc.get("name"))))
    found, notes = input_problems(data, doc, policy, inputs_here=inputs_here,
                                  out_dir=str(folder) if folder is not None else None)
    problems += found

    meta = None
    if data is not None and steps is not None and not found:
        try:
            meta = peek(data, steps)
        except (ConfigError, DaskClusterError) as exc:
            if not isinstance(exc, (ValueError, OSError)):
                raise
            problems.append(str(exc))
        else:
            if meta.n_samples is None:
                notes.append(f"{meta.description} is not reachable from here: its shape is checked when the job runs")

    model = doc.get("model")
    entry = ESTIMATORS.get(model.get("name")) if isinstance(model, Mapping) else None
    params = model.get("params", {}) if isinstance(model, Mapping) else None
    estimator = None
    if entry is not None and isinstance(params, Mapping):
        placeholder = _placeholder(meta.n_samples if meta else None, meta.n_features if meta else None,
                                   meta.dtype if meta else np.float64, params)
        try:
            found_params = entry.problems(dict(params), placeholder)
        except ParamError as exc:
            found_params = [(exc.key, exc.message)]
        problems += [f"key '{key}': {message}" for key, message in found_params]
        if meta is not None and meta.n_samples is not None and meta.n_samples < entry.min_samples:
            problems.append(f"key 'data': {meta.n_samples} row(s); {entry.name} needs at least {entry.min_samples}.")
        if not found_params:
            estimator = entry.build(dict(params))

    if problems or job is None or meta is None or estimator is None:
        problems = list(dict.fromkeys(problems))
        raise ConfigError("\n".join(f"{name}: {p}" for p in problems) or f"{name}: not valid.")
    return CheckedJob(replace(job, source=name), meta, estimator, notes)


def validate_command(job: str | os.PathLike[str], *, overrides: tuple[str, ...] | list[str] = (),
                     out_dir: str | os.PathLike[str] | None = None, cluster: str | os.PathLike[str] | None = None,
                     inputs_here: bool = True) -> tuple[CheckedJob, Any]:
    """A job and the cluster config it runs on, checked together before anything starts: the
    config's problems and the job's in one :class:`ConfigError`. The job may use the paths the
    config's ``allowed_paths`` allow (default: the working directory), and writes to ``out_dir``.
    ``overrides`` apply to the job only.

    Returns
    -------
    (CheckedJob, config or None)
    """
    from ..deploy import load_config

    problems: list[str] = []
    config = None
    if cluster is not None:
        try:
            config = load_config(cluster)
        except ConfigError as exc:
            problems.append(str(exc))
    policy = PathPolicy.for_command(config, job_file=job, also_write=[out_dir] if out_dir is not None else [])
    try:
        checked = validate_job(job, overrides=overrides, out_dir=out_dir, policy=policy, inputs_here=inputs_here)
    except ConfigError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return checked, config

