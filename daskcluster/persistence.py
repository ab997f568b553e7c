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
``{"$dtype": "float32"}``, ``{"$sparse": {"format": "csr" | "csc", "array": bool, "shape": [n, m],
"data": ..., "indices": ..., "indptr": ...}}`` (a SciPy sparse matrix, or sparse array when
``array``, e.g. ``affinity_matrix_`` of a spectral clustering on a neighbours graph; its index
arrays are checked in full when read).

Nothing is special-cased per estimator: the attributes are those ``__getstate__`` gives (as
for pickle), and any attribute made of arrays, numbers, strings,
booleans, None, lists, tuples and dicts of those is saved, so KMeans, MiniBatchKMeans and
GaussianMixture need no code here. Lazy values are **not** saved: ``labels_`` of a fit on
lazy input is a Dask array over the training data, and is listed under ``not_saved``
(recompute it with ``model.predict(X)`` where the estimator has one). Object arrays and other Python objects are refused
(public attributes, parameters) or left out and listed (private state).

The file is written with :func:`daskcluster.atomic.atomic_file` (a hidden temporary in the
same folder, flushed, renamed into place; ``overwrite=False`` checked by the rename itself),
so ``path`` never holds a partial file and two writers cannot both create it. The checksums
detect truncation and accidental modification; they are not a signature (anyone can recompute
them), so loading never trusts the file:

* the class is looked up in an explicit allow-list (:data:`MODEL_CLASSES`, extended with
  :func:`register_model_class`); nothing named in the file is ever imported;
* only attribute names of the two shapes an estimator uses are set: fitted attributes
  (``name_``) and private state (``_name``), never a dunder or a name of the class itself
  (method, property, class attribute);
* the members' sizes are bounded before they are decompressed (``max_bytes``; ``model.json``
  at most :data:`MAX_JSON_BYTES`), and each array's shape, read from its ``.npy`` header,
  must match the JSON and fit in ``max_bytes`` before anything is allocated (no zip bomb, no
  huge allocation from a crafted shape or scalar dtype).

Local paths only.

**Why not skops.io.** skops (0.16) persists scikit-learn estimators without pickle and refuses
types outside a trusted list. It is not used because this format already stores everything as
JSON and ``.npy`` arrays with an allow-list of our own classes, which is the same protection
skops gives, without a dependency; skops would also need its own trusted list for every
daskcluster class and its auditing of generic object trees is more than these plain estimators
need. Should estimators ever hold nested objects (a fitted sub-estimator), skops becomes the
better choice.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import io
import json
import keyword
import logging
import math
import os
import platform
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_file
from .errors import SourceError, SourceNotFoundError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_BYTES",
    "MAX_JSON_BYTES",
    "MODEL_CLASSES",
    "ModelFileError",
    "ModelIntegrityError",
    "ModelVersionError",
    "UnsupportedValueError",
    "load",
    "read_header",
    "register_model_class",
    "save",
]

logger = logging.getLogger(__name__)

FORMAT = "daskcluster-model"
FORMAT_VERSION = 1
"""The version this code writes and the newest it reads."""

_JSON = "model.json"
_NPZ = "arrays.npz"

MAX_JSON_BYTES = 64 * 2**20
"""Largest ``model.json`` that :func:`load` reads (64 MiB)."""

MAX_BYTES = 4 * 2**30
"""Default ``max_bytes`` of :func:`load`: the largest ``arrays.npz``, and the largest total of
the arrays it declares (4 GiB)."""

MODEL_CLASSES: dict[tuple[str, str], str] = {
    ("daskcluster", "KMeans"): "daskcluster.cluster:KMeans",
    ("daskcluster", "MiniBatchKMeans"): "daskcluster.cluster:MiniBatchKMeans",
    ("daskcluster", "GaussianMixture"): "daskcluster.mixture:GaussianMixture",
    ("daskcluster", "BayesianGaussianMixture"): "daskcluster.mixture:BayesianGaussianMixture",
    ("daskcluster", "NMF"): "daskcluster.decomposition:NMF",
    ("daskcluster", "OPNMF"): "daskcluster.decomposition:OPNMF",
    ("daskcluster", "PCA"): "daskcluster.decomposition:PCA",
    ("daskcluster", "DBSCAN"): "daskcluster.cluster:DBSCAN",
    ("daskcluster", "AgglomerativeClustering"): "daskcluster.cluster:AgglomerativeClustering",
    ("daskcluster", "SpectralClustering"): "daskcluster.cluster:SpectralClustering",
    ("sklearn", "KMeans"): "sklearn.cluster:KMeans",
    ("sklearn", "MiniBatchKMeans"): "sklearn.cluster:MiniBatchKMeans",
    ("sklearn", "GaussianMixture"): "sklearn.mixture:GaussianMixture",
    ("sklearn", "BayesianGaussianMixture"): "sklearn.mixture:BayesianGaussianMixture",
    ("sklearn", "NMF"): "sklearn.decomposition:NMF",
}
"""The classes :func:`load` creates: (top-level package, class name) as recorded in a file ->
``"module:Class"`` imported by this code. A file naming anything else is refused."""

_FITTED = re.compile(r"[A-Za-z][A-Za-z0-9_]*_")
_STATE = re.compile(r"_[A-Za-z0-9][A-Za-z0-9_]*")


def register_model_class(cls: type) -> None:
    """Allow :func:`load` to create ``cls`` (a scikit-learn-style estimator of another package)."""
    from sklearn.base import BaseEstimator

    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise UnsupportedValueError(f"register_model_class takes an estimator class; got {cls!r}.")
    MODEL_CLASSES[(cls.__module__.split(".")[0], cls.__qualname__)] = f"{cls.__module__}:{cls.__qualname__}"


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
        if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 1 and all(
            isinstance(v, str) for v in value
        ):  # names (feature_names_in_): strings in an object array, as scikit-learn keeps them
            return {"$strings": list(value)}
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
        if type(value).__module__.startswith("scipy.sparse"):
            return self._sparse(value, where)
        raise UnsupportedValueError(
            f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which cannot be saved "
            "without pickle."
        )


    def _sparse(self, value: Any, where: str) -> Any:
        from scipy import sparse

        if value.format not in ("csr", "csc"):
            raise UnsupportedValueError(
                f"{where} is a SciPy sparse {value.format} matrix; only csr and csc are saved (convert it "
                "with .tocsr()).")
        return {"$sparse": {
            "format": value.format, "array": isinstance(value, sparse.sparray), "shape": list(value.shape),
            **{k: self.encode(getattr(value, k), f"{where}.{k}") for k in ("data", "indices", "indptr")}}}


def _not_saved_note(model: Any, name: str, value: Any) -> str:
    """What the file says of a lazy attribute it leaves out, and how to get it back."""
    note = f"lazy {type(value).__name__}"
    if name != "labels_":
        return note
    again = "model.predict(X)" if hasattr(model, "predict") else "a new fit on the training data"
    return f"{note} over the training data; recompute it with {again}"


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
    if len(value) == 1 and "$strings" in value:
        names = value["$strings"]
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ModelFileError(f"{where}: the names {names!r} in {_JSON} are not a list of strings.")
        return np.asarray(names, dtype=object)
    if len(value) == 1 and "$tuple" in value:
        return tuple(_decode(v, arrays, where) for v in value["$tuple"])
    if len(value) == 1 and "$dict" in value:
        return {k: _decode(v, arrays, where) for k, v in value["$dict"].items()}
    if len(value) == 1 and "$sparse" in value:
        return _decode_sparse(value["$sparse"], arrays, where)
    if len(value) == 1 and "$dtype" in value:
        return _plain_dtype(value["$dtype"], where, "biufcSUmM")
    if set(value) == {"$scalar", "dtype"}:
        item = value["$scalar"]
        item = float(item["$float"]) if isinstance(item, dict) else item
        if not isinstance(item, (bool, int, float)):
            raise ModelFileError(f"{where}: the scalar {item!r} in {_JSON} is not a number.")
        try:
            return _plain_dtype(value["dtype"], where, "biuf").type(item)
        except (OverflowError, ValueError) as exc:
            raise ModelFileError(f"{where}: the scalar {item!r} does not fit its dtype ({exc}).") from None
    raise ModelFileError(f"{where}: unknown value {value!r} in {_JSON}.")


def _decode_sparse(spec: Any, arrays: Mapping[str, np.ndarray], where: str) -> Any:
    """A SciPy csr/csc matrix (or array) from its parts, its indices checked in full."""
    from scipy import sparse

    kinds = {("csr", False): sparse.csr_matrix, ("csc", False): sparse.csc_matrix,
             ("csr", True): sparse.csr_array, ("csc", True): sparse.csc_array}
    spec = spec if isinstance(spec, dict) else {}
    cls = kinds.get((spec.get("format"), spec.get("array")))  # type: ignore[arg-type]
    shape = spec.get("shape")
    parts = [_decode(spec.get(k), arrays, where) for k in ("data", "indices", "indptr")]
    if (cls is None or not isinstance(shape, list) or len(shape) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
            or not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in parts)):
        raise ModelFileError(f"{where}: the sparse matrix in {_JSON} is malformed.")
    try:
        matrix = cls(tuple(parts), shape=tuple(shape))
        matrix.check_format(full_check=True)
    except (ValueError, TypeError, IndexError) as exc:
        raise ModelFileError(f"{where}: the sparse matrix in {_JSON} is invalid ({exc}).") from None
    return matrix


def _plain_dtype(spec: Any, where: str, kinds: str) -> np.dtype:
    """A dtype from a file: one plain number or string type, never a record or sub-array type
    (which could make a scalar of any size)."""
    try:
        dt = np.dtype(spec) if isinstance(spec, str) and len(spec) <= 16 else None
    except (TypeError, ValueError, SyntaxError):
        dt = None
    if dt is None or dt.kind not in kinds or dt.names is not None or dt.subdtype is not None or dt.itemsize > 64:
        raise ModelFileError(f"{where}: the dtype {spec!r} in {_JSON} is not a plain numeric dtype.")
    return dt


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


def _attributes(model: Any) -> dict[str, Any]:
    """The model's attributes as Python's protocol gives them (``__getstate__``, which an
    estimator overrides to make its state self-contained, e.g. to read in what a fit on lazy
    data keeps in a temporary folder); scikit-learn's version stamp is left out (the file
    records the versions)."""
    state = model.__getstate__()
    values = state if isinstance(state, dict) else vars(model)
    return {k: v for k, v in values.items() if k != "_sklearn_version"}


def _fitted_attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k.endswith("_") and not k.startswith("_")}


def _state_attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k.startswith("_") and not k.startswith("__")}


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
    values = _attributes(model)
    fitted = _fitted_attributes(values)
    if not fitted:
        raise NotFittedError(f"This {type(model).__name__} instance is not fitted yet; fit it before saving.")
    enc = _Encoder()
    params = {k: enc.encode(v, f"parameter '{k}'") for k, v in model.get_params(deep=False).items()}
    attributes: dict[str, Any] = {}
    not_saved: dict[str, str] = {}
    for name, value in fitted.items():
        if _is_lazy(value):
            not_saved[name] = _not_saved_note(model, name, value)
            continue
        attributes[name] = enc.encode(value, f"fitted attribute '{name}'")
    state: dict[str, Any] = {}
    for name, value in _state_attributes(values).items():
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
    with atomic_file(final, overwrite=overwrite) as raw:
        with zipfile.ZipFile(raw, "w") as zf:
            zf.writestr(zipfile.ZipInfo(_JSON, date_time=(1980, 1, 1, 0, 0, 0)), text,
                        compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(zipfile.ZipInfo(_NPZ, date_time=(1980, 1, 1, 0, 0, 0)), npz,
                        compress_type=zipfile.ZIP_DEFLATED)
    if not_saved:
        logger.info("Saved %s to '%s'; not saved: %s", type(model).__name__, final, ", ".join(not_saved))
    return final


# ----------------------------------------------------------------------------- load


def _member(zf: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    """A member's bytes, refused before decompression when it declares more than ``limit``
    (``zipfile`` then never reads past the declared size)."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ModelFileError(
            f"'{path}': the member {name} declares {info.file_size:,} bytes uncompressed "
            f"({info.compress_size:,} compressed), more than the limit of {limit:,}. Refused (a "
            "zip bomb, or a model larger than expected: pass a larger max_bytes to load if you trust it)."
        )
    return zf.read(name)


def _open(path: Path, max_bytes: int = MAX_BYTES) -> tuple[dict[str, Any], bytes]:
    if not path.exists():
        raise SourceNotFoundError(f"No model file at '{path}'.")
    if path.is_dir():
        raise ModelFileError(f"'{path}' is a directory, not a daskcluster model file.")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if _JSON not in names:
                raise ModelFileError(f"'{path}' is a zip file but not a daskcluster model file (no {_JSON} inside).")
            text = _member(zf, _JSON, MAX_JSON_BYTES, path)
            npz = _member(zf, _NPZ, max_bytes, path) if _NPZ in names else b""
    except zipfile.BadZipFile as exc:
        raise ModelFileError(
            f"'{path}' is not a daskcluster model file, or it is truncated or damaged ({exc})."
        ) from None
    except (zlib_error(), EOFError) as exc:
        raise ModelFileError(f"'{path}' is truncated or damaged: {exc}.") from None
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
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
    """The class a file names, from :data:`MODEL_CLASSES` only: nothing named in the file is imported."""
    from sklearn.base import BaseEstimator

    spec = doc.get("class") or {}
    module, name = spec.get("module", ""), spec.get("name", "")
    key = (module.split(".")[0], name) if isinstance(module, str) and isinstance(name, str) else None
    target = MODEL_CLASSES.get(key) if key is not None else None
    if target is None:
        known = ", ".join(sorted({f"{p}.{n}" for p, n in MODEL_CLASSES}))
        raise ModelFileError(
            f"'{path}' names the class {module!r}.{name!r}, which is not one load() creates. The "
            f"model classes are: {known}. Register another estimator class with "
            "daskcluster.persistence.register_model_class(cls) if you trust this file."
        )
    mod, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(mod), attr)
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):  # pragma: no cover - registry bug
        raise ModelFileError(f"'{path}': the registered {target} is not an estimator.")
    return cls


def _check_arrays(doc: Mapping[str, Any], npz: bytes, path: Path, max_bytes: int) -> None:
    """Read each array's ``.npy`` header and refuse a shape that differs from the JSON or that
    exceeds ``max_bytes``, before any array is allocated."""
    declared = doc.get("arrays") or {}
    if not isinstance(declared, dict):
        raise ModelFileError(f"'{path}': 'arrays' in {_JSON} is not a mapping.")
    total = 0
    try:
        with zipfile.ZipFile(io.BytesIO(npz)) as zf:
            for info in zf.infolist():
                name = info.filename.removesuffix(".npy")
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f, max_header_size=10_000)
                nbytes = math.prod(shape) * dtype.itemsize
                total += nbytes
                if dtype.hasobject or total > max_bytes:
                    raise ModelFileError(
                        f"'{path}': the array {name!r} declares shape {shape} of {dtype} "
                        f"({nbytes:,} bytes; {total:,} in all), more than the limit of {max_bytes:,} "
                        "bytes. Refused: pass a larger max_bytes to load if you trust this file."
                    )
                info_doc = declared.get(name) or {}
                if list(shape) != info_doc.get("shape") or dtype.str != info_doc.get("dtype"):
                    raise ModelFileError(f"'{path}': the array {name!r} does not match its description in {_JSON}.")
                if info.file_size < nbytes:
                    raise ModelFileError(f"'{path}': the array {name!r} is truncated in {_NPZ}.")
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"'{path}': cannot read {_NPZ}: {exc}") from None


def _settable(cls: type, name: str, section: str, path: Path) -> str:
    """``name`` if a file may set it on a ``cls``: ``name_`` (fitted) or ``_name`` (state), not a
    dunder, a keyword, or a member of the class."""
    pattern = _FITTED if section == "attributes" else _STATE
    if (not isinstance(name, str) or not pattern.fullmatch(name) or name.startswith("__")
            or keyword.iskeyword(name) or hasattr(cls, name)):
        kind = "fitted attribute (name_)" if section == "attributes" else "private state (_name)"
        raise ModelFileError(
            f"'{path}': {section} names {name!r}, which is not a {kind} a {cls.__name__} can hold. "
            "Refused: the file was crafted or damaged."
        )
    return name


def load(path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES) -> Any:
    """Read a model file written by :func:`save`; returns the fitted estimator.

    Parameters
    ----------
    path : path-like
    max_bytes : int, default=MAX_BYTES
        The largest uncompressed ``arrays.npz``, and the largest total of the arrays it
        declares; a file beyond it is refused before anything is decompressed or allocated.

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
    ModelFileError
        Also: a class outside :data:`MODEL_CLASSES`, an attribute name that is not a fitted
        attribute or private state, a member or array larger than ``max_bytes``.
    """
    p = Path(path)
    doc, npz = _open(p, max_bytes)
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
    cls = _class(doc, p)
    _check_arrays(doc, npz, p, max_bytes)
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"'{p}': cannot read {_NPZ}: {exc}") from None
    for name, info in (doc.get("arrays") or {}).items():
        a = arrays.get(name)
        if a is None or a.dtype.str != info.get("dtype") or list(a.shape) != info.get("shape"):
            raise ModelFileError(f"'{p}': the array {name!r} does not match its description in {_JSON}.")
    params = {k: _decode(v, arrays, f"parameter '{k}'") for k, v in (doc.get("params") or {}).items()}
    try:
        model = cls(**params)
    except TypeError as exc:
        raise ModelFileError(
            f"'{p}': {cls.__name__} does not take the saved parameters ({exc}); the file was written by "
            f"daskcluster {doc.get('versions', {}).get('daskcluster', '?')}."
        ) from None
    for section in ("attributes", "state"):
        values = doc.get(section) or {}
        if not isinstance(values, dict):
            raise ModelFileError(f"'{p}': {section!r} in {_JSON} is not a mapping.")
        for name, value in values.items():
            where = f"{section[:-1] if section == 'attributes' else section} '{name}'"
            setattr(model, _settable(cls, name, section, p), _decode(value, arrays, where))
    return model
