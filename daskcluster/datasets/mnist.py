"""MNIST in the Keras ``.npz`` layout (``x_train``, ``y_train``, ``x_test``, ``y_test``)."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import SourceError, SourceNotFoundError

logger = logging.getLogger(__name__)

#: Environment variable naming an MNIST ``.npz`` file to use instead of the search path.
MNIST_ENV = "DASKCLUSTER_MNIST"

_KEYS = ("x_train", "y_train", "x_test", "y_test")


def find_mnist(start: str | os.PathLike[str] | None = None) -> Path | None:
    """Locate an MNIST ``.npz`` file, or return None.

    Looks at ``$DASKCLUSTER_MNIST``, then ``shared/data/mnist.npz`` in the parent of each
    folder from ``start`` (default: the current directory) up to the root.
    """
    env = os.environ.get(MNIST_ENV)
    if env:
        return Path(env) if Path(env).is_file() else None
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        for candidate in (folder / "shared" / "data" / "mnist.npz", folder / "data" / "mnist.npz"):
            if candidate.is_file():
                return candidate
    return None


def load_mnist_npz(path: str | os.PathLike[str], *, split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST from a Keras-layout ``.npz`` file.

    Parameters
    ----------
    path : path-like
    split : {'all', 'train', 'test'}, default='all'
        ``'all'`` concatenates train (60,000) and test (10,000).

    Returns
    -------
    X : ndarray of shape (n_samples, 784), uint8
    y : ndarray of shape (n_samples,), uint8
    """
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"No MNIST file at {str(path)!r}.")
    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be one of 'all', 'train', 'test'; got {split!r}.")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _KEYS if k not in f.files]
            if missing:
                raise SourceError(f"{str(path)!r} is not a Keras-layout MNIST file: missing {missing}.")
            parts = ("train", "test") if split == "all" else (split,)
            X = np.concatenate([f[f"x_{p}"].reshape(len(f[f"x_{p}"]), -1) for p in parts])
            y = np.concatenate([f[f"y_{p}"] for p in parts])
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"Cannot read MNIST from {str(path)!r}: {exc}") from exc
    return X.astype(np.uint8, copy=False), y.astype(np.uint8, copy=False)
