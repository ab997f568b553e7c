"""Checkpoints of iterative fits: JSON metadata and NumPy arrays in one ``.npz`` file.

A checkpoint is written to a temporary name in the same folder, flushed to disk, and renamed
over the previous one, so the file at the checkpoint path is always a complete checkpoint:
a run interrupted at any moment (Ctrl-C, a killed process) leaves either the previous
checkpoint or the new one. No pickle: arrays are read with ``allow_pickle=False`` and the
metadata is JSON stored as a string array.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SourceError

logger = logging.getLogger(__name__)

#: Version of the checkpoint layout; a newer file is refused with a clear error.
FORMAT_VERSION = 1
_META = "__meta__"


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
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"format_version": FORMAT_VERSION, "sha256": _digest(arrays), **meta}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_META: np.array(json.dumps(record))}, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    try:
        with np.load(path, allow_pickle=False) as f:
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


class FitCheckpoint:
    """The checkpoint of one fit: refuses a file written by a different fit.

    Parameters
    ----------
    path : path-like
    fingerprint : dict
        JSON-serialisable description of the estimator's parameters and the data (shape,
        dtype, scaling) that a resumed fit must match.
    """

    def __init__(self, path: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
        self.path = Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint))

    def load(self) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """The saved state of this fit, or None; raises if the file belongs to another fit."""
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
            from .errors import InvalidParameterError

            raise InvalidParameterError(
                f"The checkpoint {str(self.path)!r} was written by a different fit ({shown}). "
                "Use another checkpoint path, or delete it to start again."
            )
        logger.info("Resuming from checkpoint %s", self.path)
        return meta["state"], arrays

    def save(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Atomically replace the checkpoint with ``state`` and ``arrays``."""
        save_checkpoint(self.path, {"fingerprint": self.fingerprint, "state": state}, arrays)
