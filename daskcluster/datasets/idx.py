"""The IDX file format of the original MNIST distribution (``train-images-idx3-ubyte.gz``...).

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the data in C order, big-endian. MNIST uses type ``0x08`` (unsigned byte):
images are ``0x00000803`` (n, 28, 28) and labels ``0x00000801`` (n,). Files may be gzipped; a
gzipped file is recognized by its content, not by its name.

Every header is checked before the data is read, and every error names the file and says what
was expected.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import (
    InvalidDataError,
    InvalidParameterError,
    SourceError,
    SourceNotFoundError,
)

__all__ = ["read_idx", "write_idx", "load_mnist_idx", "MNIST_IDX_FILES"]

logger = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"

#: IDX type code -> big-endian NumPy dtype.
_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in _TYPES.items()}
_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}

_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801

#: The four files of MNIST as distributed by Y. LeCun (each may also end in ``.gz``; some
#: mirrors write ``train-images.idx3-ubyte``, which is accepted too).
MNIST_IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _describe(magic: int) -> str:
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    return f"0x{magic:08X} ({_TYPE_NAMES.get(code, 'unknown type')}, {ndim}-D)"


def _read_bytes(path: Path) -> bytes:
    """The decompressed content of ``path`` (gzip recognized by its magic bytes)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise SourceNotFoundError(f"No IDX file at '{path}'. Check the path.") from None
    except OSError as exc:
        raise SourceError(f"Cannot read the IDX file '{path}': {exc}") from exc
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:  # truncated stream, bad CRC, corrupt data
        raise SourceError(
            f"'{path}' is a corrupt or truncated gzip file ({type(exc).__name__}: {exc}); "
            "expected a gzipped IDX file. Download it again."
        ) from exc


def read_idx(path: str | os.PathLike[str], *, expect_magic: int | None = None) -> np.ndarray:
    """Read an IDX file, gzipped or not, into a NumPy array in native byte order.

    Parameters
    ----------
    path : path-like
    expect_magic : int, optional
        Refuse any other magic number, e.g. ``0x00000803`` for MNIST images.

    Returns
    -------
    array : ndarray
        Of the shape and type the header gives (``uint8`` for MNIST).

    Raises
    ------
    SourceNotFoundError
        No file at ``path``.
    SourceError
        Corrupt gzip stream, header too short, bad or unexpected magic number, unknown type
        code, or a data size that does not match the header (truncated file, trailing bytes).
        The message names the file and what was expected.
    """
    path = Path(path)
    content = _read_bytes(path)
    if len(content) < 4:
        raise SourceError(
            f"'{path}' is too short to be an IDX file: {len(content)} bytes, expected at least a "
            "4-byte magic number."
        )
    (magic,) = struct.unpack(">I", content[:4])
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 != 0 or code not in _TYPES:
        raise SourceError(
            f"'{path}' is not an IDX file: magic number 0x{magic:08X}, expected 0x0000TTDD with a "
            f"type code TT in {{{', '.join(f'{c:02X}' for c in _TYPES)}}} (MNIST images are "
            f"0x{_IMAGES_MAGIC:08X}, labels 0x{_LABELS_MAGIC:08X})."
        )
    if expect_magic is not None and magic != expect_magic:
        raise SourceError(
            f"'{path}' has magic number {_describe(magic)}, expected {_describe(expect_magic)}. "
            "Are the image and label files swapped?"
        )
    header = 4 + 4 * ndim
    if len(content) < header:
        raise SourceError(
            f"'{path}' is truncated: its header announces {ndim} dimensions ({header} bytes) but "
            f"the file holds {len(content)} bytes."
        )
    shape = struct.unpack(f">{ndim}I", content[4:header])
    dtype = _TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(content) - header
    if found != expected:
        problem = "is truncated" if found < expected else "has trailing bytes"
        raise SourceError(
            f"'{path}' {problem}: the header announces shape {tuple(shape)} of "
            f"{_TYPE_NAMES[code]} ({expected} bytes of data), but {found} bytes follow the header."
        )
    array = np.frombuffer(content, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compresslevel: int | None = None) -> Path:
    """Write an array as an IDX file; gzipped when ``path`` ends in ``.gz``.

    Parameters
    ----------
    path : path-like
    array : ndarray
        Of dtype uint8, int8, int16, int32, float32 or float64, at most 255 dimensions.
    compresslevel : int, optional
        gzip level 0-9 for a ``.gz`` path (default 6).

    Returns
    -------
    path : Path
    """
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise InvalidDataError(
            f"IDX stores uint8, int8, int16, int32, float32 or float64; got dtype {array.dtype}. "
            "Convert the array first, e.g. array.astype(numpy.uint8)."
        )
    if array.ndim > 255 or array.ndim == 0 or max(array.shape) >= 2**32:
        raise InvalidDataError(f"IDX stores 1 to 255 dimensions of fewer than 2**32 items; got shape {array.shape}.")
    code = _CODES[native]
    header = struct.pack(f">I{array.ndim}I", (code << 8) | array.ndim, *array.shape)
    data = np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes()
    if path.name.endswith(".gz"):
        level = 6 if compresslevel is None else compresslevel
        with gzip.open(path, "wb", compresslevel=level) as handle:
            handle.write(header)
            handle.write(data)
    else:
        if compresslevel is not None:
            raise InvalidParameterError(
                f"compresslevel={compresslevel!r} applies to gzipped files; '{path}' does not end in .gz."
            )
        with open(path, "wb") as handle:
            handle.write(header)
            handle.write(data)
    return path


def _find(directory: Path, stem: str) -> Path:
    dotted = stem.replace("-idx", ".idx")  # train-images.idx3-ubyte, as some mirrors name it
    candidates = [directory / f"{name}{ext}" for name in (stem, dotted) for ext in ("", ".gz")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SourceNotFoundError(
        f"No '{stem}' or '{stem}.gz' in '{directory}'. The IDX layout needs "
        + ", ".join(f"{i}[.gz], {lab}[.gz]" for i, lab in MNIST_IDX_FILES.values())
        + "."
    )


def load_mnist_idx(path: str | os.PathLike[str], *, split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST from the original IDX files in a directory, gzipped or not.

    Parameters
    ----------
    path : path-like
        A directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each possibly ending in
        ``.gz`` (only the two of the requested split are needed).
    split : {'all', 'train', 'test'}, default='all'
        ``'all'`` concatenates train (60,000) and test (10,000), as :func:`load_mnist_npz`.

    Returns
    -------
    X : ndarray of shape (n_samples, rows * cols), uint8
    y : ndarray of shape (n_samples,), uint8

    Raises
    ------
    SourceNotFoundError
        The directory or one of its files is missing.
    SourceError
        A corrupt or truncated file, a wrong magic number, or image and label counts that differ.
    """
    directory = Path(path)
    if split not in ("all", "train", "test"):
        raise InvalidParameterError(f"The 'split' parameter must be one of 'all', 'train', 'test'. Got {split!r} instead.")
    if not directory.is_dir():
        if directory.is_file():
            raise SourceError(
                f"'{directory}' is a file; load_mnist_idx takes the directory that holds the four "
                "IDX files. Pass its parent folder."
            )
        raise SourceNotFoundError(f"No directory at '{directory}'. Check the path.")
    parts = ("train", "test") if split == "all" else (split,)
    Xs, ys = [], []
    for part in parts:
        image_stem, label_stem = MNIST_IDX_FILES[part]
        image_path, label_path = _find(directory, image_stem), _find(directory, label_stem)
        images = read_idx(image_path, expect_magic=_IMAGES_MAGIC)
        labels = read_idx(label_path, expect_magic=_LABELS_MAGIC)
        if len(images) != len(labels):
            raise SourceError(
                f"'{image_path}' holds {len(images)} images but '{label_path}' holds {len(labels)} "
                "labels; expected as many of each. One of the files belongs to another split or is damaged."
            )
        logger.debug("Read %d %s images %s from '%s'", len(images), part, images.shape[1:], image_path)
        Xs.append(images.reshape(len(images), -1))
        ys.append(labels)
    return np.concatenate(Xs), np.concatenate(ys)
