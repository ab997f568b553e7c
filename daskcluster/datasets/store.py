"""Labelled Zarr stores: images ``X``, labels ``y`` and metadata in one Zarr v3 group.

Layout (``<path>/zarr.json`` holds the attributes)::

    <path>/            group
        X              uint8 (n, n_features), chunks (chunk_rows, n_features)
        y              uint8 (n,),            chunks (chunk_rows,)
        base_index     int32 (n,)             (generated stores only: the base digit of each row)

    codecs and optional shards: :mod:`daskcluster.storage` (by default Blosc lz4hc for the
    uint8 arrays, Blosc lz4 with byte shuffle for base_index; one file per chunk)

    attrs: format, format_version, source, n, shape, dtype, image_shape, chunk_rows,
           checksum = {algorithm: "sha256", X, y, X_chunks, y_chunks}, created,
           daskcluster_version, and for generated stores: generator, base

``checksum["X"]`` is the SHA-256 of X's bytes in row-major order, exactly
``hashlib.sha256(X.tobytes()).hexdigest()``, computed chunk by chunk; ``X_chunks`` lists the
SHA-256 of each Zarr chunk of rows, so :func:`verify_labeled_zarr` can name the chunk that
changed. Likewise for ``y``.

Stores are written under a hidden sibling ``.<name>.tmp-<host>.<pid>.<random>`` and moved to ``path`` only
when complete: on any error nothing is left at ``path`` (and the temporary is removed).
Local paths only (a rename on object storage is a copy, not atomic).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask.array as da
import numpy as np
import zarr

from ..atomic import atomic_dir
from ..errors import (
    DataTypeError,
    InvalidDataError,
    InvalidParameterError,
    SourceError,
    SourceNotFoundError,
    StoreIntegrityError,
)
from ..io import (
    DEFAULT_CHUNK_BYTES,
    MANIFEST_KEY,
    CheckedReads,
    check_store,
    chunk_rows,
    manifest,
    open_array,
    resolve_min_chunks,
    writable,
)
from ..locations import local_path
from ..storage import Layout, resolve_compressors

__all__ = ["open_labeled_zarr", "verify_labeled_zarr", "write_mnist_zarr", "LABELED_FORMAT"]

logger = logging.getLogger(__name__)

#: Value of the ``format`` attribute of every labelled store.
LABELED_FORMAT = "daskcluster-labeled-zarr"
_FORMAT_VERSION = 1


def _version() -> str:
    from .. import __version__

    return __version__


# ------------------------------------------------------------------------- atomic writes


def _local_path(path: str | os.PathLike[str], func: str) -> str:
    text = local_path(path)
    if text is None:
        raise InvalidParameterError(
            f"{func} writes to a local path; got '{os.fspath(path)}'. Object stores have no atomic rename: "
            "write locally, then copy the store (e.g. with daskcluster.io.write_zarr or fsspec)."
        )
    return os.path.abspath(text)


def _is_zarr(path: str) -> bool:
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, name)) for name in ("zarr.json", ".zgroup", ".zarray")
    )


def _check_target(final: str, overwrite: bool) -> None:
    """Refuse an existing ``final`` unless ``overwrite`` and it is a Zarr store (before any work)."""
    if not isinstance(overwrite, bool):
        raise InvalidParameterError(f"The 'overwrite' parameter must be a bool. Got {overwrite!r} instead.")
    if os.path.lexists(final):
        if not overwrite:
            raise SourceError(
                f"'{final}' already exists. Pass overwrite=True to replace it (the old store is "
                "deleted only after the new one is complete), or choose another path."
            )
        if not _is_zarr(final):
            raise SourceError(
                f"'{final}' exists and is not a Zarr store; it is never replaced, even with "
                "overwrite=True. Remove it yourself or choose another path."
            )


@contextmanager
def atomic_store(path: str | os.PathLike[str], *, overwrite: bool = False, func: str = "write") -> Iterator[str]:
    """Yield a temporary directory that becomes ``path`` when the block succeeds.

    The temporary is a hidden sibling of ``path``; :func:`daskcluster.atomic.atomic_dir` moves
    it into place (files flushed, an atomic swap over an old store where the system has one).
    On any exception, KeyboardInterrupt included, it is deleted and nothing appears at
    ``path``. Before the move, every array of the group gets its manifest (shape and chunk
    grid, checked by :func:`daskcluster.io.check_store` on opening). A process killed outright
    leaves the hidden temporary behind (``.<name>.tmp-<host>.<pid>.<random>``), never a partial
    store at ``path``; the next write to ``path`` removes it.
    """
    final = _local_path(path, func)
    _check_target(final, overwrite)
    with atomic_dir(final, overwrite=overwrite) as tmp:
        yield os.fspath(tmp)
        _record_manifests(os.fspath(tmp))


def _record_manifests(store: str) -> None:
    group = zarr.open_group(store, mode="r+")
    for name, node in group.members():
        if isinstance(node, zarr.Array):
            node.attrs[MANIFEST_KEY] = manifest(node)


# ------------------------------------------------------------------------------ layout


def create_labeled_group(
    store: str,
    n_samples: int,
    n_features: int,
    layout: Layout,
    *,
    compressors: Any = "default",
    base_index: bool = False,
) -> zarr.Group:
    """Create the empty group and arrays of a labelled store, laid out by ``layout`` (chunks,
    shards, codecs of ``X``). ``y`` and ``base_index`` get the same chunks and shards; a codec
    given by name (``"default"``, ``"zstd:3"``) is resolved for each array's dtype, codec objects
    are used for all three."""
    group = zarr.open_group(store, mode="w-", zarr_format=3)
    arrays = [("X", (n_samples, n_features), np.uint8), ("y", (n_samples,), np.uint8)]
    if base_index:
        arrays.append(("base_index", (n_samples,), np.int32))
    for name, shape, dtype in arrays:
        codecs = resolve_compressors(compressors, dtype) if isinstance(compressors, str) else layout.compressors
        group.create_array(name, shape=shape, dtype=dtype, **layout.array_spec(shape, compressors=codecs))
    return group


def _sha256(block: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(block).data).hexdigest()


def chunk_digests(X: np.ndarray, y: np.ndarray) -> tuple[str, str]:
    """SHA-256 of one chunk of rows of ``X`` and of ``y`` (as stored in ``X_chunks``/``y_chunks``)."""
    return _sha256(X), _sha256(y)


def base_attrs(
    *, source: str, n_samples: int, n_features: int, rows: int, image_shape: tuple[int, ...] | None, checksum: dict[str, Any]
) -> dict[str, Any]:
    """The attributes every labelled store carries."""
    return {
        "format": LABELED_FORMAT,
        "format_version": _FORMAT_VERSION,
        "source": source,
        "n": n_samples,
        "shape": [n_samples, n_features],
        "dtype": "uint8",
        "image_shape": None if image_shape is None else list(image_shape),
        "chunk_rows": rows,
        "checksum": checksum,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "daskcluster_version": _version(),
    }


# ------------------------------------------------------------------------------ writing


def _as_images(X: Any) -> tuple[Any, tuple[int, ...] | None]:
    """``X`` as (n, n_features) rows and its image shape (None for 2-D input)."""
    if not isinstance(X, (np.ndarray, da.Array)):
        X = np.asarray(X)
    if X.dtype != np.uint8:
        raise DataTypeError(
            f"X must be uint8 pixels; got dtype {X.dtype}. Check the range (0..255) and convert "
            "with X.astype(numpy.uint8)."
        )
    if X.ndim == 3:
        return X.reshape(X.shape[0], -1), tuple(int(s) for s in X.shape[1:])
    if X.ndim != 2:
        raise InvalidDataError(f"X must have shape (n, n_features) or (n, H, W); got {X.shape}.")
    side = int(round(X.shape[1] ** 0.5))
    return X, ((side, side) if side * side == X.shape[1] else None)


def _as_labels(y: Any, n_samples: int) -> np.ndarray:
    y = y.compute() if isinstance(y, da.Array) else np.asarray(y)
    if y.ndim != 1 or len(y) != n_samples:
        raise InvalidDataError(f"y must have shape ({n_samples},), one label per row of X; got {y.shape}.")
    if y.dtype.kind not in "ui":
        raise DataTypeError(f"y must hold integer labels; got dtype {y.dtype}. Convert with y.astype(numpy.uint8).")
    if len(y) and (y.min() < 0 or y.max() > 255):
        raise InvalidDataError(f"y must hold labels in 0..255 (stored as uint8); got values in [{y.min()}, {y.max()}].")
    return y.astype(np.uint8, copy=False)


def write_mnist_zarr(
    X: Any,
    y: Any,
    path: str | os.PathLike[str],
    *,
    source: str,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    compressors: Any = "default",
    shards: int | None = None,
    overwrite: bool = False,
) -> tuple[da.Array, da.Array, dict[str, Any]]:
    """Write images and labels to a labelled Zarr store, chunk by chunk, atomically.

    Data passes: 1 (each chunk of rows is read once, hashed and written).

    Parameters
    ----------
    X : ndarray or dask array of shape (n_samples, n_features) or (n_samples, H, W), uint8
    y : array-like of shape (n_samples,), integer labels in 0..255
    path : path-like
        Local directory to create (see :func:`atomic_store`).
    source : str
        Where the data came from, recorded in the attributes, e.g. ``"mnist-npz:/data/mnist.npz"``.
    chunk_bytes : int, default=DEFAULT_CHUNK_BYTES
        Target bytes per chunk of ``X``; rows per chunk from :func:`daskcluster.io.chunk_rows`, with
        the configured ``min_chunks`` (so that reading the store needs no chunk split across tasks).
    compressors : "default", str, None, codec or sequence of codecs, default="default"
        See :func:`daskcluster.storage.resolve_compressors`; ``"default"`` is Blosc lz4hc level
        5 for the uint8 arrays (the fastest to stream, measured in
        ``benchmarks/RESULTS-codecs.md``).
    shards : int or None, default=None
        Rows per shard file (rounded down to whole chunks), or one file per chunk (see
        :mod:`daskcluster.storage`).
    overwrite : bool, default=False
        Replace an existing Zarr store at ``path`` (only once the new one is complete).

    Returns
    -------
    X, y, attrs
        :func:`open_labeled_zarr` of the new store.

    Raises
    ------
    SourceError
        ``path`` exists (and ``overwrite`` is False, or it is not a Zarr store).
    DataTypeError, InvalidDataError
        ``X`` is not uint8, or ``y`` does not match it.
    """
    if not isinstance(source, str) or not source:
        raise InvalidParameterError(f"The 'source' parameter must be a non-empty str. Got {source!r} instead.")
    X, image_shape = _as_images(X)
    n_samples, n_features = (int(s) for s in X.shape)
    if n_samples == 0 or n_features == 0:
        raise InvalidDataError(f"X must hold at least one row and one feature; got shape {X.shape}.")
    labels = _as_labels(y, n_samples)
    rows = chunk_rows(n_samples, n_features, 1, chunk_bytes, min_chunks=resolve_min_chunks())
    layout = Layout.plan(n_samples, np.uint8, rows, compressors=compressors, shards=shards)
    with atomic_store(path, overwrite=overwrite, func="write_mnist_zarr") as tmp:
        group = create_labeled_group(tmp, n_samples, n_features, layout, compressors=compressors)
        hx, hy = hashlib.sha256(), hashlib.sha256()
        x_chunks, y_chunks = [], []
        for first in range(0, n_samples, layout.write_rows):  # whole shards (or chunks) per write
            last = min(first + layout.write_rows, n_samples)
            part = X[first:last]
            part = np.ascontiguousarray(part.compute() if isinstance(part, da.Array) else part)
            writable(group["X"])[first:last] = part
            writable(group["y"])[first:last] = labels[first:last]
            for start in layout.chunk_starts(first, last):
                block, lab = part[start - first:start - first + rows], labels[start:min(start + rows, n_samples)]
                hx.update(block.data)
                hy.update(lab.data)
                dx, dy = chunk_digests(block, lab)
                x_chunks.append(dx)
                y_chunks.append(dy)
        checksum = {"algorithm": "sha256", "X": hx.hexdigest(), "y": hy.hexdigest(), "X_chunks": x_chunks, "y_chunks": y_chunks}
        group.attrs.update(
            base_attrs(
                source=source, n_samples=n_samples, n_features=n_features, rows=rows,
                image_shape=image_shape, checksum=checksum,
            )
        )
    logger.info("Wrote %d labelled rows of %d features to '%s' (%s)", n_samples, n_features, path, source)
    return open_labeled_zarr(path, chunk_bytes=chunk_bytes)


# ------------------------------------------------------------------------------ reading


def _open_group(path: str | os.PathLike[str]) -> tuple[str, zarr.Group]:
    text = os.fspath(path)
    if not os.path.exists(text):
        raise SourceNotFoundError(f"No labelled Zarr store at '{text}'. Check the path.")
    try:
        group = zarr.open_group(text, mode="r")
    except PermissionError as exc:
        raise SourceError(
            f"Cannot read '{text}': permission denied ({exc.filename or text}). Give this user read "
            "access to the store (e.g. chmod -R a+rX on it), or run as a user who has it."
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreIntegrityError(
            f"The Zarr metadata of '{text}' is damaged: it is not valid JSON ({exc}). Write the store "
            "again, or restore its zarr.json from a copy."
        ) from exc
    except Exception as exc:
        raise SourceError(f"'{text}' is not a Zarr group ({type(exc).__name__}: {exc}); expected a labelled store.") from exc
    missing = [name for name in ("X", "y") if name not in group]
    if missing:
        raise SourceError(
            f"'{text}' is not a labelled store: no array {missing}; expected 'X' (n, n_features) and "
            "'y' (n,), as written by write_mnist_zarr or make_infinite_mnist."
        )
    X, y = group["X"], group["y"]
    if not isinstance(X, zarr.Array) or not isinstance(y, zarr.Array) or X.ndim != 2 or y.shape != (X.shape[0],):
        raise SourceError(
            f"'{text}' holds X of shape {getattr(X, 'shape', None)} and y of shape "
            f"{getattr(y, 'shape', None)}; expected (n, n_features) and (n,)."
        )
    for name in ("X", "y"):
        check_store(group[name], f"'{text}' component {name!r}")
    return text, group


def open_labeled_zarr(
    path: str | os.PathLike[str], *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> tuple[da.Array, da.Array, dict[str, Any]]:
    """Open a labelled Zarr store lazily.

    Data passes: 0 (metadata only).

    Parameters
    ----------
    path : path-like
    chunk_bytes : int, default=DEFAULT_CHUNK_BYTES
        Target bytes per Dask chunk of ``X`` (whole Zarr chunks; see
        :func:`daskcluster.io.open_array`).

    Returns
    -------
    X : dask array of shape (n_samples, n_features), uint8
        ``open_array(path, component="X")``.
    y : dask array of shape (n_samples,), uint8
        Chunked like the rows of ``X``.
    attrs : dict
        The store's metadata (source, n, shape, checksum, generator parameters...).
    """
    text, group = _open_group(path)
    X = open_array(text, component="X", chunk_bytes=chunk_bytes)
    y = da.from_array(CheckedReads(group["y"], f"'{text}' component 'y'"), chunks=(X.chunks[0],),
                      name="from-zarr-" + da.core.tokenize(group["y"], X.chunks[0]), asarray=True,
                      meta=np.empty((0,), dtype=np.uint8))
    return X, y, dict(group.attrs)


def verify_labeled_zarr(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Recompute the checksums of a labelled store and compare them with its attributes.

    Data passes: 1, sequential on the client (a running SHA-256 cannot be split).

    Returns
    -------
    checksum : dict
        The verified ``attrs["checksum"]``.

    Raises
    ------
    SourceError
        No checksum in the attributes, or data that does not match it; the message names the
        first chunk (its rows) that differs.
    """
    text, group = _open_group(path)
    checksum = group.attrs.get("checksum")
    rows = group.attrs.get("chunk_rows")
    if not isinstance(checksum, dict) or not isinstance(rows, int):
        raise SourceError(f"'{text}' has no checksum attribute to verify; was it written by daskcluster?")
    X, y = group["X"], group["y"]
    n = X.shape[0]
    hx, hy = hashlib.sha256(), hashlib.sha256()
    for i, start in enumerate(range(0, n, rows)):
        stop = min(start + rows, n)
        block, lab = X[start:stop], y[start:stop]
        hx.update(np.ascontiguousarray(block).data)
        hy.update(np.ascontiguousarray(lab).data)
        for name, data, listed in (("X", block, checksum.get("X_chunks")), ("y", lab, checksum.get("y_chunks"))):
            if listed is not None and (i >= len(listed) or _sha256(data) != listed[i]):
                raise SourceError(
                    f"'{text}': chunk {i} of {name} (rows {start}:{stop}) does not match its SHA-256 in "
                    "the attributes; the store is corrupt. Write it again."
                )
    for name, digest in (("X", hx.hexdigest()), ("y", hy.hexdigest())):
        if checksum.get(name) != digest:
            raise SourceError(
                f"'{text}': the SHA-256 of {name} is {digest}, the attributes say {checksum.get(name)}; "
                "the store is corrupt. Write it again."
            )
    return checksum
