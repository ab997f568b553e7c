"""Rows of a local Zarr store's Blosc chunks decoded straight into the array a read returns.

Zarr 3 decodes a chunk into a buffer of its own and copies it into the array a read returns
(through its asynchronous codec pipeline). For the layout daskcluster writes —
:mod:`daskcluster.storage`'s default: a 2-D array in a local store, chunks of whole rows, the
bytes codec then Blosc, no sharding — :func:`read_rows` reads each chunk's file and lets Blosc decode it in
place, into the rows of the returned array: the same bytes as Zarr's read at about half its CPU time
(a 32,768 x 784 ``uint8`` chunk, Blosc lz4hc: 5.6 against 11.5 ms in one thread, AMD EPYC).

Anything else — other codecs (a checksum, sharding, a transpose), a remote store, Zarr 2
metadata, a byte order other than the machine's, a missing chunk (Zarr fills it) — gives
``None`` and the caller reads through Zarr. Before decoding, the file must be as long as its
Blosc header says and decode to exactly the chunk's size (Blosc itself only refuses a chunk
larger than its destination); any error is raised for the caller to report
(:class:`daskcluster.io.CheckedReads`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def _blosc_layout(z: Any) -> tuple[Path, int] | None:
    """The directory of a Zarr 3 array in a local store and its chunks' rows, when its chunks
    are whole rows stored by the bytes codec (this machine's byte order) then Blosc alone."""
    from zarr.codecs import BloscCodec, BytesCodec
    from zarr.storage import LocalStore

    meta = z.metadata
    if getattr(meta, "zarr_format", None) != 3 or not isinstance(z.store, LocalStore) or z.ndim != 2:
        return None
    codecs = tuple(meta.codecs)
    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec) or not isinstance(codecs[1], BloscCodec):
        return None
    endian = codecs[0].endian
    if np.dtype(z.dtype).itemsize > 1 and (endian is None or endian.value != sys.byteorder):
        return None
    rows, columns = (int(c) for c in z.chunks)
    if columns != z.shape[1] or rows <= 0:
        return None
    return Path(z.store.root) / z.path, rows


#: Bytes of a Blosc buffer's header: version, version of its codec, flags, type size, then the
#: decoded size, the block size and the buffer's own size (little-endian uint32 each).
_HEADER = 16


def _check_header(data: bytes, expected: int, chunk: int) -> None:
    """Raise ValueError unless ``data`` is as long as its Blosc header says and decodes to
    ``expected`` bytes (Blosc itself only refuses a destination too small)."""
    if len(data) < _HEADER:
        raise ValueError(f"chunk {chunk} holds {len(data)} bytes, fewer than a Blosc header")
    decoded = int.from_bytes(data[4:8], "little")
    size = int.from_bytes(data[12:16], "little")
    if size != len(data) or decoded != expected:
        raise ValueError(f"chunk {chunk}: its Blosc header gives {size} bytes decoding to {decoded}, but the file "
                         f"holds {len(data)} bytes and the chunk {expected}")


def read_rows(z: Any, key: Any) -> np.ndarray | None:
    """``z[key]`` for a selection of whole rows (``(slice(start, stop), all columns)``) of an
    array in the layout the module describes, decoded by Blosc into the returned array; None
    where the selection or the array is not of that kind, or a chunk is missing.

    Parameters
    ----------
    z : zarr.Array
        Two-dimensional.
    key : tuple of slice
        As ``dask.array.from_array`` slices a chunk: rows, then every column.

    Returns
    -------
    ndarray of shape (stop - start, n_features), or None
    """
    from numcodecs import Blosc

    if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, slice) for k in key)):
        return None
    n_rows, n_features = (int(s) for s in z.shape)
    start, stop, step = key[0].indices(n_rows)
    if step != 1 or key[1].indices(n_features) != (0, n_features, 1) or stop <= start:
        return None
    layout = _blosc_layout(z)
    if layout is None:
        return None
    root, rows = layout
    dtype = np.dtype(z.dtype)
    out = np.empty((stop - start, n_features), dtype=dtype)
    codec = Blosc()
    for c in range(start // rows, -(-stop // rows)):
        path = root / z.metadata.encode_chunk_key((c, 0))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            logger.debug("chunk %s of %s is missing: read through Zarr (its fill value)", c, root)
            return None
        _check_header(data, rows * n_features * dtype.itemsize, c)
        a, b = max(start, c * rows), min(stop, (c + 1) * rows)
        if a == c * rows and b == (c + 1) * rows:
            codec.decode(data, out=out[a - start : b - start])
        else:  # a chunk of which only some rows are read (the array's last, or one split between tasks)
            whole = np.empty((rows, n_features), dtype=dtype)
            codec.decode(data, out=whole)
            out[a - start : b - start] = whole[a - c * rows : b - c * rows]
    return out
