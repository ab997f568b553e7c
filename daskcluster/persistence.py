"""Model files: ``save(model, path)`` and ``load(path)`` for every estimator, without pickle.

A model file is a zip archive (conventionally ``*.zip``) holding two members:

``model.json``
    UTF-8 JSON: ``format`` (``"daskcluster-model"``), ``format_version`` (:data:`FORMAT_VERSION`),
    ``class`` (module and name), ``params`` (``get_params()``), ``attributes`` (the fitted
    attributes, names ending in ``_``), ``state`` (private attributes the estimator keeps
    between calls, e.g. the counts that ``partial_fit`` continues from), ``not_saved`` (what
    was left out and why), ``metadata`` (the caller's, plus the time of writing), ``versions``
    (Python, daskcluster, NumPy, scikit-learn, Dask), ``arrays`` (dtype, shape and SHA-256 of
    each array) and ``checksums`` (SHA-256 of ``arrays.npz`` and of this JSON without the
    checksums).
``arrays.npz``
    Every NumPy array (fitted arrays, array parameters such as an ``init`` array) under the
    names ``a0, a1, ...`` that the JSON refers to as ``{"$array": "a0"}``; read back with
    ``numpy.load(..., allow_pickle=False)``.

Values in the JSON are plain JSON, or tagged objects for what JSON lacks: ``{"$array": name}``,
``{"$scalar": value, "dtype": "float32"}`` (NumPy scalars keep their type),
``{"$float": "nan" | "inf" | "-inf"}``, ``{"$tuple": [...]}``, ``{"$dict": {...}}``,
``{"$dtype": "float32"}``.

Nothing is special-cased per estimator: any attribute made of arrays, numbers, strings,
booleans, None, lists, tuples and dicts of those is saved, so KMeans, MiniBatchKMeans and
GaussianMixture need no code here. Lazy values are **not** saved: ``labels_`` of a fit on
lazy input is a Dask array over the training data, and is listed under ``not_saved``;
recompute it with ``model.predict(X)``. Object arrays and other Python objects are refused
(public attributes, parameters) or left out and listed (private state).

The file is written under a hidden temporary name in the same folder and renamed into place
(atomic on POSIX and Windows), so ``path`` never holds a partial file. The checksums detect
truncation and accidental modification; they are not a signature (anyone can recompute them).
Only classes from ``daskcluster`` and ``sklearn`` are loaded. Local paths only.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import io
import json
import logging
import math
import os
import platform
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SourceError, SourceNotFoundError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ModelFileError",
    "ModelIntegrityError",
    "ModelVersionError",
    "UnsupportedValueError",
    "load",
    "read_header",
    "save",
]

logger = logging.getLogger(__name__)

FORMAT = "daskcluster-model"
FORMAT_VERSION = 1
"""The version this code writes and the newest it reads."""

_JSON = "model.json"
_NPZ = "arrays.npz"
_ALLOWED_PACKAGES = ("daskcluster", "sklearn")


class ModelFileError(SourceError):
    """A file cannot be read as a daskcluster model: truncated, not a model, bad contents."""


class ModelIntegrityError(ModelFileError):
    """A checksum does not match: the file was modified or damaged after it was written."""


class ModelVersionError(ModelFileError):
    """The file was written in a newer format than this daskcluster reads."""


class UnsupportedValueError(SourceError, TypeError):
    """A parameter or fitted attribute holds a value that cannot be saved without pickle."""


# ----------------------------------------------------------------------------- encoding


class _Encoder:
    """Turn Python/NumPy values into JSON, collecting arrays on the side."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, np.generic):
            if value.dtype.kind not in "biuf":
                raise UnsupportedValueError(f"{where} is a NumPy {value.dtype} scalar, which cannot be saved.")
            item = value.item()
            if isinstance(item, float) and not math.isfinite(item):
                item = {"$float": repr(item)}
            return {"$scalar": item, "dtype": value.dtype.str}
        if isinstance(value, np.dtype):
            return {"$dtype": value.str}
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biufcSUmM" or value.dtype.hasobject:
                raise UnsupportedValueError(
                    f"{where} is an array of dtype {value.dtype}, which cannot be saved without pickle."
                )
            name = f"a{len(self.arrays)}"
            self.arrays[name] = np.ascontiguousarray(value)
            return {"$array": name}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, Mapping):
            if not all(isinstance(k, str) for k in value):
                raise UnsupportedValueError(f"{where} is a dict with keys that are not strings.")
            return {"$dict": {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()}}
        if _is_lazy(value):
            raise UnsupportedValueError(f"{where} is a lazy {type(value).__name__}; compute it first.")
        raise UnsupportedValueError(
            f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which cannot be saved "
            "without pickle."
        )


def _is_lazy(value: Any) -> bool:
    return type(value).__module__.split(".")[0] in ("dask", "zarr")


def _decode(value: Any, arrays: Mapping[str, np.ndarray], where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays, where) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and "$array" in value:
        name = value["$array"]
        if name not in arrays:
            raise ModelFileError(f"{where}: the array {name!r} is missing from {_NPZ}.")
        return arrays[name]
    if len(value) == 1 and "$float" in value:
        return float(value["$float"])
    if len(value) == 1 and "$tuple" in value:
        return tuple(_decode(v, arrays, where) for v in value["$tuple"])
    if len(value) == 1 and "$dict" in value:
        return {k: _decode(v, arrays, where) for k, v in value["$dict"].items()}
    if len(value) == 1 and "$dtype" in value:
        return np.dtype(value["$dtype"])
    if set(value) == {"$scalar", "dtype"}:
        item = value["$scalar"]
        item = float(item["$float"]) if isinstance(item, dict) else item
        return np.dtype(value["dtype"]).type(item)
    raise ModelFileError(f"{where}: unknown value {value!r} in {_JSON}.")


# ----------------------------------------------------------------------------- helpers


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    from . import __version__

    return {
        "daskcluster": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": version("scikit-learn"),
        "dask": version("dask"),
    }


def _canonical(doc: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "checksums"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fitted_attributes(model: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(model).items() if k.endswith("_") and not k.startswith("_")}


def _state_attributes(model: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(model).items() if k.startswith("_") and not k.startswith("__")}


# ----------------------------------------------------------------------------- save


def save(model: Any, path: str | os.PathLike[str], *, metadata: Mapping[str, Any] | None = None,
         overwrite: bool = True) -> Path:
    """Write a fitted estimator to a model file, atomically.

    Parameters
    ----------
    model : estimator
        A fitted daskcluster (or scikit-learn) estimator.
    path : path-like
        The file to write (``.zip`` by convention). Its folder is created if needed.
    metadata : mapping, optional
        JSON-able information to keep with the model (data source, job name...).
    overwrite : bool, default=True
        Replace an existing file (atomically). With False an existing file is an error.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    NotFittedError
        The model has no fitted attribute.
    UnsupportedValueError
        A parameter or public fitted attribute is not an array, a number, a string, a
        boolean, None, or a list/tuple/dict of those (e.g. ``random_state`` set to a
        ``RandomState``: use an int).
    """
    from sklearn.base import BaseEstimator

    from .errors import NotFittedError

    if not isinstance(model, BaseEstimator):
        raise UnsupportedValueError(f"save() takes a scikit-learn-style estimator; got {type(model).__name__}.")
    fitted = _fitted_attributes(model)
    if not fitted:
        raise NotFittedError(f"This {type(model).__name__} instance is not fitted yet; fit it before saving.")
    enc = _Encoder()
    params = {k: enc.encode(v, f"parameter '{k}'") for k, v in model.get_params(deep=False).items()}
    attributes: dict[str, Any] = {}
    not_saved: dict[str, str] = {}
    for name, value in fitted.items():
        if _is_lazy(value):
            not_saved[name] = (f"lazy {type(value).__name__} over the training data; recompute it with "
                               "model.predict(X)" if name == "labels_" else f"lazy {type(value).__name__}")
            continue
        attributes[name] = enc.encode(value, f"fitted attribute '{name}'")
    state: dict[str, Any] = {}
    for name, value in _state_attributes(model).items():
        try:
            state[name] = enc.encode(value, f"state '{name}'")
        except UnsupportedValueError as exc:
            not_saved[name] = str(exc)
    meta = {"saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if metadata:
        meta.update(enc.encode(dict(metadata), "metadata")["$dict"])
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **enc.arrays)
    npz = buf.getvalue()
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": {"module": type(model).__module__, "name": type(model).__qualname__},
        "params": params,
        "attributes": attributes,
        "state": state,
        "not_saved": not_saved,
        "metadata": meta,
        "versions": _versions(),
        "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in enc.arrays.items()},
    }
    doc["checksums"] = {_NPZ: _sha256(npz), _JSON: _sha256(_canonical(doc))}
    text = json.dumps(doc, indent=1, allow_nan=False).encode()

    final = Path(path)
    if final.exists() and not overwrite:
        raise SourceError(f"'{final}' already exists; pass overwrite=True to replace it.")
    if final.is_dir():
        raise SourceError(f"'{final}' is a directory; give a file name such as '{final / 'model.zip'}'.")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as raw:
            with zipfile.ZipFile(raw, "w") as zf:
                zf.writestr(zipfile.ZipInfo(_JSON, date_time=(1980, 1, 1, 0, 0, 0)), text,
                            compress_type=zipfile.ZIP_DEFLATED)
                zf.writestr(zipfile.ZipInfo(_NPZ, date_time=(1980, 1, 1, 0, 0, 0)), npz,
                            compress_type=zipfile.ZIP_DEFLATED)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not_saved:
        logger.info("Saved %s to '%s'; not saved: %s", type(model).__name__, final, ", ".join(not_saved))
    return final


# ----------------------------------------------------------------------------- load


def _open(path: Path) -> tuple[dict[str, Any], bytes]:
    if not path.exists():
        raise SourceNotFoundError(f"No model file at '{path}'.")
    if path.is_dir():
        raise ModelFileError(f"'{path}' is a directory, not a daskcluster model file.")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if _JSON not in names:
                raise ModelFileError(f"'{path}' is a zip file but not a daskcluster model file (no {_JSON} inside).")
            text = zf.read(_JSON)
            npz = zf.read(_NPZ) if _NPZ in names else b""
    except zipfile.BadZipFile as exc:
        raise ModelFileError(
            f"'{path}' is not a daskcluster model file, or it is truncated or damaged ({exc})."
        ) from None
    except (zlib_error(), EOFError) as exc:
        raise ModelFileError(f"'{path}' is truncated or damaged: {exc}.") from None
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"'{path}': {_JSON} is not valid JSON ({exc}).") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' is not a daskcluster model file ({_JSON} has no \"format\": \"{FORMAT}\").")
    return doc, npz


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON of a model file (class, parameters, metadata, versions), without its arrays."""
    doc, _ = _open(Path(path))
    return doc


def _class(doc: Mapping[str, Any], path: Path) -> type:
    from sklearn.base import BaseEstimator

    spec = doc.get("class") or {}
    module, name = spec.get("module", ""), spec.get("name", "")
    if not isinstance(module, str) or module.split(".")[0] not in _ALLOWED_PACKAGES:
        raise ModelFileError(
            f"'{path}' names the class {module}.{name}; only classes from {', '.join(_ALLOWED_PACKAGES)} are loaded."
        )
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ModelFileError(
            f"'{path}' holds a {name} from {module}, which this installation does not have. "
            f"It was written by daskcluster {doc.get('versions', {}).get('daskcluster', '?')}."
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise ModelFileError(f"'{path}' names {module}.{name}, which is not an estimator.")
    return cls


def load(path: str | os.PathLike[str]) -> Any:
    """Read a model file written by :func:`save`; returns the fitted estimator.

    Raises
    ------
    SourceNotFoundError
        No file at ``path``.
    ModelFileError
        Not a model file, truncated or damaged (also an ``OSError``).
    ModelIntegrityError
        A checksum does not match: the file was modified after it was written.
    ModelVersionError
        The file is in a newer format than this daskcluster reads: upgrade daskcluster.
    """
    p = Path(path)
    doc, npz = _open(p)
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"'{p}': format_version {version!r} is not a valid version.")
    if version > FORMAT_VERSION:
        raise ModelVersionError(
            f"'{p}' was written in model format {version} by daskcluster "
            f"{doc.get('versions', {}).get('daskcluster', '?')}; this daskcluster reads format "
            f"{FORMAT_VERSION} and older. Upgrade daskcluster (pip install -U daskcluster)."
        )
    sums = doc.get("checksums") or {}
    if sums.get(_JSON) != _sha256(_canonical(doc)):
        raise ModelIntegrityError(
            f"'{p}': the checksum of {_JSON} does not match: the file was modified or damaged after it was written."
        )
    if sums.get(_NPZ) != _sha256(npz):
        raise ModelIntegrityError(
            f"'{p}': the checksum of {_NPZ} does not match: the arrays were modified or damaged after they were written."
        )
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"'{p}': cannot read {_NPZ}: {exc}") from None
    for name, info in (doc.get("arrays") or {}).items():
        a = arrays.get(name)
        if a is None or a.dtype.str != info.get("dtype") or list(a.shape) != info.get("shape"):
            raise ModelFileError(f"'{p}': the array {name!r} does not match its description in {_JSON}.")
    cls = _class(doc, p)
    params = {k: _decode(v, arrays, f"parameter '{k}'") for k, v in (doc.get("params") or {}).items()}
    try:
        model = cls(**params)
    except TypeError as exc:
        raise ModelFileError(
            f"'{p}': {cls.__name__} does not take the saved parameters ({exc}); the file was written by "
            f"daskcluster {doc.get('versions', {}).get('daskcluster', '?')}."
        ) from None
    for section in ("attributes", "state"):
        for name, value in (doc.get(section) or {}).items():
            setattr(model, name, _decode(value, arrays, f"{section[:-1] if section == 'attributes' else section} '{name}'"))
    return model
