"""Checkpoints of iterative fits: JSON metadata and NumPy arrays in one ``.npz`` file.

A checkpoint is written with :func:`daskcluster.atomic.atomic_file` (a temporary name in the
same folder, flushed to disk, renamed over the previous one, the folder flushed, mode 0644), so
the file at the checkpoint path is always a complete checkpoint: a run interrupted at any moment
(Ctrl-C, a killed process) leaves either the previous checkpoint or the new one. No pickle:
arrays are read with ``allow_pickle=False`` and the metadata is JSON stored as a string array.

A :class:`FitCheckpoint` is bound to its fit and to its data:

* the fit's parameters (``fingerprint``) must match;
* the data's fingerprint (:func:`data_fingerprint`: shape, dtype and the SHA-256 of a few row
  blocks picked by a seed kept in the checkpoint) must match, so a checkpoint written for
  other data is refused, naming the rows that differ;
* one writer at a time: a save takes a lock file (``.<name>.lock``) and refuses to replace a
  checkpoint that another fit wrote meanwhile; a load refuses a checkpoint whose writer still
  runs on this host.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_file, pid_alive
from .errors import InvalidDataError, InvalidParameterError, LockedError, SourceError
from .locks import FileLock

__all__ = ["FORMAT_VERSION", "FitCheckpoint", "data_fingerprint", "load_checkpoint", "save_checkpoint"]

logger = logging.getLogger(__name__)

#: Version of the checkpoint layout; a newer file is refused with a clear error.
FORMAT_VERSION = 1
_META = "__meta__"
#: Row blocks hashed by :func:`data_fingerprint`.
N_SAMPLED_BLOCKS = 4


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike[str], meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Atomically write ``meta`` (JSON-serialisable) and ``arrays`` to ``path``."""
    path = Path(path)
    record = {"format_version": FORMAT_VERSION, "sha256": _digest(arrays), **meta}
    with atomic_file(path) as f:
        np.savez(f, **{_META: np.array(json.dumps(record))}, **arrays)


def _not_a_checkpoint(path: Path, what: str) -> SourceError:
    return SourceError(
        f"{str(path)!r} is {what}, not a daskcluster checkpoint; a fit would overwrite it. Give the "
        "checkpoint its own path, e.g. 'fit.ckpt.npz' (a missing file is created)."
    )


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """Read a checkpoint, or return None if there is none at ``path``.

    Raises
    ------
    SourceError
        The file is not a readable checkpoint, was altered, or comes from a newer version.
    """
    path = Path(path)
    if not path.exists():
        return None
    if path.is_dir():
        raise _not_a_checkpoint(path, "a directory")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise _not_a_checkpoint(path, f"a .npy array of shape {getattr(loaded, 'shape', '?')}")
        with loaded as f:
            if _META not in f.files:
                raise SourceError(f"{str(path)!r} is not a daskcluster checkpoint (no metadata).")
            meta = json.loads(str(f[_META][()]))
            arrays = {k: f[k] for k in f.files if k != _META}
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError, KeyError) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(
            f"Cannot read the checkpoint {str(path)!r}: {exc}. Delete it to start the fit from the beginning."
        ) from exc
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SourceError(
            f"The checkpoint {str(path)!r} has format version {version!r}; this daskcluster reads up to "
            f"{FORMAT_VERSION}. Upgrade daskcluster or delete the checkpoint."
        )
    if meta.get("sha256") != _digest(arrays):
        raise SourceError(f"The checkpoint {str(path)!r} was altered: its arrays do not match its checksum.")
    return meta, arrays


def _block_digest(block: np.ndarray) -> str:
    block = np.ascontiguousarray(block)
    h = hashlib.sha256(f"{block.dtype.str}{block.shape}".encode())
    h.update(block.data)
    return h.hexdigest()


def _as_dask(x: Any) -> Any:
    """The Dask array of ``x`` (a Dask array, a :class:`~daskcluster.data.RowData`, or array-like)."""
    import dask.array as da

    x = getattr(x, "array", x)
    return x if isinstance(x, da.Array) else da.from_array(np.asarray(x))


def _sample_ranges(chunks: tuple[int, ...], seed: int, n_blocks: int) -> list[tuple[int, int]]:
    """Row ranges of ``n_blocks`` chunks: the first, the last, and others drawn with ``seed``."""
    bounds = np.concatenate(([0], np.cumsum(chunks))).astype(int)
    nonempty = [i for i in range(len(chunks)) if chunks[i]]
    if not nonempty:
        return []
    picked = {nonempty[0], nonempty[-1]}
    rest = [i for i in nonempty if i not in picked]
    rng = np.random.default_rng(seed)
    extra: Any = rng.choice(len(rest), size=min(max(n_blocks - len(picked), 0), len(rest)), replace=False) if rest else []
    picked.update(rest[int(j)] for j in extra)
    return [(int(bounds[i]), int(bounds[i + 1])) for i in sorted(picked)]


def _digests(x: Any, ranges: list[tuple[int, int]]) -> list[str]:
    import dask

    if not ranges:
        return []
    tasks = [dask.delayed(_block_digest, pure=True)(x[start:stop]) for start, stop in ranges]
    return [str(d) for d in dask.compute(*tasks)]


def data_fingerprint(X: Any, sample_weight: Any = None, *, seed: int | None = None,
                     ranges: list[tuple[int, int]] | None = None, n_blocks: int = N_SAMPLED_BLOCKS) -> dict[str, Any]:
    """A cheap fingerprint of the data of a fit: shape, dtype and the SHA-256 of a few row blocks.

    Data passes: none; reads ``n_blocks`` row blocks (the first chunk, the last, and chunks drawn
    with ``seed``), hashed where they are read (on the workers): only the digests come back.

    Parameters
    ----------
    X : dask array, :class:`~daskcluster.data.RowData` or array-like of shape (n_samples, ...)
    sample_weight : dask array or array-like of shape (n_samples,), optional
        Hashed over the same rows.
    seed : int, optional
        Picks the chunks; a fresh random seed when None. Kept in the result.
    ranges : list of (start, stop), optional
        The row ranges to hash (those of a saved fingerprint), instead of drawing them.
    n_blocks : int, default=4

    Returns
    -------
    dict
        ``shape``, ``dtype``, ``seed``, ``rows`` (the ranges) and ``sha256`` (one per range),
        and the same for ``sample_weight`` under ``weights_sha256`` (None without weights).
    """
    arr = _as_dask(X)
    if seed is None:
        seed = secrets.randbits(32)
    if ranges is None:
        ranges = _sample_ranges(tuple(int(c) for c in arr.chunks[0]), seed, n_blocks)
    ranges = [(int(a), int(b)) for a, b in ranges]
    doc: dict[str, Any] = {"shape": [int(s) for s in arr.shape], "dtype": np.dtype(arr.dtype).str, "seed": int(seed),
                           "rows": [list(r) for r in ranges], "sha256": None, "weights_sha256": None}
    if all(b <= arr.shape[0] for _, b in ranges):
        doc["sha256"] = _digests(arr, ranges)
        if sample_weight is not None:
            doc["weights_sha256"] = _digests(_as_dask(sample_weight), ranges)
    return doc


def _data_mismatch(path: Path, saved: dict[str, Any], now: dict[str, Any]) -> str | None:
    """What differs between two data fingerprints, or None."""
    for key, label in (("shape", "shape"), ("dtype", "dtype")):
        if saved.get(key) != now.get(key):
            return f"the data's {label} is {now.get(key)} here, {saved.get(key)} there"
    for key, label in (("sha256", "rows"), ("weights_sha256", "sample_weight of rows")):
        there, here = saved.get(key), now.get(key)
        if (there is None) != (here is None):
            return (f"sample_weight {'given' if here is not None else 'not given'} here, "
                    f"{'given' if there is not None else 'not given'} there")
        for (start, stop), a, b in zip(saved.get("rows") or [], there or [], here or []):
            if a != b:
                return f"{label} {start}:{stop} differ (SHA-256 {a[:12]}... there, {b[:12]}... here)"
    return None


def _writer() -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "pid": os.getpid(), "host": socket.gethostname()}


def _read_meta(path: Path) -> dict[str, Any] | None:
    """The metadata of the checkpoint at ``path`` (only its JSON member is read), or None."""
    try:
        with np.load(path, allow_pickle=False) as f:
            doc: dict[str, Any] = json.loads(str(f[_META][()]))
            return doc
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError, AttributeError):
        return None


class FitCheckpoint:
    """The checkpoint of one fit: refuses a file written by a different fit, for other data,
    or by a fit that is still running.

    Parameters
    ----------
    path : path-like
        The checkpoint file (``.npz`` by convention). An existing file that is not a checkpoint
        (a ``.npy`` array, say) is refused, never overwritten.
    fingerprint : dict
        JSON-serialisable description of the estimator's parameters and the data (shape,
        dtype, scaling) that a resumed fit must match.
    data : dask array, RowData or array-like, optional
        The fit's data: its :func:`data_fingerprint` is kept in the checkpoint and checked on
        resume (a few row blocks are read, once). Without it the data's content is not checked.
    weights : dask array or array-like of shape (n_samples,), optional
        The fit's ``sample_weight``, fingerprinted with the data.

    Examples
    --------
    In an estimator's ``fit``::

        ckpt = FitCheckpoint(self.checkpoint, self._fingerprint(data, weights, init_array),
                             data=data, weights=weights)
        saved = ckpt.load()        # None, or (state, arrays) of this fit on this data
        ...
        ckpt.save(state, arrays)   # after each iteration
    """

    def __init__(self, path: str | os.PathLike[str], fingerprint: dict[str, Any], *, data: Any = None,
                 weights: Any = None) -> None:
        self.path = Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint))
        self._data = data
        self._weights = weights
        self._data_fingerprint: dict[str, Any] | None = None
        self._writer = _writer()
        self._resumed_from: str | None = None  # writer id of the checkpoint this fit resumed
        self._lock = FileLock(self.path.with_name(f".{self.path.name}.lock"), f"the checkpoint '{self.path}'",
                              timeout=30)

    def _data_print(self, saved: dict[str, Any] | None = None) -> dict[str, Any] | None:
        if self._data is None:
            return None
        if self._data_fingerprint is None:
            if saved is not None:
                self._data_fingerprint = data_fingerprint(self._data, self._weights, seed=saved.get("seed", 0),
                                                          ranges=saved.get("rows") or [])
            else:
                self._data_fingerprint = data_fingerprint(self._data, self._weights)
        return self._data_fingerprint

    def load(self) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """The saved state of this fit, or None; raises if the file belongs to another fit.

        Raises
        ------
        InvalidParameterError
            The checkpoint was written by a fit with other parameters.
        InvalidDataError
            The checkpoint was written for other data (the message names what differs).
        LockedError
            The fit that wrote it still runs on this host.
        SourceError
            The file is not a readable checkpoint.
        """
        loaded = load_checkpoint(self.path)
        if loaded is None:
            return None
        meta, arrays = loaded
        saved = meta.get("fingerprint")
        if saved != self.fingerprint:
            diff = sorted(
                k for k in set(self.fingerprint) | set(saved or {})
                if (saved or {}).get(k) != self.fingerprint.get(k)
            )
            shown = ", ".join(f"{k}: {(saved or {}).get(k)!r} there, {self.fingerprint.get(k)!r} here" for k in diff)
            raise InvalidParameterError(
                f"The checkpoint {str(self.path)!r} was written by a different fit ({shown}). "
                "Use another checkpoint path, or delete it to start again."
            )
        writer = meta.get("writer") or {}
        if (writer.get("host") == socket.gethostname() and isinstance(writer.get("pid"), int)
                and writer["pid"] != os.getpid() and pid_alive(writer["pid"])):
            raise LockedError(
                f"The checkpoint {str(self.path)!r} is being written by a running fit (process {writer['pid']} "
                f"on host {writer['host']}). Wait for it to finish, or use another checkpoint path."
            )
        if self._data is not None:
            saved_data = meta.get("data")
            if not isinstance(saved_data, dict):
                raise InvalidDataError(
                    f"The checkpoint {str(self.path)!r} holds no fingerprint of its data (written by an older "
                    "daskcluster), so it cannot be checked against this data. Delete it to start again."
                )
            now = self._data_print(saved_data)
            assert now is not None
            what = _data_mismatch(self.path, saved_data, now)
            if what is not None:
                raise InvalidDataError(
                    f"The checkpoint {str(self.path)!r} was written for other data: {what}. Use another "
                    "checkpoint path for this data, or delete it to start again."
                )
        self._resumed_from = writer.get("id")
        logger.info("Resuming from checkpoint %s", self.path)
        return meta["state"], arrays

    def save(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Atomically replace the checkpoint with ``state`` and ``arrays``.

        Raises
        ------
        LockedError
            Another fit holds the checkpoint's lock, or wrote the checkpoint since this fit
            loaded it: two fits share one checkpoint path.
        """
        meta: dict[str, Any] = {"fingerprint": self.fingerprint, "state": state, "writer": self._writer}
        data = self._data_print()
        if data is not None:
            meta["data"] = data
        with self._lock:
            current = _read_meta(self.path) if self.path.exists() else None
            if current is not None:
                other = current.get("writer") or {}
                if other.get("id") not in (self._writer["id"], self._resumed_from):
                    raise LockedError(
                        f"The checkpoint {str(self.path)!r} was written by another fit (process "
                        f"{other.get('pid', '?')} on host {other.get('host', '?')}) since this one started: two "
                        "fits share this checkpoint path. Give each fit its own checkpoint."
                    )
            save_checkpoint(self.path, meta, arrays)
