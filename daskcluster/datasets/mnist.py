"""MNIST: find it, read it from any of its common layouts.

* the Keras ``.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``): :func:`load_mnist_npz`;
* the original IDX files (``train-images-idx3-ubyte[.gz]``...): :func:`~.idx.load_mnist_idx`;
* OpenML's ``mnist_784``, when a network exists: :func:`~.openml.fetch_mnist_openml`.

:func:`load_mnist` picks the reader from what it is given; :func:`mnist_to_zarr` writes the result
once into a labelled Zarr store (see :mod:`daskcluster.datasets.store`). Every reader returns
``X`` as ``uint8`` rows of 784 pixels and ``y`` as ``uint8`` labels, train before test.
"""

from __future__ import annotations

import logging
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidParameterError, SourceError, SourceNotFoundError
from ..io import DEFAULT_CHUNK_BYTES

logger = logging.getLogger(__name__)

#: Environment variable naming an MNIST ``.npz`` file to use instead of the search path.
MNIST_ENV = "DASKCLUSTER_MNIST"

_KEYS = ("x_train", "y_train", "x_test", "y_test")
_SPLITS = ("all", "train", "test")


def _check_split(split: object) -> None:
    if split not in _SPLITS:
        raise InvalidParameterError(f"The 'split' parameter must be one of 'all', 'train', 'test'. Got {split!r} instead.")


def find_mnist(start: str | os.PathLike[str] | None = None) -> Path | None:
    """Locate an MNIST ``.npz`` file, or return None.

    Looks at ``$DASKCLUSTER_MNIST`` (if set, and only there: a missing file gives None), then
    ``shared/data/mnist.npz`` and ``data/mnist.npz`` in each folder from ``start`` (default:
    the current directory) up to the root.
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


#: What reading a damaged or foreign archive raises, turned into :func:`_unreadable`'s error.
_READ_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error)


def _unreadable(path: str | os.PathLike[str], exc: BaseException) -> SourceError:
    """The error for an MNIST archive at ``path`` that reading failed on with ``exc``."""
    return SourceError(
        f"Cannot read MNIST from {str(path)!r}: {type(exc).__name__}: {exc}. The file is truncated "
        "or corrupt, or not a .npz archive; expected the Keras mnist.npz."
    )


def load_mnist_npz(path: str | os.PathLike[str], *, split: str = "all",
                   max_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST from a Keras-layout ``.npz`` file.

    Parameters
    ----------
    path : path-like
    split : {'all', 'train', 'test'}, default='all'
        ``'all'`` concatenates train (60,000) and test (10,000).
    max_rows : int, optional
        Read only the first ``max_rows`` rows of the split (train before test): the same arrays
        as ``X[:max_rows], y[:max_rows]`` of a whole read, but the compressed archive is
        decompressed only as far as those rows (10,000 rows of ``'all'``: a sixth of it), so
        damage to the file beyond them goes unnoticed.

    Returns
    -------
    X : ndarray of shape (n_samples, 784), uint8
    y : ndarray of shape (n_samples,), uint8

    Raises
    ------
    SourceNotFoundError
        No file at ``path``.
    SourceError
        Not a readable ``.npz`` (truncated, corrupt), a missing key, or arrays of the wrong
        shape or type; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"No MNIST file at {str(path)!r}.")
    _check_split(split)
    if max_rows is not None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 0:
            raise InvalidParameterError(f"The 'max_rows' parameter must be an int in the range [0, inf) or None. "
                                        f"Got {max_rows!r} instead.")
        return _load_npz_rows(path, split, int(max_rows))
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _KEYS if k not in f.files]
            if missing:
                raise SourceError(
                    f"{str(path)!r} is not a Keras-layout MNIST file: missing {missing}; expected the "
                    f"arrays {list(_KEYS)}."
                )
            parts = ("train", "test") if split == "all" else (split,)
            Xs, ys = [], []
            for part in parts:
                images, labels = f[f"x_{part}"], f[f"y_{part}"]
                if images.ndim not in (2, 3) or labels.ndim != 1 or len(images) != len(labels):
                    raise SourceError(
                        f"{str(path)!r} holds x_{part} of shape {images.shape} and y_{part} of shape "
                        f"{labels.shape}; expected (n, 28, 28) images and (n,) labels."
                    )
                if images.dtype.kind not in "ui" or labels.dtype.kind not in "ui":
                    raise SourceError(
                        f"{str(path)!r} holds x_{part} of dtype {images.dtype} and y_{part} of dtype "
                        f"{labels.dtype}; expected integer pixels (uint8) and labels."
                    )
                Xs.append(images.reshape(len(images), -1))
                ys.append(labels)
    except SourceError:
        raise
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from exc
    X, y = np.concatenate(Xs), np.concatenate(ys)
    return X.astype(np.uint8, copy=False), y.astype(np.uint8, copy=False)


def _check_part(path: Path, part: str, images: tuple[tuple[int, ...], np.dtype],
                labels: tuple[tuple[int, ...], np.dtype]) -> None:
    """The checks of :func:`load_mnist_npz` on one split's shapes and dtypes."""
    (xs, xt), (ys, yt) = images, labels
    if len(xs) not in (2, 3) or len(ys) != 1 or xs[0] != ys[0]:
        raise SourceError(
            f"{str(path)!r} holds x_{part} of shape {xs} and y_{part} of shape {ys}; expected (n, 28, 28) images "
            "and (n,) labels."
        )
    if xt.kind not in "ui" or yt.kind not in "ui":
        raise SourceError(
            f"{str(path)!r} holds x_{part} of dtype {xt} and y_{part} of dtype {yt}; expected integer pixels "
            "(uint8) and labels."
        )


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from the header of an ``.npy`` stream (which is left at its data)."""
    version = np.lib.format.read_magic(f)
    if version not in _HEADER_READERS:
        raise ValueError(f"unsupported .npy format version {version}")
    shape, fortran, dtype = _HEADER_READERS[version](f)
    return tuple(shape), fortran, dtype


def _first_rows(zf: zipfile.ZipFile, member: str, n: int) -> np.ndarray:
    """The first ``n`` rows of the array ``member`` of an ``.npz``, decompressing no further than them."""
    with zf.open(member + ".npy") as f:
        shape, fortran, dtype = _npy_header(f)
        n = min(n, shape[0])
        if fortran and len(shape) > 1:  # rows are not contiguous: read it whole
            with zf.open(member + ".npy") as whole:
                return np.lib.format.read_array(whole, allow_pickle=False)[:n]
        out = np.empty((n, *shape[1:]), dtype=dtype)
        view = out.reshape(-1).view(np.uint8).data  # the rows' bytes, filled as they are decompressed
        done = 0
        while done < len(view):
            got = f.read(len(view) - done)
            if not got:
                raise EOFError(f"{member}.npy ends after {done} of the {len(view)} bytes of its first {n} rows")
            view[done : done + len(got)] = got
            done += len(got)
        return out


def _load_npz_rows(path: Path, split: str, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`load_mnist_npz` of the first ``max_rows`` rows: the checks from the arrays' headers,
    then only those rows read."""
    try:
        with zipfile.ZipFile(path) as zf:
            files = {name[:-4] for name in zf.namelist() if name.endswith(".npy")}
            missing = [k for k in _KEYS if k not in files]
            if missing:
                raise SourceError(
                    f"{str(path)!r} is not a Keras-layout MNIST file: missing {missing}; expected the "
                    f"arrays {list(_KEYS)}."
                )
            parts = ("train", "test") if split == "all" else (split,)
            heads: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
            for part in parts:
                for key in (f"x_{part}", f"y_{part}"):
                    with zf.open(key + ".npy") as f:
                        shape, _, dtype = _npy_header(f)
                    heads[key] = (shape, dtype)
                _check_part(path, part, heads[f"x_{part}"], heads[f"y_{part}"])
            Xs: list[np.ndarray] = []
            ys: list[np.ndarray] = []
            left = max_rows
            for part in parts:
                n = min(left, heads[f"x_{part}"][0][0])
                if n == 0 and Xs:
                    break
                images = _first_rows(zf, f"x_{part}", n)
                Xs.append(images.reshape(len(images), math.prod(images.shape[1:])))
                ys.append(_first_rows(zf, f"y_{part}", n))
                left -= n
    except SourceError:
        raise
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from exc
    X = Xs[0] if len(Xs) == 1 else np.concatenate(Xs)
    y = ys[0] if len(ys) == 1 else np.concatenate(ys)
    return X.astype(np.uint8, copy=False), y.astype(np.uint8, copy=False)


def load_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    split: str = "all",
    data_home: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST from whatever layout ``path`` holds, or find it.

    Parameters
    ----------
    path : path-like, optional
        A Keras ``.npz`` file, or a directory of IDX files (``train-images-idx3-ubyte[.gz]``,
        ...). When omitted: :func:`find_mnist`, then OpenML if ``download`` is True.
    split : {'all', 'train', 'test'}, default='all'
    data_home : path-like, optional
        OpenML cache folder (see :func:`~.openml.fetch_mnist_openml`).
    download : bool, default=False
        Allow fetching ``mnist_784`` from OpenML when ``path`` is None and no local copy is
        found (a cached copy under ``data_home`` is used without network).

    Returns
    -------
    X : ndarray of shape (n_samples, 784), uint8
    y : ndarray of shape (n_samples,), uint8
    """
    from .idx import load_mnist_idx
    from .openml import fetch_mnist_openml

    _check_split(split)
    if path is None:
        found = find_mnist()
        if found is not None:
            logger.info("Reading MNIST from '%s'", found)
            return load_mnist_npz(found, split=split)
        if not download:
            raise SourceNotFoundError(
                f"No local MNIST found (${MNIST_ENV}, shared/data/mnist.npz or data/mnist.npz). Pass "
                "path= (an mnist.npz or a folder of IDX files), set $DASKCLUSTER_MNIST, or pass "
                "download=True to fetch it from OpenML."
            )
        return fetch_mnist_openml(data_home=data_home, split=split)
    path = Path(path)
    if path.is_dir():
        return load_mnist_idx(path, split=split)
    if not path.exists():
        raise SourceNotFoundError(f"No MNIST file or folder at '{path}'. Check the path.")
    if "idx" in path.name and not path.name.endswith(".npz"):
        raise SourceError(
            f"'{path}' looks like one IDX file; MNIST needs the images and the labels. Pass the "
            f"folder that holds them: load_mnist('{path.parent}')."
        )
    return load_mnist_npz(path, split=split)


def mnist_to_zarr(
    out: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    split: str = "all",
    data_home: str | os.PathLike[str] | None = None,
    download: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    overwrite: bool = False,
) -> tuple[Any, Any, dict[str, Any]]:
    """Read MNIST once (see :func:`load_mnist`) and write it to a labelled Zarr store at ``out``.

    Data passes: 1 over the source. Returns ``open_labeled_zarr(out)``: lazy ``X``, ``y`` and
    the store's attributes (``source`` records where MNIST came from).
    """
    from .openml import OPENML_NAME, OPENML_VERSION
    from .store import write_mnist_zarr

    _check_split(split)
    if path is not None:
        where = Path(path).resolve()
        source = f"mnist-idx:{where}" if where.is_dir() else f"mnist-npz:{where}"
    else:
        found = find_mnist()
        source = f"mnist-npz:{found}" if found is not None else f"openml:{OPENML_NAME}/v{OPENML_VERSION}"
    X, y = load_mnist(path, split=split, data_home=data_home, download=download)
    return write_mnist_zarr(X, y, out, source=f"{source} ({split})", chunk_bytes=chunk_bytes, overwrite=overwrite)
