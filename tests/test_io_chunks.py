"""Blosc chunks of a local Zarr store decoded straight into the rows a read returns
(daskcluster.io_chunks): the same values as Zarr's read for every selection a task makes, and
Zarr's own read for every layout that is not of that kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
import zarr.codecs
import zarr.storage
from numcodecs import Blosc

from daskcluster import io_chunks
from daskcluster.errors import StoreIntegrityError
from daskcluster.io import CheckedReads, open_array

N, D, ROWS = 1000, 7, 128  # 8 chunks, the last of 104 rows

BLOSC = [
    zarr.codecs.BloscCodec(cname="lz4hc", clevel=5, shuffle="noshuffle"),
    zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),
    zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),
]
SELECTIONS = [(0, ROWS), (ROWS, 4 * ROWS), (100, 300), (7 * ROWS, N), (900, N), (0, N), (5, 6)]


def values(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(N, D)) * (rng.random((N, D)) < 0.5)
    return x.astype(dtype) if dtype == "uint8" else (x * rng.normal(size=(N, D))).astype(dtype)


def store(path: Path, dtype: str, **kwargs: object) -> zarr.Array:
    kwargs = {"chunks": (ROWS, D), **kwargs}
    z = zarr.create_array(str(path), shape=(N, D), dtype=dtype, zarr_format=3, **kwargs)
    z[:] = values(dtype)
    return z


def key(a: int, b: int) -> tuple[slice, slice]:
    return (slice(a, b, None), slice(0, D, None))


@pytest.mark.parametrize("dtype", ["uint8", "float32", "float64", "int16"])
@pytest.mark.parametrize("codec", BLOSC, ids=lambda c: f"{c.cname.value}-{c.shuffle.value}")
def test_rows_equal_zarr_read_for_every_selection_of_a_task(tmp_path: Path, dtype: str,
                                                           codec: zarr.codecs.BloscCodec) -> None:
    z = store(tmp_path / "x.zarr", dtype, compressors=(codec,))
    for a, b in SELECTIONS:
        got = io_chunks.read_rows(z, key(a, b))
        assert got is not None, (a, b)
        assert got.dtype == np.dtype(dtype) and got.flags.c_contiguous
        np.testing.assert_array_equal(got, z[a:b])


def test_layouts_of_other_kinds_are_read_by_zarr(tmp_path: Path) -> None:
    """Every layout other than bytes + Blosc in a local Zarr 3 store (and every selection that
    is not whole rows) gives None, and CheckedReads gives Zarr's values."""
    blosc = zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")
    arrays = {
        "uncompressed": store(tmp_path / "a.zarr", "uint8", compressors=None),
        "zstd codec": store(tmp_path / "b.zarr", "uint8", compressors=(zarr.codecs.ZstdCodec(),)),
        "blosc then crc32c": store(tmp_path / "c.zarr", "uint8", compressors=(blosc, zarr.codecs.Crc32cCodec())),
        "sharded": store(tmp_path / "d.zarr", "uint8", shards=(4 * ROWS, D), compressors=(blosc,)),
        "big endian": store(tmp_path / "e.zarr", "float32", compressors=(blosc,),
                            serializer=zarr.codecs.BytesCodec(endian="big")),
        "in memory": zarr.create_array(zarr.storage.MemoryStore(), shape=(N, D), chunks=(ROWS, D), dtype="uint8",
                                       compressors=(blosc,)),
        "column chunks": store(tmp_path / "f.zarr", "uint8", compressors=(blosc,), chunks=(ROWS, 4)),
    }
    arrays["in memory"][:] = values("uint8")
    v2 = zarr.create_array(str(tmp_path / "g.zarr"), shape=(N, D), chunks=(ROWS, D), dtype="uint8", zarr_format=2)
    v2[:] = values("uint8")
    arrays["zarr 2"] = v2
    for name, z in arrays.items():
        assert io_chunks.read_rows(z, key(0, 300)) is None, name
        np.testing.assert_array_equal(CheckedReads(z, name)[key(0, 300)], z[0:300])
    plain = store(tmp_path / "h.zarr", "uint8", compressors=(blosc,))
    for other in [(slice(0, 300, 2), slice(0, D)), (slice(0, 300), slice(0, 3)), (slice(10, 10), slice(0, D)),
                  (0, slice(0, D)), slice(0, 300)]:
        assert io_chunks.read_rows(plain, other) is None, other


def test_missing_chunk_read_by_zarr_with_its_fill_value(tmp_path: Path) -> None:
    z = store(tmp_path / "x.zarr", "uint8", compressors=(BLOSC[0],), fill_value=3)
    (tmp_path / "x.zarr" / "c" / "2" / "0").unlink()
    assert io_chunks.read_rows(z, key(0, 4 * ROWS)) is None
    got = CheckedReads(z, "x")[key(0, 4 * ROWS)]
    assert (got[2 * ROWS : 3 * ROWS] == 3).all()
    np.testing.assert_array_equal(got[: 2 * ROWS], values("uint8")[: 2 * ROWS])


@pytest.mark.parametrize("damage", ["truncated", "garbage", "another chunk's size"])
def test_damaged_chunk_is_a_store_integrity_error_naming_it(tmp_path: Path, damage: str) -> None:
    store(tmp_path / "x.zarr", "uint8", compressors=(BLOSC[0],))
    chunk = tmp_path / "x.zarr" / "c" / "3" / "0"
    data = chunk.read_bytes()
    if damage == "truncated":
        chunk.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        chunk.write_bytes(bytes(len(data)))
    else:  # a valid Blosc buffer of the wrong size: decoding it into the chunk's rows must fail
        chunk.write_bytes(Blosc(cname="lz4").encode(bytes(ROWS * D // 2)))
    with pytest.raises(StoreIntegrityError, match=r"chunk 3 \(rows 384:512\).*corrupt; write the store again"):
        open_array(tmp_path / "x.zarr").compute()
