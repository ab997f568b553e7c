"""Storage layout of the Zarr stores daskcluster writes: codecs per dtype, chunk rows, shards.

One place decides how every store written by daskcluster is laid out on disk:
:func:`daskcluster.io.write_zarr`, the labelled stores of
:func:`daskcluster.datasets.write_mnist_zarr` and
:func:`daskcluster.datasets.make_infinite_mnist`, and ``daskcluster datasets``. Reading does not
depend on it: a store of any codec, chunking and sharding opens and fits.

Codecs (``compressors=``)
    ``"default"`` is :func:`default_compressors` of the array's dtype, chosen by measurement
    (``benchmarks/RESULTS-codecs.md``): the time of a streamed Lloyd pass on 2 worker processes
    first, disk use second. Streamed fits read and decompress every chunk on every pass, so a
    codec that decodes fast pays back its larger files many times over:

    * 1-byte items (``uint8`` pixels): Blosc ``lz4hc`` level 5, unshuffled. On deformed MNIST
      digits it decodes 2x faster through zarr (3x in Blosc alone) than ``zstd`` level 3 (the
      former default) at a ratio of 3.0 instead of 3.3; byte shuffle is a no-op for 1-byte items and bit shuffle costs ratio
      and speed.
    * wider items (``float32``, ``float64``, integers): Blosc ``lz4`` level 5 with byte
      shuffle, which decodes at 1-1.5 GB/s per core and compresses at 250-400 MB/s (``lz4hc``
      compresses noisy floats at under 20 MB/s, slower than data is generated).

    Any other codec stays available: a string ``"CNAME[:LEVEL[:SHUFFLE]]"`` (``"zstd:3"``,
    ``"lz4:5:bitshuffle"``; see :func:`parse_compressors`), ``None`` or ``"none"`` for raw
    chunks, or Zarr codec objects.

Chunk rows
    Rows per Zarr chunk come from :func:`daskcluster.io.chunk_rows` (bytes per chunk capped by
    ``chunk_bytes``, 32 MiB by default) or, for generated data, :data:`GENERATED_CHUNK_ROWS`.
    A Zarr chunk is what one task reads and decodes: chunks of 8-32 MiB keep a pass's
    scheduling cost small (a few ms per task) and a worker's memory at a few chunks. Not more
    than 32 MiB: glibc serves larger buffers by ``mmap`` and unmaps them on release, so each
    read of a larger chunk page-faults its buffers again (read in one process, 65,536-row digit
    chunks, 49 MiB, cost ~3x the CPU of 32,768-row ones; on 2 workers the difference stayed
    within a loaded machine's noise; 16,384 and 32,768 rows read alike,
    ``benchmarks/RESULTS-codecs.md``).

Shards (``shards=``)
    ``None`` (the default) stores one file per chunk. An int ``shards`` stores that many rows
    per file (a whole number of chunks): each shard holds its chunks and an index, tasks still
    read single chunks. Use it where files are costly (object stores charge per request and
    list slowly; HPC file systems limit file counts); on a local disk it changes no pass time.
    A shard is the unit of writing, so writers give one task whole shards.

Scratch stores written and read back within one fit (NMF's ``W`` rows in
:mod:`daskcluster.engine.rowstore`, DBSCAN's partitions as ``.npy``) are not laid out here: they
are stored raw, since they are read once or twice and their float rows barely compress (ratio
1.0-1.1 on noisy float32 at any Blosc setting, ``benchmarks/RESULTS-codecs.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import zarr.codecs
from zarr.abc.codec import BytesBytesCodec

from daskcluster.errors import InvalidParameterError

__all__ = [
    "GENERATED_CHUNK_ROWS",
    "BYTE_CODEC",
    "WIDE_CODEC",
    "Layout",
    "default_compressors",
    "describe_compressors",
    "parse_compressors",
    "resolve_compressors",
    "resolve_shards",
]

logger = logging.getLogger(__name__)

BYTE_CODEC: dict[str, Any] = {"cname": "lz4hc", "clevel": 5, "shuffle": "noshuffle"}
"""Blosc settings of the default codec for 1-byte items (``uint8`` images)."""

WIDE_CODEC: dict[str, Any] = {"cname": "lz4", "clevel": 5, "shuffle": "shuffle"}
"""Blosc settings of the default codec for items wider than a byte."""

GENERATED_CHUNK_ROWS: int = 32_768
"""Rows per generated chunk of images (:func:`daskcluster.datasets.make_infinite_mnist`):
32,768 rows of 784 bytes = 25.7 MB, below the 32 MiB at which chunk buffers start to be
page-faulted on every read, and as cheap per pass as 16,384 rows. Fixed (not derived from ``n_samples``), since the chunk
index seeds the chunk's rows: every size made with it is a prefix of every larger size."""

_CNAMES = ("lz4", "lz4hc", "zstd", "zlib", "blosclz")
_SHUFFLES = ("noshuffle", "shuffle", "bitshuffle")
_DEFAULT_LEVEL = 5


def default_compressors(dtype: npt.DTypeLike) -> tuple[zarr.codecs.BloscCodec]:
    """The default codec of an array of ``dtype``: :data:`BYTE_CODEC` for 1-byte items, else
    :data:`WIDE_CODEC` (see the module's documentation for the measurements)."""
    settings = BYTE_CODEC if np.dtype(dtype).itemsize == 1 else WIDE_CODEC
    return (zarr.codecs.BloscCodec(**settings),)


def parse_compressors(text: str, dtype: npt.DTypeLike) -> tuple[zarr.codecs.BloscCodec, ...] | None:
    """Codecs named by a string: ``"default"``, ``"none"`` or ``"CNAME[:LEVEL[:SHUFFLE]]"``.

    ``CNAME`` is a Blosc compressor (``lz4``, ``lz4hc``, ``zstd``, ``zlib``, ``blosclz``),
    ``LEVEL`` 1-9 (default 5) and ``SHUFFLE`` ``noshuffle``, ``shuffle`` or ``bitshuffle``
    (default: ``noshuffle`` for 1-byte items, ``shuffle`` for wider ones).

    Examples
    --------
    >>> describe_compressors(parse_compressors("zstd:3", "uint8"))
    'blosc zstd 3 noshuffle'
    >>> describe_compressors(parse_compressors("lz4", "float32"))
    'blosc lz4 5 shuffle'
    """
    name = text.strip().lower()
    if name == "default":
        return default_compressors(dtype)
    if name == "none":
        return None
    parts = name.split(":")
    fix = ("Give 'default', 'none' or 'CNAME[:LEVEL[:SHUFFLE]]' with CNAME one of "
           f"{', '.join(_CNAMES)}, LEVEL 1-9 and SHUFFLE one of {', '.join(_SHUFFLES)}, e.g. 'zstd:3'.")
    if len(parts) > 3 or parts[0] not in _CNAMES:
        raise InvalidParameterError(f"Unknown codec {text!r}. {fix}")
    level = _DEFAULT_LEVEL
    if len(parts) > 1:
        try:
            level = int(parts[1])
        except ValueError:
            level = -1
        if not 1 <= level <= 9:
            raise InvalidParameterError(f"The level of codec {text!r} must be an int in 1-9; got {parts[1]!r}. {fix}")
    shuffle = "noshuffle" if np.dtype(dtype).itemsize == 1 else "shuffle"
    if len(parts) > 2:
        if parts[2] not in _SHUFFLES:
            raise InvalidParameterError(f"The shuffle of codec {text!r} must be one of {', '.join(_SHUFFLES)}; "
                                        f"got {parts[2]!r}. {fix}")
        shuffle = parts[2]
    return (zarr.codecs.BloscCodec(cname=parts[0], clevel=level, shuffle=shuffle),)


def resolve_compressors(compressors: Any, dtype: npt.DTypeLike) -> tuple[BytesBytesCodec, ...] | None:
    """``compressors=`` as given by a user, as the ``compressors=`` of :func:`zarr.create_array`.

    Parameters
    ----------
    compressors : "default", str, None, codec or sequence of codecs
        A string goes through :func:`parse_compressors`; ``None`` stores raw chunks; Zarr
        bytes-to-bytes codecs (e.g. ``zarr.codecs.BloscCodec``, ``zarr.codecs.ZstdCodec``) are
        used as given.
    dtype : dtype
        The array's dtype (the default codec and shuffle depend on its item size).

    Raises
    ------
    InvalidParameterError
        An unknown name, or an object that is not a Zarr bytes-to-bytes codec.
    """
    if compressors is None:
        return None
    if isinstance(compressors, str):
        return parse_compressors(compressors, dtype)
    items = tuple(compressors) if isinstance(compressors, Sequence) else (compressors,)
    bad = [c for c in items if not isinstance(c, BytesBytesCodec)]
    if bad:
        raise InvalidParameterError(
            f"The 'compressors' parameter must be 'default', a codec name such as 'lz4' or 'zstd:3', None, "
            f"or Zarr bytes-to-bytes codecs (e.g. zarr.codecs.BloscCodec(cname='zstd')). Got {bad[0]!r} instead."
        )
    return items


def resolve_shards(shards: int | None, rows: int, n_samples: int) -> int | None:
    """Rows per shard from ``shards=``, or None for one file per chunk.

    Parameters
    ----------
    shards : int or None
        Rows per shard, rounded down to a whole number of chunks (at least one: the chunk rows
        are set by ``chunk_bytes`` and balanced, so callers rarely know them exactly). Shards
        longer than the array are cut to the whole chunks that hold it.
    rows : int
        Rows per Zarr chunk.
    n_samples : int
        Rows of the array.

    Raises
    ------
    InvalidParameterError
        ``shards`` is not None or an int >= 1.
    """
    if shards is None:
        return None
    if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or shards < 1:
        raise InvalidParameterError(
            f"The 'shards' parameter must be None or an int in the range [1, inf) (rows per shard). "
            f"Got {shards!r} instead."
        )
    whole = max(-(-n_samples // rows), 1) * rows
    shard_rows = min(max(int(shards) // rows, 1) * rows, whole)
    if shard_rows != shards:
        logger.info("shards=%d rows: %d rows per shard (%d whole chunks of %d rows)", shards, shard_rows,
                    shard_rows // rows, rows)
    return shard_rows


def describe_compressors(compressors: Sequence[Any] | None) -> str:
    """Short text of the codecs of an array, e.g. ``"blosc lz4hc 5 noshuffle"`` or ``"none"``."""
    if not compressors:
        return "none"
    parts = []
    for codec in compressors:
        if isinstance(codec, zarr.codecs.BloscCodec):
            parts.append(f"blosc {codec.cname.value} {codec.clevel} {codec.shuffle.value if codec.shuffle else ''}".strip())
        else:
            parts.append(type(codec).__name__)
    return " + ".join(parts)


@dataclass(frozen=True)
class Layout:
    """How one row-chunked array is stored: rows per chunk, rows per shard, codecs.

    Attributes
    ----------
    rows : int
        Rows per Zarr chunk (what one reading task decodes).
    shard_rows : int or None
        Rows per shard file (a multiple of ``rows``), or None for one file per chunk.
    compressors : tuple of codecs or None
        Passed to :func:`zarr.create_array`.
    """

    rows: int
    shard_rows: int | None
    compressors: tuple[BytesBytesCodec, ...] | None

    @classmethod
    def plan(cls, n_samples: int, dtype: npt.DTypeLike, rows: int, *, compressors: Any = "default",
             shards: int | None = None) -> Layout:
        """The layout of an array of ``n_samples`` rows of ``dtype`` in chunks of ``rows`` rows,
        checking ``compressors=`` and ``shards=`` (before any data is read or written)."""
        return cls(rows, resolve_shards(shards, rows, n_samples), resolve_compressors(compressors, dtype))

    @property
    def write_rows(self) -> int:
        """Rows one writing task writes: a whole shard, or one chunk."""
        return self.shard_rows or self.rows

    def array_spec(self, shape: tuple[int, ...], *, compressors: Any = "same") -> dict[str, Any]:
        """``chunks=``, ``shards=`` and ``compressors=`` for :func:`zarr.create_array` of an array of
        ``shape`` whose first axis is rows (other axes in one chunk).

        ``compressors="same"`` uses this layout's; anything else is resolved for ``shape``'s array
        by the caller (e.g. labels of another dtype, see :func:`resolve_compressors`).
        """
        rest = tuple(max(int(s), 1) for s in shape[1:])
        spec: dict[str, Any] = {
            "chunks": (self.rows, *rest),
            "compressors": self.compressors if isinstance(compressors, str) and compressors == "same" else compressors,
        }
        if self.shard_rows is not None:
            spec["shards"] = (self.shard_rows, *rest)
        return spec

    def chunk_starts(self, start: int, stop: int) -> range:
        """First rows of the Zarr chunks within rows ``start:stop`` (a whole shard or chunk)."""
        return range(start, stop, self.rows)
