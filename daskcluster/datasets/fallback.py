"""MNIST when it is on this machine, generated digits of the same shape when it is not."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dask.array as da
import numpy as np

from .infinite import make_infinite_mnist
from .mnist import find_mnist, load_mnist_npz

logger = logging.getLogger(__name__)


def mnist_or_generated(
    source: str | os.PathLike[str] = "auto",
    n_rows: int | None = None,
    work_dir: str | os.PathLike[str] = ".",
    *,
    chunk_rows: int = 10_000,
    random_state: int = 0,
) -> tuple[da.Array, np.ndarray, str]:
    """MNIST rows as a Dask array, their labels, and where they came from.

    Parameters
    ----------
    source : 'auto', 'generated' or path, default='auto'
        'auto': the Keras ``.npz`` that :func:`~daskcluster.datasets.find_mnist` finds, else
        generated digits; 'generated': always generated; a path: that ``.npz`` file.
    n_rows : int, optional
        The first ``n_rows`` rows of the file, or how many digits to generate (default: all of
        the file, or 70,000).
    work_dir : path-like, default='.'
        Where generated digits are stored (``generated-mnist.zarr``, replaced if present).
    chunk_rows : int, default=10_000
        Rows per chunk of the Dask array (and of the generated store).
    random_state : int, default=0
        Seed of the generated digits.

    Returns
    -------
    X : dask.array.Array of shape (n_rows, 784), uint8
    y : ndarray of shape (n_rows,)
    description : str
        Data passes: generating writes the store once (see :func:`make_infinite_mnist`); reading
        the file loads it into memory.
    """
    path = None if str(source) == "generated" else (find_mnist() if str(source) == "auto" else Path(source))
    if path is not None:
        X, y = load_mnist_npz(path)
        X = X.reshape(len(X), -1)
        n = len(X) if n_rows is None else min(n_rows, len(X))
        return da.from_array(X[:n], chunks=(chunk_rows, X.shape[1])), y[:n], f"MNIST ({path})"
    n = 70_000 if n_rows is None else n_rows
    logger.info("no MNIST file: generating %d deformed digits", n)
    X, y, _ = make_infinite_mnist(Path(work_dir) / "generated-mnist.zarr", n, base="digits", chunk_rows=chunk_rows,
                                  random_state=random_state, overwrite=True)
    y = y.compute() if hasattr(y, "compute") else y  # numpy.asarray does not compute a Dask array everywhere
    return X, np.asarray(y), "generated (make_infinite_mnist of scikit-learn's digits)"
