"""Storage layout (daskcluster.storage): every codec and layout offered gives the same fits as
the data in memory; stores written before (zstd, other chunkings, sharded or not, other tools)
still open and fit; sharded stores are checked like unsharded ones."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
import zarr.codecs

from daskcluster import KMeans
from daskcluster.datasets import (
    make_infinite_mnist,
    open_labeled_zarr,
    verify_labeled_zarr,
    write_mnist_zarr,
)
from daskcluster.errors import InvalidParameterError, StoreIntegrityError
from daskcluster.io import open_array, verify_zarr, write_zarr
from daskcluster.storage import (
    Layout,
    default_compressors,
    describe_compressors,
    parse_compressors,
    resolve_compressors,
    resolve_shards,
)

ROWS = 60  # rows per Zarr chunk in these tests: 10 chunks of 600 rows
#: Every codec offered on bytes, the defaults and a few others on floats, sharded and not.
LAYOUTS = (
    [("uint8", c, None) for c in ("default", "lz4", "lz4hc", "zstd:1", "zstd:3", "lz4:5:bitshuffle", None)]
    + [("float32", c, None) for c in ("default", "lz4:5:bitshuffle", "zstd:1:shuffle", None)]
    + [("uint8", "default", 4 * ROWS), ("uint8", "zstd:3", 4 * ROWS), ("float32", "default", 4 * ROWS)]
)


def data(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    centers = rng.uniform(0, 200, (3, 12))
    X = centers[rng.integers(0, 3, 600)] + rng.normal(0, 10, (600, 12))
    return np.clip(X, 0, 255).astype(dtype)


def fit(X: object) -> KMeans:
    init = np.asarray(data("float64")[[0, 1, 2]])
    return KMeans(3, init=init, n_init=1, max_iter=20, cache=False).fit(X)


def assert_same_fit(streamed: KMeans, reference: KMeans) -> None:
    # the same values in the same chunks, reduced in the same fixed order: bit-identical
    np.testing.assert_array_equal(streamed.cluster_centers_, reference.cluster_centers_)
    np.testing.assert_array_equal(*dask.compute(streamed.labels_, reference.labels_))
    assert streamed.inertia_ == reference.inertia_ and streamed.n_iter_ == reference.n_iter_


@pytest.fixture(scope="module")
def in_memory() -> dict[str, KMeans]:
    return {dtype: fit(da.from_array(data(dtype), chunks=(ROWS, -1))) for dtype in ("uint8", "float32")}


@pytest.mark.parametrize("dtype, compressors, shards", LAYOUTS)
def test_streamed_fit_equals_in_memory_fit_for_every_layout(
    tmp_path: Path, in_memory: dict[str, KMeans], dtype: str, compressors: str | None, shards: int | None
) -> None:
    X = data(dtype)
    z = write_zarr(X, tmp_path / "x.zarr", chunk_bytes=ROWS * X.shape[1] * X.itemsize, compressors=compressors,
                   shards=shards)
    assert z.chunks == (ROWS, 12) and z.shards == (None if shards is None else (4 * ROWS, 12))
    assert len(z.compressors) == (0 if compressors is None else 1)
    assert verify_zarr(tmp_path / "x.zarr") == 10
    streamed = open_array(tmp_path / "x.zarr", chunk_bytes=ROWS * X.shape[1] * X.itemsize)
    assert streamed.chunks[0] == (ROWS,) * 10
    assert_same_fit(fit(streamed), in_memory[dtype])


@pytest.mark.parametrize(
    "make",
    [
        # write_zarr's former default, with its manifest
        lambda p, X: write_zarr(X, p, chunk_bytes=100 * 12, compressors=zarr.codecs.BloscCodec(
            cname="zstd", clevel=3, shuffle="noshuffle")),
        # other tools: Zarr v3, zstd bit-shuffled, chunks of 128 rows, no manifest
        lambda p, X: zarr.create_array(str(p), data=X, chunks=(128, 12), compressors=zarr.codecs.BloscCodec(
            cname="zstd", clevel=5, shuffle="bitshuffle")),
        # Zarr v3 sharded by another tool, inner chunks of 50 rows
        lambda p, X: zarr.create_array(str(p), data=X, chunks=(50, 12), shards=(200, 12)),
        # Zarr v2
        lambda p, X: zarr.create_array(str(p), data=X, chunks=(75, 12), zarr_format=2),
    ],
    ids=["old-default-zstd", "zstd-bitshuffle-v3", "sharded-v3", "zarr-v2"],
)
def test_stores_written_the_old_ways_open_and_fit(tmp_path: Path, make: object) -> None:
    X = data("uint8")
    make(tmp_path / "old.zarr", X)  # type: ignore[operator]
    streamed = open_array(tmp_path / "old.zarr")
    np.testing.assert_array_equal(streamed.compute(), X)
    reference = fit(da.from_array(X, chunks=(streamed.chunks[0], -1)))
    assert_same_fit(fit(streamed), reference)


def test_a_labelled_store_written_with_zstd_still_opens_and_fits(tmp_path: Path) -> None:
    X, y = data("uint8"), np.arange(600) % 10
    zstd = (zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="noshuffle"),)
    write_mnist_zarr(X, y, tmp_path / "old.zarr", source="test", chunk_bytes=ROWS * 12, compressors=zstd)
    Xs, ys, attrs = open_labeled_zarr(tmp_path / "old.zarr")
    (codec,) = zarr.open_group(str(tmp_path / "old.zarr"), mode="r")["X"].compressors
    assert (codec.cname.value, codec.clevel) == ("zstd", 3)
    np.testing.assert_array_equal(ys.compute(), y)
    assert verify_labeled_zarr(tmp_path / "old.zarr") == attrs["checksum"]
    assert_same_fit(fit(Xs), fit(da.from_array(X, chunks=(Xs.chunks[0], -1))))


def test_generated_values_do_not_depend_on_codec_or_shards(tmp_path: Path) -> None:
    kwargs = {"base": "digits", "chunk_rows": 100, "random_state": 3}
    X1, _, a1 = make_infinite_mnist(tmp_path / "a.zarr", 450, **kwargs)  # type: ignore[arg-type]
    X2, _, a2 = make_infinite_mnist(tmp_path / "b.zarr", 450, compressors="zstd:1", shards=250,  # type: ignore[arg-type]
                                    **kwargs)
    group = zarr.open_group(str(tmp_path / "b.zarr"), mode="r")
    assert group["X"].shards == (200, 784) and group["y"].shards == (200,) and group["X"].chunks == (100, 784)
    assert group["X"].compressors[0].cname.value == "zstd"
    assert group["base_index"].compressors[0].shuffle.value == "shuffle"  # resolved for int32
    assert a1["checksum"] == a2["checksum"]
    np.testing.assert_array_equal(X1.compute(), X2.compute())
    assert verify_labeled_zarr(tmp_path / "b.zarr") == a2["checksum"]


def test_a_missing_shard_is_missing_chunks(tmp_path: Path) -> None:
    X = data("uint8")
    write_zarr(X, tmp_path / "s.zarr", chunk_bytes=ROWS * 12, shards=4 * ROWS)
    assert sorted(os.listdir(tmp_path / "s.zarr" / "c")) == ["0", "1", "2"]
    os.remove(tmp_path / "s.zarr" / "c" / "1" / "0")
    with pytest.raises(StoreIntegrityError, match=r"10 chunks but holds 6: 4 chunk\(s\) missing, e.g. chunk 4 "
                                                  r"\(rows 240:300\)"):
        open_array(tmp_path / "s.zarr")
    with pytest.raises(StoreIntegrityError, match="missing"):
        verify_zarr(tmp_path / "s.zarr")


def test_a_missing_last_shard_of_a_labelled_store_is_named(tmp_path: Path) -> None:
    write_mnist_zarr(data("uint8"), np.zeros(600, dtype=np.uint8), tmp_path / "l.zarr", source="test",
                     chunk_bytes=ROWS * 12, shards=4 * ROWS)
    os.remove(tmp_path / "l.zarr" / "X" / "c" / "2" / "0")
    with pytest.raises(StoreIntegrityError, match=r"chunk 8 \(rows 480:540\), 9 \(rows 540:600\)"):
        open_labeled_zarr(tmp_path / "l.zarr")


def test_a_corrupt_shard_is_named_by_verify(tmp_path: Path) -> None:
    write_zarr(data("uint8"), tmp_path / "s.zarr", chunk_bytes=ROWS * 12, shards=4 * ROWS)
    shard = tmp_path / "s.zarr" / "c" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[40:60] = bytes(20)  # inside chunk 0's compressed bytes, before the index at the end
    shard.write_bytes(bytes(raw))
    with pytest.raises(StoreIntegrityError, match=r"chunk 0 \(rows 0:60\)"):
        verify_zarr(tmp_path / "s.zarr")


def test_codec_names_and_defaults() -> None:
    (byte,) = default_compressors("uint8")
    (wide,) = default_compressors("float32")
    assert (byte.cname.value, byte.clevel, byte.shuffle.value) == ("lz4hc", 5, "noshuffle")
    assert (wide.cname.value, wide.clevel, wide.shuffle.value) == ("lz4", 5, "shuffle")
    (codec,) = parse_compressors("ZSTD:1:bitshuffle", "uint8")
    assert (codec.cname.value, codec.clevel, codec.shuffle.value) == ("zstd", 1, "bitshuffle")
    assert parse_compressors("lz4", "float64")[0].shuffle.value == "shuffle"
    assert parse_compressors("none", "uint8") is None and resolve_compressors(None, "uint8") is None
    zstd = zarr.codecs.ZstdCodec(level=2)
    assert resolve_compressors(zstd, "uint8") == (zstd,) and resolve_compressors([zstd], "uint8") == (zstd,)
    assert describe_compressors(default_compressors("uint8")) == "blosc lz4hc 5 noshuffle"
    assert describe_compressors(()) == "none"


@pytest.mark.parametrize(
    "compressors, match",
    [("snappy", "Unknown codec 'snappy'"), ("zstd:0", "level of codec 'zstd:0' must be an int in 1-9"),
     ("lz4:x", "level of codec 'lz4:x'"), ("lz4:5:byteshuffle", "shuffle of codec 'lz4:5:byteshuffle'"),
     ("lz4:5:shuffle:1", "Unknown codec"), (3, "Got 3 instead"), ([zarr.codecs.BytesCodec()], "BytesCodec")],
)
def test_bad_codecs_are_refused_before_any_write(tmp_path: Path, compressors: object, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match) as info:
        write_zarr(data("uint8"), tmp_path / "x.zarr", compressors=compressors)
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / "x.zarr").exists()


def test_shards_are_whole_chunks() -> None:
    assert resolve_shards(None, 60, 600) is None
    assert resolve_shards(250, 60, 600) == 240  # rounded down to whole chunks
    assert resolve_shards(10, 60, 600) == 60  # at least one chunk
    assert resolve_shards(10_000, 60, 600) == 600  # no longer than the array's chunks
    for bad in (0, -5, 2.5, True, "4"):
        with pytest.raises(InvalidParameterError, match="'shards' parameter"):
            resolve_shards(bad, 60, 600)  # type: ignore[arg-type]
    layout = Layout.plan(600, "uint8", 60, shards=250)
    assert layout.write_rows == 240 and list(layout.chunk_starts(240, 480)) == [240, 300, 360, 420]
    assert layout.array_spec((600, 12))["shards"] == (240, 12)
    assert layout.array_spec((600,))["chunks"] == (60,)


def test_datasets_command_takes_a_codec_and_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daskcluster.cli import main

    np.save(tmp_path / "x.npy", data("uint8"))
    assert main(["datasets", "ingest", str(tmp_path / "x.npy"), str(tmp_path / "x.zarr"), "--chunk-bytes",
                 str(ROWS * 12), "--compressors", "zstd:3", "--shards", str(4 * ROWS)]) == 0
    assert "shards (240, 12), blosc zstd 3 noshuffle" in capsys.readouterr().out
    z = zarr.open_array(str(tmp_path / "x.zarr"), mode="r")
    assert z.shards == (240, 12) and z.compressors[0].cname.value == "zstd"
    np.testing.assert_array_equal(z[...], data("uint8"))
    assert main(["datasets", "ingest", str(tmp_path / "x.npy"), str(tmp_path / "y.zarr"),
                 "--compressors", "snappy"]) == 2
    assert "--compressors snappy: Unknown codec 'snappy'" in capsys.readouterr().err
    assert not (tmp_path / "y.zarr").exists()
